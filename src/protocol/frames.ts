// Frame shapes of protocol v1 (PROTOCOL.md) and the validating decoder for client frames.
import { ProtocolError, type FrameId } from './errors.js';
import { filterError, topicError } from '../topics/topic.js';

export const PROTOCOL_VERSION = 1;
export const NAME_MAX = 64;
/** Most entries one `who` page may ask for (protocol 2). */
export const WHO_LIMIT_MAX = 1000;
const ID_MAX = 128;

export type Transport = 'ws' | 'tcp';

export interface ClientInfo {
  id: string;
  name: string;
  addr: string;
  transport: Transport;
}

/** How other clients see a client (presence events): no address; admins see addresses in `who` only. */
export type PublicClient = Omit<ClientInfo, 'addr'>;

export type ClientFrame =
  | { op: 'sub'; id?: FrameId; topic: string; since?: number; presence?: boolean }
  | { op: 'unsub'; id?: FrameId; topic: string }
  | { op: 'pub'; id?: FrameId; topic: string; data: unknown; echo?: boolean }
  | { op: 'send'; id?: FrameId; to: string; data: unknown }
  | { op: 'who'; id?: FrameId; topic?: string; limit?: number; cursor?: string }
  | { op: 'rename'; id?: FrameId; name: string }
  | { op: 'ping'; id?: FrameId }
  | { op: 'quit'; id?: FrameId };

export type ClientOp = ClientFrame['op'];
export type FrameOf<K extends ClientOp> = Extract<ClientFrame, { op: K }>;

export type PresenceEvent = 'join' | 'leave' | 'rename' | 'timeout';

export type ServerFrame =
  | { op: 'hello'; client: ClientInfo; heartbeatMs: number; idleMs: number; server: { name: string; version: string; protocol: number } }
  | { op: 'msg'; topic: string; seq: number; data: unknown; from?: { id: string; name: string }; ts: number }
  | { op: 'direct'; from: { id: string; name: string }; data: unknown }
  | { op: 'event'; event: PresenceEvent; client: PublicClient; topic: string; old?: string }
  | ({ op: 'ack'; id?: FrameId } & Record<string, unknown>)
  | { op: 'pong'; id?: FrameId }
  | { op: 'error'; code: string; message: string; id?: FrameId };

const OPS: ReadonlySet<string> = new Set(['sub', 'unsub', 'pub', 'send', 'who', 'rename', 'ping', 'quit']);

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Client ids look like `c42`; names may not, so `send.to` is never ambiguous. */
export const CLIENT_ID = /^c\d+$/;

/** Returns an error message, or null when `name` is a valid client name. */
export function nameError(name: unknown): string | null {
  if (typeof name !== 'string') return 'name must be a string';
  if (name.length === 0) return 'name is empty';
  if (name.length > NAME_MAX) return `name longer than ${NAME_MAX} characters`;
  if (CONTROL.test(name)) return 'name contains control characters';
  if (name.trim() !== name) return 'name has leading or trailing spaces';
  if (CLIENT_ID.test(name)) return 'names of the form c<number> are reserved for client ids';
  return null;
}

/** Decodes and validates one client frame from its JSON text. Never throws. */
export function decodeClientFrame(text: string): ClientFrame | ProtocolError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new ProtocolError('bad_frame', 'frame is not valid JSON');
  }
  return validateClientFrame(value);
}

/** Validates an already parsed value as a client frame. Never throws. */
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
  const bad = (code: ConstructorParameters<typeof ProtocolError>[0], message: string) => new ProtocolError(code, message, id);
  if (typeof f.op !== 'string') return bad('bad_frame', 'frame has no op');
  if (!OPS.has(f.op)) return bad('unknown_op', `unknown op '${f.op.slice(0, 32)}'`);
  const withId = <T extends object>(frame: T) => (id === undefined ? frame : { ...frame, id });
  switch (f.op) {
    case 'sub': {
      const err = filterError(f.topic);
      if (err) return bad('bad_topic', err);
      if (f.since !== undefined && !(Number.isSafeInteger(f.since) && (f.since as number) >= 0)) {
        return bad('bad_frame', 'since must be a non-negative integer');
      }
      if (f.presence !== undefined && typeof f.presence !== 'boolean') return bad('bad_frame', 'presence must be a boolean');
      return withId({
        op: 'sub' as const,
        topic: f.topic as string,
        ...(f.since !== undefined && { since: f.since as number }),
        ...(f.presence !== undefined && { presence: f.presence as boolean }),
      });
    }
    case 'unsub': {
      const err = filterError(f.topic);
      if (err) return bad('bad_topic', err);
      return withId({ op: 'unsub' as const, topic: f.topic as string });
    }
    case 'pub': {
      const err = topicError(f.topic);
      if (err) return bad('bad_topic', err);
      if (!('data' in f)) return bad('bad_frame', 'pub needs data');
      if (f.echo !== undefined && typeof f.echo !== 'boolean') return bad('bad_frame', 'echo must be a boolean');
      return withId({
        op: 'pub' as const,
        topic: f.topic as string,
        data: f.data,
        ...(f.echo !== undefined && { echo: f.echo as boolean }),
      });
    }
    case 'send': {
      if (typeof f.to !== 'string' || f.to.length === 0 || f.to.length > NAME_MAX) {
        return bad('bad_frame', 'to must be a client id or name');
      }
      if (!('data' in f)) return bad('bad_frame', 'send needs data');
      return withId({ op: 'send' as const, to: f.to, data: f.data });
    }
    case 'who': {
      if (f.topic !== undefined) {
        const err = filterError(f.topic);
        if (err) return bad('bad_topic', err);
      }
      if (f.limit !== undefined && !(Number.isSafeInteger(f.limit) && (f.limit as number) >= 1 && (f.limit as number) <= WHO_LIMIT_MAX)) {
        return bad('bad_frame', `limit must be an integer from 1 to ${WHO_LIMIT_MAX}`);
      }
      if (f.cursor !== undefined && !(typeof f.cursor === 'string' && f.cursor.length > 0 && f.cursor.length <= ID_MAX)) {
        return bad('bad_frame', 'cursor must be the string a previous who reply gave as next');
      }
      return withId({
        op: 'who' as const,
        ...(f.topic !== undefined && { topic: f.topic as string }),
        ...(f.limit !== undefined && { limit: f.limit as number }),
        ...(f.cursor !== undefined && { cursor: f.cursor as string }),
      });
    }
    case 'rename': {
      const err = nameError(f.name);
      if (err) return bad('bad_name', err);
      return withId({ op: 'rename' as const, name: f.name as string });
    }
    default:
      return withId({ op: f.op as 'ping' | 'quit' });
  }
}

export function errorFrame(err: ProtocolError): ServerFrame {
  return err.id === undefined
    ? { op: 'error', code: err.code, message: err.message }
    : { op: 'error', code: err.code, message: err.message, id: err.id };
}

export function ackFrame(id: FrameId | undefined, fields: Record<string, unknown> = {}): ServerFrame {
  return id === undefined ? { op: 'ack', ...fields } : { op: 'ack', id, ...fields };
}
