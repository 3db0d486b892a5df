// A raw MQTT socket, for what a well-behaved client library will not send (test/mqtt/): packets written as given,
// every packet read kept in order.
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { until } from './waits.js';

/** A raw MQTT socket, for what a well-behaved client library will not send. */
export class RawMqtt {
  readonly packets: Packet[] = [];
  private readonly parser;
  closed: Promise<void>;
  private constructor(readonly socket: Socket, version: 4 | 5) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (p: Packet) => this.packets.push(p));
    socket.on('data', (d: Buffer) => this.parser.parse(d));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }
  static async open(port: number, version: 4 | 5 = 4): Promise<RawMqtt> {
    const socket = netConnect(port, '127.0.0.1');
    // Refused (nothing listening yet): an error now, not a wait that never ends.
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawMqtt(socket, version);
  }
  send(p: Packet, version: 4 | 5 = 4): void {
    this.socket.write(mqttPacket.generate(p, { protocolVersion: version }));
  }
  /** Several packets in one write (one read on the broker's side, as a client's burst arrives). */
  sendAll(packets: Packet[], version: 4 | 5 = 4): void {
    this.socket.write(Buffer.concat(packets.map((p) => mqttPacket.generate(p, { protocolVersion: version }))));
  }
  /** The payloads of the PUBLISHes read so far, as text. */
  get published(): string[] {
    return this.packets.filter((p) => p.cmd === 'publish').map((p) => (p as { payload: Buffer }).payload.toString());
  }
  async next(cmd: string, timeoutMs = 3000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.packets.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.packets.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no ${cmd} within ${timeoutMs} ms (got ${this.packets.map((p) => p.cmd).join(', ')})`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** A persistent session's CONNECT (3.1.1, clean session 0, no keepalive). */
/** A clean-session CONNECT of `clientId` in protocol `version` (4: 3.1.1, 5: 5.0), keepalive off. */
/**
 * Opens a 5.0 connection and sends its CONNECT: `properties` as given (none when absent), clean start unless `clean`
 * is false, and a `will` on its topic (payload `will:<clientId>`, QoS 1) with that Will Delay Interval (s). Resolves
 * with the connection and its CONNACK.
 */
export async function connect5(port: number, clientId: string, o: { clean?: boolean; properties?: Record<string, unknown>; will?: { topic: string; delay: number } } = {}): Promise<{ c: RawMqtt; connack: Packet }> {
  const c = await RawMqtt.open(port, 5);
  const will = o.will ? { will: { topic: o.will.topic, payload: Buffer.from(`will:${clientId}`), qos: 1, retain: false, properties: { willDelayInterval: o.will.delay } } } : {};
  const properties = o.properties === undefined ? {} : { properties: o.properties };
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean: o.clean ?? true, protocolId: 'MQTT', protocolVersion: 5, ...properties, ...will } as Packet, 5);
  return { c, connack: await c.next('connack') };
}

export const cleanConnect = (clientId: string, version: 4 | 5 = 4) => ({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: version }) as Packet;

/** Whether the broker closed `c` within `ms` (false: still open then). */
export const closedWithin = (c: RawMqtt, ms = 5000): Promise<boolean> => Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

export const persistentConnect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 4 }) as Packet;

/** The payloads of `packets` (PUBLISHes), as text. */
export const payloadsOf = (packets: Packet[]): string[] => packets.map((p) => (p as { payload: Buffer }).payload.toString());

/**
 * A persistent session on `filter` whose client reads but never acknowledges: `n` messages of `topic` (data 1..n,
 * published by `web`) in flight on it. The connection is left open.
 */
export async function unackedSession(port: number, web: { request(frame: Record<string, unknown>): Promise<unknown> }, clientId: string, filter: string, topic: string, n: number): Promise<RawMqtt> {
  const a = await RawMqtt.open(port);
  a.send(persistentConnect(clientId));
  await a.next('connack');
  a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] } as Packet);
  await a.next('suback');
  for (let i = 1; i <= n; i++) await web.request({ op: 'pub', topic, data: i });
  await until(() => a.packets.filter((p) => p.cmd === 'publish').length === n, `${n} messages in flight`);
  return a;
}

/** Acknowledges (PUBACK) every PUBLISH on `c` as it comes, kept in `got`, until `done()` holds; the error names what came. */
export async function ackPublishes(c: RawMqtt, got: Packet[], done: () => boolean, what: string, ms = 10_000): Promise<void> {
  await until(() => {
    for (let p = c.packets.shift(); p; p = c.packets.shift()) {
      if (p.cmd !== 'publish') continue;
      got.push(p);
      c.send({ cmd: 'puback', messageId: (p as { messageId: number }).messageId } as Packet);
    }
    return done();
  }, what, ms).catch((err: Error) => {
    throw new Error(`${err.message}; got ${JSON.stringify(payloadsOf(got))}`);
  });
}

/** Reconnects `clientId`'s persistent session; rejects unless CONNACK accepts it with the session present. */
export async function resumeSession(port: number, clientId: string): Promise<RawMqtt> {
  const c = await RawMqtt.open(port);
  c.send(persistentConnect(clientId));
  const connack = (await c.next('connack')) as { returnCode?: number; sessionPresent?: boolean };
  if (connack.returnCode !== 0 || connack.sessionPresent !== true) throw new Error(`CONNACK for ${clientId}: ${JSON.stringify(connack)}, not a resumed session`);
  return c;
}
