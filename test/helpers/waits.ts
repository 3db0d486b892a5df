// How long a test waits for something that must come (a frame, a line, an event) before it fails. A bound, not a
// pause: the wait ends as soon as the thing arrives, so only a failing test pays it. It is generous because a
// passing test on a loaded 2-core machine (several suites at once, load 20) took more than 3 s to see a frame
// that a broker had queued behind thousands of others; it stays under the tests' 20 s timeout, so a frame that
// never comes is reported as that, with what did come, not as a test timeout.
export const FRAME_WAIT_MS = 10_000;

/**
 * How long a test waits for Node processes it started to say they are ready (a broker, `serve --workers`, a stalled
 * node under tsx): quiet, 1-3 s; beside other suites at load 36 on the 2 cores, more than 20 s. A test that starts
 * them adds this to its own timeout.
 */
export const PROCESS_START_MS = 60_000;

/** Waits until `cond` holds (polled every 25 ms), or fails naming `what` after `ms` (FRAME_WAIT_MS by default). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = FRAME_WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
