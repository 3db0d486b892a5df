// ClientDirectory: what other nodes know of this node's clients, kept in Redis: one record per client (`sb:{g}:clients`:
// name, address, transport, state, node, filters), unique names across the cluster (`sb:{g}:names`), and the lookups
// `who` and `send` make of clients on any node. A local change is mirrored; while Redis is unreachable the node's
// re-assert after reconnect carries it (node.ts).
import type { Logger } from 'pino';
import type { Session } from '../engine.js';
import type { Transport } from '../../protocol/frames.js';
import { KEYS } from './keys.js';
import * as LUA from './scripts.js';
import type { RedisNode } from './node.js';
import { isRedisDown, OutcomeUnknown } from './refusals.js';
import { maybeRan } from './outcome.js';

/** What other nodes know of a client (the `sb:{g}:clients` hash). */
export interface ClientRecord {
  id: string;
  name: string;
  addr: string;
  transport: Transport;
  state: string;
  node: string;
  subs: string[];
  /** The connect hook's `meta`, shown in presence events and `who` on every node. */
  meta?: Record<string, unknown> | undefined;
}

export class ClientDirectory<S extends Session> {
  constructor(
    private readonly redis: RedisNode,
    /** This node's clients: a name held here is not claimed again; a client gone is not written. */
    private readonly local: { find(idOrName: string): S | undefined; has(s: S): boolean },
    private readonly log: Logger,
  ) {}

  record(s: S): ClientRecord {
    const meta = s.publicInfo().meta;
    const record: ClientRecord = { id: s.id, name: s.name, addr: s.addr, transport: s.transport, state: s.state, node: this.redis.id, subs: [...s.subscriptions] };
    if (meta !== undefined) record.meta = meta;
    return record;
  }

  /** Mirrors a local change to Redis; while Redis is unreachable the re-assert after reconnect carries it. */
  async mirror(s: S): Promise<void> {
    if (!this.local.has(s)) return;
    // A script, not a bare HSET: the name this record had in Redis (a rename whose outcome was unknown may have
    // changed it) is freed when it is not the client's name, and the client's name is claimed when nobody holds it.
    await this.redis
      .script(LUA.MIRROR_CLIENT, [KEYS.clients, KEYS.names, KEYS.nodeClients(this.redis.id)], [s.id, JSON.stringify(this.record(s)), s.name])
      .catch((err: Error) => this.log.debug({ err: err.message, client: s.id }, 'client record not written (re-asserted on reconnect)'));
  }

  /**
   * Claims `name` for `s` across the cluster (freeing `old`); true when it is now its. At join (`strict` false) with
   * Redis down: local check only (the re-assert writes the name). A rename (`strict`) is answered truly instead: a
   * claim never written throws NotSent (`unavailable`), one written and unanswered OutcomeUnknown.
   */
  async claimName(s: S, name: string, old: string, strict = false): Promise<boolean> {
    const holder = this.local.find(name);
    if (holder && holder !== s) return false;
    if (!this.redis.up && !strict) return true;
    const record = JSON.stringify({ ...this.record(s), name });
    const keys = [KEYS.names, KEYS.clients, KEYS.nodeClients(this.redis.id)];
    const args = [name, s.id, old, this.local.has(s) ? record : ''];
    try {
      // A rename's claim as a publish is sent (outcome.ts): one that knows whether it was written.
      return (await (strict ? this.redis.publishScript(LUA.CLAIM_NAME, keys, args) : this.redis.script(LUA.CLAIM_NAME, keys, args))) === 1;
    } catch (err) {
      if (strict) throw maybeRan(err) ? new OutcomeUnknown('the cluster store (Redis) did not answer: the rename may or may not have happened; the client keeps its name here') : err;
      if (!isRedisDown(err)) throw err;
      return true;
    }
  }

  /** Removes a client's record and frees its name (a failure is left to the re-assert). */
  async drop(id: string, name: string): Promise<void> {
    await this.redis
      .script(LUA.DROP_CLIENT, [KEYS.clients, KEYS.names, KEYS.nodeClients(this.redis.id)], [id, name])
      .catch((err: Error) => this.log.debug({ err: err.message, client: id }, 'client record not dropped (re-assert drops it)'));
  }

  /** A client on any node by id (`c<digits>`) or name. */
  async find(idOrName: string): Promise<ClientRecord | undefined> {
    const id = /^c\d+$/.test(idOrName) ? idOrName : await this.redis.cmd.hget(KEYS.names, idOrName);
    const raw = id ? await this.redis.cmd.hget(KEYS.clients, id) : null;
    return raw ? (JSON.parse(raw) as ClientRecord) : undefined;
  }

  /** Every client of the cluster. */
  async all(): Promise<ClientRecord[]> {
    return (await this.redis.cmd.hvals(KEYS.clients)).map((r) => JSON.parse(r) as ClientRecord);
  }
}
