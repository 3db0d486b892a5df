// Cursors: what the bus brings this node, delivered per topic in seq order. Per topic the last seq delivered here;
// the next seq is delivered at once, a later one is held while the gap before it is fetched from the topic's stream,
// an earlier one (a fill and the bus both brought it) is dropped. A gap the stream no longer holds is said loudly
// and passed. A message of another epoch waits until the topic's meta (read with the stream) says whether that epoch
// is the topic's current one (then followed from its seq 1) or one it left (the message came late: dropped, and the
// epoch is never followed again). The bus's wire format (`m` + `<node>\n<transport>\n<addr>\n<noEcho>\n<frame
// JSON>`) is read here too.
import type { Logger } from 'pino';
import type { ClientInfo, ServerFrame, Transport } from '../../protocol/frames.js';
import { Outgoing } from '../../protocol/outgoing.js';
import type { BrokerStats } from '../stats.js';

/** One message as the bus and the stream carry it: the publishing node, the sender's transport and addr, echo. */
export interface BusMessage {
  topic: string;
  seq: number;
  epoch: string;
  node: string;
  /** The sender's id when it published with echo: false. */
  noEcho: string;
  out: Outgoing;
}

/** Topics followed at once; past it, those with nothing held are dropped (they start again from their next message). */
export const MAX_CURSORS = 100_000;
/** Messages held per topic while a gap is filled; past it the gap is passed. */
export const MAX_HELD = 10_000;
/** Messages one stream read asks for. */
const READ_BATCH = 1000;
/** Epochs a topic left that are remembered per topic (their late messages are dropped without a read). */
const PAST_EPOCHS = 4;

/** Per topic: the last seq delivered here, and messages held until the gap before them is filled. */
interface Cursor {
  epoch: string;
  seq: number;
  held: Map<number, BusMessage>;
  filling: boolean;
  /** Asked to read again while a fill was in flight (a catch-up): its last read may predate what was missed. */
  again?: boolean;
  /** Stream reads started for the topic: an epoch is judged by a read started after its message came. */
  reads: number;
  /**
   * Messages of epochs other than `epoch`, not judged yet: epochs are minted by whichever node starts a sequence and
   * are not ordered, so whether one is newer (the topic restarted: a failover, a lost meta) or older (a message that
   * came late, after this node moved on) only the topic's meta can say. `after`: the reads started before it came.
   */
  others?: Map<string, { held: Map<number, BusMessage>; after: number }>;
  /** Epochs the topic left, newest last (at most PAST_EPOCHS): a message of one is late, never followed again. */
  past?: string[];
}

const cursor = (epoch: string, seq: number): Cursor => ({ epoch, seq, held: new Map(), filling: false, reads: 0 });

export interface CursorsOptions {
  /** Hands one message, in order, to the local subscribers. */
  deliver: (m: BusMessage) => void;
  /** Reads `count` entries of `topic`'s stream from seq `from`: [seq, epoch, id, `m`+body, id, `m`+body, …]. */
  read: (topic: string, from: number, count: number) => Promise<(string | null)[]>;
  /** The engine closed: fills stop. */
  closed: () => boolean;
  log: Logger;
  /** How long a failed fill waits before it tries again. */
  retryMs?: number;
  /** The node's counters, where messages lost to the node and stale ones dropped are counted (metrics); default: the cursors' own. */
  stats?: Pick<BrokerStats, 'clusterMessagesLost' | 'clusterMessagesStale'>;
}

export class Cursors {
  private readonly cursors = new Map<string, Cursor>();
  /**
   * Where a topic stood when this node started listening on its own channel, for the topics no message has come for
   * since (a cursor replaces it): its first message then tells whether some before it were lost on the way, and a
   * subscriber connection back after an outage fetches what was published on it meanwhile.
   */
  private readonly baselines = new Map<string, { epoch: string; seq: number }>();
  /** Where messages lost and stale ones are counted: the node's counters, or the cursors' own. */
  private readonly counts: Pick<BrokerStats, 'clusterMessagesLost' | 'clusterMessagesStale'>;

