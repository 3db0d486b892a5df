// A scriptable application backend for hook tests, run as its own process (`node test/helpers/hook-backend.mjs`):
// prints {"port":n} once listening. POST /control sets how each hook answers; GET /calls lists the calls it got.
// Plain node:http and no TypeScript, so it starts in a few tens of milliseconds.
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';

const secret = process.env.HOOK_SECRET;
/** kind → { status, statusBy: { key → status }, answer, by: { key → answer }, delayMs, randomDelayMs, failEvery, echo } */
let script = {};
const calls = [];
const counts = {};

function keyOf(kind, body) {
  if (kind === 'subscribe' || kind === 'publish') return body.topic;
  if (kind === 'rpc') return body.method;
  if (kind === 'connect') return body.name ?? '';
  return '';
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const kind = req.url.slice(1);
    if (req.method === 'POST' && kind === 'control') {
      script = JSON.parse(raw.toString());
      calls.length = 0;
      for (const k of Object.keys(counts)) delete counts[k];
      return res.end('{}');
    }
    if (req.method === 'GET' && kind === 'calls') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify(calls));
    }
    const body = JSON.parse(raw.toString() || 'null');
    const signature = req.headers['x-switchboard-signature'];
    const signed = secret === undefined ? null : signature === 'sha256=' + createHmac('sha256', secret).update(raw).digest('hex');
    calls.push({ kind, body, signed, at: Date.now() });
    const rule = script[kind] ?? {};
    const n = (counts[kind] = (counts[kind] ?? 0) + 1);
    const delay = (rule.delayMs ?? 0) + Math.floor(Math.random() * (rule.randomDelayMs ?? 0));
    setTimeout(() => {
      if (rule.failEvery && n % rule.failEvery === 0) {
        res.statusCode = 500;
        return res.end('{"error":{"message":"flapping"}}');
      }
      const key = keyOf(kind, body);
      res.statusCode = (rule.statusBy && Object.hasOwn(rule.statusBy, key) ? rule.statusBy[key] : rule.status) ?? 200;
      res.setHeader('content-type', 'application/json');
      let answer = rule.by && Object.hasOwn(rule.by, key) ? rule.by[key] : (rule.answer ?? {});
      if (rule.echo) answer = { ...answer, data: body.data };
      res.end(JSON.stringify(answer));
    }, delay);
  });
});
server.keepAliveTimeout = 30_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
