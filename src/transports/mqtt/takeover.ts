// Takeover: MQTT's client ids are unique [MQTT-3.1.4-2], so a CONNECT with the id of a live MQTT connection closes
// that connection (its will is published, its persistent session kept) before the new one joins, on this node or,
// on a cluster, on the node holding it (a node call: that node closes it and answers once its session is kept;
// this one then waits until the cluster no longer lists the name as the old client's). It also names each
// connection's hold on its client id's session (store.ts: `<node>/<n>`), and says whether a hold's node is alive.
import type { Engine } from '../../engine/engine.js';
import type { NodeCalls } from '../../engine/redis/calls.js';
import type { Link } from '../../actors/link.js';
import { CLOSE } from '../../protocol/errors.js';
import { TAKEN_OVER } from './codes.js';

/** The node call that takes an MQTT connection over from another node. */
const TAKEOVER = 'mqtt-takeover';
/** The same, for a connection whose client id is no broker name: found by client id on the node holding its session. */
const TAKEOVER_ID = 'mqtt-takeover-id';

/** TAKEOVER's answer when the name is a user's and the new client anonymous (refused, the user's connection stays). */
const USER = 'user';

/** The node part of a session hold's owner on a broker without a cluster. */
const LOCAL = 'local';

export class Takeover {
  private owners = 0;

  constructor(
    private readonly hub: Engine<Link>,
    private readonly closeTimeoutMs: number,
    /** Resolves once the session its last connection left behind is kept (undefined: none being kept). */
    private readonly kept: (clientId: string) => Promise<void> | undefined,
    private readonly calls?: NodeCalls,
    /** This node's open connection with `clientId`, one whose client id is no broker name. */
    private readonly unnamed: (clientId: string) => Link | undefined = () => undefined,
    /** Whether a connection is anonymous MQTT's (named by its own client id, no user): false for a token's or the backend's. */
    private readonly anonymousLink: (link: Link) => boolean = () => false,
  ) {
    calls?.handle(TAKEOVER, (text) => this.takenOver(text));
    calls?.handle(TAKEOVER_ID, (text) => this.takenOverById(text));
  }

  /**
   * Frees `name` for a new connection: an MQTT connection holding it, on this node or another of the cluster, is
   * closed (takeover) and its session kept first. `ok` also when another transport's client holds it and the new
   * one has no token (it gets a name of its own); with a token that is a refused client id. An `anonymous` client
   * (named by its client id, no user) never takes over a user's connection (a token's, the backend's), wherever it is:
   * a refused client id too.
   */
  async freeName(name: string, clientId: string, granted: boolean, anonymous = false): Promise<'ok' | 'badClientId' | 'unavailable'> {
    const calls = this.calls;
    if (!this.hub.isNameFree(name)) {
      const old = this.hub.find(name);
      if (old?.transport !== 'mqtt') return granted ? 'badClientId' : 'ok';
      if (anonymous && this.heldByUser(old)) return 'badClientId';
      if (!(await this.takeOver(old, name))) return 'unavailable';
      return calls ? this.released(calls, name, old.id) : 'ok';
    }
    if (!calls) return 'ok';
    const holder = await calls.holder(name).catch(() => undefined);
    if (!holder || holder.node === calls.node) return 'ok';
    if (holder.transport !== 'mqtt') return granted ? 'badClientId' : 'ok';
    const result = await calls.call(holder.node, TAKEOVER, JSON.stringify({ name, clientId, anonymous }), this.closeTimeoutMs + 2000);
    if (result.ok && result.answer === USER) return 'badClientId';
    if (result.ok && result.answer === 'ok') return this.released(calls, name, holder.id);
    // A node that is gone holds nobody (the reaper frees its names): the new connection goes on.
    return !result.ok && result.why === 'gone' ? 'ok' : 'unavailable';
  }

  /** Frees a client id that is no broker name (`c<n>`, too long) on this node: its connection closed (found by client id). */
  async freeUnnamed(clientId: string): Promise<'ok' | 'unavailable'> {
    const old = this.unnamed(clientId);
    if (!old) return 'ok';
    return (await this.close(old, () => this.unnamed(clientId) !== old)) ? 'ok' : 'unavailable';
  }

