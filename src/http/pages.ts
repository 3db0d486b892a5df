// Static pages: the files of the top-level web/ folder (the chat page at `/`), served as they are.
// No build step: plain HTML, CSS and ES modules, read once at startup.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Config } from '../config.js';
import { HttpError, sendJson, type Router } from '../transports/router.js';

// Two levels up from both src/http and dist/http.
export const WEB_DIR = new URL('../../web/', import.meta.url);

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** Registers GET /<file> for every file directly in web/, and GET / for index.html with the room and TCP port filled in. */
export function registerPages(router: Router, config: Pick<Config, 'room' | 'tcpPort'>): void {
  registerClientBundle(router);
  let names: string[];
  try {
    names = readdirSync(WEB_DIR).filter((n) => statSync(new URL(n, WEB_DIR)).isFile());
  } catch {
    // An install without web/ still serves the API; `/` says why there is no page.
    router.on('GET', '/', (_req, res) => sendJson(res, 404, { error: 'not_found', message: `no web/ folder at ${fileURLToPath(WEB_DIR)}` }));
    return;
  }
  for (const name of names) {
    const type = CONTENT_TYPES[extname(name)];
    if (!type) continue;
    let body = readFileSync(new URL(name, WEB_DIR));
    // The page learns the room from a meta tag, so it needs no API call (and no API key) to start.
    if (name === 'index.html') {
      const html = body.toString('utf8').replaceAll('{{room}}', escapeHtml(config.room)).replaceAll('{{tcpPort}}', String(config.tcpPort));
      body = Buffer.from(html);
    }
    const serve = (_req: unknown, res: ServerResponse) => {
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
      res.end(body);
    };
    router.on('GET', `/${name}`, serve);
    if (name === 'index.html') router.on('GET', '/', serve);
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * GET /client.js: the `@switchboard/client` package's browser bundle (one ES module, xstate inside), so the chat page
 * and users' pages need no bundler or CDN. Built with the package (`npm run build`); run from src/ (tsx, tests) the
 * broker bundles the package's sources on first request with the package's own recipe, so it never lags them.
 */
function registerClientBundle(router: Router): void {
  let bundle: Promise<Buffer> | undefined;
  router.on('GET', '/client.js', async (_req, res) => {
    bundle ??= loadClientBundle();
    let body: Buffer;
    try {
      body = await bundle;
    } catch (err) {
      bundle = undefined; // a later request may find it built
      throw new HttpError(404, `no client bundle (${(err as Error).message}); run npm run build`, 'not_found');
    }
    res.writeHead(200, { 'Content-Type': CONTENT_TYPES['.js']!, 'Content-Length': body.length, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
    res.end(body);
  });
}

const require = createRequire(import.meta.url);

/** The client package's folder (through node_modules, as an installed broker finds it). */
export function clientPackageDir(): string {
  return dirname(require.resolve('@switchboard/client/package.json'));
}

async function loadClientBundle(): Promise<Buffer> {
  if (!import.meta.url.endsWith('.ts')) return readFile(require.resolve('@switchboard/client/browser'));
  const recipe = pathToFileURL(join(clientPackageDir(), 'scripts/bundle.mjs')).href;
  const esbuild = await import('esbuild');
  const { BUNDLE_OPTIONS } = (await import(recipe)) as { BUNDLE_OPTIONS: import('esbuild').BuildOptions };
  const out = await esbuild.build({ ...BUNDLE_OPTIONS, write: false, logLevel: 'silent' });
  return Buffer.from(out.outputFiles[0]!.contents);
}
