// The frames of protocol 2 (docs/protocol.md) as the client sees them: the package's own copy of the wire contract
// (it imports nothing of the broker). Types only; a broker still on protocol 1 leaves out `epoch`, `positions` and
// `state`, so those are optional here.

/** The `id` of a request, echoed by its reply. */
export type FrameId = number | string;

export type Transport = 'ws' | 'tcp' | 'sse' | 'mqtt';

export interface Sender {
  id: string;
  name: string;
}

export interface ClientInfo extends Sender {
  transport: Transport;
  addr?: string;
}

export interface HelloFrame {
  op: 'hello';
  client: ClientInfo;
  heartbeatMs: number;
  idleMs: number;
  idleClose?: string | boolean;
  server: { name: string; version: string; protocol: number };
}

export interface MsgFrame {
  op: 'msg';
  topic: string;
  seq: number;
  epoch?: string;
  data: unknown;
  from?: Sender;
  ts: number;
}

export type PresenceEventName = 'join' | 'leave' | 'rename' | 'timeout' | 'idle' | 'active';

export interface EventFrame {
  op: 'event';
  event: PresenceEventName;
  client: ClientInfo;
  topic: string;
  old?: string;
}

export interface DirectFrame {
  op: 'direct';
  from: Sender;
  data: unknown;
}

export interface AckFrame {
  op: 'ack';
  id?: FrameId;
  [field: string]: unknown;
}

export interface PongFrame {
  op: 'pong';
  id?: FrameId;
}

export interface ErrorFrame {
  op: 'error';
  code: string;
  message: string;
  id?: FrameId;
  /** Without id: the filter of a subscription the broker removed (a refreshed token no longer allows it). */
  topic?: string;
}

export type ServerFrame = HelloFrame | MsgFrame | EventFrame | DirectFrame | AckFrame | PongFrame | ErrorFrame;

/** A position on one topic: the last (epoch, seq) seen. No epoch: a protocol-1 broker, the position is unchecked. */
export interface Position {
  seq: number;
  epoch?: string | undefined;
}

export type RecoveryReason = 'epoch_changed' | 'history_trimmed' | 'unknown_position' | 'replay_limit' | (string & {});

/** The ack of a `sub` with `since`. */
export interface SubAck extends AckFrame {
  /** The id of the broker's memory; sent back with the next resume. */
  life?: string;
  recovered?: boolean;
  reason?: RecoveryReason;
  missed?: Record<string, RecoveryReason>;
  positions?: Record<string, Position>;
}

export interface PubAck {
  seq: number;
  epoch?: string;
  delivered: number;
  /** A keyed publish the broker had already taken (a resend): `seq` is the first one's; nothing was delivered again. */
  duplicate?: true;
}

export interface Member {
  id: string;
  name: string;
  transport: Transport;
  state: 'active' | 'idle';
}

