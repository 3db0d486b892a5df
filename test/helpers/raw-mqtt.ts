// A raw MQTT socket, for what a well-behaved client library will not send (test/mqtt/): packets written as given,
// every packet read kept in order.
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

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
    await new Promise((resolve) => socket.once('connect', resolve));
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
