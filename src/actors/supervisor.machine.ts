// SupervisorMachine: one per process. It owns the Hub (registry, topic index, presence, history,
// fan-out), admits and reaps connection actors, contains their crashes, and drains on shutdown.
// Each control event runs one Hub method; a fault in one is logged and answered, never fatal.
import { assertEvent, enqueueActions, setup, type ActorRefFrom } from 'xstate';
import type { Logger } from 'pino';
import type { FrameOf } from '../protocol/frames.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Hub, JoinRequest, PublishResult } from '../core/hub.js';
import type { CloseIntent, ConnectionActor } from './connection.machine.js';
import type { Link } from './link.js';

export interface SupervisorInput {
  hub: Hub;
  log: Logger;
}

type RequestOp = 'sub' | 'unsub' | 'pub' | 'send' | 'who' | 'rename';
type RequestEvent = { [K in RequestOp]: { type: Uppercase<K>; link: Link; frame: FrameOf<K> } }[RequestOp];

export type SupervisorEvent =
  | { type: 'CONNECT'; link: Link; request: JoinRequest }
  | RequestEvent
  | { type: 'ACTIVITY'; link: Link; event: 'idle' | 'active' }
  | { type: 'API_PUBLISH'; topic: string; data: unknown; reply: (result: PublishResult | Error) => void }
  | { type: 'SHUTDOWN' }
  /** A connection actor reached `closed` (sent by openConnection, which watches it: it is not our child in xstate's sense). */
  | { type: 'CONNECTION_CLOSED'; link: Link; close: CloseIntent }
  /** A connection actor threw. */
  | { type: 'CONNECTION_CRASHED'; link: Link; error: unknown };

type Ctx = SupervisorInput;

/** Runs one request against the hub; a throw becomes an `internal` error for that client, not a dead broker. */
function contained<E extends RequestEvent['type']>(type: E, run: (hub: Hub, link: Link, frame: never) => void) {
  return ({ context, event }: { context: Ctx; event: SupervisorEvent }) => {
    assertEvent(event, type);
    const { link, frame } = event as RequestEvent;
    try {
      run(context.hub, link, frame as never);
    } catch (err) {
      context.log.error({ err, client: link.id, op: frame.op }, 'supervisor fault while handling a frame');
      context.hub.fail(link, new ProtocolError('internal', 'internal error', frame.id));
    }
  };
}

/** Removes `link` from the hub; a fault here is logged, never allowed to stop the supervisor. */
function forget(context: Ctx, link: Link, cause: 'leave' | 'timeout' = 'leave'): void {
  try {
    context.hub.leave(link, cause);
  } catch (err) {
    context.log.error({ err, client: link.id }, 'supervisor fault while removing a connection');
    context.hub.registry.remove(link);
    for (const filter of link.subscriptions) context.hub.index.remove(filter, link);
  }
}

/** openConnection sets a link's actor before starting it, so every link the supervisor hears of has one. */
function actorOf(link: Link): ConnectionActor {
  if (!link.actor) throw new Error(`link ${link.id} has no connection actor`);
  return link.actor;
}

