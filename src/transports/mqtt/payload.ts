// The MQTT payload ⇄ message `data` mapping (docs/mqtt.md, Payloads). Pure: no sockets.
// A payload that is JSON text is the message's data; any other payload travels as an envelope object that names
// its encoding, so JSON clients can read it and MQTT subscribers get the original bytes back.
import { parseInboundJson } from '../../protocol/json.js';
import { ProtocolError } from '../../protocol/errors.js';

/** The envelope of a payload that is not JSON: UTF-8 text as it is, anything else in base64. */
export type PayloadEnvelope = { encoding: 'utf8'; payload: string } | { encoding: 'base64'; payload: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The message `data` for an MQTT payload. */
export function dataOfPayload(payload: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { encoding: 'base64', payload: payload.toString('base64') } satisfies PayloadEnvelope;
  }
  // Leading BOM or whitespace-only text is not JSON here; the guarded parser bounds depth and never throws.
  const parsed = text.length === 0 ? undefined : parseInboundJson(text);
  if (parsed === undefined || parsed instanceof ProtocolError) return { encoding: 'utf8', payload: text } satisfies PayloadEnvelope;
  return parsed;
}

/**
 * The MQTT payload for a message whose data is `json` (its JSON text, as the broker encoded it once): the envelope's
 * bytes when the data is exactly an envelope, else the JSON text itself.
 */
export function payloadOfData(json: string): Buffer {
  const envelope = envelopeOf(json);
  if (envelope) return Buffer.from(envelope.payload, envelope.encoding);
  return Buffer.from(json);
}

/** The envelope `json` holds, if it is exactly one (two keys, a known encoding, a string payload). */
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
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  if (keys.length !== 2 || typeof v.payload !== 'string') return undefined;
  if (v.encoding === 'utf8') return { encoding: 'utf8', payload: v.payload };
  if (v.encoding === 'base64' && BASE64.test(v.payload)) return { encoding: 'base64', payload: v.payload };
  return undefined;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
