// ScriptRunner: the Redis engine's Lua calls, by SHA once Redis has a script, in the order they were made.
// Pipelined EVALSHAs that meet NOSCRIPT (a fresh Redis, a restart, SCRIPT FLUSH) are retried as EVAL; until every
// EVALSHA sent before has its answer (and its retry is sent), new calls wait, then go as EVAL: otherwise a later
// call would overtake a retried one and one publisher's messages would be numbered out of order.
import { createHash } from 'node:crypto';
import { NotSent } from './outcome.js';

/** What the runner needs of the command connection (an ioredis Redis or Cluster). */
export interface ScriptConnection {
  eval(lua: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  evalsha(sha: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
}

export class ScriptRunner {
  private readonly shas = new Map<string, string>();
  /** Scripts Redis answered on the command connection since it last connected (cleared on close and on NOSCRIPT). */
  private readonly loaded = new Set<string>();
  /** EVALSHAs not answered yet. */
  private shaPending = 0;
  /** Set from a NOSCRIPT until every EVALSHA sent before it was answered: new script calls wait behind it. */
  private gate: { promise: Promise<void>; open: () => void } | undefined;
  /** The last call waiting behind the gate: later calls queue behind it. */
  private behind: Promise<void> | undefined;
  /** EVALSHAs sent so far (each call's place in the order they were sent). */
  private sent = 0;
  /** While the gate is set: the latest-sent EVALSHA that ran (0: none). */
  private ranAfter = 0;
  /** While the gate is set: the calls answered NOSCRIPT, in the order sent, to retry once every EVALSHA is answered. */
  private retries: { n: number; go: () => void; refuse: () => void }[] = [];

  /**
   * `nodeOf`: on a Redis Cluster, the master that serves a key (scripts are loaded per master: one that ran a script
   * on one master has not loaded it on another; without this, every master's first EVALSHA would meet NOSCRIPT).
   */
  constructor(
    private readonly conn: ScriptConnection,
    private readonly nodeOf: (key: string) => string = () => '',
  ) {}

  /** The command connection closed: the Redis it reaches next may not have the scripts. */
  forget(): void {
    this.loaded.clear();
  }

  /**
   * `asText`: the arguments of a call that goes with the script's text (EVAL: the first on a connection, and each
   * retry after NOSCRIPT), when they differ from those of a call by SHA (the publish script's lineage mode).
   */
  async run(lua: string, keys: string[], args: string[], asText?: (args: string[]) => string[]): Promise<unknown> {
    if (this.gate || this.behind) {
      // Behind a NOSCRIPT: wait for the gate, and behind every call already waiting, in call order. (Once the gate
      // opens, its waiters resume a few microtasks later: a call made meanwhile must not go out before them.)
      const prev = this.behind ?? Promise.resolve();
      const mine = prev.then(() => this.gate?.promise);
      this.behind = mine;
      await mine;
      if (this.behind === mine) this.behind = undefined;
    }
    let sha = this.shas.get(lua);
    if (!sha) this.shas.set(lua, (sha = createHash('sha1').update(lua).digest('hex')));
    const where = `${keys.length > 0 ? this.nodeOf(keys[0]!) : ''} ${sha}`;
    const withText = () => this.conn.eval(lua, keys.length, ...keys, ...(asText ? asText(args) : args));
    if (!this.loaded.has(where)) {
      const reply = await withText();
      // Loaded for good only when no EVALSHA (whose retry could still be sent after this) is out.
      if (this.shaPending === 0) this.loaded.add(where);
      return reply;
    }
    this.shaPending++;
    const n = ++this.sent;
    let retry: Promise<unknown> | undefined;
    try {
      const reply = await this.conn.evalsha(sha, keys.length, ...keys, ...args);
      if (this.gate) this.ranAfter = Math.max(this.ranAfter, n);
      return reply;
    } catch (err) {
      if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
      this.loaded.clear();
      if (!this.gate) {
        let open = () => {};
        this.gate = { promise: new Promise<void>((r) => (open = r)), open: () => open() };
      }
      // Not retried yet: an EVALSHA sent after this one may still run (another client loaded the script meanwhile),
      // and this retry would then be numbered after it. Decided once every EVALSHA out is answered (below).
      retry = new Promise((resolve, reject) =>
        this.retries.push({
          n,
          go: () => withText().then(resolve, reject),
          refuse: () => reject(err instanceof NotSent ? err : new NotSent(err as Error)),
        }),
      );
    } finally {
      if (--this.shaPending === 0 && this.gate) {
        // Every EVALSHA sent before is answered: the NOSCRIPT ones are retried in order, but one sent before an
        // EVALSHA that ran is refused unsent (it did not run; retried, it would overtake that later call).
        const retries = this.retries.splice(0);
        const ran = this.ranAfter;
        this.ranAfter = 0;
        for (const r of retries) (r.n < ran ? r.refuse : r.go)();
        this.gate.open();
        this.gate = undefined;
      }
    }
    return await retry;
  }
}