  constructor(private readonly options: CursorsOptions) {
    this.counts = options.stats ?? { clusterMessagesLost: 0, clusterMessagesStale: 0 };
  }

  /** Messages that could not be filled from the stream (trimmed before this node caught up). */
  get gapsSkipped(): number {
    return this.counts.clusterMessagesLost;
  }

  /** Messages of an epoch their topic had left when they came (dropped: delivering them would go back in time). */
  get staleDropped(): number {
    return this.counts.clusterMessagesStale;
  }

  /** A message from the bus. */
  receive(m: BusMessage): void {
    let c = this.cursors.get(m.topic);
    if (!c) {
      if (this.cursors.size >= MAX_CURSORS) this.trim();
      c = this.start(m);
      this.cursors.set(m.topic, c);
    }
    if (m.epoch !== c.epoch) return this.other(m.topic, c, m);
    if (m.seq <= c.seq) return; // already delivered (a fill and the bus both brought it)
    if (m.seq === c.seq + 1 && !c.filling) {
      this.options.deliver(m);
      c.seq = m.seq;
      this.drain(c);
      return;
    }
    c.held.set(m.seq, m);
    if (c.held.size > MAX_HELD) this.skipTo(m.topic, c, Math.min(...c.held.keys()));
    if (!c.filling) void this.fill(m.topic, c);
  }

  /**
   * This node listens on `topic`'s own channel now (its SUBSCRIBE answered), or a sub of it was acked while the
   * subscriber was away, and the topic stood at `seq` of `epoch` (0 and '' when it was never published). Kept until
   * its first message comes or the subscriber catches up (unless one came already).
   */
  listening(topic: string, epoch: string, seq: number): void {
    if (this.cursors.has(topic) || this.baselines.size >= MAX_CURSORS) return;
    // An earlier baseline (taken at a sub's ack while the subscriber was away) stays where it was: what followed it is
    // owed to that subscriber; an epoch that began since then is owed from its seq 1 (as in startOf).
    const had = this.baselines.get(topic);
    if (had) return void this.baselines.set(topic, had.epoch === epoch ? { epoch, seq: Math.min(had.seq, seq) } : { epoch, seq: 0 });
    this.baselines.set(topic, { epoch, seq });
  }

  /** The subscriber is back: what was published while it was away is fetched from the streams, in order. */
  catchUp(): void {
    // Topics listened on that no message had come for yet: followed from where they stood when listening began.
    for (const topic of this.baselines.keys()) this.followFromBaseline(topic);
    for (const [topic, c] of this.cursors) {
      if (c.filling) c.again = true;
      else void this.fill(topic, c);
    }
  }

  /**
   * Reads `topic`'s stream after its cursor now (this node's own publish did not come back over the bus in time: its
   * subscriber may listen where the topic is no longer numbered), delivering what it finds in order.
   */
  fillNow(topic: string): void {
    this.followFromBaseline(topic);
    const c = this.cursors.get(topic);
    if (c?.filling) c.again = true;
    else if (c) void this.fill(topic, c);
  }

  /** Forgets the topics this node no longer hears: what it knew of them is stale. */
  keepOnly(hears: (topic: string) => boolean): void {
    for (const topic of this.cursors.keys()) if (!hears(topic)) this.cursors.delete(topic);
    for (const topic of this.baselines.keys()) if (!hears(topic)) this.baselines.delete(topic);
  }

  /** A topic with a baseline and no cursor yet gets a cursor where it stood when listening began; the baseline is spent. */
  private followFromBaseline(topic: string): void {
    const b = this.baselines.get(topic);
    if (!b) return;
    this.baselines.delete(topic);
    if (!this.cursors.has(topic)) this.cursors.set(topic, cursor(b.epoch, b.seq));
  }

