// The MQTT payload ⇄ message `data` mapping (docs/mqtt.md, Payloads). Pure: no sockets.
// A payload that is JSON text is the message's data; any other payload travels as an envelope object that names
// its encoding, so JSON clients can read it and MQTT subscribers get the original bytes back. An MQTT 5.0 publish
// with properties (user properties, content type, message expiry, response topic, correlation data) always travels
// as an envelope, the properties beside the payload, so they reach 5.0 subscribers and JSON clients alike.
import type { IConnectPacket } from 'mqtt-packet';
import { parseInboundJson } from '../../protocol/json.js';
import { ProtocolError } from '../../protocol/errors.js';

/** The MQTT 5.0 publish properties the broker carries, as JSON (correlation data in base64). */
export interface CarriedProperties {
  userProperties?: Record<string, string | string[]>;
  contentType?: string;
  messageExpiryInterval?: number;
  responseTopic?: string;
  correlationData?: string;
  payloadFormatIndicator?: boolean;
}

/** The envelope of a payload: UTF-8 text as it is, anything else in base64, JSON as its value (with properties only). */
export type PayloadEnvelope = { encoding: 'utf8' | 'base64' | 'json'; payload: unknown; properties?: CarriedProperties };

/** mqtt-packet's form of those properties. */
export interface PacketProperties {
  userProperties?: Record<string, string | string[]>;
  contentType?: string;
  messageExpiryInterval?: number;
  responseTopic?: string;
  correlationData?: Buffer;
  payloadFormatIndicator?: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The message `data` for an MQTT payload (and its 5.0 properties, if any). */
export function dataOfPayload(payload: Buffer, packetProperties?: PacketProperties): unknown {
  const properties = carried(packetProperties);
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return withProperties({ encoding: 'base64', payload: payload.toString('base64') }, properties);
  }
  // Leading BOM or whitespace-only text is not JSON here; the guarded parser bounds depth and never throws.
  const parsed = mayBeJson(text) ? parseInboundJson(text) : undefined;
  if (parsed === undefined || parsed instanceof ProtocolError) return withProperties({ encoding: 'utf8', payload: text }, properties);
  return properties ? { encoding: 'json', payload: parsed, properties } : parsed;
}

/**
 * Whether `text` can be JSON at all, judged by its first character: most text that is not (`on`, `t=1;…`) is told
 * apart without a failed JSON.parse, whose exception costs more than the rest of a publish.
 */
function mayBeJson(text: string): boolean {
  const c = text.charCodeAt(0);
  if (c === 0x7b || c === 0x5b || c === 0x22 || c === 0x2d || (c >= 0x30 && c <= 0x39)) return true; // { [ " - digit
  if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) return text.trim().length > 0 && mayBeJson(text.trim());
  return text === 'true' || text === 'false' || text === 'null';
}

function withProperties(envelope: PayloadEnvelope, properties: CarriedProperties | undefined): PayloadEnvelope {
  return properties ? { ...envelope, properties } : envelope;
}

/** The properties worth carrying, as JSON; undefined when there are none. Client keys go into a null-prototype record. */
export function carried(p: PacketProperties | undefined): CarriedProperties | undefined {
  if (!p) return undefined;
  const out: CarriedProperties = {};
  if (p.userProperties && Object.keys(p.userProperties).length > 0) {
    const user = Object.create(null) as Record<string, string | string[]>;
    for (const [k, v] of Object.entries(p.userProperties)) user[k] = v;
    out.userProperties = user;
  }
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = p.correlationData.toString('base64');
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  return Object.keys(out).length === 0 ? undefined : out;
}

/** What an MQTT subscriber gets for a message: the payload bytes, and the properties a 5.0 subscriber gets. */
export interface Delivery {
  payload: Buffer;
  properties?: PacketProperties | undefined;
}

/**
 * The MQTT delivery of a message whose data is `json` (its JSON text, as the broker encoded it once): the bytes an
 * envelope stands for (with its properties) when the data is exactly an envelope, else the JSON text itself.
 */
