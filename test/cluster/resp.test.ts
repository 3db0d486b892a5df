// resp.ts on a redis-server of the test's own: each kind of RESP2 reply comes out as redis-cli 7.0 prints it when its
// stdout is not a terminal, trimmed (the expected texts are redis-cli's, checked against it), and a Redis that cannot
// be reached, hangs, or closes without replying rejects, as a failed redis-cli did.
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, requireRedis, TestRedis } from './redis.js';
import { parseReply, respCommand } from './resp.js';

const run = requireRedis('resp');

describe.skipIf(!run)('respCommand: one command, its reply as redis-cli prints it', () => {
  let redis: TestRedis;
  const cmd = (...args: string[]) => respCommand(redis.port, args);
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('simple strings, integers and bulk strings as they are; nil as nothing', async () => {
    expect(await cmd('PING')).toBe('PONG');
    expect(await cmd('HSET', 'h', 'a', '1', 'b', 'two words', 'u', 'ünï\ncode', 'sp', '  x  ')).toBe('4');
    expect(await cmd('INCRBY', 'n', '-42')).toBe('-42');
    expect(await cmd('HGET', 'h', 'b')).toBe('two words');
    expect(await cmd('HGET', 'h', 'u')).toBe('ünï\ncode');
    expect(await cmd('HGET', 'h', 'sp')).toBe('x'); // trimmed, as redisCli's callers always had it
    expect(await cmd('HGET', 'h', 'nosuch')).toBe(''); // $-1
    expect(await cmd('BLPOP', 'nosuch', '0.01')).toBe(''); // *-1
    expect(await cmd('ECHO', 'y'.repeat(200_000))).toBe('y'.repeat(200_000)); // over many reads
  });

  it('an error reply resolves with its text (redis-cli 7.0 prints it and exits 0)', async () => {
    expect(await cmd('NOSUCHCOMMAND', 'a')).toBe("ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'a'");
    expect(await cmd('GET', 'h')).toBe('WRONGTYPE Operation against a key holding the wrong kind of value');
  });

  it('arrays one element a line, nested ones flattened: an empty one or nil an empty line, an error its line and one more', async () => {
    expect(await cmd('HGETALL', 'h').then((s) => s.split('\n').slice(0, 4))).toEqual(['a', '1', 'b', 'two words']);
    expect(await cmd('HGETALL', 'nosuch')).toBe('');
    const nested = "return {1, 'two', {3, {'four', false}}, {}, redis.error_reply('ERR mid'), redis.status_reply('OK'), 'end'}";
    expect(await cmd('EVAL', nested, '0')).toBe('1\ntwo\n3\nfour\n\n\nERR mid\n\nOK\nend');
    await cmd('RPUSH', 'l', ...Array.from({ length: 5000 }, (_, i) => `item-${i}`));
    expect(await cmd('LRANGE', 'l', '0', '-1')).toBe(Array.from({ length: 5000 }, (_, i) => `item-${i}`).join('\n'));
  });

  it('a reply is complete only once all of it has arrived', () => {
    const reply = Buffer.from('*3\r\n$3\r\nabc\r\n*2\r\n:7\r\n$-1\r\n-ERR x\r\n');
    for (let n = 0; n < reply.length; n++) expect(parseReply(reply.subarray(0, n), 0)).toBeUndefined();
    expect(parseReply(reply, 0)).toEqual({ out: Buffer.from('abc\n7\n\nERR x\n'), end: reply.length });
  });

  it('rejects when the connection is refused, closed before the reply, or no reply comes in time', async () => {
    await expect(respCommand(await freePort(), ['PING'])).rejects.toThrow(/ECONNREFUSED/);
    const closer = createServer((s) => s.destroy());
    await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
    try {
      await expect(respCommand((closer.address() as { port: number }).port, ['PING'])).rejects.toThrow(/closed the connection|ECONNRESET/);
    } finally {
      closer.close();
    }
    redis.pause();
    try {
      await expect(respCommand(redis.port, ['PING'], 300)).rejects.toThrow(/no reply .* within 300 ms/);
    } finally {
      redis.resume();
    }
  });
});
