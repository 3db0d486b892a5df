// The checker's commands: what a random scenario is made of, as plain data (printable, replayable),
// and their fast-check arbitraries. Alphabets are tiny on purpose, so names collide and filters overlap.
// Topics and names are written without the per-run prefix the fleet adds (see Fleet.topic/Fleet.name).
import fc from 'fast-check';
import type { AsyncCommand } from 'fast-check';
import { type ModelFrame, type ProtocolModel, type Slot, type Transport } from '../protocol/model.js';

/** What runs a command against real connections (the Fleet); declared here so commands and fleet import one way. */
export interface Performer {
  perform(cmd: CheckCommand, model: ProtocolModel): Promise<void>;
}

/** Who a `send` goes to: the id or the current name of the client on a slot, or a literal name. */
export type Target = { id: Slot } | { nameOf: Slot } | { name: string };

export type BadFrame = 'not-json' | 'not-object' | 'no-op' | 'unknown-op';

export type CheckCommand =
  /** `transport`: absent for WebSocket. */
  | { op: 'connect'; slot: Slot; name?: string; topics?: string[]; transport?: Exclude<Transport, 'ws'> }
  /** `qos`: the QoS an MQTT client subscribes at (0 when absent); other transports have none. */
  | { op: 'sub'; slot: Slot; topic: string; presence?: boolean; since?: number; notify?: true; qos?: 0 | 1 }
  | { op: 'unsub'; slot: Slot; topic: string; notify?: true }
  | { op: 'pub'; slot: Slot; topic: string; data: unknown; echo?: boolean; notify?: true }
  | { op: 'send'; slot: Slot; to: Target; data: unknown; notify?: true }
  | { op: 'who'; slot: Slot; topic?: string }
  | { op: 'rename'; slot: Slot; name: string; notify?: true }
  | { op: 'ping'; slot: Slot }
  | { op: 'quit'; slot: Slot }
  | { op: 'drop'; slot: Slot }
  | { op: 'bad'; slot: Slot; frame: BadFrame };

export const SLOTS = 3;
/** Concrete topics (one wildcard topic, which a publish must refuse). */
export const TOPICS = ['a', 'a/b', 'b/b', 'a/+'] as const;
/** Filters overlapping each other and TOPICS (two invalid ones). */
export const FILTERS = ['a', 'a/+', '+/b', '#', 'a/#', 'a/#/b'] as const;
/** Valid names get the run's prefix; invalid ones (reserved c<n>, spaces, empty) are sent as is. */
export const NAMES = ['ann', 'bob', 'cy', 'c7', ' pad', ''] as const;

export function slotLabel(slot: Slot): string {
  return String.fromCharCode(65 + slot);
}

/** One line per command: the abstract form a counterexample is printed and replayed in. */
export function describe(cmd: CheckCommand): string {
  const { op, slot, ...rest } = cmd;
  const fields = Object.keys(rest).length === 0 ? '' : ' ' + JSON.stringify(rest);
  return `${slotLabel(slot)} ${op}${fields}`;
}

/**
 * A command bound to fast-check. Its `slot` is relative, so that few generated commands are wasted:
 * connect takes the first free slot, any other command goes to the (slot mod n)-th live client.
 */
export class Step implements AsyncCommand<ProtocolModel, Performer> {
  constructor(readonly cmd: CheckCommand) {}

  check(model: Readonly<ProtocolModel>): boolean {
    const live = model.liveSlots().length;
    if (this.cmd.op === 'connect') return live < SLOTS;
    if (live === 0) return false;
    const cmd = this.absolute(model);
    return forTransport(cmd, model.client(cmd.slot)?.transport ?? 'ws') !== null;
  }

  run(model: ProtocolModel, fleet: Performer): Promise<void> {
    return fleet.perform(this.resolve(model), model);
  }

  /** The command with its absolute slot, as its client's transport gives it (check() said it can). */
  resolve(model: Readonly<ProtocolModel>): CheckCommand {
    const cmd = this.absolute(model);
    return forTransport(cmd, model.client(cmd.slot)?.transport ?? 'ws') ?? cmd;
  }

  private absolute(model: Readonly<ProtocolModel>): CheckCommand {
    const live = model.liveSlots();
    if (this.cmd.op === 'connect') return { ...this.cmd, slot: [...Array(SLOTS).keys()].find((s) => !live.includes(s))! };
    // A QoS only means something to an MQTT client: such a sub goes to one when there is one.
    const mqtt = this.cmd.op === 'sub' && this.cmd.qos !== undefined ? live.filter((s) => model.client(s)?.transport === 'mqtt') : [];
    const among = mqtt.length > 0 ? mqtt : live;
    return { ...this.cmd, slot: among[this.cmd.slot % among.length]! };
  }

