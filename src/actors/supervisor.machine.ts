// SupervisorMachine: one per process. Lifecycle only: it admits connections into the engine (which holds the
// registry, topics, presence and history), reaps their actors, contains their crashes, and drains on shutdown.
// Frames never pass through it: readers hand them to the engine directly (the fast ingest path).
import { assertEvent, enqueueActions, setup, type ActorRefFrom } from 'xstate';
import type { Logger } from 'pino';
import type { Engine, JoinRequest } from '../engine/engine.js';
import type { CloseIntent, ConnectionRef } from './connection.events.js';
import type { Link } from './link.js';
import { CLOSE } from '../protocol/errors.js';

export interface SupervisorInput {
  hub: Engine<Link>;
  log: Logger;
}

export type SupervisorEvent =
  | { type: 'CONNECT'; link: Link; request: JoinRequest }
  | { type: 'SHUTDOWN' }
  /** A connection actor reached `closed` (sent by openConnection, which watches it: it is not our child in xstate's sense). */
  | { type: 'CONNECTION_CLOSED'; link: Link; close: CloseIntent }
  /** A connection actor threw. */
  | { type: 'CONNECTION_CRASHED'; link: Link; error: unknown };

type Ctx = SupervisorInput;

/** Removes `link` from the hub; a fault here is logged, never allowed to stop the supervisor. */
function forget(context: Ctx, link: Link, cause: 'leave' | 'timeout' = 'leave'): void {
  try {
    context.hub.leave(link, cause);
    context.hub.stats.retire(link); // its traffic joins the totals of connections gone
  } catch (err) {
    context.log.error({ err, client: link.id }, 'supervisor fault while removing a connection');
    context.hub.forget(link);
  }
}

/** openConnection sets a link's actor before starting it, so every link the supervisor hears of has one. */
function actorOf(link: Link): ConnectionRef {
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
    noConnectionsLeft: ({ context }) => context.hub.sessionCount === 0,
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
        enqueue.sendTo(actorOf(event.link), { type: 'REJECTED', code: CLOSE.internalError, reason: 'internal error', cause: 'leave' });
        return;
      }
      context.log.info({ client: event.link.id, name: event.link.name, addr: event.link.addr, transport: event.link.transport }, 'connect');
      enqueue.sendTo(actorOf(event.link), { type: 'ACCEPTED' });
    }),
    refuse: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, 'CONNECT');
      enqueue.sendTo(actorOf(event.link), { type: 'REJECTED', code: CLOSE.goingAway, reason: 'server shutting down', cause: 'leave' });
    }),
    // A connection actor reached `closed`: forget it and tell presence watchers (leave or timeout).
    reap: ({ context, event }) => {
      assertEvent(event, 'CONNECTION_CLOSED');
      const { link, close } = event;
      if (context.hub.find(link.id) !== link) return;
      const { code, reason, cause } = close;
      forget(context, link, cause);
      if (code === CLOSE.slowConsumer) context.hub.stats.slowConsumerCloses++;
      const fields = { client: link.id, name: link.name, code, reason, framesIn: link.framesIn, framesOut: link.mailbox.framesOut, dropped: link.mailbox.dropped };
      if (code === CLOSE.slowConsumer) context.log.warn(fields, 'slow consumer closed');
      else context.log.info(fields, 'close');
    },
    // A connection actor threw: close just that socket with 1011 and forget it; everyone else carries on.
    reapCrashed: ({ context, event }) => {
      assertEvent(event, 'CONNECTION_CRASHED');
      const { link, error } = event;
      context.hub.stats.crashes++;
      context.log.error({ err: error, client: link.id }, 'connection actor crashed; closing it with 1011');
      if (context.hub.find(link.id) !== link) return;
      forget(context, link);
      link.mailbox.discard();
      try {
        link.wire.close(CLOSE.internalError, 'internal error');
      } catch (err) {
        context.log.error({ err, client: link.id }, 'closing a crashed connection failed; terminating it');
        link.wire.terminate();
      }
    },
    closeAll: enqueueActions(({ context, enqueue }) => {
      context.log.info({ connections: context.hub.sessionCount }, 'shutdown: closing every connection with 1001');
      for (const link of context.hub.sessions()) {
        enqueue.sendTo(actorOf(link), { type: 'CLOSE', code: CLOSE.goingAway, reason: 'server shutting down', cause: 'leave' });
      }
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => input,
  initial: 'running',
  on: {
    CONNECTION_CLOSED: { actions: 'reap' },
    CONNECTION_CRASHED: { actions: 'reapCrashed' },
  },
  states: {
    running: {
      on: {
        CONNECT: { actions: 'admit' },
        SHUTDOWN: 'draining',
      },
    },
    draining: {
      entry: 'closeAll',
      on: {
        CONNECT: { actions: 'refuse' },
      },
      always: { guard: 'noConnectionsLeft', target: 'stopped' },
    },
    stopped: { type: 'final' },
  },
});

export type SupervisorActor = ActorRefFrom<typeof supervisorMachine>;