export const supervisorMachine = setup({
  types: {
    context: {} as Ctx,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
  },
  guards: {
    noConnectionsLeft: ({ context }) => context.hub.registry.size === 0,
  },
  actions: {
    admit: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, 'CONNECT');
      try {
        context.hub.join(event.link, event.request);
      } catch (err) {
        // A fault while admitting one client refuses that client with 1011; the hub forgets the half-joined link.
        context.hub.stats.crashes++;
        context.log.error({ err, client: event.link.id }, 'supervisor fault while admitting a connection; closing it with 1011');
        forget(context, event.link);
        enqueue.sendTo(actorOf(event.link), { type: 'REJECTED', code: 1011, reason: 'internal error', cause: 'leave' });
        return;
      }
      context.log.info({ client: event.link.id, name: event.link.name, addr: event.link.addr, transport: event.link.transport }, 'connect');
      enqueue.sendTo(actorOf(event.link), { type: 'ACCEPTED' });
    }),
    refuse: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, 'CONNECT');
      enqueue.sendTo(actorOf(event.link), { type: 'REJECTED', code: 1001, reason: 'server shutting down', cause: 'leave' });
    }),
    // A connection actor reached `closed`: forget it and tell presence watchers (leave or timeout).
    reap: ({ context, event }) => {
      assertEvent(event, 'CONNECTION_CLOSED');
      const { link, close } = event;
      if (!context.hub.registry.has(link)) return;
      const { code, reason, cause } = close;
      forget(context, link, cause);
      if (code === 4001) context.hub.stats.slowConsumerCloses++;
      const fields = { client: link.id, name: link.name, code, reason, framesIn: link.framesIn, framesOut: link.mailbox.framesOut, dropped: link.mailbox.dropped };
      if (code === 4001) context.log.warn(fields, 'slow consumer closed');
      else context.log.info(fields, 'close');
    },
    subscribe: contained('SUB', (hub, link, frame: FrameOf<'sub'>) => hub.sub(link, frame)),
    unsubscribe: contained('UNSUB', (hub, link, frame: FrameOf<'unsub'>) => hub.unsub(link, frame)),
    publish: contained('PUB', (hub, link, frame: FrameOf<'pub'>) => hub.pub(link, frame)),
    sendDirect: contained('SEND', (hub, link, frame: FrameOf<'send'>) => hub.send(link, frame)),
    listClients: contained('WHO', (hub, link, frame: FrameOf<'who'>) => hub.who(link, frame)),
    rename: contained('RENAME', (hub, link, frame: FrameOf<'rename'>) => hub.rename(link, frame)),
    announceActivity: ({ context, event }) => {
      assertEvent(event, 'ACTIVITY');
      try {
        context.hub.activity(event.link, event.event);
      } catch (err) {
        context.log.error({ err, client: event.link.id }, 'supervisor fault while announcing activity');
      }
    },
    apiPublish: ({ context, event }) => {
      assertEvent(event, 'API_PUBLISH');
      try {
        event.reply(context.hub.publish(event.topic, event.data, null));
      } catch (err) {
        context.log.error({ err, topic: event.topic }, 'supervisor fault while publishing from the API');
        event.reply(err instanceof Error ? err : new Error(String(err)));
      }
    },
    refuseApiPublish: ({ event }) => {
      assertEvent(event, 'API_PUBLISH');
      event.reply(new Error('server shutting down'));
    },
    // A connection actor threw: close just that socket with 1011 and forget it; everyone else carries on.
    reapCrashed: ({ context, event }) => {
      assertEvent(event, 'CONNECTION_CRASHED');
      const { link, error } = event;
      context.hub.stats.crashes++;
      context.log.error({ err: error, client: link.id }, 'connection actor crashed; closing it with 1011');
      if (!context.hub.registry.has(link)) return;
      forget(context, link);
      link.mailbox.discard();
      try {
        link.wire.close(1011, 'internal error');
      } catch (err) {
        context.log.error({ err, client: link.id }, 'closing a crashed connection failed; terminating it');
        link.wire.terminate();
      }
    },
    closeAll: enqueueActions(({ context, enqueue }) => {
      context.log.info({ connections: context.hub.registry.size }, 'shutdown: closing every connection with 1001');
      for (const link of context.hub.registry.values()) {
        enqueue.sendTo(actorOf(link), { type: 'CLOSE', code: 1001, reason: 'server shutting down', cause: 'leave' });
      }
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => input,
  initial: 'running',
  on: {
    CONNECTION_CLOSED: { actions: 'reap' },
    SUB: { actions: 'subscribe' },
    UNSUB: { actions: 'unsubscribe' },
    PUB: { actions: 'publish' },
    SEND: { actions: 'sendDirect' },
    WHO: { actions: 'listClients' },
    RENAME: { actions: 'rename' },
    ACTIVITY: { actions: 'announceActivity' },
    CONNECTION_CRASHED: { actions: 'reapCrashed' },
  },
  states: {
    running: {
      on: {
        CONNECT: { actions: 'admit' },
        API_PUBLISH: { actions: 'apiPublish' },
        SHUTDOWN: 'draining',
      },
    },
    draining: {
      entry: 'closeAll',
      on: {
        CONNECT: { actions: 'refuse' },
        API_PUBLISH: { actions: 'refuseApiPublish' },
      },
      always: { guard: 'noConnectionsLeft', target: 'stopped' },
    },
    stopped: { type: 'final' },
  },
});

export type SupervisorActor = ActorRefFrom<typeof supervisorMachine>;
