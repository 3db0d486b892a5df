// Server topic aliases (MQTT 5.0, 3.3.2.3.4): a client whose CONNECT set a Topic Alias Maximum above 0 gets the
// PUBLISHes of its first topics with an alias, the first time with the topic and after that with an empty topic: a
// device that hears one topic over and over is sent its name once per connection. Aliases are this connection's
// alone (a reconnect starts over) and never reassigned: the first SERVER_ALIASES_MAX topics (or fewer, as the client
// allows) keep theirs, the rest go with their names. Every PUBLISH the session writes (live, retained, resent) passes
// here as bytes: the topic and a Topic Alias property are spliced into the packet the broker built (shared with other
// subscribers: it is copied, never changed), so a client that asks for aliases pays for its own copies.
import { varint } from './utf8.js';

/** Most aliases one connection is given, whatever its Topic Alias Maximum: the memory is the connection's. */
export const SERVER_ALIASES_MAX = 64;

/**
 * The Topic Alias Maximum the broker takes from a client (its CONNACK): a client may name up to this many topics by
 * alias on its PUBLISHes (inbound.ts), each kept only while it is no longer than a topic may be (256 characters).
 */
export const CLIENT_ALIASES_MAX = 64;

/** The Topic Alias property's identifier (2.2.2.2). */
const TOPIC_ALIAS = 0x23;

export class ServerAliases {
  private readonly byTopic = new Map<string, number>();
  private readonly max: number;

  /** `clientMax`: the client's Topic Alias Maximum (5.0 CONNECT). */
  constructor(clientMax: number) {
    this.max = Math.min(clientMax, SERVER_ALIASES_MAX);
  }

  /**
   * `packet` as this client is sent it: a PUBLISH with its topic's alias (and the topic the first time only), or as it
   * is (another packet; a topic beyond the aliases). `sent` must be called with the result once it is sure to be
   * written: only then does the client know the alias (a packet too large for it is dropped instead).
   */
  apply(packet: Buffer): { packet: Buffer; assigned?: [topic: string, alias: number] } {
    if (packet[0]! >> 4 !== 3) return { packet };
    const qos = (packet[0]! >> 1) & 3;
    const { end: start, value: remaining } = varint(packet, 1);
    if (start + remaining !== packet.length) return { packet };
    const topicLength = packet.readUInt16BE(start);
    const afterTopic = start + 2 + topicLength;
    const topic = packet.toString('utf8', start + 2, afterTopic);
    let alias = this.byTopic.get(topic);
    const known = alias !== undefined;
    if (!known) {
      if (this.byTopic.size >= this.max || topic.length === 0) return { packet };
      alias = this.byTopic.size + 1;
    }
    const propertiesAt = afterTopic + (qos > 0 ? 2 : 0);
    const { end: propertiesEnd, value: propertiesLength } = varint(packet, propertiesAt);
    const topicPart = known ? EMPTY_TOPIC : packet.subarray(start, afterTopic);
    const newProperties = writeVarint(propertiesLength + 3);
    const body = topicPart.length + (propertiesAt - afterTopic) + newProperties.length + 3 + (packet.length - propertiesEnd);
    const length = writeVarint(body);
    const out = Buffer.allocUnsafe(1 + length.length + body);
    let at = 0;
    out[at++] = packet[0]!;
    at += length.copy(out, at);
    at += topicPart.copy(out, at);
    at += packet.copy(out, at, afterTopic, propertiesAt); // the packet id, above QoS 0
    at += newProperties.copy(out, at);
    out[at++] = TOPIC_ALIAS;
    out.writeUInt16BE(alias!, at);
    at += 2;
    packet.copy(out, at, propertiesEnd);
    return known ? { packet: out } : { packet: out, assigned: [topic, alias!] };
  }

  /** The packet that assigned `alias` to `topic` is written: the client has it from now on. */
  sent(assigned: [topic: string, alias: number]): void {
    this.byTopic.set(assigned[0], assigned[1]);
  }
}

const EMPTY_TOPIC = Buffer.from([0, 0]);

/** An MQTT Variable Byte Integer's bytes (reading one: utf8.ts `varint`). */
function writeVarint(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}