export function deliveryOfData(json: string): Delivery {
  const envelope = envelopeOf(json);
  if (!envelope) return { payload: Buffer.from(json) };
  const payload =
    envelope.encoding === 'json' ? Buffer.from(JSON.stringify(envelope.payload)) : Buffer.from(envelope.payload as string, envelope.encoding);
  return { payload, properties: envelope.properties && packetProperties(envelope.properties) };
}

/** The MQTT payload alone (3.1.1 subscribers, retained messages). */
export function payloadOfData(json: string): Buffer {
  return deliveryOfData(json).payload;
}

function packetProperties(c: CarriedProperties): PacketProperties {
  const out: PacketProperties = {};
  if (c.userProperties) out.userProperties = c.userProperties;
  if (c.contentType !== undefined) out.contentType = c.contentType;
  if (c.messageExpiryInterval !== undefined) out.messageExpiryInterval = c.messageExpiryInterval;
  if (c.responseTopic !== undefined) out.responseTopic = c.responseTopic;
  if (c.correlationData !== undefined) out.correlationData = Buffer.from(c.correlationData, 'base64');
  if (c.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = c.payloadFormatIndicator;
  return out;
}

/** The envelope `json` holds, if it is exactly one (a known encoding, a payload of its kind, properties of their kinds). */
function envelopeOf(json: string): PayloadEnvelope | undefined {
  // Cheap test first: every other message pays one character compare and one search.
  if (json.charCodeAt(0) !== 0x7b || !json.includes('"encoding"')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v);
  if (!keys.every((k) => k === 'encoding' || k === 'payload' || k === 'properties') || !('payload' in v)) return undefined;
  const properties = v.properties === undefined ? undefined : propertiesOf(v.properties);
  if (v.properties !== undefined && !properties) return undefined;
  if (v.encoding === 'json' && properties) return { encoding: 'json', payload: v.payload, properties };
  if (typeof v.payload !== 'string') return undefined;
  if (v.encoding === 'utf8' || (v.encoding === 'base64' && BASE64.test(v.payload))) return { encoding: v.encoding, payload: v.payload, ...(properties && { properties }) };
  return undefined;
}

/** `value` as carried properties when every field has its type; undefined otherwise (then it is not an envelope). */
function propertiesOf(value: unknown): CarriedProperties | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const p = value as Record<string, unknown>;
  const str = (k: string) => p[k] === undefined || typeof p[k] === 'string';
  if (!str('contentType') || !str('responseTopic') || !str('correlationData')) return undefined;
  if (p.messageExpiryInterval !== undefined && !(Number.isSafeInteger(p.messageExpiryInterval) && (p.messageExpiryInterval as number) >= 0 && (p.messageExpiryInterval as number) <= 0xffffffff)) return undefined;
  if (p.payloadFormatIndicator !== undefined && typeof p.payloadFormatIndicator !== 'boolean') return undefined;
  const user = p.userProperties;
  if (user !== undefined) {
    if (typeof user !== 'object' || user === null || Array.isArray(user)) return undefined;
    for (const v of Object.values(user)) if (typeof v !== 'string' && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) return undefined;
  }
  return p as CarriedProperties;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Properties stored as carried (`carried`: a stored session's unacknowledged message), or undefined when `value` is not such. */
export function storedProperties(value: unknown): PacketProperties | undefined {
  const c = propertiesOf(value);
  if (!c || (c.correlationData !== undefined && !BASE64.test(c.correlationData))) return undefined;
  return packetProperties(c);
}

/** The will a CONNECT carries, as the message it becomes. */
export function willOf(connect: IConnectPacket): { topic: string; data: unknown; qos: 0 | 1 | 2 } | undefined {
  const will = connect.will;
  if (!will) return undefined;
  const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload;
  // Its QoS is the highest its subscribers get it at, as for any publish (never upgraded).
  return { topic: will.topic, data: dataOfPayload(payload, connect.protocolVersion === 5 ? will.properties : undefined), qos: will.qos ?? 0 };
}
