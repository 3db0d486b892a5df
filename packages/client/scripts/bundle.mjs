// The browser bundle: the library as one ES module with xstate inside (`ws` left out: browsers have WebSocket).
// `npm run build` writes it to dist/browser/; the broker serves it at /client.js and, run from its sources, bundles
// it on the fly with these same options, so there is one recipe.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

/** esbuild options for the bundle (docs/client.md states its size, measured with them). */
export const BUNDLE_OPTIONS = {
  entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  external: ['ws'],
};

export const BUNDLE_FILE = fileURLToPath(new URL('../dist/browser/switchboard-client.js', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await build({ ...BUNDLE_OPTIONS, outfile: BUNDLE_FILE, logLevel: 'warning' });
}
