// Frame shapes of protocol 2 (docs/protocol.md) and the validating decoder for client frames.
import { ProtocolError, type FrameId } from './errors.js';
import { filterError, filterMatches, isWildcard, LONE_SURROGATE, topicError } from './topic.js';
import { parseInboundJson } from './json.js';

export const PROTOCOL_VERSION = 2;
/** Positions one `sub` may carry for a wildcard filter. */
export const MAX_POSITIONS = 1000;
export const EPOCH_MAX = 24;
export const NAME_MAX = 64;
/** Most entries one `who` page may ask for (protocol 2). */
export const WHO_LIMIT_MAX = 1000;
const ID_MAX = 128;
/** Longest publish idempotency key (any string of 1 to this many characters). */
export const PUBLISH_KEY_MAX = 128;

/** `null` when `value` is a usable publish idempotency key, else what is wrong with it. */
export function publishKeyError(value: unknown): string | null {
  if (typeof value === 'string' && value.length > 0 && value.length <= PUBLISH_KEY_MAX && !LONE_SURROGATE.test(value)) return null;
  return `key must be a string of 1 to ${PUBLISH_KEY_MAX} characters, well-formed Unicode`;
}

/** Longest token an `auth` frame may carry (a JWT signed with a large RSA key is a few KB). */
export const TOKEN_MAX = 16_384;

export type Transport = 'ws' | 'tcp' | 'mqtt' | 'sse';

export interface ClientInfo {
  id: string;
  name: string;
  addr: string;
  transport: Transport;
}

/** How other clients see a client (presence events): no address; admins see addresses in `who` only. */
export type PublicClient = Omit<ClientInfo, 'addr'> & { meta?: Record<string, unknown> };

export type ClientFrame =
  | {
      op: 'sub';
      id?: FrameId;
      topic: string;
      /** A seq for one topic, or a map topic → seq for a wildcard filter (docs/protocol.md, Positions). */
      since?: number | Record<string, number>;
      epoch?: string | Record<string, string>;
      /** The broker life the positions are from (the `life` of an earlier sub ack). */
      life?: string;
      presence?: boolean;
    }
  | { op: 'unsub'; id?: FrameId; topic: string }
  | {
      op: 'pub';
      id?: FrameId;
      topic: string;
      data: unknown;
      echo?: boolean;
      /** An idempotency key: published once per (topic, key) within its window; a retry is acked `duplicate: true`. */
      key?: string;
      /** The highest MQTT QoS the message is delivered at to MQTT subscribers (an MQTT publisher's own QoS; default 2). */
      qos?: 0 | 1 | 2;
      /** The MQTT retain flag its publisher set: marked by the MQTT transport (FrameReader.parsedRetained), never read from a client's JSON. */
      retain?: boolean;
    }
  | { op: 'send'; id?: FrameId; to: string; data: unknown }
  | { op: 'who'; id?: FrameId; topic?: string; limit?: number; cursor?: string }
  | { op: 'rename'; id?: FrameId; name: string }
  /** A fresh token for this connection (auth on): same client name, its grant and expiry replace the old ones. */
  | { op: 'auth'; id?: FrameId; token: string }
  | { op: 'ping'; id?: FrameId }
  | { op: 'quit'; id?: FrameId }
  /** A call to the application backend's rpc hook (docs/integration.md): its answer comes back as the ack's `data`. */
  | { op: 'rpc'; id?: FrameId; method: string; data: unknown };

export type ClientOp = ClientFrame['op'];
export type FrameOf<K extends ClientOp> = Extract<ClientFrame, { op: K }>;

export type PresenceEvent = 'join' | 'leave' | 'rename' | 'timeout' | 'idle' | 'active';

