// SseForwarding: on a cluster, a `POST /sse?stream=<node>.<bits>` that reaches a node other than the stream's is
// checked there (origin, token) and carried to the stream's node over Redis (NodeCalls), which checks that the token
// names the stream's client, hands the frames to the stream and answers as it would have itself. The answer stays
// true: no answer in time is `outcome_unknown` (504: the frames may have been delivered), a node that is gone is
// `not_found` (404: its streams are closed), Redis not taking the request is `unavailable` (503: nothing delivered).
import type { NodeCalls } from '../../engine/redis/calls.js';

/** A stream of another node, as a POST addressed it: its node, its id, and the name the POST's token carries. */
export interface RemoteStream {
  node: string;
  stream: string;
  name: string | undefined;
}

export type PostAnswer = { status: number; body: unknown };

/** What the forwarding needs of the transport: a POST for one of its streams, answered as its own route would. */
export interface StreamHolder {
  answerPost(stream: string, name: string | undefined, body: Buffer): PostAnswer;
}

const KIND = 'sse-post';
const NODE_ID = /^[0-9a-f]{6}$/;

export class SseForwarding {
  constructor(
    private readonly calls: NodeCalls,
    private readonly holder: StreamHolder,
    /** How long the stream's node may take to answer. */
    private readonly timeoutMs: number,
  ) {
    calls.handle(KIND, async (text) => {
      const r = JSON.parse(text) as { s: string; n: string | null; b: string };
      return JSON.stringify(this.holder.answerPost(String(r.s), typeof r.n === 'string' ? r.n : undefined, Buffer.from(String(r.b), 'utf8')));
    });
  }

  get node(): string {
    return this.calls.node;
  }

  /** The node holding stream `id` when it is another one; undefined for this node's streams (and ids of no node). */
  ownerOf(id: string): string | undefined {
    const dot = id.indexOf('.');
    const node = dot < 0 ? '' : id.slice(0, dot);
    return NODE_ID.test(node) && node !== this.calls.node ? node : undefined;
  }

  async forward(target: RemoteStream, body: Buffer): Promise<PostAnswer> {
    const request = JSON.stringify({ s: target.stream, n: target.name ?? null, b: body.toString('utf8') });
    const result = await this.calls.call(target.node, KIND, request, this.timeoutMs);
    if (result.ok) {
      try {
        return JSON.parse(result.answer) as PostAnswer;
      } catch {
        return refusal(502, 'outcome_unknown', 'the node holding the stream answered something unreadable: the frames may or may not have been delivered');
      }
    }
    switch (result.why) {
      case 'gone':
        return refusal(404, 'not_found', 'no such stream (its node is gone); open a new one with GET /sse');
      case 'timeout':
        return refusal(504, 'outcome_unknown', 'the node holding the stream did not answer in time: the frames may or may not have been delivered');
      default:
        return refusal(503, 'unavailable', 'the cluster store (Redis) did not take the request: nothing was delivered; retry later');
    }
  }
}

export function refusal(status: number, error: string, message: string): PostAnswer {
  return { status, body: { error, message } };
}
