// diagrams/ and README's generated blocks come from the code; this fails when someone changes a machine or a
// setting and forgets `npm run docs`.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DIAGRAMS } from '../src/inspect/diagrams.js';
import { embedReadmeBlocks } from '../src/readme.js';
import { SETTINGS } from '../src/config.js';

describe('generated docs', () => {
  for (const [file, text] of Object.entries(DIAGRAMS())) {
    it(`diagrams/${file} matches the machine definition (run npm run docs)`, () => {
      const committed = readFileSync(new URL(`../diagrams/${file}`, import.meta.url), 'utf8');
      expect(committed).toBe(text);
    });
  }

  it('README embeds the current diagrams and settings table (run npm run docs)', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain('<!-- generated:diagram:connection.mmd -->');
    expect(readme).toContain('<!-- generated:settings -->');
    expect(embedReadmeBlocks(readme)).toBe(readme);
    for (const s of Object.values(SETTINGS)) expect(readme).toContain(`\`--${s.flag}\``);
  });

  it('shows every state of the connection lifecycle', () => {
    const text = DIAGRAMS()['connection.mmd']!;
    for (const state of ['connecting', 'online', 'idle', 'closing', 'closed', 'beating']) expect(text).toContain(state);
    expect(text).toContain('after heartbeatInterval [pongOverdue]');
  });
});
