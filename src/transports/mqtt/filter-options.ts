// The MQTT 5.0 subscription options of a session's filters beyond their QoS (§3.8.3.1): No Local (the client's own
// messages do not come back through the filter) and Retain As Published (a message forwarded through it keeps the
// retain flag it was published with; otherwise live messages carry 0). A SUBSCRIBE sets a filter's options anew, an
// UNSUBSCRIBE drops them; they are session state, kept with a persistent session (store.ts). And what a live message
// is forwarded with beyond its QoS, through the filters it matches: worked out only for a session that set options
// other than No Local, so a message to any other subscriber costs what it did without them. Pure.
import type { QoS } from 'mqtt-packet';
import { mqttMatches } from './match.js';

/** What a live message is forwarded with beyond its QoS: the retain flag (kept as published, or 0). */
export interface Marks {
  readonly retain: boolean;
}

/** What a message is forwarded with through filters without options: retain 0 [MQTT-3.3.1-9]. */
export const PLAIN: Marks = Object.freeze({ retain: false });
const RETAINED: Marks = Object.freeze({ retain: true });

/** A filter's options, as a SUBSCRIBE sets them. */
export interface FilterChoice {
  noLocal: boolean;
  retainAsPublished: boolean;
}

/** The options as a stored session keeps them: the filters that have each. */
export interface StoredOptions {
  noLocal?: string[] | undefined;
  retainAsPublished?: string[] | undefined;
}

export class FilterOptions {
  /** Filters subscribed with No Local. */
  readonly noLocal = new Set<string>();
  /** Filters subscribed with Retain As Published. */
  private readonly asPublished = new Set<string>();

  constructor(stored?: StoredOptions) {
    for (const filter of stored?.noLocal ?? []) this.noLocal.add(filter);
    for (const filter of stored?.retainAsPublished ?? []) this.asPublished.add(filter);
  }

  /** A SUBSCRIBE the engine took: the filter's options are the ones it asked for now (a resubscribe replaces them). */
  set(filter: string, choice: FilterChoice): void {
    if (choice.noLocal) this.noLocal.add(filter);
    else this.noLocal.delete(filter);
    if (choice.retainAsPublished) this.asPublished.add(filter);
    else this.asPublished.delete(filter);
  }

  /** An UNSUBSCRIBE the engine took: the filter's options go with it. */
  delete(filter: string): void {
    this.noLocal.delete(filter);
    this.asPublished.delete(filter);
  }

  /** The options of `filters` (the session's), as a stored session keeps them. */
  stored(filters: ReadonlyMap<string, QoS>): StoredOptions {
    const held = (set: Set<string>) => {
      const out = [...set].filter((f) => filters.has(f));
      return out.length > 0 ? out : undefined;
    };
    return { noLocal: held(this.noLocal), retainAsPublished: held(this.asPublished) };
  }

  /**
   * What a live message on `topic` (published with the retain flag `retained`) is forwarded with through `filters`,
   * those with No Local left out for the client's `own` message: its retain flag when a filter it matches has Retain
   * As Published (the broker sends one copy, however many filters match).
   */
  marks(filters: ReadonlyMap<string, QoS>, topic: string, own: boolean, retained: boolean): Marks {
    if (!retained || this.asPublished.size === 0) return PLAIN;
    for (const filter of this.asPublished) {
      if (own && this.noLocal.has(filter)) continue;
      if (filters.has(filter) && mqttMatches(filter, topic)) return RETAINED;
    }
    return PLAIN;
  }
}
