// Frame shapes of protocol v1 (PROTOCOL.md) and the validating decoder for client frames.
import { ProtocolError, type FrameId } from './errors.js';
import { filterError, topicError } from '../topics/topic.js';
import { parseInboundJson } from './json.js';

export const PROTOCOL_VERSION = 1;
export const NAME_MAX = 64;
const ID_MAX = 128;

export type Transport = 'ws' | 'tcp';

export interface ClientInfo {
  id: string;
  name: string;
  addr: string;
  transport: Transport;
}

export type ClientFrame =
  | { op: 'sub'; id?: FrameId; topic: string; since?: number; presence?: boolean }
  | { op: 'unsub'; id?: FrameId; topic: string }
  | { op: 'pub'; id?: FrameId; topic: string; data: unknown; echo?: boolean }
  | { op: 'send'; id?: FrameId; to: string; data: unknown }
  | { op: 'who'; id?: FrameId; topic?: string }
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
  | { op: 'event'; event: PresenceEvent; client: ClientInfo; topic: string; old?: string }
  | ({ op: 'ack'; id?: FrameId } & Record<string, unknown>)
  | { op: 'pong'; id?: FrameId }
  | { op: 'error'; code: string; message: string; id?: FrameId };

const OPS: ReadonlySet<string> = new Set(['sub', 'unsub', 'pub', 'send', 'who', 'rename', 'ping', 'quit']);

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
      if (f.topic === undefined) return withId({ op: 'who' as const });
      const err = filterError(f.topic);
      if (err) return bad('bad_topic', err);
      return withId({ op: 'who' as const, topic: f.topic as string });
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
