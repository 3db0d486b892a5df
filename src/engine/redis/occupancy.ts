// ClusterOccupancy: topic.occupied / topic.vacated for the whole cluster, once each. Every node counts its own holders
// of a filter; when its count goes 0→1 (or 1→0) it adds itself to (removes itself from) the filter's holders in Redis
// with a script that answers whether the cluster's count went 0→1 (1→0): only the node whose call did that tells
// its listener. A node whose heartbeat expired is taken out by a survivor (the script checks the heartbeat and
// answers the filters it vacated: that survivor tells them). A node that finds itself missing from the holders
// (reaped while stuck, or Redis lost its data) takes its filters again. Changes go to Redis one at a time, in order;
// one that fails is retried at the next tick.
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Occupancy, OccupancyListener } from '../engine.js';
import { KEYS } from './keys.js';
import type { ScriptRunner } from './script-runner.js';

/** KEYS: occupancy, node's filters, occupants. ARGV: filter, node. Returns 1 when the cluster's holders went 0→1. */
const TAKE = `
redis.call('SADD', KEYS[3], ARGV[2])
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then return 1 end
return 0
`;

/** KEYS: occupancy, node's filters. ARGV: filter. Returns 1 when the cluster's holders went 1→0. */
const RELEASE = `
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) > 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`;

/**
 * Takes a node's filters out (a dead one's, when its heartbeat is gone; this node's own at close: ARGV[2] = '1').
 * KEYS: occupancy, node's filters, occupants, node's heartbeat. ARGV: node, force. Returns the filters vacated.
 */
const WITHDRAW = `
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return {} end
local vacated = {}
for _, f in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('HINCRBY', KEYS[1], f, -1) <= 0 then
    redis.call('HDEL', KEYS[1], f)
    vacated[#vacated + 1] = f
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return vacated
`;

export interface ClusterOccupancyOptions {
  node: string;
  cmd: Redis | Cluster;
  /** The engine's Lua runner (EVALSHA once Redis has a script). */
  scripts: ScriptRunner;
  listener: OccupancyListener;
  tickMs: number;
  log: Logger;
}

export class ClusterOccupancy implements Occupancy {
  /** This node's holders per filter (keys come from clients: a Map). */
  private readonly local = new Map<string, number>();
  /** The filters Redis holds for this node, as far as this node knows. */
  private readonly held = new Set<string>();
  /** Filters whose local and Redis state may differ, oldest change first. */
  private readonly dirty = new Set<string>();
  private syncing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: ClusterOccupancyOptions) {
    this.timer = setInterval(() => void this.tick(), o.tickMs);
    this.timer.unref();
  }

  taken(filter: string): void {
    const n = (this.local.get(filter) ?? 0) + 1;
    this.local.set(filter, n);
    if (n === 1) this.changed(filter);
  }

  dropped(filter: string): void {
    const n = this.local.get(filter);
    if (n === undefined) return;
    if (n > 1) return void this.local.set(filter, n - 1);
    this.local.delete(filter);
    this.changed(filter);
  }

  private changed(filter: string): void {
    this.dirty.delete(filter); // re-added at the end: changes are applied in the order they happened
    this.dirty.add(filter);
    this.sync();
  }

  /** Applies the dirty filters one at a time; a failure leaves the rest for the next tick. */
  private sync(): Promise<void> {
    return (this.syncing ??= this.apply().finally(() => (this.syncing = undefined)));
  }

  private async apply(): Promise<void> {
    const { scripts, node, listener } = this.o;
    for (const filter of this.dirty) {
      this.dirty.delete(filter);
      const want = this.local.has(filter);
      if (want === this.held.has(filter)) continue;
      let edge: unknown;
      try {
        edge = want
          ? await scripts.run(TAKE, [KEYS.occupancy, KEYS.nodeOccupancy(node), KEYS.occupants], [filter, node])
          : await scripts.run(RELEASE, [KEYS.occupancy, KEYS.nodeOccupancy(node)], [filter]);
      } catch (err) {
        this.dirty.add(filter);
        this.o.log.info({ err: (err as Error).message, filter }, 'occupancy not written to Redis; retried at the next tick');
        return;
      }
      if (want) this.held.add(filter);
      else this.held.delete(filter);
      if (edge === 1) {
        if (want) listener.occupied(filter);
        else listener.vacated(filter);
      }
    }
  }

  /** Takes dead nodes' filters out, takes this node's again when Redis forgot them, retries what failed. */
  private async tick(): Promise<void> {
    if (this.closed) return;
    const { cmd, node } = this.o;
    try {
      const [[, member], [, nodes]] = (await cmd.multi().sismember(KEYS.occupants, node).smembers(KEYS.occupants).exec()) as [[unknown, number], [unknown, string[]]];
      if (member === 0 && this.held.size > 0) {
        // Reaped while stuck, or Redis lost its data: what Redis held for this node is gone; take it all again.
        this.o.log.warn({ filters: this.held.size }, 'occupancy: this node was taken out (reaped, or Redis lost it); taking its filters again');
        for (const f of this.held) this.dirty.add(f);
        this.held.clear();
      }
      for (const other of nodes) if (other !== node) await this.withdraw(other, false);
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'occupancy tick failed');
    }
    if (this.dirty.size > 0) await this.sync();
  }

  /** Takes `who`'s filters out (a dead node, or this one at close: `force`); tells the filters that were vacated. */
  private async withdraw(who: string, force: boolean): Promise<void> {
    const vacated = (await this.o.scripts.run(WITHDRAW, [KEYS.occupancy, KEYS.nodeOccupancy(who), KEYS.occupants, KEYS.heartbeat(who)], [who, force ? '1' : '0'])) as string[];
    if (vacated.length > 0 && !force) this.o.log.info({ dead: who, filters: vacated.length }, 'occupancy: a dead node\'s filters taken out');
    for (const f of vacated) this.o.listener.vacated(f);
  }

  /** Applies what is pending, then takes this node's remaining filters out (the last holder's go vacant). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.syncing;
    await this.withdraw(this.o.node, true).catch((err: Error) => this.o.log.info({ err: err.message }, 'occupancy not withdrawn; survivors take it out when the heartbeat expires'));
    this.held.clear();
  }
}
