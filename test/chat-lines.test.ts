// The pure chat-line codec: which plain-text line is which command, and how frames read as chat room lines.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { byeLine, chatText, messageLine, parseChatLine, presenceLine, whoLines } from '../src/transports/tcp/chat.js';

const client = { id: 'c3', name: 'bob', addr: '10.0.0.5:4242', transport: 'tcp' as const };

describe('parseChatLine', () => {
  it('recognises the seed commands, JSON lines and chat text', () => {
    expect(parseChatLine('who')).toEqual({ kind: 'who' });
    expect(parseChatLine('  who \t')).toEqual({ kind: 'who' });
    expect(parseChatLine('quit')).toEqual({ kind: 'quit' });
    expect(parseChatLine('rename|alice')).toEqual({ kind: 'rename', name: 'alice' });
    expect(parseChatLine('rename|  alice smith ')).toEqual({ kind: 'rename', name: 'alice smith' });
    expect(parseChatLine('rename|a|b')).toEqual({ kind: 'rename', name: 'a|b' });
    expect(parseChatLine('{"op":"ping"}')).toEqual({ kind: 'json' });
    expect(parseChatLine('  {oops')).toEqual({ kind: 'json' });
    expect(parseChatLine('')).toEqual({ kind: 'blank' });
    expect(parseChatLine('   ')).toEqual({ kind: 'blank' });
    // Near misses are chat, said as typed.
    for (const text of ['whois', 'Who', 'rename', 'rename alice', 'quit now', ' hello ']) expect(parseChatLine(text)).toEqual({ kind: 'say', text });
  });
});

describe('rendering', () => {
  it('reads like a classic TCP chat server', () => {
    expect(messageLine(client, 'hi')).toBe('[10.0.0.5:4242]bob: hi\n');
    expect(messageLine(undefined, 'maintenance')).toBe('[server]: maintenance\n');
    expect(messageLine(client, { a: [1, 2] })).toBe('[10.0.0.5:4242]bob: {"a":[1,2]}\n');
    expect(presenceLine({ op: 'event', event: 'join', client, topic: 'chat' }, client)).toBe('[10.0.0.5:4242]bob: login\n');
    expect(presenceLine({ op: 'event', event: 'leave', client, topic: 'chat' }, client)).toBe('[10.0.0.5:4242]bob: logout\n');
    expect(presenceLine({ op: 'event', event: 'timeout', client, topic: 'chat' }, client)).toBe('[10.0.0.5:4242]bob: time out\n');
    expect(presenceLine({ op: 'event', event: 'rename', client, topic: 'chat', old: 'robert' }, client)).toBe('[10.0.0.5:4242]robert: rename to bob\n');
    expect(whoLines([client, { ...client, name: 'eve', addr: '::1:9' }])).toBe('user list:\n10.0.0.5:4242:bob\n::1:9:eve\n');
    expect(byeLine(1000, 'quit')).toBe('bye\n');
    expect(byeLine(4000, 'idle timeout')).toBe('bye: idle timeout (4000)\n');
  });

  it('any data renders as exactly one line with no control characters', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.jsonValue()), (data) => {
        const line = messageLine(client, data);
        expect(line.endsWith('\n')).toBe(true);
        // eslint-disable-next-line no-control-regex
        expect(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/.test(line.slice(0, -1))).toBe(false);
      }),
      { numRuns: 500 },
    );
    expect(chatText(undefined)).toBe('null');
  });
});
