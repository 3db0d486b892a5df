// Tokens: a JWT's claims turned into a Grant, and where a request carries its token. A missing, malformed, expired or
// wrongly signed token is an AuthFailure (data), answered 401 / close 1008 by the transport. The signature is checked
// by TokenVerifier (verifier.ts, with jose), loaded only when authentication is on.
import type { IncomingMessage } from 'node:http';
import type { JWTPayload } from 'jose';
import { nameError } from '../protocol/frames.js';
import { filterError } from '../protocol/topic.js';
import { Grant } from './grant.js';
import { parseTarget } from '../protocol/target.js';

export class AuthFailure {
  constructor(readonly message: string) {}
}

/** Validates the claims Switchboard reads: `sub` (name), `acl.pub` / `acl.sub` (filter lists), `admin`. */
export function grantFromClaims(payload: JWTPayload): Grant | AuthFailure {
  const problem = nameError(payload.sub);
  if (problem) return new AuthFailure(`token sub is not a valid client name: ${problem}`);
  // Absent: everything allowed. Present, it must be an object: `acl: null` was read as absent, granting everything.
  const acl = payload.acl === undefined ? {} : payload.acl;
  if (typeof acl !== 'object' || acl === null || Array.isArray(acl)) return new AuthFailure('token acl must be an object');
  const pub = filterList((acl as Record<string, unknown>).pub, 'acl.pub');
  if (pub instanceof AuthFailure) return pub;
  const sub = filterList((acl as Record<string, unknown>).sub, 'acl.sub');
  if (sub instanceof AuthFailure) return sub;
  const subDeny = filterList((acl as Record<string, unknown>).subDeny, 'acl.subDeny');
  if (subDeny instanceof AuthFailure) return subDeny;
  if (payload.admin !== undefined && typeof payload.admin !== 'boolean') return new AuthFailure('token admin must be a boolean');
  const send = sendList(acl as Record<string, unknown>, pub);
  if (send instanceof AuthFailure) return send;
  // jose has checked `exp` is a number and in the future; the connection is told when it passes.
  return new Grant({ name: payload.sub as string, pub, sub, subDeny: subDeny ?? undefined, admin: payload.admin === true, send, exp: payload.exp });
}

/**
 * `acl.send`: names, ids or `*` patterns the client may send directs to. Absent: anyone when the token leaves
 * publishing open (no acl, or no acl.pub: as before acl.send existed), nobody when it restricts acl.pub.
 */
function sendList(acl: Record<string, unknown>, pub: readonly string[] | null): string[] | null | AuthFailure {
  const value = acl.send;
  if (value === undefined) return pub === null ? null : [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.length >= 1 && v.length <= 64)) {
    return new AuthFailure('token acl.send must be an array of client names, ids or * patterns (1 to 64 characters each)');
  }
  return value as string[];
}

function filterList(value: unknown, claim: string): string[] | null | AuthFailure {
  if (value === undefined) return null;
  if (!Array.isArray(value)) return new AuthFailure(`token ${claim} must be an array of topic filters`);
  for (const f of value) {
    const err = filterError(f);
    if (err) return new AuthFailure(`token ${claim} has an invalid filter: ${err}`);
  }
  return value as string[];
}

/** The token of an HTTP request: `Authorization: Bearer <t>` first, else `?token=`. */
export function requestToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (m) return m[1];
  }
  return parseTarget(req.url)?.searchParams.get('token') ?? undefined;
}