  /**
   * The cursor of a topic met for the first time: it starts at `m`, or where the topic stood when this node started
   * listening (baseline) if that is before: those in between were published while it listened, and are fetched from
   * the stream. A baseline of another epoch stays the cursor's: `m` is then judged as any message of another epoch
   * (one that began since the baseline is followed from its seq 1; a stale one is dropped).
   */
  private start(m: BusMessage): Cursor {
    const b = this.baselines.get(m.topic);
    this.baselines.delete(m.topic);
    if (b === undefined) return cursor(m.epoch, m.seq - 1);
    if (b.epoch === m.epoch) return cursor(m.epoch, Math.min(b.seq, m.seq - 1));
    // Never published when listening began: its first sequence from its seq 1.
    return b.epoch === '' ? cursor(m.epoch, 0) : cursor(b.epoch, b.seq);
  }

  /**
   * A message of another epoch than the topic's cursor: held until a read of the topic's meta started after it came
   * says whether its epoch is the current one (see fill). One of an epoch the topic left is late: dropped at once.
   */
  private other(topic: string, c: Cursor, m: BusMessage): void {
    if (c.past?.includes(m.epoch)) return this.stale(topic, m.epoch, 1);
    c.others ??= new Map();
    let o = c.others.get(m.epoch);
    if (!o) c.others.set(m.epoch, (o = { held: new Map(), after: c.reads }));
    // (Past the bound a message is not held: if its epoch is the current one, the fill reads it from the stream.)
    if (o.held.size < MAX_HELD) o.held.set(m.seq, m);
    if (c.filling) c.again = true;
    else void this.fill(topic, c);
  }

  /**
   * What a read of the topic's meta, started as read number `read`, says of the epochs held aside: the one it names
   * (`ep`) is current and kept for the cursor to move to; the others whose messages came before that read started are
   * epochs the topic left. A read naming no epoch (the meta is gone) or one the topic left (a stale lineage) judges
   * nothing.
   */
  private judge(topic: string, c: Cursor, ep: string | null | undefined, read: number): void {
    if (!c.others || !ep || c.past?.includes(ep)) return;
    for (const [epoch, o] of c.others) {
      if (epoch === ep || o.after >= read) continue;
      c.others.delete(epoch);
      this.left(c, epoch);
      this.stale(topic, epoch, o.held.size);
    }
  }

  /** The topic is in epoch `ep` now: followed from its seq 1, with what the bus brought of it so far. */
  private moveTo(c: Cursor, ep: string): void {
    this.left(c, c.epoch);
    const o = c.others?.get(ep);
    c.others?.delete(ep);
    c.epoch = ep;
    c.seq = 0;
    c.held = o?.held ?? new Map();
  }

  private left(c: Cursor, epoch: string): void {
    (c.past ??= []).push(epoch);
    if (c.past.length > PAST_EPOCHS) c.past.shift();
  }

  private stale(topic: string, epoch: string, n: number): void {
    this.counts.clusterMessagesStale += n;
    this.options.log.warn({ topic, epoch, messages: n }, 'messages of an epoch their topic has left came late: dropped (they would go back in time)');
  }

  private drain(c: Cursor): void {
    for (let next = c.held.get(c.seq + 1); next; next = c.held.get(c.seq + 1)) {
      c.held.delete(next.seq);
      this.options.deliver(next);
      c.seq = next.seq;
    }
  }

  /** A gap the stream could not fill (trimmed before this node caught up): said loudly, then passed. */
  private skipTo(topic: string, c: Cursor, seq: number): void {
    this.counts.clusterMessagesLost += seq - c.seq - 1;
    this.options.log.warn({ topic, from: c.seq + 1, to: seq - 1 }, 'messages lost to this node: the stream no longer holds them');
    c.seq = seq - 1;
    this.drain(c);
  }

