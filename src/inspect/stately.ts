// StatelyInspector: `serve --inspect` — every actor's lifecycle, sampled and trimmed, sent over a WebSocket
// to the bridge (`switchboard inspect`), which relays it to the Stately Inspector in a browser.
// The observer is attached to the actor system only while the bridge is connected (xstate's inspection
// machinery is not free once anyone listens), and every (re)connect re-announces the live actors.
// It reuses @statelyai/inspect's event conversion; the transport below adds reconnecting and a send bound.
import WebSocket from 'ws';
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { AnyActorRef, InspectionEvent, Observer, Subscription } from 'xstate';
import type { Logger } from 'pino';
import { InspectionSampler, trimContext, trimEvent, trimSnapshot } from './sampler.js';

/** `switchboard inspect` listens here; not 8080, which is the broker's own HTTP port. */
export const DEFAULT_BRIDGE_PORT = 8090;
export const DEFAULT_INSPECT_URL = `ws://localhost:${DEFAULT_BRIDGE_PORT}`;

/** Above this many unsent bytes the bridge is too slow: new events are dropped, and counted. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const RECONNECT_MS = 2000;

export interface StatelyInspectorOptions {
  url: string;
  log: Logger;
  /** The root actor (the supervisor): its system carries every actor's inspection events. */
  root: AnyActorRef;
  /** Every live actor, root first: announced to the bridge on each (re)connect so late joiners see them all. */
  liveActors: () => Iterable<AnyActorRef>;
  chatterPerSecond?: number;
  /** Wait between reconnection attempts (tests shorten it). */
  retryMs?: number;
}

/** A WebSocket adapter for createInspector: serialised events out, nothing in. */
class BridgeConnection {
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private everOpened = false;
  /** The current outage has been reported (at warn); cleared when the bridge is reachable again. */
  private outageReported = false;
  dropped = 0;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
    private readonly onOpen: () => void,
    private readonly onClose: () => void,
    private readonly retryMs = RECONNECT_MS,
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
    let opened = false;
    const every = `${this.retryMs / 1000} s`;
    ws.on('open', () => {
      opened = true;
      this.log.info({ url: this.url }, this.everOpened ? 'inspector bridge reachable again' : 'inspector bridge connected');
      this.everOpened = true;
      this.outageReported = false;
      this.onOpen();
    });
    // One warning per outage (the usual cause: the bridge is not started yet, or was stopped); retries are debug.
    ws.on('error', (err) => {
      if (this.outageReported) return this.log.debug({ url: this.url, err: err.message }, 'inspector bridge unreachable');
      this.outageReported = true;
      this.log.warn({ url: this.url, err: err.message }, `inspector bridge unreachable; retrying every ${every} (start it with \`switchboard inspect\`)`);
    });
    ws.on('close', () => {
      if (opened && !this.stopped && !this.outageReported) {
        this.outageReported = true;
        this.log.warn({ url: this.url }, `inspector bridge closed; retrying every ${every}`);
      }
      this.ws = undefined;
      this.onClose();
      if (!this.stopped) this.timer = setTimeout(() => this.start(), this.retryMs).unref();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }

  /** Sends now or drops (counted): a congested bridge, or events converted just after it went away. */
  send(event: StatelyInspectionEvent): void {
    const ws = this.ws;
    if (ws?.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.dropped++;
      return;
    }
    // Every snapshot leaves trimmed: no machine, no state nodes, the supervisor's Hub as counts.
    const out = 'snapshot' in event && event.snapshot ? { ...event, snapshot: trimSnapshot(event.snapshot as never) } : event;
    ws.send(JSON.stringify(out));
  }
}

export class StatelyInspector {
  readonly sampler: InspectionSampler;
  private readonly bridge: BridgeConnection;
  private readonly inspector;
  /** Registered on the root's actor system while the bridge is connected: it sees every actor, with parent links. */
  readonly observer: Observer<InspectionEvent>;
  private subscription: Subscription | undefined;

  constructor(private readonly options: StatelyInspectorOptions) {
    this.sampler = new InspectionSampler({ chatterPerSecond: options.chatterPerSecond ?? 20 });
    this.bridge = new BridgeConnection(options.url, options.log, () => this.listen(), () => this.unlisten(), options.retryMs);
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

  /** True while the observer is registered (the bridge is connected). */
  get listening(): boolean {
    return this.subscription !== undefined;
  }

  stop(): void {
    this.unlisten();
    this.inspector.stop();
  }

  private listen(): void {
    this.subscription ??= this.options.root.system.inspect(this.observer);
    this.announceLiveActors();
  }

  private unlisten(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  /** The current state of every live actor, so a bridge started (or restarted) late shows them all. */
  private announceLiveActors(): void {
    const rootId = this.options.root.sessionId;
    // Through the same conversion as live registrations, so announced actors are named by id (c1, c2…) too.
    for (const actorRef of this.options.liveActors()) this.observer.next?.({ type: '@xstate.actor', actorRef, rootId });
  }
}
