// The protocol core over parts that answer later (as the Redis ones do): each session's requests are answered in
// the order they came, a step waits for the part it asked (a sub's ack for its record, a pub's ack for its publish),
// and a publish may start before its turn while its answer keeps its place. Stand-ins: the in-memory parts with
// their answers held until the test lets them go, and a per-session promise chain for Turns.
import { describe, expect, it } from 'vitest';
import { ProtocolCore } from '../../src/engine/core.js';
import { Locals } from '../../src/engine/local.js';
import { LocalPresence, LOCAL_DEPLOYMENT, MemoryBroker } from '../../src/engine/memory.js';
import type { Session } from '../../src/engine/engine.js';
import type { Turns } from '../../src/engine/seam.js';
import { fake, OPTIONS, type Fake } from './fakes.js';

/** A promise the test resolves. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** Each session's requests on a promise chain (what RequestOrder does, without its bound and error answers). */
function chained<S extends Session>(): Turns<S> {
  const chains = new Map<S, Promise<void>>();
  const chain = (s: S, run: () => unknown) => void chains.set(s, (chains.get(s) ?? Promise.resolve()).then(run as () => void));
  return {
    request: (s, run, a) => chain(s, () => run(s, a)),
    step: (s, run) => chain(s, run),
    early: (s, start, answer, a) => {
      const started = Promise.resolve(start(s, a));
      chain(s, async () => answer(s, a, await started));
    },
  };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('the protocol core over parts that answer later', () => {
  it('answers each session in request order, each step after the part it waits for', async () => {
    const local = new Locals<Fake>(OPTIONS);
    const memory = new MemoryBroker<Fake>(OPTIONS, local);
    const presence = new LocalPresence<Fake>(local);
    let publishGate = gate();
    let recordGate = gate();
    const broker = Object.assign(Object.create(memory) as MemoryBroker<Fake>, {
      publish: (...args: Parameters<MemoryBroker<Fake>['publish']>) => publishGate.promise.then(() => memory.publish(...args)),
    });
    const store = Object.assign(Object.create(presence) as LocalPresence<Fake>, { record: () => recordGate.promise });
    const core = new ProtocolCore<Fake>(OPTIONS, local, { broker, presence: store, ids: { next: () => 'c0' }, turns: chained<Fake>(), deployment: LOCAL_DEPLOYMENT });
    const a = fake('c801');
    const b = fake('c802');
    recordGate.open();
    core.join(a, {});
    core.join(b, {});
    await settle();
    expect(a.frames.map((f) => f.op)).toEqual(['hello']);

    recordGate = gate();
    core.handle(a, { op: 'pub', topic: 't', data: 1, id: 1 }); // held by the broker
    core.handle(a, { op: 'sub', topic: 't', id: 2 }); // held by the store's record, and behind the pub anyway
    core.handle(b, { op: 'pub', topic: 'u', data: 2, id: 3 });
    await settle();
    expect(a.frames.slice(1)).toEqual([]);
    expect(b.frames.slice(1)).toEqual([]);

    publishGate.open();
    await settle();
    expect(a.frames.slice(1)).toMatchObject([{ op: 'ack', id: 1, seq: 1, delivered: 0 }]); // the sub's ack waits for its record
    expect(b.frames.slice(1)).toMatchObject([{ op: 'ack', id: 3, seq: 1 }]);
    recordGate.open();
    await settle();
    expect(a.frames.slice(1)).toMatchObject([{ op: 'ack', id: 1 }, { op: 'ack', id: 2 }]);

    publishGate = gate();
    const published = core.publish('t', 3);
    expect(published).toBeInstanceOf(Promise);
    publishGate.open();
    expect(await published).toMatchObject({ seq: 2, delivered: 1 });
    expect(a.frames.at(-1)).toMatchObject({ op: 'msg', topic: 't', seq: 2 });
  });
});
