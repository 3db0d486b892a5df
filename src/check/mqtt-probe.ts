// MqttProbe: a checker connection over MQTT 3.1.1 (docs/mqtt.md), mqtt-packet over node:net. The checker talks to
// every probe in protocol frames: here sub becomes SUBSCRIBE at the command's QoS, unsub UNSUBSCRIBE, pub a PUBLISH
// (QoS 1, or QoS 0 for a notification) with the data's JSON text as payload, ping PINGREQ, quit DISCONNECT. Packets
// received become frames named after them (suback, unsuback, puback, msg, pong) carrying the request's id, and view()
// puts the model's frames in that same form: what an MQTT client can see of them.
import { connect, type Socket } from 'node:net';
import mqttPacket, { type Packet, type QoS } from 'mqtt-packet';
import type { Expected } from '../protocol/model.js';
import { filterMatches } from '../protocol/topic.js';
import { Probe, ProbeError, type Frame, type ViewOf } from './probe.js';

/** What a request id asked, to read the model's answer to it. */
type Asked = { kind: 'sub'; qos: QoS } | { kind: 'unsub' } | { kind: 'pub' };

/** SUBACK's refusal code in 3.1.1. */
const REFUSED = 0x80;
const MAX_PACKET_ID = 65_535;

/** Connects to the MQTT listener at `url` (mqtt://host:port) with `clientId` and a clean session; resolves after CONNACK. */
export function connectMqtt(url: string, clientId: string, timeoutMs: number): Promise<MqttProbe> {
  return MqttProbe.open(new URL(url), clientId, timeoutMs);
}

export class MqttProbe extends Probe {
  /** The local address of the connection: what the broker calls the client's address. */
  readonly addr: string;
  private readonly asked = new Map<string, Asked>();
  /** Packet id → the request id it carries; PINGRESPs answer the pings in order. */
  private readonly ids = new Map<number, string>();
  private readonly pings: string[] = [];
  /** The QoS last asked per filter: a message comes at the highest of the held filters it matches. */
  private readonly qosOf = new Map<string, QoS>();
  private nextPid = 1;
  private ended = false;
  /** The broker ended the stream (a close it chose), rather than a reset. */
  private endedByBroker = false;

