// The MQTT 5.0 subscription options of a session's filters beyond their QoS (§3.8.3.1): No Local (the client's own
// messages do not come back through the filter), Retain As Published (a message forwarded through it keeps the
// retain flag it was published with; otherwise live messages carry 0), and the Subscription Identifier its SUBSCRIBE
// carried (§3.8.2.1.2: every message forwarded through the filter carries it). A SUBSCRIBE sets a filter's options
// anew (one without an identifier removes the filter's), an UNSUBSCRIBE drops them; they are session state, kept
// with a persistent session (store.ts). And what a live message is forwarded with beyond its QoS, through the filters
// it matches: worked out only for a session that set options other than No Local, so a message to any other
// subscriber costs what it did without them. Pure.
import type { QoS } from 'mqtt-packet';
import { mqttMatches } from './match.js';

/**
 * What a live message is forwarded with beyond its QoS: the retain flag (kept as published, or 0), and the
 * Subscription Identifiers of the filters it matched that have one (none: undefined).
 */
export interface Marks {
  readonly retain: boolean;
  readonly ids?: number[] | undefined;
}

/** What a message is forwarded with through filters without options: retain 0 [MQTT-3.3.1-9]. */
export const PLAIN: Marks = Object.freeze({ retain: false });
const RETAINED: Marks = Object.freeze({ retain: true });

/** A filter's options, as a SUBSCRIBE sets them. */
export interface FilterChoice {
  noLocal: boolean;
  retainAsPublished: boolean;
  /** The SUBSCRIBE's Subscription Identifier (1 to 268,435,455); undefined: none. */
  subscriptionId?: number | undefined;
}

/** The options as a stored session keeps them: the filters that have each. */
export interface StoredOptions {
  noLocal?: string[] | undefined;
  retainAsPublished?: string[] | undefined;
  /** Filter → its Subscription Identifier. */
  subscriptionIds?: [string, number][] | undefined;
}

export class FilterOptions {
  /** Filters subscribed with No Local. */
  readonly noLocal = new Set<string>();
  /** Filters subscribed with Retain As Published. */
  private readonly asPublished = new Set<string>();
  /** Filter → the Subscription Identifier it was subscribed with. */
  private readonly ids = new Map<string, number>();
  /**
   * Some filter has an option that marks the messages forwarded through it (Retain As Published, a Subscription
   * Identifier): without one every message goes out PLAIN, and marks() is not asked (one field read per delivery).
   */
  marking = false;

  constructor(stored?: StoredOptions) {
    for (const filter of stored?.noLocal ?? []) this.noLocal.add(filter);
    for (const filter of stored?.retainAsPublished ?? []) this.asPublished.add(filter);
    for (const [filter, id] of stored?.subscriptionIds ?? []) this.ids.set(filter, id);
    this.marking = this.asPublished.size > 0 || this.ids.size > 0;
  }

  /** A SUBSCRIBE the engine took: the filter's options are the ones it asked for now (a resubscribe replaces them). */
  set(filter: string, choice: FilterChoice): void {
    if (choice.noLocal) this.noLocal.add(filter);
    else this.noLocal.delete(filter);
    if (choice.retainAsPublished) this.asPublished.add(filter);
    else this.asPublished.delete(filter);
    if (choice.subscriptionId !== undefined) this.ids.set(filter, choice.subscriptionId);
    else this.ids.delete(filter);
    this.marking = this.asPublished.size > 0 || this.ids.size > 0;
  }

  /** The Subscription Identifiers a message sent through `filter` alone carries (a new subscription's retained ones). */
  idsOf(filter: string): number[] | undefined {
    const id = this.ids.get(filter);
    return id === undefined ? undefined : [id];
  }

  /** An UNSUBSCRIBE the engine took: the filter's options go with it. */
  delete(filter: string): void {
    this.noLocal.delete(filter);
    this.asPublished.delete(filter);
    this.ids.delete(filter);
    this.marking = this.asPublished.size > 0 || this.ids.size > 0;
  }

  /** The options of `filters` (the session's), as a stored session keeps them. */
  stored(filters: ReadonlyMap<string, QoS>): StoredOptions {
    const held = (set: Set<string>) => {
      const out = [...set].filter((f) => filters.has(f));
      return out.length > 0 ? out : undefined;
    };
    const ids = [...this.ids].filter(([f]) => filters.has(f));
    return { noLocal: held(this.noLocal), retainAsPublished: held(this.asPublished), subscriptionIds: ids.length > 0 ? ids : undefined };
  }

  /**
   * What a live message on `topic` (published with the retain flag `retained`) is forwarded with through `filters`,
   * those with No Local left out for the client's `own` message. The broker sends one copy however many filters
   * match: its retain flag when one of them has Retain As Published, and the identifiers of all of them that have
   * one [MQTT-3.3.4-4] (in no particular order).
   */
  marks(filters: ReadonlyMap<string, QoS>, topic: string, own: boolean, retained: boolean): Marks {
    const rap = retained && this.asPublished.size > 0;
    if (!rap && this.ids.size === 0) return PLAIN;
    const through = (filter: string) => !(own && this.noLocal.has(filter)) && filters.has(filter) && mqttMatches(filter, topic);
    let retain = false;
    if (rap) {
      for (const filter of this.asPublished) {
        if (!through(filter)) continue;
        retain = true;
        break;
      }
    }
    let ids: number[] | undefined;
    for (const [filter, id] of this.ids) if (through(filter)) (ids ??= []).push(id);
    if (ids === undefined) return retain ? RETAINED : PLAIN;
    return { retain, ids };
  }
}
