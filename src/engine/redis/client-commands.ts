// ClientCommands: server API commands (disconnect, subscribe, unsubscribe) to a client wherever in the cluster it is
// connected. A client of this node: run here. Another node's (its record in `sb:{g}:clients` names the node): the
// command goes over that node's channel (`q`), the node runs it on its client and answers on the asker's channel
// (`r`). The answer is true: not_found only when no node has the client; unavailable when it surely was not run
// (Redis unreachable, the node's channel has no listener); outcome_unknown when the node took it but did not answer
// in time.
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { notConnected, type ClientCommand, type CommandExecutor, type CommandOutcome } from '../deployment.js';
import type { Session } from '../engine.js';
import { KEYS } from './keys.js';

interface CommandRequest {
  ref: string;
  from: string;
  target: string;
  command: ClientCommand;
}

export interface ClientCommandsOptions<S> {
  node: string;
  cmd: Redis | Cluster;
  /** Publishes `payload` on `node`'s channel; false when nobody there can have received it. */
  relay(node: string, payload: string): Promise<boolean>;
  find(idOrName: string): S | undefined;
  /** How long an answer from another node may take. */
  timeoutMs: number;
  log: Logger;
}

/** Commands waiting for another node's answer, at most. */
const MAX_WAITING = 10_000;

const unavailable = (message: string): CommandOutcome => ({ ok: false, code: 'unavailable', message });

export class ClientCommands<S extends Session> {
  private execute: CommandExecutor<S> | undefined;
  private readonly waiting = new Map<string, (outcome: CommandOutcome) => void>();
  private n = 0;

  constructor(private readonly o: ClientCommandsOptions<S>) {}

  serve(execute: CommandExecutor<S>): void {
    this.execute = execute;
  }

  private runHere(session: S | undefined, target: string, command: ClientCommand): CommandOutcome {
    if (!session) return notConnected(target);
    if (!this.execute) return unavailable('this node runs no server API');
    return this.execute(session, command);
  }

  async run(target: string, command: ClientCommand): Promise<CommandOutcome> {
    const local = this.o.find(target);
    if (local) return this.runHere(local, target, command);
    let record: { id: string; node: string } | undefined;
    try {
      const id = /^c\d+$/.test(target) ? target : await this.o.cmd.hget(KEYS.names, target);
      const raw = id ? await this.o.cmd.hget(KEYS.clients, id) : null;
      record = raw ? (JSON.parse(raw) as { id: string; node: string }) : undefined;
    } catch (err) {
      return unavailable(`the cluster store (Redis) cannot be asked where the client is: ${(err as Error).message}`);
    }
    // No record, or one naming this node that no longer holds it (it just left): nobody has it.
    if (!record || record.node === this.o.node) return notConnected(target);
    if (this.waiting.size >= MAX_WAITING) return unavailable(`over ${MAX_WAITING} commands wait for other nodes; retry later`);
    const ref = `${this.o.node}.${(++this.n).toString(36)}`;
    const answer = new Promise<CommandOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(ref);
        resolve({ ok: false, code: 'outcome_unknown', message: `the node holding the client did not answer within ${this.o.timeoutMs} ms: the command may or may not have been carried out` });
      }, this.o.timeoutMs);
      this.waiting.set(ref, (outcome) => {
        clearTimeout(timer);
        this.waiting.delete(ref);
        resolve(outcome);
      });
    });
    const request: CommandRequest = { ref, from: this.o.node, target: record.id, command };
    let received: boolean;
    try {
      received = await this.o.relay(record.node, 'q' + JSON.stringify(request));
    } catch (err) {
      this.waiting.get(ref)?.(unavailable(`the command could not be sent to the client's node: ${(err as Error).message}`));
      return answer;
    }
    if (!received) this.waiting.get(ref)?.(unavailable('the node holding the client is not listening (gone, or away from Redis); retry later'));
    return answer;
  }

  /** A message on this node's channel: `q` a command for one of its clients, `r` the answer to one it sent. */
  onMessage(payload: string): void {
    if (payload[0] === 'r') {
      const { ref, outcome } = JSON.parse(payload.slice(1)) as { ref: string; outcome: CommandOutcome };
      this.waiting.get(ref)?.(outcome);
      return;
    }
    const req = JSON.parse(payload.slice(1)) as CommandRequest;
    const outcome = this.runHere(this.o.find(req.target), req.target, req.command);
    this.o.relay(req.from, 'r' + JSON.stringify({ ref: req.ref, outcome })).catch((err: Error) =>
      this.o.log.info({ err: err.message, to: req.from }, 'the answer to a server API command could not be sent (the asker answers outcome_unknown)'),
    );
  }
}
