// TokenVerifier: checks a JWT (HS256 secret, or a local JWKS file) with jose and turns its claims into a Grant
// (tokens.ts). Its own module, so that a broker without authentication never loads jose (~60 files, a sixth of a
// broker process's start-up): the broker imports it only when --auth-secret or --auth-jwks is set.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify, type JWTPayload, type JSONWebKeySet } from 'jose';
import { ConfigError } from '../config.js';
import type { Grant } from './grant.js';
import { AuthFailure, grantFromClaims } from './tokens.js';

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