  /**
   * Frees a client id that is no broker name (`c<n>`, too long), held on another node: the cluster does not list such
   * a connection, but its hold on the client id's session (`owner`) names its node, which is asked to close it
   * (answered once it kept its session). Resolves either way: a node gone or late leaves it to the hold's override.
   */
  async freeHolder(owner: string, clientId: string): Promise<void> {
    const node = nodeOf(owner);
    if (!this.calls || node === this.calls.node || node === LOCAL) return;
    await this.calls.call(node, TAKEOVER_ID, JSON.stringify({ clientId }), this.closeTimeoutMs + 2000);
  }

  /** A session owner for a new connection of this node: `<node>/<n>`, unique in the cluster. */
  newOwner(): string {
    return `${this.calls?.node ?? LOCAL}/${(++this.owners).toString(36)}`;
  }

  /**
   * Whether a claim waits for the connection holding a session as `owner` to keep or release it: one of this node
   * (a connection connecting at the same time, or ending) or of another node that is alive. Not one of a node gone
   * (it never will): the claim then overrides the hold. Rejects when Redis cannot answer.
   */
  async waitFor(owner: string): Promise<boolean> {
    const node = nodeOf(owner);
    if (!this.calls || node === this.calls.node || node === LOCAL) return true;
    return this.calls.alive(node);
  }

  /** On another node's request: closes this node's MQTT connection holding `name`, answers once its session is kept. */
  private async takenOver(text: string): Promise<string> {
    const { name, clientId, anonymous } = JSON.parse(text) as { name: unknown; clientId: unknown; anonymous?: unknown };
    if (typeof name !== 'string' || typeof clientId !== 'string') return 'bad';
    const old = this.hub.find(name);
    // Asked for an anonymous client: a user's connection is not closed for it (answered so; that client is refused).
    if (old?.transport === 'mqtt' && anonymous === true && this.heldByUser(old)) return USER;
    if (old?.transport === 'mqtt' && !(await this.takeOver(old, name))) return 'late';
    await this.kept(clientId);
    return 'ok';
  }

  /** On another node's request: closes this node's connection with a client id that is no name (as `takenOver`). */
  private async takenOverById(text: string): Promise<string> {
    const { clientId } = JSON.parse(text) as { clientId: unknown };
    if (typeof clientId !== 'string') return 'bad';
    if ((await this.freeUnnamed(clientId)) !== 'ok') return 'late';
    await this.kept(clientId);
    return 'ok';
  }

  /** Whether `link` is a user's (a token's or the backend's grant), not an anonymous MQTT client's. */
  private heldByUser(link: Link): boolean {
    return link.grant !== undefined && !this.anonymousLink(link);
  }

  /** Waits until the cluster no longer lists `name` as client `id`'s (its record goes after the connection). */
  private async released(calls: NodeCalls, name: string, id: string): Promise<'ok' | 'unavailable'> {
    const deadline = Date.now() + this.closeTimeoutMs + 1000;
    while ((await calls.holder(name).catch(() => ({ id })))?.id === id) {
      if (Date.now() > deadline) return 'unavailable';
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return 'ok';
  }

  /** Closes the connection holding `name` and waits until the name is free (bounded by the close timeout). */
  private takeOver(old: Link, name: string): Promise<boolean> {
    return this.close(old, () => this.hub.isNameFree(name));
  }

  /** Closes `old` (taken over) and waits until `gone()` says it went; false past the close timeout (plus 1 s). */
  async close(old: Link, gone: () => boolean): Promise<boolean> {
    old.signal({ type: 'CLOSE', code: CLOSE.policy, reason: TAKEN_OVER, cause: 'leave' });
    const deadline = Date.now() + this.closeTimeoutMs + 1000;
    while (!gone()) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return true;
  }
}

/** The node of a session hold's owner (`<node>/<n>`). */
export const nodeOf = (owner: string): string => owner.slice(0, owner.lastIndexOf('/'));
