// One Redis command over a socket of its own, its reply printed the way `redis-cli` prints it when its stdout is not
// a terminal (its raw output, redis-cli.c cliFormatReplyRaw): the test helpers' redisCli without a process spawned
// per command (a fork of the vitest worker and an exec each, 600-700 in a run of the cluster and MQTT files).
import { connect } from 'node:net';

const CRLF = Buffer.from('\r\n');
const NL = Buffer.from('\n');

/**
 * The reply at `at` in `buf` as redis-cli prints it raw (without the newline it ends its output with), and where the
 * reply ends; undefined while it has not all arrived. RESP2: a status or bulk string as it is, an error's text and a
 * newline, an integer's digits, nil (`$-1`, `*-1`) as nothing, an array's elements one a line (nested ones flattened).
 */
export function parseReply(buf: Buffer, at: number): { out: Buffer; end: number } | undefined {
  const eol = buf.indexOf(CRLF, at);
  if (eol < 0) return undefined;
  const line = buf.subarray(at + 1, eol);
  const next = eol + 2;
  switch (buf[at]) {
    case 0x2b /* + */:
    case 0x3a /* : */:
      return { out: line, end: next };
    case 0x2d /* - */:
      return { out: Buffer.concat([line, NL]), end: next };
    case 0x24 /* $ */: {
      const len = Number(line.toString());
      if (len < 0) return { out: Buffer.alloc(0), end: next };
      if (buf.length < next + len + 2) return undefined;
      return { out: buf.subarray(next, next + len), end: next + len + 2 };
    }
    case 0x2a /* * */: {
      const parts: Buffer[] = [];
      let end = next;
      for (let i = 0, n = Number(line.toString()); i < n; i++) {
        const r = parseReply(buf, end);
        if (!r) return undefined;
        parts.push(...(i > 0 ? [NL, r.out] : [r.out]));
        end = r.end;
      }
      return { out: Buffer.concat(parts), end };
    }
    default:
      throw new Error(`not a RESP2 reply: ${JSON.stringify(buf.subarray(at, at + 40).toString('latin1'))}`);
  }
}

/**
 * Sends `args` as one command to 127.0.0.1:`port` on a new connection and resolves with the reply as redis-cli
 * prints it, trimmed (an error reply too: redis-cli 7.0 prints it and exits 0); rejects, as a failed redis-cli did,
 * when the connection is refused or closed before the reply, or none has come within `timeoutMs`.
 */
export function respCommand(port: number, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const timer = setTimeout(() => done(new Error(`no reply from 127.0.0.1:${port} to ${args[0]} within ${timeoutMs} ms`)), timeoutMs);
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | undefined, out?: Buffer) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(out!.toString().trim());
    };
    sock.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      try {
        const r = parseReply(buf, 0);
        if (r) done(undefined, r.out);
      } catch (err) {
        done(err as Error);
      }
    });
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error(`127.0.0.1:${port} closed the connection before replying to ${args[0]}`)));
    sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}
