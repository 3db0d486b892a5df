// Topic names and filters as the client sent them. The codec (mqtt-packet) decodes a string with U+FFFD in place of
// ill-formed UTF-8, so a PUBLISH would go out on a changed topic; ill-formed UTF-8 makes the packet malformed, and
// the connection is closed [MQTT-1.5.4-1]. Only a string that decoded with U+FFFD is looked for in the raw packet
// (ill-formed bytes always decode to one): well-formed topics cost one scan of their text.
import { isUtf8 } from 'node:buffer';
import type { IConnectPacket, Packet } from 'mqtt-packet';

const REPLACED = '\ufffd';

/** The offset just past a variable byte integer at `at` (the fixed header's remaining length, a properties length), and its value. */
export function varint(raw: Buffer, at: number): { end: number; value: number } {
  let value = 0;
  let multiplier = 1;
  for (let i = at; i < at + 4 && i < raw.length; i++) {
    value += (raw[i]! & 0x7f) * multiplier;
    if ((raw[i]! & 0x80) === 0) return { end: i + 1, value };
    multiplier *= 128;
  }
  return { end: raw.length, value };
}

/** Whether the length-prefixed string at `at` is well-formed UTF-8 (false when its length prefix is cut off). */
const wellFormedAt = (raw: Buffer, at: number): boolean => at + 2 <= raw.length && isUtf8(raw.subarray(at + 2, at + 2 + raw.readUInt16BE(at)));

/** Whether the `count` length-prefixed strings from `at` (each followed by `gap` bytes: SUBSCRIBE's options) are all well-formed UTF-8. */
function stringsWellFormed(raw: Buffer, at: number, count: number, gap: number): boolean {
  for (let n = 0; n < count && at + 2 <= raw.length; n++) {
    if (!wellFormedAt(raw, at)) return false;
    at += 2 + raw.readUInt16BE(at) + gap;
  }
  return true;
}

/** Whether `packet`'s topic name or filters (PUBLISH, SUBSCRIBE, UNSUBSCRIBE), read from `raw`, hold ill-formed UTF-8. */
export function illFormedTopic(packet: Packet, raw: Buffer, v5: boolean): boolean {
  const body = varint(raw, 1).end; // past the fixed header
  switch (packet.cmd) {
    case 'publish':
      return packet.topic.includes(REPLACED) && !stringsWellFormed(raw, body, 1, 0);
    case 'subscribe':
    case 'unsubscribe': {
      const filters = packet.cmd === 'subscribe' ? packet.subscriptions.map((s) => s.topic) : packet.unsubscriptions;
      if (!filters.some((f) => f.includes(REPLACED))) return false;
      // Past the packet id, and on 5.0 the properties.
      const props = v5 ? varint(raw, body + 2) : { end: body + 2, value: 0 };
      return !stringsWellFormed(raw, props.end + props.value, filters.length, packet.cmd === 'subscribe' ? 1 : 0);
    }
    default:
      return false;
  }
}


/**
 * Which of CONNECT's strings that become names or topics (client id, will topic, user name), read from `raw`, holds
 * ill-formed UTF-8 (the codec read it with U+FFFD: a changed client id, a will published on a changed topic); none:
 * undefined. Only a string that decoded with U+FFFD is looked for.
 */
export function illFormedConnect(packet: IConnectPacket, raw: Buffer, v5: boolean): string | undefined {
  const has = (s: string | undefined) => s !== undefined && s.includes(REPLACED);
  if (!has(packet.clientId) && !has(packet.will?.topic) && !has(packet.username)) return undefined;
  let at = varint(raw, 1).end; // past the fixed header
  at += 2 + raw.readUInt16BE(at); // protocol name
  const flags = raw[at + 1]!; // after the protocol level
  at += 4; // level, flags, keep alive
  if (v5) {
    const props = varint(raw, at);
    at = props.end + props.value;
  }
  if (!wellFormedAt(raw, at)) return 'client id';
  at += 2 + raw.readUInt16BE(at);
  if (flags & 0x04) {
    if (v5) {
      const props = varint(raw, at);
      at = props.end + props.value;
    }
    if (!wellFormedAt(raw, at)) return 'will topic';
    at += 2 + raw.readUInt16BE(at); // will topic
    at += 2 + raw.readUInt16BE(at); // will payload
  }
  if (flags & 0x80 && !wellFormedAt(raw, at)) return 'user name';
  return undefined;
}
