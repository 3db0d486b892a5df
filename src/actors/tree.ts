// ActorTree: the process's actors as one tree — the supervisor and, under it, one connection actor per socket.
// Each connection actor is the root of an actor system of its own: xstate's scheduler scans every pending timer
// of a system when one of its actors stops, so a shared system made each close cost O(open connections).
// Inspection observers still see one tree: they are attached to every system only while someone watches.
import type { ActorRefLike, AnyActorRef, InspectionEvent, Observer, Subscription } from 'xstate';

export class ActorTree {
  /** Running children, each with its system's inspection subscription while the tree is observed. */
  private readonly children = new Map<AnyActorRef, Subscription | undefined>();
  /** Kept after a child ends, so a finished actor still shows where it sat. */
  private readonly parents = new WeakMap<ActorRefLike, AnyActorRef>();
  private readonly observers = new Set<Observer<InspectionEvent>>();
  private rootSubscription: Subscription | undefined;
  /** Every system's events, re-rooted at the supervisor's session, to each observer. */
  private readonly relay: Observer<InspectionEvent> = {
    next: (ev) => {
      const rooted = ev.rootId === this.root.sessionId ? ev : { ...ev, rootId: this.root.sessionId };
      for (const observer of this.observers) observer.next?.(rooted);
    },
  };

  constructor(readonly root: AnyActorRef) {}

  /** Adds a child of the root for as long as it runs; call before `child.start()` so observers see it start. */
  adopt(child: AnyActorRef): void {
    this.parents.set(child, this.root);
    this.children.set(child, this.observed ? this.observe(child) : undefined);
    // It was created before it was adopted: announce it as its own system would have, had anyone listened.
    if (this.observed) this.relay.next?.(this.announcement(child));
    // Its system dies with it: the subscription is not undone, so the final snapshot still reaches observers.
    const leave = () => this.children.delete(child);
    child.subscribe({ complete: leave, error: leave });
  }

  /** The actor that started `ref` (the supervisor for a connection); undefined for the root. */
  parentOf(ref: ActorRefLike): AnyActorRef | undefined {
    return this.parents.get(ref);
  }

  /** The root, then every running child. */
  *actors(): IterableIterator<AnyActorRef> {
    yield this.root;
    yield* this.children.keys();
  }

  get observed(): boolean {
    return this.observers.size > 0;
  }

  /**
   * Inspection of every actor in the tree, as `system.inspect` gives for one system, starting with an
   * `@xstate.actor` event for each actor already running. The first observer subscribes to every system;
   * the last one leaving unsubscribes them, so nobody watching costs nothing.
   */
  inspect(observer: Observer<InspectionEvent>): Subscription {
    const first = !this.observed;
    this.observers.add(observer);
    if (first) {
      this.rootSubscription = this.root.system.inspect(this.relay);
      for (const child of this.children.keys()) this.children.set(child, this.observe(child));
    }
    for (const actor of this.actors()) observer.next?.(this.announcement(actor));
    return {
      unsubscribe: () => {
        if (!this.observers.delete(observer) || this.observed) return;
        this.rootSubscription?.unsubscribe();
        this.rootSubscription = undefined;
        for (const [child, subscription] of this.children) {
          subscription?.unsubscribe();
          this.children.set(child, undefined);
        }
      },
    };
  }

  private observe(child: AnyActorRef): Subscription {
    return child.system.inspect(this.relay);
  }

  private announcement(actorRef: AnyActorRef): InspectionEvent {
    return { type: '@xstate.actor', actorRef, rootId: this.root.sessionId };
  }
}
