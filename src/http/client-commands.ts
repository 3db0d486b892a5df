// ClientCommands: the server API's commands to one client (disconnect, subscribe, unsubscribe), wherever it is
// connected. A client of this process: run here. On a cluster, a client of another node (its record in Redis names
// the node): the command is a node call (src/engine/redis/calls.ts) that its node runs on it and answers. The answer
// is true: not_found only when no node has the client (no record, or its node is gone); unavailable when the
// command surely was not run; outcome_unknown when its node was sent the command and did not answer in time.
import type { Config } from '../config.js';
import type { Engine } from '../engine/engine.js';
import type { NodeCalls } from '../engine/redis/calls.js';
import type { Link } from '../actors/link.js';

/** A server API command to one client (POST /api/clients/disconnect, /subscribe, /unsubscribe). */
export type ClientCommand =
  | { op: 'disconnect'; code: number; reason: string }
  | { op: 'subscribe'; topic: string; presence: boolean }
  | { op: 'unsubscribe'; topic: string };

export type CommandErrorCode = 'not_found' | 'forbidden' | 'too_large' | 'unavailable' | 'outcome_unknown';
/** What came of a command: done to that client, or an error code and message; plain data (it crosses nodes). */
export type CommandOutcome = { ok: true; client: { id: string; name: string } } | { ok: false; code: CommandErrorCode; message: string };

const CALL_KIND = 'client-command';
const notConnected = (target: string): CommandOutcome => ({ ok: false, code: 'not_found', message: `no client '${target.slice(0, 64)}' is connected` });

export class ClientCommands {
  constructor(
    private readonly config: Config,
    private readonly hub: Engine<Link>,
    private readonly calls: NodeCalls | undefined,
  ) {
    calls?.handle(CALL_KIND, async (body) => {
      const { target, command } = JSON.parse(body) as { target: string; command: ClientCommand };
      const link = this.hub.find(target);
      return JSON.stringify(link ? this.execute(link, command) : notConnected(target));
    });
  }

  async run(target: string, command: ClientCommand): Promise<CommandOutcome> {
    const link = this.hub.find(target);
    if (link) return this.execute(link, command);
    if (!this.calls) return notConnected(target);
    let holder: { id: string; node: string } | undefined;
    try {
      holder = /^c\d+$/.test(target) ? await this.calls.client(target) : await this.calls.holder(target);
    } catch (err) {
      return { ok: false, code: 'unavailable', message: `the cluster store (Redis) cannot say where the client is: ${(err as Error).message}` };
    }
    // No record, or one naming this node, which no longer holds it (it just left): nobody has it.
    if (!holder || holder.node === this.calls.node) return notConnected(target);
    const result = await this.calls.call(holder.node, CALL_KIND, JSON.stringify({ target: holder.id, command }), this.config.redisTimeoutMs);
    if (result.ok) return JSON.parse(result.answer) as CommandOutcome;
    switch (result.why) {
      case 'gone':
        return { ok: false, code: 'not_found', message: `no client '${target.slice(0, 64)}' is connected (its node is gone)` };
      case 'timeout':
        return { ok: false, code: 'outcome_unknown', message: `the node holding the client did not answer within ${this.config.redisTimeoutMs} ms: the command may or may not have been carried out` };
      default:
        return { ok: false, code: 'unavailable', message: 'the command could not be sent to the node holding the client (Redis unreachable, or too many calls waiting); retry later' };
    }
  }

  /** Runs a command on a client of this process. */
  private execute(link: Link, command: ClientCommand): CommandOutcome {
    const client = { id: link.id, name: link.name };
    // Closing already (it quit, was disconnected, timed out, or the server drains): nothing more reaches it, and it is
    // closed with the code it has; acting on it would answer 200 for what does not happen.
    if (!link.isOpen) return { ok: false, code: 'not_found', message: `client '${link.id}' is disconnecting` };
    if (command.op === 'disconnect') {
      link.signal({ type: 'CLOSE', code: command.code, reason: command.reason, cause: 'leave' });
      return { ok: true, client };
    }
    const { topic } = command;
    if (command.op === 'subscribe') {
      if (link.grant && !link.grant.maySubscribe(topic)) return { ok: false, code: 'forbidden', message: `the client's grant does not allow subscribing to '${topic.slice(0, 64)}'` };
      if (!link.subscriptions.has(topic) && link.subscriptions.size >= this.config.maxSubscriptions) return { ok: false, code: 'too_large', message: `the client holds ${this.config.maxSubscriptions} subscriptions (--max-subscriptions)` };
    }
    // As if the client had sent it (without id: no ack reaches it), in its order with its own requests.
    this.hub.handle(link, command.op === 'subscribe' ? { op: 'sub', topic, ...(command.presence && { presence: true }) } : { op: 'unsub', topic });
    // An SSE stream's cursor moves only after its own requests: without this, a reconnect with Last-Event-ID dropped
    // the server's subscription (and what it published meanwhile) and brought back what the server unsubscribed.
    link.wire.filtersChangedByServer?.();
    return { ok: true, client };
  }
}