  /** Fetches what this node missed of `topic` after its cursor (up to the first held message, or the stream's end). */
  private async fill(topic: string, c: Cursor): Promise<void> {
    c.filling = true;
    try {
      for (;;) {
        if (this.cursors.get(topic) !== c || this.options.closed()) return;
        // Held messages at or below the cursor were delivered (or passed) meanwhile: without them, the first held one
        // is after the cursor, so each turn of this loop delivers something or reads (a stale one made it spin forever).
        for (const seq of c.held.keys()) if (seq <= c.seq) c.held.delete(seq);
        const firstHeld = c.held.size > 0 ? Math.min(...c.held.keys()) : Infinity;
        const want = firstHeld === Infinity ? READ_BATCH : Math.min(READ_BATCH, firstHeld - c.seq - 1);
        if (want <= 0) {
          this.drain(c);
          if (c.held.size === 0) {
            if (!c.again) return;
            c.again = false;
          }
          continue;
        }
        const read = ++c.reads;
        const [, ep, , ...flat] = await this.options.read(topic, c.seq + 1, want);
        // Forgotten meanwhile (no longer heard, or trimmed): what was read is not this cursor's to deliver.
        if (this.cursors.get(topic) !== c || this.options.closed()) return;
        let got = 0;
        for (let k = 0; k < flat.length; k += 2) {
          const m = parseBusMessage(flat[k + 1]!.slice(1));
          if (!m || m.epoch !== c.epoch || m.seq <= c.seq) continue;
          if (m.seq > c.seq + 1) this.skipTo(topic, c, m.seq);
          got++;
          if (m.seq <= c.seq) continue; // held too, and delivered from there by skipTo
          // The bus may have brought it while this read was in flight (it was then held): delivered once, here.
          c.held.delete(m.seq);
          this.options.deliver(m);
          c.seq = m.seq;
        }
        this.drain(c);
        this.judge(topic, c, ep, read);
        if (c.held.size === 0) {
          if (ep && ep !== c.epoch && got === 0 && !c.past?.includes(ep)) {
            // The topic is in a new epoch (published while this node's subscriber was away, e.g. moving to a promoted
            // master, or the bus brought it and it waited here for this read): followed from its seq 1.
            this.moveTo(c, ep);
            continue;
          }
          // (a catch-up asked for meanwhile: this read may have been answered before what it is for was published)
          if ((got < want || ep !== c.epoch) && !c.again) return;
          c.again = false;
          continue; // more may follow
        }
        if (got === 0) this.skipTo(topic, c, Math.min(...c.held.keys()));
      }
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message, topic }, 'gap fill failed; retrying');
      setTimeout(() => this.cursors.get(topic) === c && !c.filling && void this.fill(topic, c), this.options.retryMs ?? 500).unref();
    } finally {
      c.filling = false;
    }
  }

  private trim(): void {
    for (const [topic, c] of this.cursors) if (c.held.size === 0 && !c.filling) this.cursors.delete(topic);
  }
}

/** `<node>\n<transport>\n<addr>\n<noEcho>\n<frame JSON>` → a message, encoded once for every local subscriber. */
export function parseBusMessage(body: string): BusMessage | undefined {
  let at = 0;
  const parts: string[] = [];
  for (let i = 0; i < 4; i++) {
    const nl = body.indexOf('\n', at);
    if (nl < 0) return undefined;
    parts.push(body.slice(at, nl));
    at = nl + 1;
  }
  const json = body.slice(at);
  const frame = JSON.parse(json) as ServerFrame & { op: 'msg'; topic: string; seq: number; epoch: string; from?: { id: string; name: string } };
  const [node, carried, addr, noEcho] = parts as [string, string, string, string];
  const colon = carried.indexOf(':');
  const transport = colon < 0 ? carried : carried.slice(0, colon);
  const sender: ClientInfo | undefined = frame.from ? { id: frame.from.id, name: frame.from.name, addr, transport: (transport || 'ws') as Transport } : undefined;
  const out = Outgoing.prebuilt(frame, json, Buffer.byteLength(json), sender);
  if (colon >= 0) {
    // `<qos>` (0, 1, 2) then `r` when its publisher set the retain flag (entries from before the flag: the QoS alone).
    const q = carried.charCodeAt(colon + 1);
    out.maxQos = q === 0x30 ? 0 : q === 0x31 ? 1 : 2;
    out.retain = carried.charCodeAt(carried.length - 1) === 0x72;
  }
  return { topic: frame.topic, seq: frame.seq, epoch: frame.epoch, node, noEcho, out };
}
