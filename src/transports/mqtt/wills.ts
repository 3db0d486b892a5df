// Wills: the message an MQTT connection that ended without a normal DISCONNECT leaves behind, published once it is
// over [MQTT-3.1.2-8]; with a 5.0 Will Delay Interval, once that delay has passed or the session ends, whichever comes
// first, and not at all if a new connection resumes the session before (§3.1.3.2.2, [MQTT-3.1.3-9]). A delayed will
// waits on a timer of the node its connection was on (as the Redis session store's own timers do: unref'd, cleared
// when the broker stops); the session kept for its client id names it (StoredSession.will: its connection's owner,
// `<node>/<n>`), so the connection that claims that session next settles it, on this node or, through a node call, on
// the one holding it: resumed (clean start 0), the will is dropped; not resumed (clean start 1, another user), the
// session has ended and the will goes now.
import type { Logger } from 'pino';
import type { Engine } from '../../engine/engine.js';
import type { Link } from '../../actors/link.js';
import type { NodeCalls } from '../../engine/redis/calls.js';
import { nodeOf } from './takeover.js';

/** A will as the broker publishes it: its topic, its payload as a message's `data`, and its QoS. */
export interface Will {
  topic: string;
  data: unknown;
  qos: 0 | 1 | 2;
}

/** The node call that settles a delayed will held by another node. */
const WILL_CALL = 'mqtt-will';

/** The longest delay a Node timer takes (about 24.8 days): a longer one is waited out in steps. */
const TIMER_MAX_MS = 2 ** 31 - 1;

interface Delayed {
  will: Will;
  /** The broker id of the connection it is from (logs). */
  client: string;
  /** When it is published (ms since 1970). */
  dueAt: number;
  timer: NodeJS.Timeout;
}

export class Wills {
  /** Wills waiting for their delay, by their connection's owner (store.ts), the oldest first. */
  private readonly delayed = new Map<string, Delayed>();
  /** The broker stops: a will is published at once, none waits for a timer that would not outlive it. */
  private stopping = false;

  constructor(
    private readonly hub: Engine<Link>,
    private readonly log: Logger,
    /** Delayed wills at most (--mqtt-sessions: one a session kept); past it the oldest is published at once. */
    private readonly max: number,
    /** On a cluster: a delayed will held by another node is settled there. */
    private readonly calls?: NodeCalls,
    /** How long a node call settling a will elsewhere may take. */
    private readonly callTimeoutMs = 5000,
  ) {
    calls?.handle(WILL_CALL, (body) => this.called(body));
  }

  /** Delayed wills waiting now (the broker's own view: tests, metrics). */
  get waiting(): number {
    return this.delayed.size;
  }

  /** Publishes `will` of connection `client` now. */
  publish(will: Will, client: string): Promise<void> {
    return this.hub.publishAsync(will.topic, will.data, undefined, will.qos).then(
      () => undefined,
      (err: unknown) => this.log.error({ err, client }, 'mqtt will publish failed'),
    );
  }

  /**
   * Publishes `will` of the connection that held its session as `owner` after `delayMs` (its delay, or the session's
   * expiry when that comes first), unless settled before. Past the bound the oldest waiting one goes at once: its
   * session, the least recently kept, is the one the session store's own bound pushes out first.
   */
  later(owner: string, will: Will, client: string, delayMs: number): void {
    if (this.stopping || delayMs <= 0 || this.max === 0) return void this.publish(will, client);
    if (this.delayed.size >= this.max) void this.settleHere(this.delayed.keys().next().value!, true);
    this.delayed.set(owner, { will, client, dueAt: Date.now() + delayMs, timer: this.arm(owner, delayMs) });
  }

  /**
   * A new connection claimed the session whose will `owner`'s connection left waiting: `publish` when the session
   * ended (not resumed: the will goes now), otherwise it resumed in time and the will is dropped [MQTT-3.1.3-9]. The
   * node holding it is asked when it is not this one; nothing happens when it was published already.
   */
  settle(owner: string, publish: boolean): void {
    const node = nodeOf(owner);
    const calls = this.calls;
    if (this.delayed.has(owner) || !calls || node === calls.node) return void this.settleHere(owner, publish);
    void calls.call(node, WILL_CALL, JSON.stringify({ owner, publish }), this.callTimeoutMs).then((result) => {
      // A node gone took its wills with it; one that did not answer may still publish it at its delay.
      if (!result.ok && result.why !== 'gone') this.log.warn({ owner, node, why: result.why }, 'mqtt delayed will not settled on its node: it is published at its delay');
    });
  }

  /**
   * The broker stops: every will still waiting is published now (the timer that held it does not outlive this
   * process; a will is never dropped for it), and any will of a connection ending later goes at once.
   */
  stop(): Promise<void> {
    this.stopping = true;
    const owners = [...this.delayed.keys()];
    return Promise.all(owners.map((owner) => this.settleHere(owner, true))).then(() => undefined);
  }

  /** Settles a will waiting on this node (publishes it, or drops it). */
  private settleHere(owner: string, publish: boolean): Promise<void> {
    const d = this.delayed.get(owner);
    if (!d) return Promise.resolve();
    clearTimeout(d.timer);
    this.delayed.delete(owner);
    return publish ? this.publish(d.will, d.client) : Promise.resolve();
  }

  /** The timer of `owner`'s will: a delay past what one timer takes is waited out in steps. */
  private arm(owner: string, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const d = this.delayed.get(owner);
      if (!d || d.timer !== timer) return;
      const left = d.dueAt - Date.now();
      if (left > 0) d.timer = this.arm(owner, left);
      else void this.settleHere(owner, true);
    }, Math.min(ms, TIMER_MAX_MS));
    timer.unref();
    return timer;
  }

  /** Another node's request: settles a will waiting here (answered once it is published, or dropped). */
  private async called(body: string): Promise<string> {
    const { owner, publish } = JSON.parse(body) as { owner: unknown; publish: unknown };
    if (typeof owner !== 'string' || typeof publish !== 'boolean') return 'bad';
    await this.settleHere(owner, publish);
    return 'ok';
  }
}
