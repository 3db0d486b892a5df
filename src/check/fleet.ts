// Fleet: the checker's clients on a real broker during one scenario. perform() runs one command on
// the broker and on the model, waits until the broker's frames settle (a ping/pong barrier: the commanding
// client first, then every other live client; per connection, the pong proves everything queued before it has arrived), then
// compares each client's frames of that step with the model's. A difference throws a CheckFailure.
import { randomBytes } from 'node:crypto';
import type { Outcome, ProtocolModel, Slot, Transport } from '../protocol/model.js';
import { isName, isTopic } from '../protocol/model.js';
import { describe, requestFrame, slotLabel, type BadFrame, type CheckCommand } from './commands.js';
import { difference } from './compare.js';
import { opening, type Endpoint } from './connect.js';
import type { Probe, Frame } from './probe.js';

export interface FleetOptions {
  /** True when nobody else uses the broker: `delivered` counts are then exact. */
  exclusive: boolean;
  /** How long one reply, close or barrier may take. */
  timeoutMs: number;
  /** A connection outside the scenario that asks `who` to learn when a closed client is reaped; shared by every run. */
  observer: () => Promise<Probe>;
  /**
   * The transports scenarios connect over: `ws`; `tcp`, line-protocol clients through the broker's `/lines` upgrade
   * into the fleet's room; `sse`, Server-Sent Events clients (`/sse`, requests over POST); `mqtt`, MQTT 3.1.1 clients.
   */
  transports: ReadonlySet<Transport>;
  /**
   * The nodes: `url` and, in a cluster (docs/cluster.md), further ones; connections alternate between them. A pub's
   * `delivered` then counts the subscribers on the publisher's own node, as a cluster node reports it.
   */
  nodes: Endpoint[];
}

/** A difference between the broker and the model, or a reply that never came. */
export class CheckFailure extends Error {}

/**
 * The refused frames and the error code each must get (docs/protocol.md "Errors"). Over TCP only lines
 * starting with `{` are frames (others are chat), so `not-object` is `{}` there: no op, no id, same error.
 */
const BAD_FRAMES: Record<BadFrame, { text: (id: string, tcp: boolean) => string; code: string; echoesId: boolean }> = {
  'not-json': { text: () => '{"op":"pub",', code: 'bad_frame', echoesId: false },
  'not-object': { text: (_id, tcp) => (tcp ? '{}' : '[1,2]'), code: 'bad_frame', echoesId: false },
  'no-op': { text: (id) => JSON.stringify({ id, topic: 'x' }), code: 'bad_frame', echoesId: true },
  'unknown-op': { text: (id) => JSON.stringify({ op: 'dance', id }), code: 'unknown_op', echoesId: true },
};

/** Replies to a request: the JSON transports' ack, error and pong; MQTT's SUBACK, UNSUBACK and PUBACK. */
const REPLY_OPS = new Set(['ack', 'error', 'pong', 'suback', 'unsuback', 'puback']);

let fleets = 0;

/** At most `count` renames per connection in any `ms` (see Fleet.paceRename). */
const RENAME_PACE = { count: 4, ms: 1250 } as const;

export class Fleet {
  /** The transcript of the scenario so far: one line per command, with the exact frame sent. */
  readonly transcript: string[] = [];
  /** Messages received as the model says, by the publisher's and the subscriber's transport (`mqtt→sse`). */
  readonly messages = new Map<string, number>();
  private readonly transportOf = new Map<string, Transport>();
  /** Kinds of the commands performed: the op, and the transport of the client that gave it unless WebSocket (`pub mqtt`). */
  readonly performed: string[] = [];
  /** Distinguishes this scenario's topics and names from any other run's and other users'. */
  readonly prefix: string;
  /** The chat room this scenario's line-protocol clients join instead of the broker's --room (nobody else is in it). */
  readonly room: string;
  private readonly probes = new Map<Slot, Probe>();
  private readonly cursors = new Map<Probe, number>();
  private readonly ours = new Set<string>();
  private steps = 0;
  /** Which endpoint (index into url + more) each slot's connection went to. */
  private readonly nodeOf = new Map<Slot, number>();
  /** The MQTT client id each MQTT slot connected with (the name it asked for; '' for none). */
  private readonly mqttIdOf = new Map<Slot, string>();
  private connects = 0;
  /** When each connection (by client id) sent its recent renames: they are paced under the broker's rename limit. */
  private readonly renames = new Map<string, number[]>();

  constructor(readonly options: FleetOptions) {
    this.prefix = `chk${randomBytes(3).toString('hex')}${++fleets}`;
    this.room = `${this.prefix}.room`;
  }

