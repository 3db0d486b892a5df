// NodeBus: the node's side of Redis PUB/SUB other than messages' own channels. Sending: presence events to every node
// (`sb:bus`) and directs to one node (`sb:node:<id>`); on a Redis Cluster a keyless PUBLISH would go to a random
// master, so two events of one client could overtake each other: they go through the `{g}` shard instead (a script
// keyed on a heartbeat), like the reaper's timeouts. Receiving: what the subscriber connection hears, by its first
// byte: `m` messages (to the cursors; one or a batch's, joined by \x1e), `p` presence, `d` a direct, `b` a barrier token back on this node's channel.
import { Cluster } from 'ioredis';
import type { Logger } from 'pino';
import { EncodedData, Outgoing } from '../../protocol/outgoing.js';
import type { BrokerStats } from '../stats.js';
import { parseBusMessage, type BusMessage } from './cursors.js';
import { maybeRan, NotSent, reachedNobody, sendWritten } from './outcome.js';
import { OutcomeUnknown } from './refusals.js';
import { CHANNELS, KEYS } from './keys.js';
import type { RedisNode } from './node.js';
import type { BusPresence } from './presence-relay.js';
import * as LUA from './scripts.js';

export interface BusHandlers {
  message(m: BusMessage): void;
  presence(p: BusPresence): void;
  /** A direct for local client `to`, encoded once. */
  direct(to: string, from: { id: string; name: string }, out: Outgoing): void;
  barrier(token: number): void;
}

export class NodeBus {
  constructor(
    private readonly redis: RedisNode,
    private readonly handlers: BusHandlers,
    private readonly stats: BrokerStats,
    private readonly log: Logger,
  ) {}

  /**
   * Publishes a presence event to every node; false (nothing published) while this node is not in the node set: a
   * survivor took it for dead and announced its clients' end, which it learns only at its next tick.
   */
  async presence(payload: string): Promise<boolean> {
    return (await this.redis.script(LUA.PRESENCE, [KEYS.nodes], [this.redis.id, CHANNELS.bus, payload])) === 1;
  }

  /** Publishes held presence events in order, at once (one pipeline: on a Redis Cluster one node, the `{g}` shard's). */
  presenceAll(payloads: string[]): Promise<unknown> {
    const { cmd } = this.redis;
    const pipe = cmd.pipeline();
    for (const payload of payloads) {
      if (cmd instanceof Cluster) pipe.eval(LUA.RELAY, 1, KEYS.heartbeat(this.redis.id), CHANNELS.bus, payload, '0');
      else pipe.publish(CHANNELS.bus, payload);
    }
    return pipe.exec();
  }

  /**
   * Sends a direct to client `to` on `node`; true when it was received. A cluster counts only its own node's
   * receivers, so there a direct counts as received when that node's heartbeat exists; on one Redis, when a
   * subscriber received it.
   */
  direct(node: string, to: string, from: { id: string; name: string }, json: string): Promise<boolean> {
    // Sent as a command that knows whether it was written (outcome.ts): one written and then unanswered (a timeout, a
    // connection lost) may have been delivered, and is not sent again by ioredis.
    return this.relay(CHANNELS.node(node), `d${to}\n${JSON.stringify(from)}\n${json}`, node, true).catch((err: unknown) => {
      throw maybeRan(err) ? new OutcomeUnknown('the cluster store (Redis) did not answer: the direct may or may not have been delivered; sending it again may deliver it twice') : err;
    });
  }

  private async relay(channel: string, payload: string, target?: string, written = false): Promise<boolean> {
    const { cmd } = this.redis;
    if (!(cmd instanceof Cluster)) {
      const heard = Number(await (written ? sendWritten(cmd, 'publish', [channel, payload]) : cmd.publish(channel, payload))) > 0;
      if (heard || target === undefined) return heard;
      // None of this Redis's subscribers heard it. Its node gone: no such client. Otherwise, with no replica (whose
      // subscribers it would reach uncounted), nothing was delivered: retry later; with one, it may have been.
      const alive = await cmd.exists(KEYS.heartbeat(target)).then((n) => n === 1, () => undefined);
      if (alive === false) return false;
      if (await reachedNobody(cmd)) throw new NotSent(new Error("the recipient's node is not listening"));
      throw new OutcomeUnknown("the recipient's node did not hear the direct on this Redis, but may on a replica of it: it may or may not have been delivered");
    }
    const keys = [KEYS.heartbeat(target ?? this.redis.id)];
    const args = [channel, payload, target === undefined ? '0' : '1'];
    return (await (written ? this.redis.publishScript(LUA.RELAY, keys, args) : this.redis.script(LUA.RELAY, keys, args))) === 1;
  }

  /** What the subscriber connection heard on `channel`. */
  receive(channel: string, payload: string): void {
    try {
      switch (payload[0]) {
        case 'm':
          // A batch's entries for one channel come in one payload, joined by \x1e (publish-script.ts PUBLISH_BATCH).
          for (const entry of payload.includes('\x1e') ? payload.split('\x1e') : [payload]) {
            this.stats.clusterMessagesReceived++;
            const m = parseBusMessage(entry.slice(1));
            if (m) this.handlers.message(m);
          }
          return;
        case 'p':
          return this.handlers.presence(JSON.parse(payload.slice(1)) as BusPresence);
        case 'd':
          return this.receiveDirect(payload.slice(1));
        case 'b':
          // On this node's own channel, or (a Redis Cluster) one of its sharded barrier channels.
          if (channel === CHANNELS.node(this.redis.id) || channel.endsWith(`:b:${this.redis.id}`)) this.handlers.barrier(Number(payload.slice(1)));
          return;
      }
    } catch (err) {
      this.log.error({ err, channel }, 'bad bus message');
    }
  }

  /** `<to>\n<from JSON>\n<data JSON>`. */
  private receiveDirect(body: string): void {
    const a = body.indexOf('\n');
    const b = body.indexOf('\n', a + 1);
    const from = JSON.parse(body.slice(a + 1, b)) as { id: string; name: string };
    const json = body.slice(b + 1);
    this.handlers.direct(body.slice(0, a), from, new Outgoing({ op: 'direct', from, data: JSON.parse(json) as unknown }, undefined, new EncodedData(json)));
  }
}
