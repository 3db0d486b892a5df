// Who may watch the actors: with auth on, a JWT whose `admin` claim is true; with an API key, that key;
// with neither, anyone who can reach the port (the default binds 127.0.0.1). Browsers pass it as ?token=.
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';
import { requestToken, type TokenVerifier } from '../auth/tokens.js';
import { Grant } from '../auth/grant.js';
import { sameSecret } from '../http/api.js';
import type { AdminCheck } from './page.js';

export function adminCheck(config: Pick<Config, 'apiKey'>, verifier: TokenVerifier | null): AdminCheck {
  if (verifier === null && config.apiKey === undefined) return () => true;
  return async (req: IncomingMessage) => {
    const token = requestToken(req);
    if (token === undefined) return false;
    if (config.apiKey !== undefined && sameSecret(token, config.apiKey)) return true;
    if (verifier === null) return false;
    const grant = await verifier.verify(token);
    return grant instanceof Grant && grant.admin;
  };
}