  topic(t: string): string {
    return `${this.prefix}/${t}`;
  }

  /** Valid names get the prefix; invalid ones are sent as they are, to be refused. */
  name(n: string): string {
    return isName(n) ? `${this.prefix}.${n}` : n;
  }

  /** Epochs observed per topic during this scenario (filled while comparing; sent back with `since`). */
  private readonly epochs = new Map<string, string>();

  epoch(topic: string): string | undefined {
    return this.epochs.get(topic);
  }

  async perform(cmd: CheckCommand, model: ProtocolModel): Promise<void> {
    const step = ++this.steps;
    const id = `k${step}`;
    const line = (sent: string) => this.transcript.push(`#${step} ${describe(cmd)}  →  ${sent}`);
    const transport = cmd.op === 'connect' ? (cmd.transport ?? 'ws') : (model.client(cmd.slot)?.transport ?? 'ws');
    this.performed.push(transport === 'ws' ? cmd.op : `${cmd.op} ${transport}`);
    let outcome;
    switch (cmd.op) {
      case 'connect': {
        const node = this.connects++ % this.options.nodes.length;
        this.nodeOf.set(cmd.slot, node);
        const via: Transport = cmd.transport ?? 'ws';
        if (!this.options.transports.has(via)) throw new Error(`checker: a ${via} connect in a scenario without ${via}`);
        const open = opening(cmd, { node: this.options.nodes[node]!, room: this.room, timeoutMs: this.options.timeoutMs, observer: this.options.observer, ownTopic: `${this.prefix}.own/${step}` }, this);
        line(open.sent);
        // An MQTT client id that is a live MQTT client's name takes over that connection, on any node; so does one that
        // is no name (`c7`, ' pad'), found by client id (docs/mqtt.md).
        const clientId = open.request.name ?? '';
        const takenOver =
          via === 'mqtt'
            ? model.liveSlots().find((s) => {
                const c = model.client(s)!;
                if (c.transport !== 'mqtt') return false;
                return c.name === open.request.name || (clientId !== '' && this.mqttIdOf.get(s) === clientId);
              })
            : undefined;
        if (via === 'mqtt') this.mqttIdOf.set(cmd.slot, clientId);
        const probe = await this.within(open.open(), `${via} connection`, step, cmd);
        const client = probe.frames[0]?.client as { id?: unknown; addr?: unknown } | undefined;
        if (probe.frames[0]?.op !== 'hello' || typeof client?.id !== 'string' || typeof client.addr !== 'string') {
          probe.drop();
          throw new CheckFailure(`step #${step} (${describe(cmd)}): the first frame is not a hello with client.id and client.addr: ${JSON.stringify(probe.frames[0])}`);
        }
        let before: Outcome | undefined;
        if (takenOver !== undefined) {
          const gone = model.client(takenOver)!.id;
          before = model.disconnect(takenOver);
          await this.within(this.probe(takenOver).closed, `close of ${slotLabel(takenOver)}, taken over`, step, cmd);
          await this.reaped(gone, step, cmd);
        }
        this.ours.add(client.id);
        this.transportOf.set(client.id, via);
        this.probes.set(cmd.slot, probe);
        this.cursors.set(probe, 0);
        outcome = model.connect(cmd.slot, { id: client.id, addr: client.addr, transport: via }, open.request);
        if (before) outcome = { frames: merged(before.frames, outcome.frames) };
        break;
      }
      case 'bad': {
        const bad = BAD_FRAMES[cmd.frame];
        const text = bad.text(id, model.client(cmd.slot)?.transport === 'tcp');
        line(text);
        this.probe(cmd.slot).send(text);
        outcome = model.reject(cmd.slot, bad.code, bad.echoesId ? id : undefined);
        break;
      }
      case 'quit': {
        const probe = this.probe(cmd.slot);
        const gone = model.client(cmd.slot)!.id;
        const frame = { op: 'quit' as const, id };
        line(JSON.stringify(frame));
        probe.send(frame);
        outcome = model.frame(cmd.slot, frame);
        const code = await this.within(probe.closed, `close after quit on ${slotLabel(cmd.slot)}`, step, cmd);
        if (code !== outcome.close?.code) throw new CheckFailure(`step #${step} (${describe(cmd)}): closed with ${code}, expected ${outcome.close?.code}`);
        await this.reaped(gone, step, cmd);
        break;
      }
      case 'drop': {
        const probe = this.probe(cmd.slot);
        const gone = model.client(cmd.slot)!.id;
        line('(socket destroyed without a close frame)');
        probe.drop();
        this.probes.delete(cmd.slot);
        outcome = model.disconnect(cmd.slot);
        await this.reaped(gone, step, cmd);
        break;
      }
      default: {
        if (cmd.op === 'rename') await this.paceRename(model.client(cmd.slot)?.id);
        const frame = requestFrame(cmd, id, model, this);
        line(JSON.stringify(frame) + (cmd.op === 'sub' && cmd.qos !== undefined ? ` at QoS ${cmd.qos}` : ''));
        const probe = this.probe(cmd.slot);
        probe.send(frame, cmd.op === 'sub' ? cmd.qos : undefined);
        if (frame.op === 'pub' && !isTopic(frame.topic) && model.client(cmd.slot)?.transport === 'mqtt') {
          // MQTT 3.1.1 cannot refuse a publish: the broker closes the connection instead (docs/mqtt.md, Refusals).
          const gone = model.client(cmd.slot)!.id;
          await this.within(probe.closed, `close after a refused MQTT publish on ${slotLabel(cmd.slot)}`, step, cmd);
          outcome = model.disconnect(cmd.slot);
          await this.reaped(gone, step, cmd);
          break;
        }
        // A notification may get no reply at all: the settle barrier below collects whatever it caused.
        if (frame.id !== undefined) {
          await this.within(
            probe.waitFor((f) => f.id === id && REPLY_OPS.has(f.op), this.options.timeoutMs, `reply to ${id}`),
            `reply to ${id}`,
            step,
            cmd,
          );
        }
        outcome = model.frame(cmd.slot, frame);
        if (frame.op === 'pub' && this.options.nodes.length > 1) this.deliveredOnNode(cmd.slot, frame.topic, outcome.frames);
      }
    }
    const received = await this.settle(step, cmd);
    for (const [slot, frames] of received) {
      // What the model says, as this client's transport can show it (MQTT: packets; line clients: no room traffic).
      const expected = this.probe(slot).view(outcome.frames.get(slot) ?? [], { filters: model.client(slot)?.filters ?? [], publishQos: publishQosOf(cmd, model) });
      const diff = difference(expected, frames, { ours: this.ours, exclusive: this.options.exclusive, epochs: this.epochs });
      if (diff) {
        const who = model.client(slot);
        throw new CheckFailure(
          [
            `step #${step} (${describe(cmd)}): client ${slotLabel(slot)} (${who?.id ?? '?'}) received frames that differ from the model`,
            '  expected:',
            ...indent(diff.expected),
            '  received:',
            ...indent(diff.actual),
          ].join('\n'),
        );
      }
      for (const f of outcome.frames.get(slot) ?? []) {
        if (f.op !== 'msg') continue;
        const key = `${this.transportOf.get((f.from as { id: string }).id) ?? '?'}→${model.client(slot)?.transport ?? '?'}`;
        this.messages.set(key, (this.messages.get(key) ?? 0) + 1);
      }
    }
    for (const [slot, probe] of this.probes) if (!model.isLive(slot) && !probe.open) this.probes.delete(slot);
  }