  toString(): string {
    return describe(this.cmd);
  }
}

/**
 * The command as a client of `transport` gives it, or null when that client cannot. The JSON transports give every
 * command (without `qos`). An MQTT client (docs/mqtt.md) subscribes (without presence or `since`; SUBACK always
 * answers, so never as a notification), unsubscribes, publishes (QoS 1, or QoS 0 for a notification; it has no
 * `echo`; to a wildcard topic the broker closes it), pings and disconnects; it has no send, who, rename or malformed frames.
 */
export function forTransport(cmd: CheckCommand, transport: Transport): CheckCommand | null {
  if (transport !== 'mqtt') return cmd.op === 'sub' && cmd.qos !== undefined ? without(cmd, 'qos') : cmd;
  switch (cmd.op) {
    case 'connect':
    case 'ping':
    case 'quit':
    case 'drop':
      return cmd;
    case 'sub':
      return cmd.presence === true || cmd.since !== undefined ? null : without(cmd, 'presence', 'notify');
    case 'unsub':
      return without(cmd, 'notify');
    case 'pub':
      return cmd.echo === false ? null : without(cmd, 'echo');
    default:
      return null;
  }
}

function without<C extends CheckCommand>(cmd: C, ...keys: string[]): C {
  return Object.fromEntries(Object.entries(cmd).filter(([k]) => !keys.includes(k))) as C;
}

/** How abstract topics and names become concrete ones (the fleet adds its run prefix). */
export interface Naming {
  topic(t: string): string;
  name(n: string): string;
  /** The epoch observed for a concrete topic, if any (sent with `since`, as a resuming client would). */
  epoch(topic: string): string | undefined;
}

export type RequestCommand = Exclude<CheckCommand, { op: 'connect' | 'bad' | 'quit' | 'drop' }>;

/** The concrete frame for a request command, with the ids and names the model knows. */
export function requestFrame(cmd: RequestCommand, requestId: string, model: ProtocolModel, naming: Naming): ModelFrame {
  // A notification carries no id (docs/protocol.md): the broker answers it only with errors.
  const id = 'notify' in cmd && cmd.notify ? (undefined as unknown as string) : requestId;
  const frame = requestFrameWithId(cmd, id, model, naming);
  if (id === undefined) delete frame.id;
  return frame;
}

function requestFrameWithId(cmd: RequestCommand, id: string, model: ProtocolModel, naming: Naming): ModelFrame {
  switch (cmd.op) {
    case 'sub': {
      const topic = naming.topic(cmd.topic);
      const epoch = cmd.since !== undefined && cmd.since > 0 ? naming.epoch(topic) : undefined;
      return {
        op: 'sub',
        id,
        topic,
        ...(cmd.presence !== undefined && { presence: cmd.presence }),
        ...(cmd.since !== undefined && { since: cmd.since }),
        ...(epoch !== undefined && { epoch }),
      };
    }
    case 'unsub':
      return { op: 'unsub', id, topic: naming.topic(cmd.topic) };
    case 'pub':
      return { op: 'pub', id, topic: naming.topic(cmd.topic), data: cmd.data, ...(cmd.echo !== undefined && { echo: cmd.echo }) };
    case 'send':
      return { op: 'send', id, to: targetOf(cmd.to, model, naming), data: cmd.data };
    case 'who':
      return cmd.topic === undefined ? { op: 'who', id } : { op: 'who', id, topic: naming.topic(cmd.topic) };
    case 'rename':
      return { op: 'rename', id, name: naming.name(cmd.name) };
    case 'ping':
      return { op: 'ping', id };
  }
}

function targetOf(to: Target, model: ProtocolModel, naming: Naming): string {
  // A slot never connected has no id: c0 is never assigned (ids start at c1), so it is unknown everywhere.
  if ('id' in to) return model.client(to.id)?.id ?? 'c0';
  if ('nameOf' in to) return model.client(to.nameOf)?.name ?? naming.name('nobody');
  return naming.name(to.name);
}

const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const topic = fc.constantFrom(...TOPICS);
const filter = fc.constantFrom(...FILTERS);
const name = fc.constantFrom(...NAMES);
const data = fc.oneof(fc.integer({ min: 0, max: 99 }), fc.constantFrom('hi', null, { k: [1, 'x'] }));
const target: fc.Arbitrary<Target> = fc.oneof(
  slot.map((s) => ({ id: s })),
  slot.map((s) => ({ nameOf: s })),
  name.map((n) => ({ name: n })),
);

/**
 * Weighted towards connect, sub and pub. Clients connect over the `transports` asked: WebSocket and Server-Sent Events
 * with a name and filters, TCP JSON lines and MQTT with a name only (MQTT's client id).
 */
