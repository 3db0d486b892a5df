// SseFallback: which transport each broker URL is dialled with. Every URL starts on WebSocket; one whose WebSocket
// never opened (a proxy that refuses or holds upgrades) is dialled over Server-Sent Events next, and stays on them
// while they work, for WS_RETRY_MS at most: its first dial after that tries WebSocket again (the node may only have
// been down at the time, or the network has changed since). An SSE dial that never opens sends the URL back to
// WebSocket. The memory is each URL's own: a proxy in front of one node says nothing about the way to another. A
// refused upgrade stops the client only once every URL it was given refused it for good: one node behind a proxy that
// refuses both ways must not stop a client whose other nodes serve it.

export type DialTransport = 'ws' | 'sse';

/**
 * How long a URL whose WebSocket could not be opened is dialled over SSE before WebSocket is tried there again, unless
 * the client's `wsRetryMs` says otherwise.
 */
export const WS_RETRY_MS = 5 * 60_000;

interface UrlMemory {
  /** When the URL's WebSocket last failed to open; undefined: the URL is dialled over WebSocket. */
  wsFailedAt: number | undefined;
  /** An SSE dial of the URL failed since a dial of it last opened: a refused upgrade there is final again. */
  sseFailed: boolean;
}

export class SseFallback {
  /** Keyed by the URLs of the client's own options: as many entries as it was given. */
  private readonly memory = new Map<string, UrlMemory>();
  /** URLs whose upgrade was refused for good since a dial last opened anywhere. */
  private readonly refused = new Set<string>();

  /**
   * `available`: there is an EventSource to fall back to (without one every dial is a WebSocket); `urls`: how many
   * URLs the client dials in turn.
   */
  constructor(
    readonly available: boolean,
    private readonly urls = 1,
    private readonly retryMs = WS_RETRY_MS,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The transport the next dial of `url` uses. */
  transportFor(url: string): DialTransport {
    const failedAt = this.memory.get(url)?.wsFailedAt;
    return this.available && failedAt !== undefined && this.now() - failedAt < this.retryMs ? 'sse' : 'ws';
  }

  /** A dial of `url` opened: its transport works there. */
  opened(url: string, via: DialTransport): void {
    this.refused.clear();
    const m = this.of(url);
    m.sseFailed = false;
    if (via === 'ws') m.wsFailedAt = undefined;
  }

  /** A dial of `url` over `via` never opened (refused, failed, or no answer within the connect timeout). */
  neverOpened(url: string, via: DialTransport): void {
    if (!this.available) return;
    const m = this.of(url);
    if (via === 'ws') m.wsFailedAt = this.now();
    else {
      // Both ways failed: more likely a node that is down than a blocked upgrade, so WebSocket is tried first again.
      m.wsFailedAt = undefined;
      m.sseFailed = true;
    }
  }

  /**
   * A refused upgrade of `url` (HTTP 400, 403, 404) stops the client only once SSE was tried there too (a proxy's 403
   * falls back, the broker's own refusal (an origin it does not allow) refuses the stream as well), and only once
   * every URL was refused so since a dial last opened: the client still has a node to go to until then.
   */
  refusalIsFinal(url: string): boolean {
    if (this.available && !this.of(url).sseFailed) return false;
    this.refused.add(url);
    return this.refused.size >= this.urls;
  }

  private of(url: string): UrlMemory {
    let m = this.memory.get(url);
    if (!m) this.memory.set(url, (m = { wsFailedAt: undefined, sseFailed: false }));
    return m;
  }
}
