// Static pages: the files of the top-level web/ folder (the chat page at `/`), served as they are.
// No build step: plain HTML, CSS and ES modules, read once at startup.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import { HttpError, sendJson, type Router } from './router.js';

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
 * GET /client.js: the client library (src/client) as one browser ES module with xstate inside, so the chat page and
 * users' pages need no bundler or CDN. Built by `npm run build:client` into dist/browser/; run from src/ (tsx, tests)
 * it is bundled with esbuild on first request instead, so it never lags the source.
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

/** How the client library becomes one browser ES module (as `npm run build:client` does; docs/client.md's size too). */
export const CLIENT_BUNDLE = {
  entryPoints: [fileURLToPath(new URL('../client/index.ts', import.meta.url))],
  bundle: true,
  format: 'esm' as const,
  platform: 'browser' as const,
  target: 'es2022',
  minify: true,
  external: ['ws'],
};

async function loadClientBundle(): Promise<Buffer> {
  if (!import.meta.url.endsWith('.ts')) return readFile(new URL('../browser/client.js', import.meta.url));
  const esbuild = await import('esbuild');
  const out = await esbuild.build({ ...CLIENT_BUNDLE, write: false, logLevel: 'silent' });
  return Buffer.from(out.outputFiles[0]!.contents);
}