export type ServerFrame =
  | {
      op: 'hello';
      client: ClientInfo;
      heartbeatMs: number;
      idleMs: number;
      idleClose: boolean;
      server: { name: string; version: string; protocol: number };
    }
  | { op: 'msg'; topic: string; seq: number; epoch: string; data: unknown; from?: { id: string; name: string }; ts: number }
  | { op: 'direct'; from: { id: string; name: string }; data: unknown }
  | { op: 'event'; event: PresenceEvent; client: PublicClient; topic: string; old?: string }
  | ({ op: 'ack'; id?: FrameId } & Record<string, unknown>)
  | { op: 'pong'; id?: FrameId }
  | { op: 'error'; code: string; message: string; id?: FrameId; topic?: string };

const OPS: ReadonlySet<string> = new Set(['sub', 'unsub', 'pub', 'send', 'who', 'rename', 'auth', 'ping', 'quit', 'rpc']);
/** Longest rpc method name. */
export const METHOD_MAX = 128;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidi controls reorder what a terminal or page shows (`\u202E` makes `gpj.exe` read `exe.jpg`); line and
// paragraph separators break a chat line in two.
export const BIDI_AND_SEPARATORS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
/** Client ids look like `c42`; names may not, so `send.to` is never ambiguous. */
export const CLIENT_ID = /^c\d+$/;

/** Returns an error message, or null when `name` is a valid client name. */
export function nameError(name: unknown): string | null {
  if (typeof name !== 'string') return 'name must be a string';
  if (name.length === 0) return 'name is empty';
  if (name.length > NAME_MAX) return `name longer than ${NAME_MAX} characters`;
  if (CONTROL.test(name)) return 'name contains control characters';
  if (LONE_SURROGATE.test(name)) return 'name is not well-formed Unicode (a lone surrogate)';
  if (BIDI_AND_SEPARATORS.test(name)) return 'name contains bidi controls or line separators';
  if (name.trim() !== name) return 'name has leading or trailing spaces';
  if (CLIENT_ID.test(name)) return 'names of the form c<number> are reserved for client ids';
  return null;
}

/** Decodes and validates one client frame from its JSON text. Never throws. */
export function decodeClientFrame(text: string): ClientFrame | ProtocolError {
  const value = parseInboundJson(text);
  return value instanceof ProtocolError ? value : validateClientFrame(value);
}

/** Validates an already parsed value as a client frame. Never throws. */
// Module-level helpers, so validating a frame allocates no closures (the reader calls this per inbound frame).
function fault(id: FrameId | undefined, code: ConstructorParameters<typeof ProtocolError>[0], message: string): ProtocolError {
  return new ProtocolError(code, message, id);
}

function withId<T extends object>(id: FrameId | undefined, frame: T): T {
  return id === undefined ? frame : { ...frame, id };
}

