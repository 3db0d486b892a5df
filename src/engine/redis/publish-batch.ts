// PublishBatch: the publishes of one event-loop turn go to Redis together, as one PUBLISH_BATCH script call per slot
// (publish-script.ts; on a Redis Cluster every key of one script must live in one slot, on one Redis everything is one
// call), cut at MAX_MESSAGES / MAX_BYTES. Calls go out in the order the publishes were made, on the one command
// connection (per master on a Redis Cluster), so seq order is publish order within a batch and across batches.
// Each publish is answered on its own: its position, its own error (the batch's other messages still ran), or, when
// the call failed, what the failure says of it: a call that was never written (outcome.ts sendWritten: NotSent) surely
// did not run and each of its publishes is `unavailable`; one that was written and then got no answer may have run
// (`outcome_unknown`; outcome.ts, refusals.ts).
import type { ProtocolError, FrameId } from '../../protocol/errors.js';
import { maybeRan, NotSent } from './outcome.js';
import { refusal, unavailable, unknownOutcome } from './refusals.js';

/** Most publishes in one script call. */
export const MAX_MESSAGES = 256;
/**
 * Most argument characters (frames) in one script call; a bigger publish goes alone. Counted as string length, not
 * UTF-8 bytes (no second pass over each frame): a call of non-ASCII text may carry up to 3× this in bytes.
 */
export const MAX_BYTES = 1024 * 1024;

/** What every publish of one topic sends alike: sent once per call however many of its messages it carries. */
export interface PublishTopic {
  /** meta, log (keys.ts): one slot. */
  keys: readonly [meta: string, log: string];
  /** The frame up to its seq: `{"op":"msg","topic":…,"seq":`. */
  head: string;
  /** The topic's channel and its family's (interest.ts). */
  channel: string;
  family: string;
}

/** One publish (publish-script.ts PUBLISH_BATCH). */
export interface BatchedPublish {
  topic: PublishTopic;
  /** The frame after its epoch: `,"from":…,"ts":…,"data":…}`. */
  tail: string;
  /** The bus prefix: `m<node>\n<transport>\n<addr>\n<no-echo id>\n`. */
  prefix: string;
  /** Its idempotency key's Redis key, when it has one. */
  key?: string | undefined;
  id?: FrameId | undefined;
}

/** A publish's position, with 1 when its idempotency key was held (the first publish's position). */
export type PublishReply = [seq: number, epoch: string, duplicate?: 1];

export interface PublishBatchOptions {
  /**
   * Runs PUBLISH_BATCH (the engine's ScriptRunner: in call order, NOSCRIPT-safe); `asText`, the arguments when the call
   * carries the script's text (its lineage mode 'load').
   */
  run(keys: string[], args: string[], asText?: (args: string[]) => string[]): Promise<unknown>;
  /** The arguments before the messages': history size, history bytes per topic, idempotency window (ms). */
  head(): string[];
  /**
   * On one Redis, the lineage key (keys.ts): the last key of every call, read for the replication id instead of INFO
   * (publish-script.ts). Absent on a Redis Cluster (INFO every call).
   */
  lineageKey?: string | undefined;
  /** A new epoch, for each topic of a call (its epoch if the call starts the topic's sequence): once per topic and call, not per message. */
  fresh(): string;
  /** A key's Redis Cluster slot (publishes of different slots go in different calls); absent on one Redis. */
  slot?: ((key: string) => number) | undefined;
  /**
   * Whether a call on `key` can go out at once on a ready connection: now, never, or once its master's connection is
   * up (outcome.ts `Reach.when`: calls of one slot in the order made). A call that cannot is not sent.
   */
  ready(key: string): boolean | Promise<boolean>;
  /** A call failed as Redis failures do (the node notes a timeout: degraded). */
  failed(err: unknown): void;
  /** When the queued publishes are sent: after this turn's I/O by default. */
  schedule?: (flush: () => void) => void;
  /**
   * Least time between two sends (ms; 0 or absent: every turn sends its own). Publishes made sooner than this after
   * the last send wait for the rest of it and go with every publish made meanwhile: a busy node sends one call per
   * interval instead of one per turn; a publish on a quiet node (none sent for this long) goes after its turn as before.
   */
  intervalMs?: number | undefined;
  /** Runs `flush` after `ms` (setTimeout by default). */
  delay?: ((flush: () => void, ms: number) => void) | undefined;
  /** A monotonic clock in ms (performance.now by default). */
  now?: (() => number) | undefined;
}

interface Queued {
  p: BatchedPublish;
  size: number;
  answer: (reply: PublishReply | ProtocolError) => void;
  fault: (err: unknown) => void;
}

export class PublishBatch {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  /** Which scheduled flush is current: one made stale by a flush at MAX_MESSAGES / MAX_BYTES does nothing. */
  private round = 0;
  /** When the last call was sent (options.now); -Infinity: none yet. */
  private lastSent = -Infinity;
  /** Script calls made and messages sent in them (metrics, tests). */
  calls = 0;
  messages = 0;

  constructor(private readonly options: PublishBatchOptions) {}

