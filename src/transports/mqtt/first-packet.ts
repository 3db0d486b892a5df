// Reading CONNECT: the first packet of an MQTT connection, cut and parsed before the connection's own reader exists,
// with what arrived behind it in the same read; and the protocol version it asks for.
import type { Socket } from 'node:net';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import type { FrameEvent, PacketFramer } from './framer.js';
import type { MqttVersion } from './session-options.js';

/** 4 for MQTT 3.1.1 (and 3 for MQIsdp 3.1, served as 3.1.1), 5 for MQTT 5.0; undefined otherwise. */
export function connectVersion(p: IConnectPacket): MqttVersion | undefined {
  if (p.protocolId === 'MQTT' && (p.protocolVersion === 4 || p.protocolVersion === 5)) return p.protocolVersion;
  if (p.protocolId === 'MQIsdp' && p.protocolVersion === 3) return 3;
  return undefined;
}

/**
 * The first packet (it must be CONNECT), parsed and as it came (`raw`), with the whole packets after it (a partial one stays in `framer`);
 * null when the socket closes, the packet is too large or malformed, or time runs out. The socket is left paused.
 */
export function firstPacket(socket: Socket, framer: PacketFramer, timeoutMs: number): Promise<{ packet: Packet; raw: Buffer; rest: FrameEvent[] } | null> {
  return new Promise((resolve) => {
    const done = (value: { packet: Packet; raw: Buffer; rest: FrameEvent[] } | null) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      const events = framer.push(chunk);
      if (events.length === 0) return;
      const e = events[0]!;
      if (e.kind !== 'packet') return done(null);
      const parser = mqttPacket.parser({ protocolVersion: 5 });
      let packet: Packet | undefined;
      parser.on('packet', (p: Packet) => (packet ??= p));
      parser.on('error', () => undefined);
      try {
        parser.parse(e.packet);
      } catch {
        return done(null); // bytes the codec threw on: no CONNECT
      }
      if (!packet) return done(null);
      // Packets right behind CONNECT are the connection's first (and a failure among them ends it there).
      done({ packet, raw: e.packet, rest: events.slice(1) });
    };
    const onClose = () => done(null);
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
