// StatelyInspector: `serve --inspect` — every actor's lifecycle, sampled and trimmed, sent over a WebSocket
// to the bridge (`switchboard inspect`), which relays it to the Stately Inspector in a browser.
// It reuses @statelyai/inspect's event conversion; the transport below adds what its own adapter lacks:
// reconnecting after the bridge restarts, a bounded queue, and re-announcing live actors on connect.
import WebSocket from 'ws';
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { AnyActorRef, InspectionEvent, Observer } from 'xstate';
import type { Logger } from 'pino';
import { InspectionSampler, trimContext, trimEvent, trimSnapshot } from './sampler.js';

/** `switchboard inspect` listens here; not 8080, which is the broker's own HTTP port. */
export const DEFAULT_BRIDGE_PORT = 8090;
export const DEFAULT_INSPECT_URL = `ws://localhost:${DEFAULT_BRIDGE_PORT}`;

/** Events kept while the bridge is unreachable (oldest dropped first, and counted). */
const MAX_QUEUED = 1000;
/** Above this many unsent bytes the bridge is too slow: new events are dropped, and counted. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const RECONNECT_MS = 2000;

export interface StatelyInspectorOptions {
  url: string;
  log: Logger;
  /** Every live actor, root first: announced to the bridge on each (re)connect so late joiners see them all. */
  liveActors: () => Iterable<AnyActorRef>;
  chatterPerSecond?: number;
}

/** A WebSocket adapter for createInspector: serialised events out, nothing in. */
class BridgeConnection {
  private ws: WebSocket | undefined;
  private queue: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private everOpened = false;
  private warned = false;
  dropped = 0;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
    private readonly onOpen: () => void,
  ) {}

  start(): void {
    if (this.stopped) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.log.error({ url: this.url, err: (err as Error).message }, 'inspector bridge URL is not usable; inspection events are not sent');
      this.stopped = true;
      return;
    }
    this.ws = ws;
    ws.on('open', () => {
      this.log.info({ url: this.url, replayed: this.queue.length }, this.everOpened ? 'inspector bridge reconnected' : 'inspector bridge connected');
      this.everOpened = true;
      this.warned = false;
      const queued = this.queue;
      this.queue = [];
      for (const text of queued) ws.send(text);
      this.onOpen();
    });
    ws.on('error', (err) => {
      // Say it once at warn level (the usual cause: the bridge is not started yet), then quietly retry.
      if (this.warned) return this.log.debug({ url: this.url, err: err.message }, 'inspector bridge unreachable');
      this.warned = true;
      this.log.warn({ url: this.url, err: err.message }, `inspector bridge unreachable; retrying every ${RECONNECT_MS / 1000} s (start it with \`switchboard inspect\`)`);
    });
    ws.on('close', () => {
      if (this.everOpened && this.ws === ws && !this.stopped) this.log.warn({ url: this.url }, 'inspector bridge closed; reconnecting');
      this.ws = undefined;
      if (!this.stopped) this.timer = setTimeout(() => this.start(), RECONNECT_MS).unref();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }

  send(event: StatelyInspectionEvent): void {
    const text = JSON.stringify(event);
    const ws = this.ws;
    if (ws?.readyState === WebSocket.OPEN) {
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) this.dropped++;
      else ws.send(text);
      return;
    }
    this.queue.push(text);
    if (this.queue.length > MAX_QUEUED) {
      this.queue.shift();
      this.dropped++;
    }
  }
}

export class StatelyInspector {
  readonly sampler: InspectionSampler;
  private readonly bridge: BridgeConnection;
  private readonly inspector;
  /** Pass to createActor's `inspect` option on the root actor: it sees the whole actor system. */
  readonly observer: Observer<InspectionEvent>;

  constructor(private readonly options: StatelyInspectorOptions) {
    this.sampler = new InspectionSampler({ chatterPerSecond: options.chatterPerSecond ?? 20 });
    this.bridge = new BridgeConnection(options.url, options.log, () => this.announceLiveActors());
    this.inspector = createInspector(this.bridge, {
      // Snapshots are trimmed by the sampler before conversion; actor registrations read getSnapshot() themselves.
      sanitizeContext: (context) => trimContext(context) as typeof context,
      sanitizeEvent: trimEvent,
    });
    const next = this.inspector.inspect.next!.bind(this.inspector.inspect);
    this.observer = {
      next: (ev) => {
        const selected = this.sampler.select(ev);
        if (selected) next(selected);
      },
    };
    this.inspector.start();
  }

  get dropped(): number {
    return this.bridge.dropped;
  }

  stop(): void {
    this.inspector.stop();
  }

  /** The current state of every live actor, so a bridge started (or restarted) late shows them all. */
  private announceLiveActors(): void {
    for (const actor of this.options.liveActors()) {
      this.inspector.actor(actor, trimSnapshot(actor.getSnapshot()));
    }
  }
}
