// ActorTree: the process's actors as one tree — the supervisor and, under it, one connection actor per socket.
// Connection actors live in actor systems shared by groups of at most GROUP_SIZE: xstate's scheduler scans every
// pending timer of a system when one of its actors stops (cancelAll), so one system for all made each close cost
// O(open connections); one system each cost ~2 KB per connection. A group's system is held by a group actor that
// does nothing else; it never appears in the tree. Inspection observers see one tree, attached to every system only
// while someone watches.
import { createActor, fromCallback, type Actor, type AnyEventObject, type ActorOptions, type ActorRefLike, type AnyActorLogic, type AnyActorRef, type InspectionEvent, type Observer, type Subscription } from 'xstate';
import { SharedClock, type Clock } from './shared-clock.js';

type System = AnyActorRef['system'];

/** Connection actors per actor system: a close scans at most ~2 × GROUP_SIZE timers, and a system's ~2 KB is shared. */
export const GROUP_SIZE = 64;

/** Who hears of a child's end; shared by every child it is given for (it gets the child with the news). */
export interface ChildEnd {
  completed(child: AnyActorRef, output: unknown): void;
  failed(child: AnyActorRef, error: unknown): void;
}

/**
 * A group's root: it holds the system its members join as their parent, and hears what xstate tells a parent when a
 * child finishes or fails (`xstate.done.actor.<id>`, `xstate.error.actor.<id>`). That is how the tree learns of a
 * child's end: no subscription per child (each costs an observer and three bound functions).
 */
const groupLogic = fromCallback<AnyEventObject, Group>(({ receive, input }) => {
  receive((event) => input.hear(event));
});

function isGroupRoot(ref: ActorRefLike | undefined): boolean {
  return ref !== undefined && (ref as AnyActorRef).src === groupLogic;
}

class Group {
  readonly actor: AnyActorRef;
  /** Members by actor id (ids are unique among the running children). */
  readonly members = new Map<string, AnyActorRef>();

  constructor(
    private readonly tree: { leave(group: Group, child: AnyActorRef): void },
    clock: Clock,
    /** Who hears of its members' ends: the same for all of them (a group only takes children given this `end`). */
    readonly end: ChildEnd,
  ) {
    // The clock of the group's system: its members' delayed transitions (heartbeat and idle check, token, close) run on it.
    this.actor = createActor(groupLogic, { input: this, clock }).start();
  }

  hear(event: AnyEventObject): void {
    const child = this.members.get((event as { actorId?: string }).actorId ?? '');
    if (!child) return;
    if (event.type.startsWith('xstate.done.actor.')) {
      this.tree.leave(this, child);
      this.end.completed(child, (event as { output?: unknown }).output);
    } else if (event.type.startsWith('xstate.error.actor.')) {
      this.tree.leave(this, child);
      this.end.failed(child, (event as { error?: unknown }).error);
    }
  }
}

export class ActorTree {
  /**
   * The systems of every group made so far (weakly: a system goes when its group and its last actor go). A connection
   * actor's parent is the root whether it runs or finished, so the tree keeps no entry per child (issue 21).
   */
  private readonly groupSystems = new WeakSet<System>();
  /** Groups by their root actor, and those with room for another member. */
  private readonly groups = new Map<AnyActorRef, Group>();
  private readonly withRoom = new Set<Group>();
  /** The systems observed: a system is subscribed to once, however many children share it. */
  private readonly watched = new Map<System, Subscription>();
  private readonly observers = new Set<Observer<InspectionEvent>>();
  private rootSubscription: Subscription | undefined;
  /** Every system's events, re-rooted at the supervisor's session, to each observer; group roots stay hidden. */
  private readonly relay: Observer<InspectionEvent> = {
    next: (ev) => {
      if (isGroupRoot(ev.actorRef)) return;
      const rooted = ev.rootId === this.root.sessionId ? ev : { ...ev, rootId: this.root.sessionId };
      for (const observer of this.observers) observer.next?.(rooted);
    },
  };

  constructor(
    readonly root: AnyActorRef,
    private readonly groupSize = GROUP_SIZE,
    /** Every group's system runs its delayed events on this one clock: one Node timer for all connections. */
    readonly clock: Clock = new SharedClock(),
  ) {}

  /**
   * Creates a child of the root (not started) in a group's actor system, and adopts it for as long as it runs; `end`
   * hears when it completes or fails (the one subscription per child). Start it once its listeners are attached;
   * observers see it start.
   */
  create<TLogic extends AnyActorLogic>(logic: TLogic, options: Omit<ActorOptions<TLogic>, 'parent' | 'systemId'>, end: ChildEnd): Actor<TLogic> {
    const group = this.roomyGroup(end);
    const child = createActor(logic, { ...options, parent: group.actor } as ActorOptions<TLogic>);
    if (group.members.has(child.id)) throw new Error(`an actor with id '${child.id}' is running already`);
    group.members.set(child.id, child);
    if (group.members.size >= this.groupSize) this.withRoom.delete(group);
    if (this.observed) {
      this.observe(child.system);
      // It was created before it was adopted: announce it as its system would have, had anyone listened.
      this.relay.next?.(this.announcement(child));
    }
    return child;
  }

  private roomyGroup(end: ChildEnd): Group {
    for (const group of this.withRoom) if (group.end === end) return group;
    const group = new Group(this, this.clock, end);
    this.groups.set(group.actor, group);
    this.groupSystems.add(group.actor.system);
    this.withRoom.add(group);
    return group;
  }

  /** A member finished or failed (its group heard it): it leaves the tree, and an empty group is dropped. */
  leave(group: Group, child: AnyActorRef): void {
    group.members.delete(child.id);
    if (group.members.size > 0) {
      this.withRoom.add(group);
      return;
    }
    // Empty: dropped, never reused, so a system is observed at most once. Its subscription goes with it, after the
    // last member's final snapshot.
    this.withRoom.delete(group);
    this.groups.delete(group.actor);
    this.watched.delete(group.actor.system);
    group.actor.stop();
  }

  /** The actor that started `ref` (the root, for a connection, running or finished); undefined for the root. */
  parentOf(ref: ActorRefLike): AnyActorRef | undefined {
    const { system } = ref as AnyActorRef;
    return system !== undefined && this.groupSystems.has(system) && !isGroupRoot(ref) ? this.root : undefined;
  }

  /** The root, then every running child (group by group). */
  *actors(): IterableIterator<AnyActorRef> {
    yield this.root;
    for (const group of this.groups.values()) yield* group.members.values();
  }

  /** Actor systems holding the running children (each shared by up to the group size). */
  get systems(): number {
    return this.groups.size;
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
      for (const group of this.groups.values()) this.observe(group.actor.system);
    }
    for (const actor of this.actors()) observer.next?.(this.announcement(actor));
    return {
      unsubscribe: () => {
        if (!this.observers.delete(observer) || this.observed) return;
        this.rootSubscription?.unsubscribe();
        this.rootSubscription = undefined;
        for (const subscription of this.watched.values()) subscription.unsubscribe();
        this.watched.clear();
      },
    };
  }

  private observe(system: System): void {
    if (!this.watched.has(system)) this.watched.set(system, system.inspect(this.relay));
  }

  private announcement(actorRef: AnyActorRef): InspectionEvent {
    return { type: '@xstate.actor', actorRef, rootId: this.root.sessionId };
  }
}
