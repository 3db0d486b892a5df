// FrameReader: the reader role. Inbound text → validated frame → the engine, directly (the fast ingest path).
// The connection machine hears only what changes its state: quit, the first frame after idle, a fresh token.
// Bad input gets its protocol error here and the connection stays open.
import { decodeClientFrame, validateClientFrame, type ClientFrame, type FrameOf } from '../protocol/frames.js';
import { CLOSE, ProtocolError, type FrameId } from '../protocol/errors.js';
import type { Engine } from '../engine/engine.js';
import type { Link } from './link.js';
import type { TokenBucket, RateVerdict } from '../engine/bucket.js';
import type { Logger } from 'pino';
import type { ClientFaults } from '../log.js';
import { AuthFailure } from '../auth/tokens.js';
import type { TokenVerifier } from '../auth/verifier.js';
import type { Grant } from '../auth/grant.js';
import { ackFrame } from '../protocol/frames.js';
import { HookGate, type GateHost } from '../hooks/gate.js';
import type { Hooks, PublishOutcome, RpcOutcome, SubscribeOutcome } from '../hooks/hooks.js';

/** What every reader of a broker shares: one object per broker (see openConnection), not five fields per connection. */
export interface ReaderShared {
  readonly engine: Engine<Link>;
  readonly log?: Logger | undefined;
  readonly faults?: ClientFaults | undefined;
  /** Verifies fresh tokens (`auth`); absent: authentication is off. */
  readonly tokens?: TokenVerifier | null | undefined;
  /** The application backend's hooks; with request hooks on, frames pass a HookGate that keeps their order. */
  readonly hooks?: Hooks | undefined;
}

/** Frames kept to be served later (parsed(…, true)) at most: past it the connection is closed (1008). */
export const LATER_MAX = 1000;

export class FrameReader {
  constructor(
    readonly link: Link,
    private readonly shared: ReaderShared,
    private readonly rate?: TokenBucket,
  ) {
    if (shared.hooks?.gatesRequests) this.gate = new HookGate(this.gateHost(), shared.hooks.config.hookQueue);
  }

  private get engine(): Engine<Link> {
    return this.shared.engine;
  }

  private get log(): Logger | undefined {
    return this.shared.log;
  }

  /** Where clients' faults are logged (the transports' own listeners note theirs here too). */
  get faults(): ClientFaults | undefined {
    return this.shared.faults;
  }

  private get tokens(): TokenVerifier | null | undefined {
    return this.shared.tokens;
  }

  private get hooks(): Hooks | undefined {
    return this.shared.hooks;
  }

  /** Orders frames around hook calls and token checks (only with request hooks on; else `held` does the token part). */
  private readonly gate: HookGate | undefined;

  /** Set once the client flooded past its strikes: the connection is closing and later frames are not answered. */
  private flooding = false;
  /** Frames read while a fresh token is being verified: served after it, in order (held only that long). */
  private held: (ClientFrame | ProtocolError)[] | undefined;

  /** One inbound text frame (or JSON line) of `bytes` bytes. */
  text(text: string, bytes: number): void {
    // A flooder being closed costs no parsing for the frames still in flight.
    if (this.flooding) return this.count(bytes);
    this.accept(decodeClientFrame(text), bytes);
  }

  /**
   * A frame the transport built from its own syntax (TCP plain-text commands): validated and handled like any other.
   * `later`: counted and rate-limited now, as it arrives, but served only at `serveLater()` (MQTT's resend window).
   */
  parsed(value: unknown, bytes: number, later = false): void {
    this.accept(validateClientFrame(value), bytes, later);
  }

  /**
   * An MQTT PUBLISH with the retain flag: validated as any `pub`, then marked so, and the flag travels with the
   * message to MQTT subscribers (5.0 Retain As Published). The flag is MQTT's own, no field of the JSON protocol: the
   * validator never copies it from a client's frame.
   */
  parsedRetained(value: unknown, bytes: number): void {
    const frame = validateClientFrame(value);
    if (!(frame instanceof ProtocolError) && frame.op === 'pub') frame.retain = true;
    this.accept(frame, bytes);
  }

  /**
   * A request the broker makes for the client itself (an MQTT session's filters resumed): validated and routed like
   * any other, but not counted against the client's inbound rate (it did not send it).
   */
  own(value: unknown): void {
    this.route(validateClientFrame(value), 0);
  }

  /** Frames read now and served at `serveLater()`, in order (already counted and rate-limited). */
  private readonly later: [ClientFrame | ProtocolError, number][] = [];

  /** Serves the frames `parsed(…, true)` kept, in order, as if they arrived now. */
  serveLater(): void {
    for (const [frame, bytes] of this.later.splice(0)) this.route(frame, bytes);
  }