  /** In a cluster a pub's ack counts the deliveries on the publisher's node: the model's count narrowed to them. */
  private deliveredOnNode(publisher: Slot, topic: string, frames: Map<Slot, Record<string, unknown>[]>): void {
    const ack = frames.get(publisher)?.find((f) => f.op === 'ack' && typeof f.delivered === 'number');
    if (!ack) return;
    let n = 0;
    for (const [slot, list] of frames) {
      if (this.nodeOf.get(slot) === this.nodeOf.get(publisher) && list.some((f) => f.op === 'msg' && f.topic === topic)) n++;
    }
    ack.delivered = n;
  }

  /** Closes every connection of the scenario. */
  close(): void {
    for (const p of this.probes.values()) p.close();
    this.probes.clear();
  }

  private probe(slot: Slot): Probe {
    const p = this.probes.get(slot);
    if (!p) throw new Error(`checker: no connection on slot ${slotLabel(slot)}`);
    return p;
  }

  /**
   * A broker answers `rate_limited` to a connection's renames past --rename-rate (default 5 a second, a bucket of 5),
   * which the model does not know: a scenario that renames one client many times in a row would be a false alarm. So
   * a connection sends at most RENAME_PACE.count renames in any RENAME_PACE.ms (4 in 1.25 s, under the default
   * with room for frames that reach the broker closer together than they were sent); the checker waits otherwise.
   */
  private async paceRename(client: string | undefined): Promise<void> {
    if (client === undefined) return;
    const now = Date.now();
    const recent = (this.renames.get(client) ?? []).filter((t) => now - t < RENAME_PACE.ms);
    if (recent.length >= RENAME_PACE.count) await new Promise((r) => setTimeout(r, recent[0]! + RENAME_PACE.ms - now));
    recent.push(Date.now());
    this.renames.set(client, recent);
  }

