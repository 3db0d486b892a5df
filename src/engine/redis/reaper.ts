// Reaper: the pass every node's tick makes over the cluster's node set (node.ts). Each other node whose heartbeat key
// has expired is claimed by the REAP script (only the first survivor to remove it from the set wins, so a dead node
// is reaped once in the cluster): its clients are dropped, their names freed and their filters announced `timeout`.
// Passes never overlap, so the count of finished ones (on /metrics) says how far the reaper has looked: a pass
// finished after another one finished began after it, and saw every heartbeat as it stood by then.
import type { Logger } from 'pino';
import type { BrokerStats } from '../stats.js';
import { CHANNELS, KEYS } from './keys.js';
import * as LUA from './scripts.js';

export interface ReaperOptions {
  /** This node's id: skipped by its passes (it withdraws itself as it stops: withdraw()). */
  self: string;
  script: (lua: string, keys: string[], args: string[]) => Promise<unknown>;
  log: Logger;
  /** Where finished passes and reaped nodes are counted (the metrics endpoint reads them). */
  stats?: Pick<BrokerStats, 'clusterReaperPasses' | 'clusterNodesReaped'> | undefined;
}

export class Reaper {
  /** A pass is running: a tick that comes meanwhile leaves the node set to it. */
  private running = false;
  /** Told of each node this one reaped (another node's data that lingers in Redis can go: see RedisNode.onReaped). */
  private readonly listeners: ((node: string) => void)[] = [];

  constructor(private readonly o: ReaperOptions) {}

  onReaped(listener: (node: string) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Claims each node of `nodes` (the node set as a tick read it) whose heartbeat has expired. A REAP that fails
   * (Redis away or hung) fails the pass, which is then not counted: the tick logs it, the next tick tries again.
   */
  async pass(nodes: string[]): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const n of nodes) {
        if (n === this.o.self) continue;
        const count = (await this.reap(n)) as number;
        if (count < 0) continue;
        if (this.o.stats) this.o.stats.clusterNodesReaped++;
        this.o.log.warn({ dead: n, clients: count }, 'node gone (heartbeat expired): its clients timed out');
        for (const listener of this.listeners) listener(n);
      }
      if (this.o.stats) this.o.stats.clusterReaperPasses++;
    } finally {
      this.running = false;
    }
  }

  /** This node withdraws as it stops: its heartbeat goes, and its clients whose leave has not run end with a `leave`. */
  withdraw(): Promise<unknown> {
    return this.reap(this.o.self, 'leave');
  }

  /** The REAP script on `node`: claims it if its heartbeat is gone (or, with 'leave', as it withdraws). */
  private reap(node: string, leave?: 'leave'): Promise<unknown> {
    const args = leave ? [node, CHANNELS.bus, leave] : [node, CHANNELS.bus];
    return this.o.script(LUA.REAP, [KEYS.nodes, KEYS.heartbeat(node), KEYS.clients, KEYS.names, KEYS.nodeClients(node)], args);
  }
}
