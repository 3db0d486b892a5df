// Grant: what an authenticated client may do, from its token's claims. Pure: the hub asks it on pub and sub.
import { filterMatches } from '../protocol/topic.js';
import { filterCovers } from '../protocol/cover.js';

export interface GrantClaims {
  /** The client's name (JWT `sub`), fixed for the connection. */
  name: string;
  /** Filters the client may publish to; null = any topic. */
  pub: readonly string[] | null;
  /** Filters the client may subscribe within; null = any filter. */
  sub: readonly string[] | null;
  /**
   * Filters the client may not subscribe within (a filter they cover is refused), though `sub` allows it. A broader
   * filter it may hold (`#`) still receives their topics: this refuses subscriptions, it does not hide messages.
   */
  subDeny?: readonly string[] | undefined;
  /** May use the HTTP API. */
  admin: boolean;
  /** The token's `exp` (seconds since 1970), when it has one: the connection must present a fresh token by then. */
  exp?: number | undefined;
  /**
   * Clients the client may `send` directs to: names or ids, `*` matching any run of characters; null = anyone.
   * Absent from the token: anyone, unless the token restricts publishing (acl.pub), then nobody.
   */
  send?: readonly string[] | null;
}

export class Grant implements GrantClaims {
  readonly name: string;
  readonly pub: readonly string[] | null;
  readonly sub: readonly string[] | null;
  readonly subDeny: readonly string[];
  readonly admin: boolean;
  readonly send: readonly string[] | null;
  readonly exp: number | undefined;
  private sendPatterns: RegExp[] | undefined;

  constructor(claims: GrantClaims) {
    ({ name: this.name, pub: this.pub, sub: this.sub, admin: this.admin, exp: this.exp } = claims);
    this.send = claims.send ?? null;
    this.subDeny = claims.subDeny ?? [];
  }

  /** A direct to the client called `names` (its name, its id) is allowed when one `send` pattern matches either. */
  maySendTo(...names: string[]): boolean {
    if (this.send === null) return true;
    this.sendPatterns ??= this.send.map(globPattern);
    return this.sendPatterns.some((p) => names.some((n) => p.test(n)));
  }

  /** A publish to concrete `topic` is allowed when one of the `pub` filters matches it. */
  mayPublish(topic: string): boolean {
    return this.pub === null || this.pub.some((f) => filterMatches(f, topic));
  }

  /** A subscription to `filter` is allowed when one `sub` filter covers every topic it can match. */
  maySubscribe(filter: string): boolean {
    return (this.sub === null || this.sub.some((g) => filterCovers(g, filter))) && !this.subDeny.some((d) => filterCovers(d, filter));
  }
}

/** `bot-*` → /^bot-.*$/: `*` is the only special character. */
function globPattern(glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 's');
}