export function validateClientFrame(value: unknown): ClientFrame | ProtocolError {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new ProtocolError('bad_frame', 'frame must be a JSON object');
  }
  const f = value as Record<string, unknown>;
  let id: FrameId | undefined;
  if (f.id !== undefined) {
    if (!(typeof f.id === 'string' && f.id.length <= ID_MAX) && !(typeof f.id === 'number' && Number.isFinite(f.id))) {
      return new ProtocolError('bad_frame', `id must be a number or a string of at most ${ID_MAX} characters`);
    }
    id = f.id;
  }
  if (typeof f.op !== 'string') return fault(id, 'bad_frame', 'frame has no op');
  if (!OPS.has(f.op)) return fault(id, 'unknown_op', `unknown op '${f.op.slice(0, 32)}'`);
  switch (f.op) {
    case 'sub': {
      const err = filterError(f.topic);
      if (err) return fault(id, 'bad_topic', err);
      const position = positionError(f.topic as string, f.since, f.epoch);
      if (position) return fault(id, 'bad_frame', position);
      if (f.life !== undefined && (!isEpoch(f.life) || f.since === undefined)) return fault(id, 'bad_frame', `life is a string of 1 to ${EPOCH_MAX} characters, sent with since`);
      if (f.presence !== undefined && typeof f.presence !== 'boolean') return fault(id, 'bad_frame', 'presence must be a boolean');
      return withId(id, {
        op: 'sub' as const,
        topic: f.topic as string,
        ...(f.since !== undefined && { since: ownRecord(f.since as number | Record<string, number>) }),
        ...(f.epoch !== undefined && { epoch: ownRecord(f.epoch as string | Record<string, string>) }),
        ...(f.life !== undefined && { life: f.life as string }),
        ...(f.presence !== undefined && { presence: f.presence as boolean }),
      });
    }
    case 'unsub': {
      const err = filterError(f.topic);
      if (err) return fault(id, 'bad_topic', err);
      return withId(id, { op: 'unsub' as const, topic: f.topic as string });
    }
    case 'pub': {
      const err = topicError(f.topic);
      if (err) return fault(id, 'bad_topic', err);
      if (!('data' in f)) return fault(id, 'bad_frame', 'pub needs data');
      const echo = f.echo;
      if (echo !== undefined && typeof echo !== 'boolean') return fault(id, 'bad_frame', 'echo must be a boolean');
      const topic = f.topic as string;
      if (f.key !== undefined || f.qos !== undefined) {
        // The rarer keyed or QoS-capped publish: validated and built apart, so the plain ones below keep their fixed shapes.
        const keyErr = f.key === undefined ? null : publishKeyError(f.key);
        if (keyErr) return fault(id, 'bad_frame', keyErr);
        const qos = f.qos;
        if (qos !== undefined && qos !== 0 && qos !== 1 && qos !== 2) return fault(id, 'bad_frame', 'qos must be 0, 1 or 2');
        return {
          op: 'pub',
          topic,
          data: f.data,
          ...(f.key !== undefined && { key: f.key as string }),
          ...(qos !== undefined && { qos }),
          ...(echo !== undefined && { echo }),
          ...(id !== undefined && { id }),
        };
      }
      // Built as literals, not by spreading: one object per publish, of one of four fixed shapes.
      if (echo === undefined) return id === undefined ? { op: 'pub', topic, data: f.data } : { op: 'pub', topic, data: f.data, id };
      return id === undefined ? { op: 'pub', topic, data: f.data, echo } : { op: 'pub', topic, data: f.data, echo, id };
    }
    case 'send': {
      if (typeof f.to !== 'string' || f.to.length === 0 || f.to.length > NAME_MAX || LONE_SURROGATE.test(f.to)) {
        // (a lone surrogate names nobody: no name holds one, and Redis would look up U+FFFD in its place)
        return fault(id, 'bad_frame', 'to must be a client id or name');
      }
      if (!('data' in f)) return fault(id, 'bad_frame', 'send needs data');
      return withId(id, { op: 'send' as const, to: f.to, data: f.data });
    }
    case 'who': {
      if (f.topic !== undefined) {
        const err = filterError(f.topic);
        if (err) return fault(id, 'bad_topic', err);
      }
      if (f.limit !== undefined && !(Number.isSafeInteger(f.limit) && (f.limit as number) >= 1 && (f.limit as number) <= WHO_LIMIT_MAX)) {
        return fault(id, 'bad_frame', `limit must be an integer from 1 to ${WHO_LIMIT_MAX}`);
      }
      if (f.cursor !== undefined && !(typeof f.cursor === 'string' && f.cursor.length > 0 && f.cursor.length <= ID_MAX)) {
        return fault(id, 'bad_frame', 'cursor must be the string a previous who reply gave as next');
      }
      return withId(id, {
        op: 'who' as const,
        ...(f.topic !== undefined && { topic: f.topic as string }),
        ...(f.limit !== undefined && { limit: f.limit as number }),
        ...(f.cursor !== undefined && { cursor: f.cursor as string }),
      });
    }
    case 'rename': {
      const err = nameError(f.name);
      if (err) return fault(id, 'bad_name', err);
      return withId(id, { op: 'rename' as const, name: f.name as string });
    }
    case 'auth': {
      if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > TOKEN_MAX) {
        return fault(id, 'bad_frame', `auth needs a token: a string of 1 to ${TOKEN_MAX} characters`);
      }
      return withId(id, { op: 'auth' as const, token: f.token });
    }
    case 'rpc': {
      if (typeof f.method !== 'string' || f.method.length === 0 || f.method.length > METHOD_MAX || CONTROL.test(f.method)) {
        return fault(id, 'bad_frame', `rpc needs a method: a string of 1 to ${METHOD_MAX} characters without control characters`);
      }
      return withId(id, { op: 'rpc' as const, method: f.method, data: 'data' in f ? f.data : null });
    }
    default:
      return withId(id, { op: f.op as 'ping' | 'quit' });
  }
}

