// TokenVerifier: checks a JWT (HS256 secret, or a local JWKS file) with jose and turns its claims into a Grant.
// A missing, malformed, expired or wrongly signed token is an AuthFailure (data), answered 401 / close 1008 by the transport.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createLocalJWKSet, jwtVerify, type JWTPayload, type JSONWebKeySet } from 'jose';
import { nameError } from '../protocol/frames.js';
import { filterError } from '../protocol/topic.js';
import { Grant } from './grant.js';
import { ConfigError } from '../config.js';
import { parseTarget } from '../protocol/target.js';

export class AuthFailure {
  constructor(readonly message: string) {}
}

type Key = Uint8Array | ReturnType<typeof createLocalJWKSet>;

export class TokenVerifier {
  private constructor(
    private readonly key: Key,
    private readonly algorithms: string[] | undefined,
  ) {}

  /** HS256 with a shared secret. */
  static fromSecret(secret: string): TokenVerifier {
    return new TokenVerifier(new TextEncoder().encode(secret), ['HS256']);
  }

  /** Any algorithm of the keys in a JWKS JSON file, read once at startup. */
  static fromJwksFile(path: string): TokenVerifier {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(readFileSync(path, 'utf8')) as JSONWebKeySet;
    } catch (err) {
      throw new ConfigError(`--auth-jwks ${path}: ${(err as Error).message}`);
    }
    if (!Array.isArray(jwks?.keys)) throw new ConfigError(`--auth-jwks ${path} is not a JWKS (no "keys" array)`);
    return new TokenVerifier(createLocalJWKSet(jwks), undefined);
  }

  /** The verifier the settings ask for, or null when authentication is off. */
  static fromSettings(settings: { authSecret?: string | undefined; authJwks?: string | undefined }): TokenVerifier | null {
    if (settings.authSecret !== undefined) return TokenVerifier.fromSecret(settings.authSecret);
    if (settings.authJwks !== undefined) return TokenVerifier.fromJwksFile(settings.authJwks);
    return null;
  }

  /** Verifies signature and expiry, then the claims; never throws. */
  async verify(token: string | undefined): Promise<Grant | AuthFailure> {
    if (token === undefined || token.length === 0) return new AuthFailure('a token is required (?token= or Authorization: Bearer)');
    let payload: JWTPayload;
    try {
      const options = this.algorithms ? { algorithms: this.algorithms } : {};
      ({ payload } =
        this.key instanceof Uint8Array ? await jwtVerify(token, this.key, options) : await jwtVerify(token, this.key, options));
    } catch (err) {
      const code = (err as { code?: string }).code;
      return new AuthFailure(code === 'ERR_JWT_EXPIRED' ? 'token expired' : 'token invalid');
    }
    return grantFromClaims(payload);
  }
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
