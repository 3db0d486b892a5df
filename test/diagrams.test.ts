// diagrams/ is generated from the machines; this fails when someone changes a machine and forgets `npm run diagrams`.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DIAGRAMS } from '../src/inspect/diagrams.js';

describe('diagrams', () => {
  for (const [file, text] of Object.entries(DIAGRAMS())) {
    it(`diagrams/${file} matches the machine definition (run npm run diagrams)`, () => {
      const committed = readFileSync(new URL(`../diagrams/${file}`, import.meta.url), 'utf8');
      expect(committed).toBe(text);
    });
  }

  it('shows every state of the connection lifecycle', () => {
    const text = DIAGRAMS()['connection.mmd']!;
    for (const state of ['connecting', 'online', 'idle', 'closing', 'closed', 'beating']) expect(text).toContain(state);
    expect(text).toContain('after heartbeatInterval [pongOverdue]');
  });
});