/**
 * A client's map as a null-prototype record: indexing and `in` see only the keys the client sent, so a topic named
 * `__proto__`, `toString` or `constructor` is an ordinary key (with `{}` and `in`, `toString` was a position held).
 */
function ownRecord<V>(value: V | Record<string, V>): V | Record<string, V> {
  if (typeof value !== 'object' || value === null) return value;
  const out = Object.create(null) as Record<string, V>;
  for (const key of Object.keys(value)) out[key] = (value as Record<string, V>)[key]!;
  return out;
}

const isSeq = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isEpoch = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= EPOCH_MAX;
const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why `since`/`epoch` of a `sub` to `filter` are not a valid position, or null. */
function positionError(filter: string, since: unknown, epoch: unknown): string | null {
  if (since === undefined) return epoch === undefined ? null : 'epoch is only meaningful with since';
  if (typeof since === 'number') {
    if (!isSeq(since)) return 'since must be a non-negative integer or a map of topic to seq';
    if (isWildcard(filter) && since > 0) return 'since for a wildcard filter is 0 or a map of topic to seq (each topic has its own seq)';
    if (epoch !== undefined && !isEpoch(epoch)) return `epoch must be a string of 1 to ${EPOCH_MAX} characters`;
    return null;
  }
  if (!isMap(since)) return 'since must be a non-negative integer or a map of topic to seq';
  const topics = Object.keys(since);
  if (topics.length > MAX_POSITIONS) return `at most ${MAX_POSITIONS} positions in one sub`;
  for (const topic of topics) {
    const err = topicError(topic);
    if (err) return `since: ${err}: '${topic.slice(0, 64)}'`;
    if (!filterMatches(filter, topic)) return `since: topic '${topic.slice(0, 64)}' does not match the filter`;
    if (!isSeq(since[topic])) return `since: the seq of '${topic.slice(0, 64)}' must be a non-negative integer`;
  }
  if (epoch === undefined) return null;
  if (!isMap(epoch)) return 'with a map of positions, epoch is a map of topic to epoch';
  const epochs = Object.keys(epoch);
  if (epochs.length > MAX_POSITIONS) return `at most ${MAX_POSITIONS} epochs in one sub`;
  for (const topic of epochs) {
    if (!Object.hasOwn(since, topic)) return `epoch: '${topic.slice(0, 64)}' has no seq in since`;
    if (!isEpoch(epoch[topic])) return `epoch: the epoch of '${topic.slice(0, 64)}' must be a string of 1 to ${EPOCH_MAX} characters`;
  }
  return null;
}

export function errorFrame(err: ProtocolError): ServerFrame {
  if (err.topic !== undefined) return { op: 'error', code: err.code, message: err.message, topic: err.topic };
  return err.id === undefined
    ? { op: 'error', code: err.code, message: err.message }
    : { op: 'error', code: err.code, message: err.message, id: err.id };
}

export function ackFrame(id: FrameId | undefined, fields: Record<string, unknown> = {}): ServerFrame {
  return id === undefined ? { op: 'ack', ...fields } : { op: 'ack', id, ...fields };
}