export function scenarioCommands(transports: ReadonlySet<Transport> = new Set(['ws'])): fc.Arbitrary<Step>[] {
  const arbs: fc.Arbitrary<CheckCommand>[] = [
    ...(transports.has('ws')
      ? [
          fc.record({ op: fc.constant('connect'), slot, name: fc.option(name, { nil: undefined, freq: 3 }), topics: fc.option(fc.array(filter, { maxLength: 2 }), { nil: undefined, freq: 2 }) }, { requiredKeys: ['op', 'slot'] }),
          // Connect weighs three: a scenario's commands are skipped until someone is connected (and when all slots are full, connect is).
          fc.record({ op: fc.constant('connect'), slot }),
          fc.record({ op: fc.constant('connect'), slot }),
        ]
      : []),
    fc.record({ op: fc.constant('sub'), slot, topic: filter, presence: fc.option(fc.boolean(), { nil: undefined }), since: fc.option(fc.constantFrom(0, 1, 3), { nil: undefined, freq: 4 }) }, { requiredKeys: ['op', 'slot', 'topic'] }),
    // Resuming a concrete topic, with the epoch the checker observed for it.
    fc.record({ op: fc.constant('sub'), slot, topic, since: fc.constantFrom(0, 1, 2, 3, 9) }),
    // Notifications: frames without id get no ack.
    fc.record({ op: fc.constant('pub'), slot, topic, data, notify: fc.constant(true) }),
    fc.record({ op: fc.constant('sub'), slot, topic: filter, notify: fc.constant(true) }),
    fc.record({ op: fc.constant('rename'), slot, name, notify: fc.constant(true) }),
    fc.record({ op: fc.constant('sub'), slot, topic: filter, presence: fc.constant(true) }),
    fc.record({ op: fc.constant('sub'), slot, topic: filter, presence: fc.boolean() }),
    fc.record({ op: fc.constant('unsub'), slot, topic: filter }),
    fc.record({ op: fc.constant('pub'), slot, topic, data, echo: fc.option(fc.boolean(), { nil: undefined }) }, { requiredKeys: ['op', 'slot', 'topic', 'data'] }),
    fc.record({ op: fc.constant('pub'), slot, topic, data }),
    fc.record({ op: fc.constant('pub'), slot, topic, data }),
    fc.record({ op: fc.constant('send'), slot, to: target, data }),
    fc.record({ op: fc.constant('who'), slot, topic: fc.option(filter, { nil: undefined }) }, { requiredKeys: ['op', 'slot'] }),
    fc.record({ op: fc.constant('rename'), slot, name }),
    fc.record({ op: fc.constant('ping'), slot }),
    fc.record({ op: fc.constant('quit'), slot }),
    fc.record({ op: fc.constant('drop'), slot }),
    fc.record({ op: fc.constant('bad'), slot, frame: fc.constantFrom<BadFrame>('not-json', 'not-object', 'no-op', 'unknown-op') }),
  ] as fc.Arbitrary<CheckCommand>[];
  const connectVia = (transport: Exclude<Transport, 'ws'>, topics: boolean) =>
    fc.record(
      { op: fc.constant('connect'), slot, transport: fc.constant(transport), name: fc.option(name, { nil: undefined, freq: 2 }), ...(topics && { topics: fc.option(fc.array(filter, { maxLength: 2 }), { nil: undefined, freq: 2 }) }) },
      { requiredKeys: ['op', 'slot', 'transport'] },
    ) as fc.Arbitrary<CheckCommand>;
  if (transports.has('tcp')) arbs.push(connectVia('tcp', false), connectVia('tcp', false));
  if (transports.has('sse')) arbs.push(connectVia('sse', true), connectVia('sse', true));
  if (transports.has('mqtt')) {
    // Subscriptions at QoS 1 as well as 0: a message reaches an MQTT client at the highest QoS of its matching filters.
    const subAt = fc.record({ op: fc.constant('sub'), slot, topic: filter, qos: fc.constantFrom<0 | 1>(0, 1) }) as fc.Arbitrary<CheckCommand>;
    arbs.push(connectVia('mqtt', false), connectVia('mqtt', false), subAt, subAt, fc.record({ op: fc.constant('pub'), slot, topic, data }) as fc.Arbitrary<CheckCommand>);
  }
  return arbs.map((arb) => arb.map((cmd) => new Step(dropUndefined(cmd))));
}

/** The WebSocket-only scenario commands. */
export const commandArbitraries: fc.Arbitrary<Step>[] = scenarioCommands();

function dropUndefined(cmd: CheckCommand): CheckCommand {
  return Object.fromEntries(Object.entries(cmd).filter(([, v]) => v !== undefined)) as CheckCommand;
}
