// diagrams/ is generated from the machines; this fails when someone changes a machine and forgets `npm run diagrams`.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DIAGRAMS, embedDiagrams } from '../src/inspect/diagrams.js';

describe('diagrams', () => {
  for (const [file, text] of Object.entries(DIAGRAMS())) {
    it(`diagrams/${file} matches the machine definition (run npm run diagrams)`, () => {
      const committed = readFileSync(new URL(`../diagrams/${file}`, import.meta.url), 'utf8');
      expect(committed).toBe(text);
    });
  }

  it('README embeds the current diagrams (run npm run diagrams)', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain('<!-- diagram:connection.mmd -->');
    expect(embedDiagrams(readme)).toBe(readme);
  });

  it('shows every state of the connection lifecycle', () => {
    const text = DIAGRAMS()['connection.mmd']!;
    for (const state of ['connecting', 'online', 'idle', 'closing', 'closed', 'beating']) expect(text).toContain(state);
    expect(text).toContain('after heartbeatInterval [pongOverdue]');
  });
});
