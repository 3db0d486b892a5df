// The client's reading of a resume ack (positions.ts verdict): a topic the broker names `history_trimmed` keeps the
// position it had, so the replay of what the broker still holds (it follows the ack) is taken; every other miss
// moves the topic to the broker's current position (nothing of it is replayed), as does a protocol-1 `reason` alone.
import { describe, expect, it } from 'vitest';
import { TopicPositions } from '../../packages/client/src/positions.js';
import type { SubAck } from '../../packages/client/src/wire.js';

const ack = (fields: Record<string, unknown>) => ({ op: 'ack', ...fields }) as unknown as SubAck;

describe('TopicPositions.verdict after history_trimmed', () => {
  it('keeps a trimmed topic where it was, reports the miss, and takes the replay that follows', () => {
    const p = new TopicPositions();
    p.accept('a', 1, 'e');
    const r = p.verdict('a', { since: 1, epoch: 'e' }, ack({ recovered: false, reason: 'history_trimmed', missed: { a: 'history_trimmed' }, positions: { a: { seq: 10, epoch: 'e' } } }));
    expect(r).toMatchObject({ recovered: false, reason: 'history_trimmed', missed: { a: 'history_trimmed' }, positions: { a: { seq: 10 } } });
    expect(p.get('a')).toEqual({ seq: 1, epoch: 'e' });
    expect([8, 9, 10].map((s) => p.accept('a', s, 'e'))).toEqual([true, true, true]);
    expect(p.accept('a', 10, 'e')).toBe(false);
  });

  it('with nothing seen (history: true), the held replay is taken from its first', () => {
    const p = new TopicPositions();
    p.verdict('a', { since: 0 }, ack({ recovered: false, missed: { a: 'history_trimmed' }, positions: { a: { seq: 5, epoch: 'e' } } }));
    expect(p.get('a')).toBeUndefined();
    expect(p.accept('a', 3, 'e')).toBe(true);
  });

  it('other misses, and a reason without a missed map (protocol 1), move to the current position', () => {
    const p = new TopicPositions();
    p.accept('a', 1, 'e');
    p.accept('b', 1, 'e');
    p.verdict('+', { since: { a: 1, b: 1 }, epoch: { a: 'e', b: 'e' } }, ack({ recovered: false, missed: { a: 'epoch_changed', b: 'history_trimmed' }, positions: { a: { seq: 4, epoch: 'f' }, b: { seq: 9, epoch: 'e' } } }));
    expect(p.get('a')).toEqual({ seq: 4, epoch: 'f' });
    expect(p.get('b')).toEqual({ seq: 1, epoch: 'e' });
    const q = new TopicPositions();
    q.accept('a', 1, 'e');
    q.verdict('a', { since: 1, epoch: 'e' }, ack({ recovered: false, reason: 'history_trimmed', positions: { a: { seq: 9, epoch: 'e' } } }));
    expect(q.get('a')).toEqual({ seq: 9, epoch: 'e' });
  });
});