  /** Pings every connection still open and waits for each pong; returns what each received since the last barrier. */
  private async settle(step: number, cmd: CheckCommand): Promise<Map<Slot, Frame[]>> {
    const id = `b${step}`;
    const received = new Map<Slot, Frame[]>();
    const one = async ([slot, probe]: [Slot, Probe]) => {
      const from = this.cursors.get(probe) ?? 0;
      if (!probe.open) {
        received.set(slot, probe.frames.slice(from));
        this.cursors.set(probe, probe.frames.length);
        return;
      }
      probe.send({ op: 'ping', id });
      const pong = await this.within(
        probe.waitFor((f) => f.op === 'pong' && f.id === id, this.options.timeoutMs, `pong ${id}`),
        `barrier pong on ${slotLabel(slot)}`,
        step,
        cmd,
      );
      const at = probe.frames.indexOf(pong);
      received.set(slot, probe.frames.slice(from, at));
      this.cursors.set(probe, at + 1);
    };
    // Another client's pong proves only what reached it before its ping was read, which may be before the command
    // was: the commanding client settles first (the broker has then sent out all the command caused), the others
    // after. (Without it a pub's msg to a line client could come after that client's pong: a false difference.)
    const first = 'slot' in cmd ? this.probes.get(cmd.slot) : undefined;
    if (first) await one([cmd.slot, first]);
    await Promise.all([...this.probes].filter(([, p]) => p !== first).map(one));
    return received;
  }

  /** Waits until the broker no longer lists client `id` (it has reaped the connection and told presence watchers). */
  private async reaped(id: string, step: number, cmd: CheckCommand): Promise<void> {
    const observer = await this.options.observer();
    const deadline = Date.now() + this.options.timeoutMs;
    for (let n = 0; Date.now() < deadline; n++) {
      // `who` is paginated (protocol 2): follow `next` until the client is found or the list ends.
      let listed = false;
      let refused = false;
      let cursor: string | undefined;
      for (let page = 0; !listed && !refused; page++) {
        const rid = `w${this.prefix}.${step}.${n}.${page}`;
        observer.send(cursor === undefined ? { op: 'who', id: rid, limit: 1000 } : { op: 'who', id: rid, limit: 1000, cursor });
        const ack = await observer.waitFor((f) => f.id === rid, this.options.timeoutMs, `who ${rid}`);
        observer.frames.length = 0; // its answers are not compared with anything: keep it from growing
        // Only an ack counts: a refused who (rate_limited on a busy broker) is asked again.
        refused = ack.op !== 'ack';
        listed = ((ack.clients ?? []) as { id?: string }[]).some((c) => c.id === id);
        cursor = typeof ack.next === 'string' ? ack.next : undefined;
        if (cursor === undefined) break;
      }
      if (!refused && !listed) return;
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new CheckFailure(`step #${step} (${describe(cmd)}): ${id} is still listed by who ${this.options.timeoutMs} ms after its connection ended`);
  }

  private async within<T>(p: Promise<T>, what: string, step: number, cmd: CheckCommand): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CheckFailure(`step #${step} (${describe(cmd)}): no ${what} within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
    });
    try {
      return await Promise.race([p, timeout]);
    } catch (err) {
      throw err instanceof CheckFailure ? err : new CheckFailure(`step #${step} (${describe(cmd)}): ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Each slot's frames of `a`, then those of `b`. */
function merged<F>(a: Map<Slot, F[]>, b: Map<Slot, F[]>): Map<Slot, F[]> {
  const out = new Map<Slot, F[]>();
  for (const m of [a, b]) for (const [slot, frames] of m) out.set(slot, [...(out.get(slot) ?? []), ...frames]);
  return out;
}

function indent(lines: string[]): string[] {
  return lines.length === 0 ? ['    (nothing)'] : lines.map((l) => `    ${l}`);
}

/** The MQTT QoS a step's publish carries: an MQTT client's notification 0, its acknowledged publish 1; else 2. */
function publishQosOf(cmd: CheckCommand, model: ProtocolModel): 0 | 1 | 2 {
  if (cmd.op !== 'pub' || model.client(cmd.slot)?.transport !== 'mqtt') return 2;
  return cmd.notify ? 0 : 1;
}
