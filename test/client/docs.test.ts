// docs/client.md carries the lifecycle diagram generated from the machine and the bundle size as measured.
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DIAGRAMS } from '../../scripts/diagrams.js';
import { embedDocBlocks } from '../../scripts/doc-blocks.js';
import { BUNDLE_OPTIONS } from '../../packages/client/scripts/bundle.mjs';

const doc = readFileSync(new URL('../../docs/client.md', import.meta.url), 'utf8');

describe('docs/client.md', () => {
  it('embeds the current lifecycle diagram (run npm run docs)', () => {
    expect(doc).toContain('<!-- generated:diagram:client.mmd -->');
    expect(embedDocBlocks(doc)).toBe(doc);
    const diagram = DIAGRAMS()['client.mmd']!;
    for (const state of ['idle', 'authorizing', 'connecting', 'connected', 'reconnecting', 'closed']) expect(diagram).toContain(state);
    expect(diagram).toContain('after reconnectDelay');
    expect(diagram).toContain('DROPPED [stopsForGood]');
  });

  it('states the browser bundle size within 5% of what esbuild builds now', async () => {
    const out = await build({ ...BUNDLE_OPTIONS, write: false, logLevel: 'silent' });
    const bytes = out.outputFiles![0]!.contents;
    const m = /\*\*([\d.]+) kB\s+minified, ([\d.]+) kB gzipped\*\*/.exec(doc);
    expect(m, 'the size sentence').not.toBeNull();
    const near = (doc: number, actual: number) => expect(Math.abs(doc * 1000 - actual) / actual).toBeLessThan(0.05);
    near(Number(m![1]), bytes.length);
    near(Number(m![2]), gzipSync(bytes, { level: 9 }).length);
    expect(new TextDecoder().decode(bytes)).not.toContain('WebSocketServer'); // `ws` stays out of the browser
  });
});
