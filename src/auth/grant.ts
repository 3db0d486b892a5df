// Grant: what an authenticated client may do, from its token's claims. Pure: the hub asks it on pub and sub.
import { filterMatches } from '../topics/topic.js';
import { filterCovers } from '../topics/cover.js';

export interface GrantClaims {
  /** The client's name (JWT `sub`), fixed for the connection. */
  name: string;
  /** Filters the client may publish to; null = any topic. */
  pub: readonly string[] | null;
  /** Filters the client may subscribe within; null = any filter. */
  sub: readonly string[] | null;
  /** May use the HTTP API. */
  admin: boolean;
}

export class Grant implements GrantClaims {
  readonly name: string;
  readonly pub: readonly string[] | null;
  readonly sub: readonly string[] | null;
  readonly admin: boolean;

  constructor(claims: GrantClaims) {
    ({ name: this.name, pub: this.pub, sub: this.sub, admin: this.admin } = claims);
  }

  /** A publish to concrete `topic` is allowed when one of the `pub` filters matches it. */
  mayPublish(topic: string): boolean {
    return this.pub === null || this.pub.some((f) => filterMatches(f, topic));
  }

  /** A subscription to `filter` is allowed when one `sub` filter covers every topic it can match. */
  maySubscribe(filter: string): boolean {
    return this.sub === null || this.sub.some((g) => filterCovers(g, filter));
  }
}
