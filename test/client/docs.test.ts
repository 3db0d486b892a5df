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

describe('the tour uses everything docs/client.md lists', () => {
  const tour = readFileSync(new URL('../../examples/client/tour.ts', import.meta.url), 'utf8');
  /** The first column of every table under a `### ` heading of the API section. */
  const firstColumns = (md: string) =>
    md
      .slice(md.indexOf('## API'), md.indexOf('## Token refresh'))
      .split('\n')
      .filter((l) => l.startsWith('| `') || l.startsWith('| events'))
      .map((l) => l.split('|')[1]!);

  it('every option, member and event of the API tables appears in examples/client/tour.ts', () => {
    const names = new Set<string>();
    for (const cell of firstColumns(doc)) for (const [, code] of cell.matchAll(/`([^`]+)`/g)) names.add(/^(for await|[A-Za-z]+)/.exec(code!)![1]!);
    expect(names.size).toBeGreaterThan(40);
    const missing = [...names].filter((n) => (n === 'for await' ? !tour.includes('for await') : !new RegExp(`\\b${n}\\b`).test(tour)));
    expect(missing).toEqual([]);
  });

  it('every client and subscription event is listened to', () => {
    const events = (table: string) => [...doc.slice(doc.indexOf(`| ${table} | payload |`)).split('\n\n')[0]!.matchAll(/^\| `([^|]+)` \|/gm)].flatMap((m) => m[1]!.split(/`, `/).map((e) => e.replace(/`/g, '')));
    const all = [...events('client event'), ...events('subscription event')];
    expect(all.length).toBeGreaterThan(15);
    expect(all.filter((e) => !new RegExp(`\\.(on|once)\\('${e}'`).test(tour))).toEqual([]);
  });
});