  /**
   * Queues one publish for this turn's batch. Resolves with its position or the error it is answered; rejects only
   * on a fault (a Redis error that is no refusal: the caller's request is answered `internal` and logged).
   */
  add(publish: BatchedPublish): Promise<PublishReply | ProtocolError> {
    return new Promise((answer, fault) => {
      const size = publish.tail.length + publish.prefix.length + publish.topic.head.length;
      this.queue.push({ p: publish, size, answer, fault });
      this.queuedBytes += size;
      if (this.queue.length >= MAX_MESSAGES || this.queuedBytes >= MAX_BYTES) return this.flush();
      if (this.scheduled) return;
      this.scheduled = true;
      const round = this.round;
      const flush = () => round === this.round && this.flush();
      const { intervalMs = 0 } = this.options;
      const wait = intervalMs > 0 ? this.lastSent + intervalMs - this.now() : 0;
      const schedule = this.options.schedule ?? setImmediate;
      // After the wait, still after that turn's I/O: the frames read in the same loop iteration go in the same call.
      if (wait > 0) (this.options.delay ?? setTimeout)(() => schedule(flush), Math.ceil(wait));
      else schedule(flush);
    });
  }

  private now(): number {
    return this.options.now ? this.options.now() : performance.now();
  }

  /** Sends everything queued: one call per slot and per MAX_MESSAGES / MAX_BYTES, in order. */
  flush(): void {
    this.scheduled = false;
    this.round++;
    const queue = this.queue;
    if (queue.length === 0) return;
    this.queue = [];
    this.queuedBytes = 0;
    if (this.options.intervalMs) this.lastSent = this.now();
    const { slot } = this.options;
    if (!slot) return this.sendCut(queue);
    // Per slot, each slot's publishes in their order (their relative order across slots does not matter: different topics).
    const bySlot = new Map<number, Queued[]>();
    for (const q of queue) {
      const s = slot(q.p.topic.keys[0]);
      const group = bySlot.get(s);
      if (group) group.push(q);
      else bySlot.set(s, [q]);
    }
    for (const group of bySlot.values()) this.sendCut(group);
  }

  private sendCut(group: Queued[]): void {
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < group.length; i++) {
      const size = group[i]!.size;
      if (i > start && (i - start >= MAX_MESSAGES || bytes + size > MAX_BYTES)) {
        this.send(group.slice(start, i));
        start = i;
        bytes = 0;
      }
      bytes += size;
    }
    this.send(start === 0 ? group : group.slice(start));
  }

  private send(batch: Queued[]): void {
    // Each topic's keys and arguments once, then each message's; idempotency keys after the topics' keys.
    const keys: string[] = [];
    const topicArgs: string[] = [];
    const messageArgs: string[] = [];
    const idempotency: string[] = [];
    const topics = new Map<string, number>();
    for (const { p } of batch) {
      const meta = p.topic.keys[0];
      let n = topics.get(meta);
      if (n === undefined) {
        topics.set(meta, (n = topics.size + 1));
        keys.push(...p.topic.keys);
        topicArgs.push(this.options.fresh(), p.topic.head, p.topic.channel, p.topic.family);
      }
      if (p.key !== undefined) idempotency.push(p.key);
      messageArgs.push(String(p.key === undefined ? n : -n), p.tail, p.prefix);
    }
    for (const k of idempotency) keys.push(k);
    const { lineageKey } = this.options;
    if (lineageKey !== undefined) keys.push(lineageKey);
    const args = [...this.options.head(), String(topics.size), ...topicArgs, ...messageArgs, lineageKey === undefined ? '' : 'trust'];
    const ready = this.options.ready(keys[0]!);
    if (ready === true) this.run(batch, keys, args);
    else if (ready === false) this.refuse(batch);
    else void ready.then((sent) => (sent ? this.run(batch, keys, args) : this.refuse(batch)));
  }

  private refuse(batch: Queued[]): void {
    for (const q of batch) q.answer(unavailable(q.p.id));
  }

  private run(batch: Queued[], keys: string[], args: string[]): void {
    this.calls++;
    this.messages += batch.length;
    this.options.run(keys, args, this.options.lineageKey === undefined ? undefined : asText).then(
      (reply) => answerEach(batch, reply as (number | string)[]),
      (err: unknown) => {
        // The whole call failed: it ran for all of its messages or for none of them.
        const unknown = maybeRan(err);
        if (unknown || err instanceof NotSent || refusal(err)) this.options.failed(err);
        for (const q of batch) {
          const refused = unknown ? unknownOutcome(q.p.id) : err instanceof NotSent ? unavailable(q.p.id) : refusal(err, q.p.id);
          if (refused) q.answer(refused);
          else q.fault(err);
        }
      },
    );
  }
}

/** A call's arguments as sent with the script's text: lineage mode 'load' (publish-script.ts). */
function asText(args: string[]): string[] {
  const text = args.slice();
  text[text.length - 1] = 'load';
  return text;
}

/**
 * Each message's own answer from the script's flat reply (two items per message: seq, epoch; -seq, epoch for a held
 * idempotency key; 0, error): its position, or its own error (a refusal such as OOM, else a fault).
 */
function answerEach(batch: Queued[], replies: (number | string)[]): void {
  batch.forEach((q, i) => {
    const seq = replies[2 * i];
    const second = replies[2 * i + 1];
    if (typeof seq === 'number' && seq !== 0 && typeof second === 'string') return q.answer(seq > 0 ? [seq, second] : [-seq, second, 1]);
    const err = new Error(seq === 0 ? String(second) : 'no reply for this message in the batch');
    const refused = refusal(err, q.p.id);
    if (refused) q.answer(refused);
    else q.fault(err);
  });
}
