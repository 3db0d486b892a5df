import { createActor, setup, fromCallback } from 'xstate';
const N = 20000;
const heap = () => { for (let i = 0; i < 3; i++) (globalThis as any).gc(); return process.memoryUsage().heapUsed; };
const group = createActor(fromCallback(() => undefined)).start();
const tiny = setup({}).createMachine({ initial: 'a', states: { a: {} } });
const par = setup({}).createMachine({ initial: 'o', states: { o: { type: 'parallel', states: { x: { initial: 'a', states: { a: {} } }, y: { initial: 'b', states: { b: {} } }, z: { initial: 'c', states: { c: {} } } } } } });
const timed = setup({ delays: { d: () => 3_600_000 } }).createMachine({ initial: 'a', states: { a: { after: { d: 'a' } } } });
const which = Number(process.argv[2]); for (const [name, m, start] of ([["tiny not started", tiny, false], ["tiny started", tiny, true], ["parallel 3 regions started", par, true], ["one after timer started", timed, true]] as const).slice(which, which + 1)) {
  const h0 = heap();
  const keep = Array.from({ length: N }, () => { const a = createActor(m as any, { parent: group }); if (start) a.start(); return a; });
  console.log(name, ((heap() - h0) / N).toFixed(0), 'B', keep.length);
}
