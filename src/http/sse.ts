// The SSE transport's routes on the HTTP port: GET /sse (a stream), POST /sse?stream=<id> (its frames), OPTIONS
// (a cross-origin preflight). Refusals become the router's JSON errors; bodies are read within --max-payload. On a
// cluster a POST for a stream of another node is answered with that node's answer (forwarded over Redis).
import { SSE_PATH, SseRefusal, type SseTransport } from '../transports/sse/transport.js';
import { HttpError, readBody, sendJson, type Router } from '../transports/router.js';

export function registerSse(router: Router, sse: SseTransport, maxBody: number): void {
  router.on('GET', SSE_PATH, (req, res, url) => answered(sse.open(req, res, url)));
  // HEAD would otherwise take the GET route: a stream nobody can read (a HEAD response has no body, and its headers
  // wait for an end that never comes), a hung probe and a phantom client holding a slot. Refused as the method it is.
  router.on('HEAD', SSE_PATH, (_req, res) => {
    res.setHeader('Allow', 'GET, POST, OPTIONS');
    throw new HttpError(405, 'HEAD opens no stream; GET /sse opens one', 'method_not_allowed');
  });
  router.on('POST', SSE_PATH, async (req, res, url) => {
    const stream = await answered(sse.addressed(req, res, url));
    const body = await readBody(req, maxBody);
    if ('node' in stream) {
      // A stream of another node of the cluster: its answer, or why there is none (outcome unknown on no answer).
      const answer = await sse.forward(stream, body);
      return sendJson(res, answer.status, answer.body);
    }
    sendJson(res, 202, await answered(Promise.resolve().then(() => sse.deliver(stream, body))));
  });
  router.on('OPTIONS', SSE_PATH, (req, res) => answered(Promise.resolve().then(() => sse.preflight(req, res))));
}

/** The transport's refusal as the router's error. */
async function answered<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof SseRefusal) throw new HttpError(err.status, err.message, err.code);
    throw err;
  }
}