  private accept(frame: ClientFrame | ProtocolError, bytes: number, later = false): void {
    this.count(bytes);
    const verdict = this.rate?.take() ?? 'ok';
    // A refusal of a frame served later is answered in its turn too (MQTT: SUBACKs in order).
    if (verdict !== 'ok') return this.limited(verdict, frame.id, later ? { bytes } : undefined);
    if (later) {
      // Bounded whatever the rate: a client that holds them back (it does not acknowledge its resends) and keeps
      // sending is closed, as a flood is.
      if (this.later.length >= LATER_MAX) return this.overLater();
      return void this.later.push([frame, bytes]);
    }
    this.route(frame, bytes);
  }

  /** The ids of frames read and not served yet: waiting for a hook call or a token check (once closed, never served). */
  unservedIds(): FrameId[] {
    const held = (this.held ?? []).map((f) => f.id).filter((id): id is FrameId => id !== undefined);
    return [...(this.gate?.waitingIds() ?? []), ...held];
  }

  private route(frame: ClientFrame | ProtocolError, bytes: number): void {
    if (this.gate) return this.gate.take(frame, bytes);
    if (this.held) return void this.held.push(frame);
    this.serve(frame);
  }

  private serve(frame: ClientFrame | ProtocolError): void {
    const link = this.link;
    if (frame instanceof ProtocolError) {
      // A bad frame is activity all the same (it kept the idle timer from running out): an idle client is active again.
      if (link.isOpen && link.isIdle) link.signal({ type: 'ACTIVE' });
      return this.reject(frame);
    }
    // Before it is admitted and once it is closing, a connection's frames are not served (as in the machine's states).
    if (!link.isOpen) return;
    if (frame.op === 'quit') return link.signal({ type: 'QUIT' });
    if (link.isIdle) link.signal({ type: 'ACTIVE' });
    if (frame.op === 'auth') return this.refresh(frame);
    if (frame.op === 'rpc') return this.reject(new ProtocolError('bad_frame', 'rpc is not enabled on this broker (no --hook-url, or rpc not in --hooks)', frame.id));
    if (frame.op === 'ping') {
      // A clustered engine answers after this client's earlier requests and the deliveries already on their way.
      return this.engine.ping(link, frame.id);
    }
    this.handle(frame);
  }

  private handle(frame: Exclude<ClientFrame, { op: 'ping' | 'quit' | 'auth' | 'rpc' }>): void {
    const link = this.link;
    try {
      this.engine.handle(link, frame);
    } catch (err) {
      // A fault in one request is that request's `internal` error, never a dead connection or process.
      this.log?.error({ err, client: link.id, op: frame.op }, 'engine fault while handling a frame');
      this.engine.fail(link, new ProtocolError('internal', 'internal error', frame.id));
    }
  }

  /**
   * `auth`: a fresh token, verified as at connect (docs/protocol.md, Token expiry and refresh). Frames read meanwhile
   * wait, so a request sent after it is served under the grant it brings.
   */
  private refresh(frame: FrameOf<'auth'>): void {
    const tokens = this.tokens;
    if (!tokens) return this.reject(new ProtocolError('bad_frame', 'auth is not enabled on this broker', frame.id));
    this.held = [];
    tokens
      .verify(frame.token)
      .then(
        (grant) => this.regrant(frame, grant),
        (err: unknown) => {
          this.log?.error({ err, client: this.link.id }, 'token verification failed');
          this.engine.fail(this.link, new ProtocolError('internal', 'internal error', frame.id));
        },
      )
      .finally(() => this.release());
  }

  /** The reader as the gate sees it: hook calls and token checks start at once, their results apply in order. */
  private gateHost(): GateHost {
    const hooks = this.hooks!;
    const link = this.link;
    return {
      start: (frame) => {
        if (!link.isOpen) return undefined;
        if (frame.op === 'auth') return this.tokens ? this.tokens.verify(frame.token) : undefined;
        const kind = hooks.kindOf(frame);
        if (kind === undefined) return undefined;
        const client = { id: link.id, name: link.name, transport: link.transport, addr: link.addr, meta: link.meta };
        if (frame.op === 'sub') return hooks.subscribe(client, frame);
        if (frame.op === 'pub') return hooks.publish(client, frame);
        if (frame.op === 'rpc') return hooks.rpc(client, frame);
        return undefined;
      },
      serve: (frame) => this.serve(frame),
      finish: (frame, result) => this.finish(frame, result),
      reject: (err) => this.reject(err),
    };
  }

