// Departed: what subscriptions that ended had taken, per topic a remaining subscription still matches. A replay of a
// newer, overlapping subscription brings those messages again, and the client's `message` event told them already.
// Bounded (DEPARTED_MAX topics, the oldest go first): past it a replay could be told twice, never lost. Pure.

/** Topics whose messages the client remembers for subscriptions that ended, at most. */
const DEPARTED_MAX = 10_000;

/** Messages of one topic taken in a row: seqs `first`…`last` of one epoch. */
export interface Run {
  epoch: string | undefined;
  first: number;
  last: number;
}

/** Whether `message` is one of `run`'s. */
export const withinRun = (run: Run | undefined, message: { seq: number; epoch?: string | undefined }): boolean =>
  run !== undefined && run.epoch === message.epoch && run.first <= message.seq && message.seq <= run.last;

/** What a subscription took: the topics, and of each the run it took in a row. */
export interface Taken {
  tookTopics(): Iterable<string>;
  run(topic: string): Run | undefined;
}

export class Departed {
  private readonly runs = new Map<string, Run>();

  /** A subscription ended: what it took of the topics `matched` by a remaining one is kept; the rest is forgotten. */
  keep(ended: Taken, matched: (topic: string) => boolean): void {
    for (const topic of ended.tookTopics()) {
      const run = ended.run(topic);
      if (!run || !matched(topic)) continue;
      const kept = this.runs.get(topic);
      // Two runs of one epoch that touch make one; otherwise the later run is kept. Set last: the newest go last.
      this.runs.delete(topic);
      if (kept && kept.epoch === run.epoch && run.first <= kept.last + 1 && kept.first <= run.last + 1) {
        this.runs.set(topic, { epoch: run.epoch, first: Math.min(kept.first, run.first), last: Math.max(kept.last, run.last) });
      } else this.runs.set(topic, kept && kept.epoch === run.epoch && kept.last > run.last ? kept : run);
    }
    for (const topic of this.runs.keys()) if (!matched(topic)) this.runs.delete(topic);
    for (const topic of this.runs.keys()) {
      if (this.runs.size <= DEPARTED_MAX) break;
      this.runs.delete(topic);
    }
  }

  /** Whether a subscription that has ended took `message` (the `message` event told it then). */
  took(message: { topic: string; seq: number; epoch?: string | undefined }): boolean {
    return withinRun(this.runs.get(message.topic), message);
  }

  clear(): void {
    this.runs.clear();
  }
}
