// How a scenario's client connects, per transport: what its connect asks the broker for (name, filters), the
// transcript's line for it, and the probe once open, its hello first. WebSocket and Server-Sent Events ask for a name
// and filters in the URL, the line protocol for a name and the scenario's room, MQTT for a name as its client id;
// an MQTT connection is told nothing of who it is, so the checker looks itself up with `who` (identify).
import type { Transport } from '../protocol/model.js';
import type { CheckCommand, Naming } from './commands.js';
import { connectLines } from './lines-probe.js';
import { connectMqtt, type MqttProbe } from './mqtt-probe.js';
import { Probe, ProbeError } from './probe.js';
import { connectSse } from './sse-probe.js';

/** One node's endpoints: its WebSocket URL and, when MQTT is checked, its MQTT listener (mqtt://host:port). */
export interface Endpoint {
  ws: string;
  mqtt?: string | undefined;
}

export interface ConnectContext {
  node: Endpoint;
  /** The chat room of the scenario's line-protocol clients. */
  room: string;
  timeoutMs: number;
  /** A connection outside the scenario that can ask `who`. */
  observer: () => Promise<Probe>;
  /** A topic of this connection's own, outside the scenario's topics: an MQTT client is found by holding it. */
  ownTopic: string;
}

export interface Opening {
  /** What the connect asks for, as the model reads it. */
  request: { name?: string; topics?: string[] };
  /** The transcript's line: the URL or what is sent. */
  sent: string;
  open(): Promise<Probe>;
}

type Connect = Extract<CheckCommand, { op: 'connect' }>;

export function opening(cmd: Connect, ctx: ConnectContext, naming: Naming): Opening {
  const name = cmd.name === undefined ? undefined : naming.name(cmd.name);
  const topics = cmd.topics?.map((t) => naming.topic(t));
  const request = { ...(name !== undefined && { name }), ...(topics !== undefined && { topics }) };
  const query = new URLSearchParams({ ...(name !== undefined && { name }), ...(topics !== undefined && topics.length > 0 && { topics: topics.join(',') }) }).toString();
  const http = new URL(ctx.node.ws).origin.replace(/^ws/, 'http');
  const via: Transport = cmd.transport ?? 'ws';
  switch (via) {
    case 'ws': {
      const url = new URL(ctx.node.ws);
      if (name !== undefined) url.searchParams.set('name', name);
      if (topics !== undefined && topics.length > 0) url.searchParams.set('topics', topics.join(','));
      return { request, sent: url.toString(), open: () => Probe.connect(url.toString(), ctx.timeoutMs) };
    }
    case 'sse':
      return { request, sent: `sse ${http}/sse?${query}`, open: () => connectSse(ctx.node.ws, request, ctx.timeoutMs) };
    case 'tcp':
      return {
        request: name === undefined ? {} : { name },
        sent: `lines ${http}/lines?room=${ctx.room}${name === undefined ? '' : `&name=${encodeURIComponent(name)}`}`,
        open: () => connectLines(ctx.node.ws, ctx.room, ctx.timeoutMs, name),
      };
    case 'mqtt': {
      const mqtt = ctx.node.mqtt;
      if (mqtt === undefined) throw new Error('checker: an MQTT connect without the MQTT endpoint of the node');
      // The client id is the name asked for (docs/mqtt.md, "Client id → name"); without one, empty (a clean session).
      const clientId = name ?? '';
      return {
        request: name === undefined ? {} : { name },
        sent: `mqtt ${mqtt} CONNECT client id ${JSON.stringify(clientId)}`,
        open: async () => {
          const probe = await connectMqtt(mqtt, clientId, ctx.timeoutMs);
          try {
            probe.greet(await identify(probe, ctx));
          } catch (err) {
            probe.drop();
            throw err;
          }
          return probe;
        },
      };
    }
  }
}

/**
 * Who an MQTT connection is (id, name, transport): it subscribes to a topic of its own, `who` of that topic lists
 * exactly it (retried until its presence shows, as on another node of a cluster), and it unsubscribes again.
 */
async function identify(probe: MqttProbe, ctx: ConnectContext): Promise<{ id: string; name: string; transport: string }> {
  const { timeoutMs, ownTopic: topic } = ctx;
  probe.send({ op: 'sub', id: 'whoami', topic }, 0);
  const suback = await probe.waitFor((f) => f.op === 'suback' && f.id === 'whoami', timeoutMs, `SUBACK of ${topic}`);
  if (suback.granted !== 0) throw new ProbeError(`the broker refused the MQTT client's subscription to ${topic}: ${JSON.stringify(suback)}`);
  const observer = await ctx.observer();
  const deadline = Date.now() + timeoutMs;
  let found: { id: string; name: string; transport: string } | undefined;
  for (let n = 0; !found; n++) {
    if (Date.now() > deadline) throw new ProbeError(`who ${topic} did not list the MQTT client holding it within ${timeoutMs} ms`);
    const rid = `${topic}.${n}`;
    observer.send({ op: 'who', id: rid, topic });
    const ack = await observer.waitFor((f) => f.id === rid, timeoutMs, `who ${rid}`);
    observer.frames.length = 0; // its answers are not compared with anything: keep it from growing
    const clients = (ack.op === 'ack' && Array.isArray(ack.clients) ? ack.clients : []) as { id?: unknown; name?: unknown; transport?: unknown }[];
    const [c] = clients;
    if (clients.length > 1) throw new ProbeError(`who ${topic} lists ${clients.length} clients, expected the MQTT client alone: ${JSON.stringify(clients)}`);
    if (c && typeof c.id === 'string' && typeof c.name === 'string' && typeof c.transport === 'string') found = { id: c.id, name: c.name, transport: c.transport };
    else await new Promise((r) => setTimeout(r, 2));
  }
  probe.send({ op: 'unsub', id: 'whoami.done', topic });
  await probe.waitFor((f) => f.op === 'unsuback' && f.id === 'whoami.done', timeoutMs, `UNSUBACK of ${topic}`);
  probe.frames.length = 0;
  return found;
}