  /** A frame whose hook call (or token check) finished, applied in its turn. */
  private finish(frame: ClientFrame, result: unknown): void {
    const link = this.link;
    if (!link.isOpen) return;
    if (link.isIdle) link.signal({ type: 'ACTIVE' });
    if (result instanceof ProtocolError) return this.reject(result);
    switch (frame.op) {
      case 'auth':
        return this.regrant(frame, result as Grant | AuthFailure);
      case 'sub': {
        const { data, hasData } = result as Exclude<SubscribeOutcome, ProtocolError>;
        if (hasData && frame.id !== undefined) link.addToReply(frame.id, { data });
        return this.handle(frame);
      }
      case 'pub': {
        const { data, replaced } = result as Exclude<PublishOutcome, ProtocolError>;
        return this.handle(replaced ? { ...frame, data } : frame);
      }
      case 'rpc':
        if (frame.id !== undefined) link.send(ackFrame(frame.id, { data: (result as Exclude<RpcOutcome, ProtocolError>).data }));
        return;
    }
  }

  /** A verified token for the same client takes over: its grant (engine), its expiry (the connection machine). */
  private regrant(frame: FrameOf<'auth'>, grant: Grant | AuthFailure): void {
    const link = this.link;
    if (!link.isOpen) return;
    // Refused: the connection stays, and its old token's deadline still applies.
    if (grant instanceof AuthFailure) return this.reject(new ProtocolError('unauthorized', grant.message, frame.id));
    if (grant.name !== link.name) return this.reject(new ProtocolError('forbidden', 'a refreshed token must name the same client', frame.id));
    this.engine.regrant(link, grant, frame.id);
    link.signal({ type: 'TOKEN_REFRESHED', exp: grant.exp });
  }

  /** Serves the frames held during a verification, in order; another `auth` among them holds the rest again. */
  private release(): void {
    const queue = this.held ?? [];
    this.held = undefined;
    for (let i = 0; i < queue.length; i++) {
      this.serve(queue[i]!);
      const again = this.held as (ClientFrame | ProtocolError)[] | undefined; // set by serve() when it met an auth
      if (again) return void again.push(...queue.slice(i + 1));
    }
  }

  /** A WebSocket ping from the client: the transport pongs it, but it spends a token like any frame (ping floods). */
  control(): void {
    this.link.lastSeen = Date.now();
    const verdict = this.rate?.take() ?? 'ok';
    if (verdict !== 'ok') this.limited(verdict, undefined);
  }

  /** Inbound traffic that is not a text frame (binary WebSocket frames). */
  binary(bytes: number): void {
    this.accept(new ProtocolError('bad_frame', 'binary frames are not supported; send JSON text frames'), bytes);
  }

  /** An inbound frame the transport could not read (a TCP line of invalid UTF-8): counted and rate-limited as any. */
  unreadable(err: ProtocolError, bytes: number): void {
    if (this.flooding) return this.count(bytes);
    this.accept(err, bytes);
  }

  /**
   * Over the rate: a `rate_limited` error (with `later`, the refused frame was to be served later: its error waits in
   * its place among them); past the strikes: close with 1008 (policy).
   */
  private limited(verdict: Exclude<RateVerdict, 'ok'>, id: ClientFrame['id'], later?: { bytes: number }): void {
    if (this.flooding) return;
    const err = new ProtocolError('rate_limited', 'too many frames; slow down', id);
    if (later) this.later.push([err, later.bytes]);
    else this.reject(err);
    if (verdict !== 'flooding') return;
    this.flooding = true;
    const { rate, strikes, windowMs } = this.rate!.limits;
    this.faults?.note(
      'info',
      { client: this.link.id, addr: this.link.addr, limit: 'inbound frame rate', value: { rate, strikes, windowS: windowMs / 1000 }, flag: '--rate, --rate-strikes' },
      `rate limit exceeded: over ${rate} frames/s (--rate) refused ${strikes} times within ${windowMs / 1000} s (--rate-strikes); closing with 1008`,
    );
    this.link.signal({ type: 'CLOSE', code: CLOSE.policy, reason: 'rate limit exceeded', cause: 'leave' });
  }

  /** Too many frames waiting to be served later: closed with 1008 (policy). */
  private overLater(): void {
    if (this.flooding) return;
    this.flooding = true;
    this.faults?.note(
      'info',
      { client: this.link.id, addr: this.link.addr, limit: 'requests waiting for a resume', value: LATER_MAX },
      `more than ${LATER_MAX} requests sent while the session's resume waits for the client's acknowledgements; closing with 1008`,
    );
    // 'rate …': an MQTT 5.0 client reads DISCONNECT 0x96 (message rate too high).
    this.link.signal({ type: 'CLOSE', code: CLOSE.policy, reason: 'rate limit exceeded: too many requests while resuming', cause: 'leave' });
  }

  reject(err: ProtocolError): void {
    this.engine.fail(this.link, err);
  }

  private count(bytes: number): void {
    this.link.lastActivity = this.link.lastSeen = Date.now();
    this.link.framesIn++;
    this.link.bytesIn += bytes;
  }
}
