// Who may watch the actors: with auth on, a JWT whose `admin` claim is true; with an API key, that key;
// with neither, anyone who can reach the port (the default binds 127.0.0.1). Browsers pass it as ?token=.
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';
import { requestToken } from '../auth/tokens.js';
import type { TokenVerifier } from '../auth/verifier.js';
import { adminVerdict } from '../auth/admin.js';
import type { AdminCheck } from './page.js';

export function adminCheck(config: Pick<Config, 'apiKey'>, verifier: TokenVerifier | null): AdminCheck {
  if (verifier === null && config.apiKey === undefined) return () => true;
  return async (req: IncomingMessage) => (await adminVerdict(requestToken(req), config, verifier)) === 'admin';
}