  private constructor(private readonly socket: Socket) {
    super();
    this.addr = `${socket.localAddress}:${socket.localPort}`;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p: Packet) => this.packet(p));
    parser.on('error', (err: Error) => this.record({ op: '<malformed MQTT packet>', text: err.message }));
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('end', () => (this.endedByBroker = true));
    socket.on('error', () => {}); // the close below reports the end either way
    socket.on('close', () => {
      this.ended = true;
      // MQTT 3.1.1 has no close codes: an end of stream is the broker's close (1000 here), a reset is 1006.
      this.settleClosed(this.endedByBroker ? 1000 : 1006);
    });
  }

  static async open(url: URL, clientId: string, timeoutMs: number): Promise<MqttProbe> {
    const socket = connect({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 1883), noDelay: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', (err) => reject(new ProbeError(`cannot connect to ${url.host}: ${err.message}`)));
        }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ProbeError(`no MQTT listener at ${url.host} within ${timeoutMs} ms`)), timeoutMs))),
      ]);
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const probe = new MqttProbe(socket);
    // Keepalive 0: the broker's idle rules apply as to any client, and the checker's barriers keep it busy.
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 }));
    const connack = await probe.waitFor((f) => f.op === 'connack', timeoutMs, `CONNACK from ${url.host}`).catch((err: unknown) => {
      probe.drop();
      throw err;
    });
    if (connack.returnCode !== 0) {
      probe.drop();
      throw new ProbeError(`${url.host} refused the MQTT connection (CONNACK return code ${String(connack.returnCode)})`);
    }
    probe.frames.length = 0;
    return probe;
  }

  /** MQTT says nothing of who the connection is: the checker learns it (from `who`) and puts a hello first. */
  greet(client: { id: string; name: string; transport: string }): void {
    this.frames.unshift({ op: 'hello', client: { ...client, addr: this.addr } });
  }

  get open(): boolean {
    return !this.ended;
  }

  send(frame: unknown, qos: QoS = 0): void {
    if (typeof frame !== 'object' || frame === null) throw new Error('checker: an MQTT client sends no raw frames');
    const f = frame as { op: string; id?: string; topic?: string; data?: unknown };
    const id = f.id;
    switch (f.op) {
      case 'sub':
        this.qosOf.set(f.topic!, qos);
        return this.write({ cmd: 'subscribe', messageId: this.request(id, { kind: 'sub', qos }), subscriptions: [{ topic: f.topic!, qos }] });
      case 'unsub':
        return this.write({ cmd: 'unsubscribe', messageId: this.request(id, { kind: 'unsub' }), unsubscriptions: [f.topic!] });
      case 'pub': {
        const payload = Buffer.from(JSON.stringify(f.data));
        if (id === undefined) return this.write({ cmd: 'publish', topic: f.topic!, payload, qos: 0, dup: false, retain: false });
        return this.write({ cmd: 'publish', topic: f.topic!, payload, qos: 1, messageId: this.request(id, { kind: 'pub' }), dup: false, retain: false });
      }
      case 'ping':
        this.pings.push(id ?? '');
        return this.write({ cmd: 'pingreq' });
      case 'quit':
        return this.write({ cmd: 'disconnect' });
      default:
        throw new Error(`checker: an MQTT client cannot send ${f.op}`);
    }
  }

  drop(): void {
    this.socket.resetAndDestroy();
  }

  close(): void {
    if (!this.socket.destroyed) this.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
  }

  /**
   * What an MQTT client sees of the model's frames (docs/mqtt.md): its hello (learnt), SUBACK with the QoS asked or
   * the refusal, UNSUBACK, PUBACK, PINGRESP, and each message as topic and data at the highest QoS of its held
   * filters that match, or its publisher's QoS when lower (an MQTT client's QoS 0 notification). Presence events, directs and errors without a request have no MQTT form.
   */
  override view(expected: Expected[], client: ViewOf): Expected[] {
    return expected.flatMap((f): Expected[] => {
      switch (f.op) {
        case 'hello':
          return [{ op: 'hello', client: f.client }];
        case 'msg':
          return [{ op: 'msg', topic: f.topic, data: f.data, qos: Math.min(this.deliveryQos(String(f.topic), client.filters), client.publishQos) }];
        case 'pong':
          return [{ op: 'pong', id: f.id }];
        case 'ack':
        case 'error': {
          const asked = typeof f.id === 'string' ? this.asked.get(f.id) : undefined;
          if (asked?.kind === 'sub') return [{ op: 'suback', id: f.id, granted: f.op === 'ack' ? asked.qos : REFUSED }];
          if (asked?.kind === 'unsub') return [{ op: 'unsuback', id: f.id }];
          if (asked?.kind === 'pub' && f.op === 'ack') return [{ op: 'puback', id: f.id }];
          return [];
        }
        default:
          return [];
      }
    });
  }

  private deliveryQos(topic: string, filters: readonly string[]): QoS {
    let best: QoS = 0;
    for (const filter of filters) if (filterMatches(filter, topic) && (this.qosOf.get(filter) ?? 0) > best) best = this.qosOf.get(filter)!;
    return best;
  }

  private request(id: string | undefined, asked: Asked): number {
    const pid = this.nextPid;
    this.nextPid = (pid % MAX_PACKET_ID) + 1;
    const rid = id ?? `p${pid}`;
    this.asked.set(rid, asked);
    this.ids.set(pid, rid);
    return pid;
  }

  private write(packet: Packet): void {
    if (!this.socket.destroyed) this.socket.write(mqttPacket.generate(packet));
  }

  private packet(p: Packet): void {
    const idOf = (pid: number | undefined) => {
      const id = pid === undefined ? undefined : this.ids.get(pid);
      if (pid !== undefined) this.ids.delete(pid);
      return id ?? `<unknown packet id ${String(pid)}>`;
    };
    let frame: Frame;
    switch (p.cmd) {
      case 'connack':
        frame = { op: 'connack', returnCode: p.returnCode };
        break;
      case 'suback':
        frame = { op: 'suback', id: idOf(p.messageId), granted: p.granted.length === 1 ? p.granted[0] : p.granted };
        break;
      case 'unsuback':
        frame = { op: 'unsuback', id: idOf(p.messageId) };
        break;
      case 'puback':
        frame = { op: 'puback', id: idOf(p.messageId) };
        break;
      case 'pingresp':
        frame = { op: 'pong', id: this.pings.shift() ?? '<a PINGRESP nobody asked for>' };
        break;
      case 'publish': {
        if (p.qos > 0) this.write({ cmd: p.qos === 1 ? 'puback' : 'pubrec', messageId: p.messageId! });
        const text = Buffer.isBuffer(p.payload) ? p.payload.toString('utf8') : p.payload;
        frame = { op: 'msg', topic: p.topic, ...dataOf(text), qos: p.qos, ...(p.retain && { retain: true }), ...(p.dup && { dup: true }) };
        break;
      }
      default:
        frame = { op: `<MQTT ${p.cmd}>` };
    }
    this.record(frame);
  }
}

/** A JSON payload is the message's data; anything else is shown as the text it is (and differs from the model). */
function dataOf(text: string): { data: unknown } | { payload: string } {
  try {
    return { data: JSON.parse(text) as unknown };
  } catch {
    return { payload: text };
  }
}
