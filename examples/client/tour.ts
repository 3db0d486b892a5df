// A tour of @switchboard/client: every member and event docs/client.md lists, in one program. CI compiles it with
// strict TypeScript against the package as npm installs it, and runs it against a broker (test/package/).
import {
  BROKER_ERROR_CODES,
  CLIENT_ERROR_CODES,
  isWildcard,
  matches,
  SwitchboardClient,
  SwitchboardError,
  type ClientState,
  type LastClose,
  type Member,
  type Message,
  type Position,
  type Recovery,
  type Subscription,
} from '@switchboard/client';
import WebSocket from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:8080/ws';
const say = (...parts: unknown[]) => console.log(...parts);

// A bad option is an error thrown at once, never a crash later.
try {
  new SwitchboardClient({ url: '/ws' });
} catch (err) {
  if (err instanceof SwitchboardError) say('refused:', err.code);
}

const client = new SwitchboardClient({
  url,
  WebSocket, // Node 20 has none: the ws package (found on its own when installed; this is the explicit way)
  sseFallback: false, // default true: where a WebSocket cannot be opened, dial Server-Sent Events (/sse) instead
  wsRetryMs: 60_000, // default 5 minutes: how long a URL stays on that fallback before WebSocket is tried again
  EventSource: undefined, // the fallback's EventSource; default the browser's (Node 20 has none: no fallback)
  name: 'tour',
  getToken: () => 'an-opaque-token', // asked before connecting; a JWT would also be refreshed before its exp
  backoff: { minMs: 100, maxMs: 2000, factor: 2 },
  requestTimeoutMs: 5000,
  connectTimeoutMs: 5000,
  offlineQueueSize: 100,
  connect: false,
  random: Math.random,
});
const states: ClientState[] = [];
client.on('state', (s) => states.push(s));
client.on('disconnected', (c: LastClose) => say('disconnected:', c.code, c.reason));
client.on('reconnecting', ({ attempt, inMs, lastClose }) => say('reconnecting:', attempt, inMs, lastClose?.code));
client.on('closed', (c: LastClose) => say('closed:', c.code, c.reason));
client.on('error', (e: SwitchboardError) => say('error:', e.code, e.message));
client.on('direct', ({ from, data }) => say(`direct from ${from.name}:`, data));
const told: Message[] = [];
const stopTelling = client.on('message', (m) => told.push(m));
client.once('connected', (hello) => say(`connected as ${hello.client.name}, protocol ${hello.server.protocol}`));

// Publishes made before the connection wait in the offline queue.
const queued = client.publish('tour/news', { n: 1 });
await client.connect();
say('state:', client.state, 'me:', client.me?.name, 'hello:', client.hello?.server.name, 'urls:', client.urls.length);
say('actor:', client.actor.getSnapshot().status);
say('queued publish: seq', (await queued).seq);
await client.publish('tour/news', { n: 2 }, { ack: false, echo: false });
const { seq, epoch, delivered } = await client.publish('tour/news', { n: 3 });
say('published:', seq, typeof epoch, delivered);

// History: the replay waits in the subscription until the iterator takes it.
const news = await client.subscribe<{ n: number }>('tour/+', { history: true, bufferSize: 100 });
say('news:', news.filter, news.state, 'recovered:', news.recovery?.recovered, 'buffered:', news.buffered);
for await (const m of news) {
  say(`${m.topic} #${m.seq}: ${m.data.n}`, m.from?.name ?? 'server', typeof m.ts, typeof m.epoch);
  if (m.seq === 3) break;
}
const saved: Record<string, Position> = news.positions;

// Saved positions: a resume that missed nothing; its verdict is state as well as an event.
const resumed = client.subscription('tour/+', { positions: saved });
resumed.on('recovered', (v: Recovery) => say('recovered event:', v.recovered));
resumed.on('notRecovered', (v: Recovery) => say('notRecovered event:', v.reason, Object.keys(v.missed)));
await resumed.subscribe();
say('resumed:', resumed.recovery?.recovered, Object.keys(resumed.recovery?.positions ?? {}));
await resumed.unsubscribe();

// A room with presence; every listener attached before subscribe().
const room: Subscription<string> = client.subscription<string>('tour/room', { presence: true });
const show = (m: Member) => `${m.name}/${m.transport}/${m.state}`;
room.on('state', (s) => say('room state:', s));
room.on('presence', (members) => say('present:', [...members.values()].map(show).sort().join(' ')));
room.on('join', (m) => say('join:', show(m)));
room.on('leave', (m) => say('leave:', show(m)));
room.on('timeout', (m) => say('timeout:', show(m)));
room.on('idle', (m) => say('idle:', show(m)));
room.on('active', (m) => say('active:', show(m)));
room.on('rename', ({ member, old }) => say('rename:', old, '->', member.name));
room.on('message', (m) => say('room message:', m.data, 'from', m.from?.name));
room.on('error', (e) => say('room error:', e.code));
await room.subscribe();

// Someone else comes, speaks, renames, sends a direct message and leaves.
const guest = new SwitchboardClient({ url, name: 'guest' });
await guest.subscribe('tour/room');
await guest.publish('tour/room', 'hello, tour');
await guest.rename('guest2');
await guest.send('tour', 'psst');
say('who:', (await client.who({ topic: 'tour/room', limit: 10 })).clients.map((c) => c.name).sort().join(' '));
say('whoAll:', (await client.whoAll('tour/room')).length);
guest.close();
await new Promise<void>((resolve) => room.once('leave', () => resolve()));
say('ping < 5 s:', (await client.ping()) < 5000);
say('renamed:', await client.rename('tour2'));
say('diagnose:', (await client.diagnose()).status);

// Errors are data: the broker's codes and the client's own.
await client.subscribe('a/#/b').catch((e: SwitchboardError) => say('refused:', e.code, BROKER_ERROR_CODES.includes(e.code as never)));
await client.send('nobody-here', 1).catch((e: SwitchboardError) => say('send:', e.code));
// rpc calls the application backend's rpc hook; this broker has none: bad_frame.
await client.rpc<{ level: number }>('setLevel', { pump: 2, level: 80 }, { timeoutMs: 2000 }).catch((e: SwitchboardError) => say('rpc:', e.code));
say('client codes:', CLIENT_ERROR_CODES.join(' '));
say('matches:', matches('tour/+', 'tour/news'), isWildcard('tour/news'));

stopTelling();
say('told:', told.map((m) => m.seq).join(' '));
const off = () => say('never');
client.on('direct', off);
client.off('direct', off);
await room.unsubscribe();
say('room after unsubscribe:', room.state);
client.close();
say('states:', [...new Set(states)].join(' '));
