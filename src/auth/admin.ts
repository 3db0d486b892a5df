// Admin access, decided once for every admin surface (the HTTP API, the live actors page): the API key, or
// a verified client token whose `admin` claim is true. With neither configured, admin surfaces are open.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import { Grant } from './grant.js';
import type { TokenVerifier } from './verifier.js';

/** open: nothing configured; admin: allowed; not_admin: a valid token without the claim; denied: no or bad credential. */
export type AdminVerdict = 'open' | 'admin' | 'not_admin' | 'denied';

export async function adminVerdict(credential: string | undefined, config: Pick<Config, 'apiKey'>, tokens: TokenVerifier | null): Promise<AdminVerdict> {
  if (config.apiKey === undefined && tokens === null) return 'open';
  if (credential === undefined) return 'denied';
  if (config.apiKey !== undefined && sameSecret(credential, config.apiKey)) return 'admin';
  if (tokens === null) return 'denied';
  const grant = await tokens.verify(credential);
  if (!(grant instanceof Grant)) return 'denied';
  return grant.admin ? 'admin' : 'not_admin';
}

/** Constant-time comparison; hashing first makes the lengths equal, so length leaks nothing either. */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
