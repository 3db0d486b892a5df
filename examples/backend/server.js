// An application backend for Switchboard's hooks (docs/integration.md), in plain node:http: a small plant where
// operators log in with a cookie, see live rows only of the pumps they are assigned, set a pump's level by rpc,
// chat, and where every webhook event is logged. Run: PORT=9000 HOOK_SECRET=… SWITCHBOARD_URL=http://127.0.0.1:8080 node examples/backend/server.js
// then: switchboard serve --hook-url http://127.0.0.1:9000/hooks --hook-secret …
import { createServer } from 'node:http';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SECRET = process.env.HOOK_SECRET; // the broker's --hook-secret
const BROKER = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8080'; // for server-side publishes
const API_KEY = process.env.SWITCHBOARD_API_KEY; // the broker's --api-key, if it has one

// The application's data: users, which pumps each may see, and the pumps' rows.
const users = new Map([
  ['alice', { password: 'alice-pw', role: 'operator', pumps: ['1', '2'] }],
  ['bob', { password: 'bob-pw', role: 'viewer', pumps: ['2'] }],
]);
const pumps = new Map([
  ['1', { id: '1', level: 40 }],
  ['2', { id: '2', level: 75 }],
]);
const sessions = new Map(); // cookie value → user name
const seenEvents = new Set(); // webhook event ids: events come at least once, so duplicates are skipped

/** The user a request's `session` cookie belongs to. */
function userOf(cookie) {
  const m = /(?:^|;\s*)session=([^;]+)/.exec(cookie ?? '');
  return m ? sessions.get(m[1]) : undefined;
}

/** Whether `user` may read `topic`: rows of its own pumps, and the chat. */
function mayRead(user, topic) {
  const [kind, type, id] = topic.split('/');
  if (kind !== 'rowdata') return topic === 'chat';
  return type === 'pump' && user.pumps.includes(id);
}

/** The hooks: each gets the broker's JSON body and answers JSON (docs/integration.md, "The hooks"). */
const hooks = {
  // Who connects: only logged-in users; the name, what they may do, and what others see of them.
  connect(body) {
    const name = userOf(body.headers.cookie);
    if (!name) return { allow: false, status: 401, reason: 'log in first: POST /login' };
    const user = users.get(name);
    // Subscriptions asked at connect (/ws/rowdata/pump/1) come with this call: allowing the connection allows them.
    const refused = body.topics.find((t) => !mayRead(user, t));
    if (refused) return { allow: false, reason: `${refused} is not yours` };
    return { name, acl: { sub: ['rowdata/pump/+', 'chat'], pub: ['chat'] }, meta: { role: user.role }, cacheMs: 5000 };
  },
  // A row subscription (rowdata/pump/<id>): only the user's own pumps, with the row as it is now.
  subscribe(body) {
    const user = users.get(body.client.name);
    if (!user || !mayRead(user, body.topic)) return { allow: false, reason: `${body.topic} is not yours` };
    const [kind, , id] = body.topic.split('/');
    return kind === 'rowdata' ? { data: pumps.get(id) } : {};
  },
  // Chat lines are checked and stamped with who said them.
  publish(body) {
    if (typeof body.data !== 'string' || body.data.length > 200) return { allow: false, reason: 'a chat line is a string of at most 200 characters' };
    return { data: { text: body.data, by: body.client.name } };
  },
  // setLevel: operators change a pump's level; every subscriber of its row gets the new row.
  async rpc(body) {
    const user = users.get(body.client.name);
    if (body.method !== 'setLevel') return { error: { message: `no method '${body.method}'` } };
    if (user?.role !== 'operator') return { allow: false, reason: 'operators only' };
    const pump = pumps.get(String(body.data?.pump));
    if (!pump || !user.pumps.includes(pump.id)) return { error: { message: 'no such pump of yours' } };
    pump.level = Number(body.data.level);
    const published = await publish(`rowdata/pump/${pump.id}`, pump);
    return { data: { pump: pump.id, level: pump.level, seq: published.seq } };
  },
  // Webhooks: log each event once.
  events(body) {
    for (const event of body.events) {
      if (seenEvents.has(event.id)) continue;
      seenEvents.add(event.id);
      console.log(JSON.stringify({ msg: 'event', type: event.type, topic: event.topic, client: event.client?.name, cause: event.cause }));
    }
    return {};
  },
};

/** A server-side publish through the broker's HTTP API. */
async function publish(topic, data) {
  const headers = { 'content-type': 'application/json', ...(API_KEY && { authorization: `Bearer ${API_KEY}` }) };
  const res = await fetch(`${BROKER}/api/publish`, { method: 'POST', headers, body: JSON.stringify({ topic, data }) });
  return res.json();
}

/** Whether the body was signed by the broker (X-Switchboard-Signature: sha256=<HMAC of the raw body>). */
function signed(req, raw) {
  if (SECRET === undefined) return true;
  const expected = Buffer.from('sha256=' + createHmac('sha256', SECRET).update(raw).digest('hex'));
  const given = Buffer.from(String(req.headers['x-switchboard-signature'] ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function reply(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks);
    try {
      const body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
      // The login page's form: a cookie for the user (a real application checks a password hash).
      if (req.method === 'POST' && req.url === '/login') {
        const user = users.get(body.user);
        if (!user || user.password !== body.password) return reply(res, 403, { error: 'wrong user or password' });
        const session = randomBytes(16).toString('hex');
        sessions.set(session, body.user);
        return reply(res, 200, { user: body.user }, { 'set-cookie': `session=${session}; HttpOnly; SameSite=Strict; Path=/` });
      }
      const hook = req.method === 'POST' && req.url.startsWith('/hooks/') ? hooks[req.url.slice('/hooks/'.length)] : undefined;
      if (!hook) return reply(res, 404, { error: 'not found' });
      if (!signed(req, raw)) return reply(res, 401, { error: 'bad signature' });
      reply(res, 200, await hook(body));
    } catch (err) {
      reply(res, 500, { error: { message: String(err.message ?? err) } });
    }
  });
});

server.listen(Number(process.env.PORT ?? 9000), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'backend listening', port: server.address().port }));
});
