// Rules: why a request is refused, the same on every engine (in-memory or Redis). Pure: each rule looks at the
// session, the frame and what the engine passes in (a target found, a name's holder), and answers with the error to
// send, or nothing. The token's grant first (forbidden whether or not the thing exists, so nothing leaks), then
// limits, then the request's own terms.
import type { StallClock } from './stalls.js';
import type { Session } from './engine.js';
import { TokenBucket } from './bucket.js';
import { parseCursor } from './roster.js';
import { nameError, type FrameOf } from '../protocol/frames.js';
import { ProtocolError, type FrameId } from '../protocol/errors.js';
import { filterError, filterMatches } from '../protocol/topic.js';
import { after, type Maybe, type Publisher } from './seam.js';

const quote = (topic: string) => `'${topic.slice(0, 64)}'`;

/**
 * Who a publish is shown as coming from. The chat room shows the addresses of its own TCP line clients only
 * (docs/protocol.md, "The room shows addresses"): a TCP client publishing to a topic none of its filters match (a
 * client of another room) goes without its address, and the room shows it by id. Decided at publish time: its
 * subscriptions may be gone by the time the line is drawn (a `say` and a `quit` in one read).
 */
export function publisherOf(s: Session, topic: string): Publisher {
  if (s.transport !== 'tcp') return s;
  for (const filter of s.subscriptions) if (filterMatches(filter, topic)) return s;
  return { id: s.id, name: s.name, addr: '', transport: s.transport };
}

/** A `pub` the token does not allow. */
export function publishRefusal(s: Session, frame: FrameOf<'pub'>): ProtocolError | null {
  if (!s.grant || s.grant.mayPublish(frame.topic)) return null;
  return new ProtocolError('forbidden', `the token does not allow publishing to '${frame.topic}'`, frame.id);
}

/** A filter `s` may not subscribe to: malformed, not in its token's grant, or over its subscription limit. */
export function subscribeRefusal(s: Session, filter: string, maxSubscriptions: number, id?: FrameId): ProtocolError | null {
  const err = filterError(filter);
  if (err) return new ProtocolError('bad_topic', `${err}: ${quote(filter)}`, id);
  if (s.grant && !s.grant.maySubscribe(filter)) return new ProtocolError('forbidden', `the token does not allow subscribing to ${quote(filter)}`, id);
  if (!s.subscriptions.has(filter) && s.subscriptions.size >= maxSubscriptions) {
    return new ProtocolError('too_large', `at most ${maxSubscriptions} subscriptions per connection`, id);
  }
  return null;
}

/** A `send`: the token's `acl.send` for that name (or the client it names), then that the target exists. */
export function sendRefusal(s: Session, frame: FrameOf<'send'>, target: { id: string; name: string } | undefined): ProtocolError | null {
  const grant = s.grant;
  if (grant && !grant.maySendTo(frame.to) && !(target && grant.maySendTo(target.name, target.id))) {
    return new ProtocolError('forbidden', `the token does not allow sending to '${frame.to}'`, frame.id);
  }
  return target ? null : new ProtocolError('not_found', `no client '${frame.to}'`, frame.id);
}

/** Where a `who` page starts (after its cursor), or why it is refused: a topic the token hides, a cursor not ours. */
export function whoStart(s: Session, frame: FrameOf<'who'>): number | ProtocolError {
  const { topic } = frame;
  if (topic !== undefined && s.grant && !s.grant.maySubscribe(topic)) {
    return new ProtocolError('forbidden', `the token does not allow subscribing to ${quote(topic)}`, frame.id);
  }
  if (frame.cursor === undefined) return 0;
  return parseCursor(frame.cursor) ?? new ProtocolError('bad_frame', 'cursor is not one a who reply gave', frame.id);
}

/** Over the client's own rename rate (--rename-rate, per second; 0 = unlimited): its bucket is made by the first rename. */
export function renameLimit(s: Session, rate: number, stalls: StallClock | undefined, id?: FrameId): ProtocolError | null {
  if (rate <= 0) return null;
  s.renames ??= new TokenBucket({ rate, burst: rate, strikes: Number.MAX_SAFE_INTEGER, windowMs: 10_000 }, Date.now, stalls);
  return s.renames.take() === 'ok' ? null : new ProtocolError('rate_limited', `at most ${rate} renames per second`, id);
}

/** A name `s` may not take: malformed, fixed by its token, or `taken` by another client. */
export function nameProblem(s: Session, name: string, taken: boolean, id?: FrameId): ProtocolError | null {
  const err = nameError(name);
  if (err) return new ProtocolError('bad_name', err, id);
  if (s.nameFixed) return new ProtocolError('forbidden', 'name is fixed by the auth token', id);
  return taken ? new ProtocolError('name_taken', `name '${name}' is taken`, id) : null;
}

/**
 * A client's default name: its address for a TCP line client of the classic room (`tcpNamedByAddress`), else
 * `guest-<n>` (also for TCP under --room-addresses hide: a name is shown to everyone, so it must not be the address
 * the room hides).
 */
export function defaultNameBase(s: Session, tcpNamedByAddress: boolean): string {
  return s.transport === 'tcp' && tcpNamedByAddress ? s.addr : `guest-${s.id.slice(1)}`;
}

/** Whether a connection of `transport` is closed when idle, under the --idle-close `policy`. */
export function closesWhenIdle(policy: 'tcp' | 'all' | 'none', transport: string): boolean {
  return policy === 'all' || (policy === 'tcp' && transport === 'tcp');
}

/**
 * The name a joining client gets, on every store: the one it `asked` for when valid and `claim` gets it, else the
 * first of `base`, `base-2`, `base-3`, … that `claim` gets, and the problem to tell it why it did not get its own.
 */
export function nameAtJoin(asked: string | undefined, base: string, claim: (name: string) => Maybe<boolean>): Maybe<{ name: string; problem: ProtocolError | null }> {
  const fallback = (problem: ProtocolError | null) => after(firstClaimed(base, claim, 1), (name) => ({ name, problem }));
  if (asked === undefined) return fallback(null);
  const err = nameError(asked);
  if (err) return fallback(new ProtocolError('bad_name', err));
  return after(claim(asked), (claimed) => (claimed ? { name: asked, problem: null } : fallback(new ProtocolError('name_taken', `name '${asked}' is taken`))));
}

function firstClaimed(base: string, claim: (name: string) => Maybe<boolean>, k: number): Maybe<string> {
  const name = k === 1 ? base : `${base}-${k}`;
  return after(claim(name), (claimed) => (claimed ? name : firstClaimed(base, claim, k + 1)));
}
