// MemoryEngine: one process, the embedded default. The protocol core (core.ts) over in-memory parts that answer at
// once: MemoryBroker (the history's rings and epochs, publish keys, fan-out in the publisher's call) and
// LocalPresence (names, `who` and presence events of this process's clients). No sockets and no timers: it talks to
// sessions only by queueing frames in their mailboxes; deliveries are never xstate events.
import { localSessionId, type PublishResult, type Session } from './engine.js';
import { ProtocolError, type FrameId } from '../protocol/errors.js';
import type { FrameOf, PresenceEvent } from '../protocol/frames.js';
import { encodeData, Outgoing, senderOf, type KeptMessage } from '../protocol/outgoing.js';
import { isWildcard, topicText } from '../protocol/topic.js';
import { History } from './history.js';
import { RESUME_MAX_TOPICS, resumeAck, type Position, type ResumeTerms } from './resume.js';
import { PublishKeys } from './idempotency.js';
import { LocalOccupancy } from './occupancy.js';
import type { RosterPage } from './roster.js';
import { ProtocolCore } from './core.js';
import { Locals } from './local.js';
import type { MemoryEngineOptions } from './options.js';
import { nameAtJoin } from './rules.js';
import { AT_ONCE, type Broker, type Deployment, type Maybe, type Publisher, type PresenceStore, type ResumeAnswer, type Turns } from './seam.js';

export type { MemoryEngineOptions };
export type { JoinRequest, LeaveCause, PublishResult } from './engine.js';

/** Messages of one process: numbered and kept in the history, handed to local subscribers in the publisher's call. */
export class MemoryBroker<S extends Session> implements Broker<S> {
  /** What a message leaves in the history is its KeptMessage (its JSON), not the Outgoing delivered live. */
  readonly history: History<KeptMessage>;
  private readonly publishKeys = new PublishKeys();

  constructor(
    options: MemoryEngineOptions,
    private readonly local: Locals<S>,
  ) {
    this.history = new History(
      { perTopic: options.historySize, maxTopics: options.maxTopics, topicBytes: options.historyTopicBytes, totalBytes: options.historyBytes, namesBytes: options.topicNamesBytes },
      (m) => m.bytes,
    );
  }

  get life(): string {
    return this.history.boot;
  }

  /**
   * Encodes the message once and queues the same bytes in every matching mailbox. Data that cannot be encoded is
   * refused here (bad_frame): nothing is numbered, stored or delivered. With `key`, a retry within the key's window
   * is answered with the first publish's position and delivers nothing.
   */
  publish(topic: string, data: unknown, from: Publisher | null, echo: boolean, id: FrameId | undefined, key: string | undefined, qos?: 0 | 1 | 2, retain = false): PublishResult | ProtocolError {
    if (key !== undefined) {
      const first = this.publishKeys.get(topic, key);
      if (first) return first;
      // Full of keys still in their window (in all, or this client's share): refused, it did not act.
      const full = this.publishKeys.refusal(topic, key, from?.id ?? '');
      if (full !== undefined) return new ProtocolError('unavailable', full, id);
    }
    const encoded = encodeData(data, id);
    if (encoded instanceof ProtocolError) return encoded;
    const ts = Date.now();
    const sender = from ? senderOf(from) : undefined;
    const text = topicText(topic);
    let message!: Outgoing;
    const { seq, epoch } = this.history.append(topic, (seq, epoch) => {
      message = Outgoing.message(topic, text, seq, epoch, sender, ts, encoded);
      if (qos !== undefined && qos < 2) message.maxQos = qos;
      if (retain) message.retain = true;
      return message.kept();
    });
    const delivered = this.local.fanOut(topic, from !== null && !echo ? from.id : '', (s) => s.mailbox.push(message));
    this.local.stats.published++;
    if (key !== undefined) this.publishKeys.set(topic, key, { seq, epoch }, from?.id ?? '');
    return { seq, epoch, delivered };
  }

  resume(frame: FrameOf<'sub'>, terms: ResumeTerms): ResumeAnswer {
    const { seen, anchored, budget } = terms;
    const r = this.history.resume(frame.topic, isWildcard(frame.topic), seen, { maxTopics: RESUME_MAX_TOPICS, maxMessages: budget.messages, maxBytes: budget.bytes }, anchored);
    return { ack: resumeAck(frame, r.positions, r.missed, r.truncated, this.life), messages: r.messages.map((m) => m.replay()), positions: r.positions, work: r.walked };
  }

  // A sub is answered within its call: no live message can arrive while one resumes, nothing to hold or skip.
  hold(): void {}
  release(): void {}
  replayedTo(_s: S, _positions: Map<string, Position>): void {}
  forget(): void {}
  // Every message of the process reaches its fan-out: interest is the topic index itself.
  interest(): void {}
  ready(): void {}
  /** Every client is local (the core queues its directs): no other node to send to. */
  direct(): boolean {
    return false;
  }
  /** Every delivery is queued in its publisher's call: nothing is on its way. */
  barrier(): void {}
}

/** Clients of one process: names unique here, `who` from the cached roster, presence events to local watchers. */
export class LocalPresence<S extends Session> implements PresenceStore<S> {
  constructor(private readonly local: Locals<S>) {}

  claimAtJoin(s: S, asked: string | undefined, base: string): Maybe<{ name: string; problem: ProtocolError | null }> {
    return nameAtJoin(asked, base, (name) => this.local.registry.isNameFreeFor(name, s));
  }

  /** The core checked this process's names already: here there are no others. */
  claimName(): boolean {
    return true;
  }

  record(): void {}
  drop(): void {}

  find(): undefined {
    return undefined;
  }

  who(topic: string | undefined, after: number, limit: number, admin: boolean): { page: RosterPage; listed: number } {
    const { roster } = this.local;
    const page = roster.page(topic ?? '', () => this.local.clientsOf(topic), after, limit, admin);
    return { page, listed: roster.lastBuilt };
  }

  announce(event: PresenceEvent, subject: S, filter: string, old?: string): void {
    this.local.tell(event, subject, filter, old);
  }
}

/** One process: nothing to connect to, always healthy; occupancy counts this process's holders. */
export const LOCAL_DEPLOYMENT: Deployment = {
  start: async () => {},
  close: async () => {},
  health: () => 'ok',
  occupancy: (listener) => new LocalOccupancy(listener),
};

export class MemoryEngine<Link extends Session = Session> extends ProtocolCore<Link> {
  constructor(options: MemoryEngineOptions) {
    const local = new Locals<Link>(options);
    super(options, local, {
      broker: new MemoryBroker<Link>(options, local),
      presence: new LocalPresence<Link>(local),
      ids: { next: localSessionId },
      turns: AT_ONCE as Turns<Link>,
      deployment: LOCAL_DEPLOYMENT,
    });
  }

  /** Answered at once: the in-memory broker never waits. */
  override publish(topic: string, data: unknown, key?: string, qos?: 0 | 1 | 2): PublishResult | ProtocolError {
    return this.broker.publish(topic, data, null, true, undefined, key, qos) as PublishResult | ProtocolError;
  }
}
