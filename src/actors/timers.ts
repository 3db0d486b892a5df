// Timer index: xstate's scheduler keeps every pending delayed event of an actor system in one table, and
// when an actor stops (cancelAll) it scans that whole table for the actor's own events. All connection
// actors share the supervisor's system, so each close cost O(open connections) and a mass disconnect was
// quadratic (10 000 clients leaving at once: 22 s of broker CPU, the event loop blocked meanwhile).
// Indexing pending events by actor makes a stop cost only its own timers. The same schedule/cancel run
// for the same events, so timing behaviour is unchanged.
import type { ActorSystem, AnyActorRef } from 'xstate';

type Scheduler = ActorSystem<any>['scheduler'];

const indexed = new WeakSet<Scheduler>();

/** Replaces `system.scheduler.cancelAll` with an indexed one (idempotent). */
export function indexTimersByActor(system: ActorSystem<any>): void {
  const scheduler = system.scheduler;
  if (indexed.has(scheduler)) return;
  indexed.add(scheduler);
  const schedule = scheduler.schedule;
  const cancel = scheduler.cancel;
  // Ids of events each actor scheduled. Machines schedule `after` delays under fixed ids, so a set holds
  // at most one id per named delay; an id whose timer already fired is harmless to cancel.
  const byActor = new WeakMap<AnyActorRef, Set<string>>();
  scheduler.schedule = (source, target, event, delay, id) => {
    const key = id ?? Math.random().toString(36).slice(2); // xstate's own default id, made here so it is known
    schedule(source, target, event, delay, key);
    let ids = byActor.get(source);
    if (!ids) byActor.set(source, (ids = new Set()));
    ids.add(key);
  };
  scheduler.cancel = (source, id) => {
    cancel(source, id);
    byActor.get(source)?.delete(id);
  };
  scheduler.cancelAll = (actorRef) => {
    const ids = byActor.get(actorRef);
    if (!ids) return;
    byActor.delete(actorRef);
    for (const id of ids) cancel(actorRef, id);
  };
}
