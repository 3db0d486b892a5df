// StatelyInspector: `serve --inspect` — every actor's lifecycle, sampled and trimmed, sent over a WebSocket
// to the bridge (`switchboard inspect`), which relays it to the Stately Inspector in a browser.
// The observer is attached to the actor tree only while the bridge is connected (xstate's inspection
// machinery is not free once anyone listens), and every (re)connect re-announces the live actors.
// It reuses @statelyai/inspect's event conversion; the transport below adds reconnecting and a send bound.
import WebSocket from 'ws';
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { InspectionEvent, Observer, Subscription } from 'xstate';
import type { ActorTree } from '../actors/tree.js';
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
  /** The supervisor and its connection actors; each (re)connect announces the live ones, so late joiners see them all. */
  actors: ActorTree;
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
    // Every snapshot leaves trimmed: no machine, no state nodes, the supervisor's engine as counts.
    const out = 'snapshot' in event && event.snapshot ? { ...event, snapshot: trimSnapshot(event.snapshot as never) } : event;
    ws.send(JSON.stringify(out));
  }
}

export class StatelyInspector {
  readonly sampler: InspectionSampler;
  private readonly bridge: BridgeConnection;
  private readonly inspector;
  /** Registered on the actor tree while the bridge is connected: it sees every actor. */
  readonly observer: Observer<InspectionEvent>;
  private subscription: Subscription | undefined;
  /** Session id → parent session id of announced actors (the Stately event names parents by session). */
  private readonly parentSessions = new Map<string, string>();

  constructor(private readonly options: StatelyInspectorOptions) {
    this.sampler = new InspectionSampler({ chatterPerSecond: options.chatterPerSecond ?? 20 });
    this.bridge = new BridgeConnection(options.url, options.log, () => this.listen(), () => this.unlisten(), options.retryMs);
    this.inspector = createInspector(this.bridge, {
      // Snapshots are trimmed by the sampler before conversion; actor registrations read getSnapshot() themselves.
      sanitizeContext: (context) => trimContext(context) as typeof context,
      sanitizeEvent: trimEvent,
      // Connection actors sit in systems held by hidden group actors: their parent is named from the tree, not xstate.
      serialize: (event) => {
        if (event.type !== '@xstate.actor') return event;
        const parent = this.parentSessions.get(event.sessionId);
        if (parent === undefined) return event;
        this.parentSessions.delete(event.sessionId);
        return { ...event, parentId: parent };
      },
    });
    const next = this.inspector.inspect.next!.bind(this.inspector.inspect);
    this.observer = {
      next: (ev) => {
        if (ev.type === '@xstate.actor') this.rememberParent(ev);
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
    // A new subscription announces every live actor; the tree re-announces them on each (re)connect.
    this.unlisten();
    this.subscription = this.options.actors.inspect(this.observer);
  }

  private unlisten(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.parentSessions.clear();
  }

  /** Until the announcement leaves (converted in an idle callback), its parent is kept by session id. */
  private rememberParent(ev: Extract<InspectionEvent, { type: '@xstate.actor' }>): void {
    const parent = this.options.actors.parentOf(ev.actorRef);
    if (parent) this.parentSessions.set(ev.actorRef.sessionId, parent.sessionId);
  }
}
