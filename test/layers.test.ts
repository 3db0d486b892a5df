// The direction of imports is the architecture: protocol (pure) ← engine ← actors ← transports ← inspect ← http ←
// check ← broker ← cli. A file may import from its own layer or lower ones, never from a higher one; nothing in src/
// imports the docs tooling or tests; no two files import each other, even only for types. The client library is its own package (packages/client): it imports nothing
// of the broker (only itself, xstate and ws), and the broker takes it as a package, only in cli/ and http/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src', import.meta.url).pathname;

/** Lower numbers are lower layers. Keys are paths under src/ (a folder ends with '/'). */
const LAYERS: [prefix: string, rank: number][] = [
  ['protocol/', 0],
  ['auth/', 1],
  ['config.ts', 1],
  ['config-error.ts', 1],
  ['redis-url.ts', 1],
  ['log.ts', 1],
  ['engine/', 2],
  ['hooks/', 2],
  ['actors/', 3],
  ['transports/', 4],
  ['inspect/', 5],
  ['open-files.ts', 5],
  ['http/', 6],
  ['check/', 7],
  ['broker.ts', 8],
  ['cli/', 9],
  ['cli.ts', 9],
];

function rankOf(file: string): number {
  const rel = relative(SRC, file);
  const hit = LAYERS.find(([prefix]) => (prefix.endsWith('/') ? rel.startsWith(prefix) : rel === prefix));
  if (!hit) throw new Error(`src/${rel} belongs to no layer: add it to LAYERS in test/layers.test.ts`);
  return hit[1];
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(import|export)\s(type\s)?[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every module specifier `text` imports (`import type` too). */
function specifiers(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => (m[3] ?? m[4])!);
}

/** Relative imports of `file` (whose source is `text`), resolved. */
function importsOfText(file: string, text: string): string[] {
  return specifiers(text)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
}

function importsOf(file: string): string[] {
  return importsOfText(file, readFileSync(file, 'utf8'));
}

/** Every cycle of the import graph (file → the files it imports), each as `a.ts → b.ts → a.ts`. */
function cyclesOf(graph: Map<string, string[]>): string[] {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → '));
      return;
    }
    state.set(f, 'visiting');
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  return cycles;
}

const files = sources(SRC);
const CLIENT = new URL('../packages/client/src', import.meta.url).pathname;
const clientFiles = sources(CLIENT);

/** What a file of the client package may import: itself, xstate, and ws (loaded only where there is no WebSocket). */
function clientImportProblems(file: string, text: string): string[] {
  return specifiers(text).flatMap((spec) => {
    if (spec === 'xstate' || spec === 'ws') return [];
    if (!spec.startsWith('.')) return [`${spec} (a package other than xstate and ws)`];
    const target = resolve(dirname(file), spec);
    return target.startsWith(CLIENT + '/') ? [] : [`${relative(join(CLIENT, '../../..'), target)} (outside the package)`];
  });
}

/** Where in src/ the client package may be imported: the CLI commands (sub, chat) and the pages serving its bundle. */
function brokerImportsClient(file: string, text: string): boolean {
  const rel = relative(SRC, file);
  return specifiers(text).some((s) => s === '@switchboard/client' || s.startsWith('@switchboard/client/')) && !rel.startsWith('cli/') && !rel.startsWith('http/');
}

/** The imports of `file` (resolved `targets`) that point up the layers or out of src/. */
function upwardImports(file: string, targets: string[]): string[] {
  return targets.flatMap((target) => {
    if (!target.startsWith(SRC)) return [`src/${relative(SRC, file)} imports ${relative(join(SRC, '..'), target)} (outside src/)`];
    return rankOf(target) > rankOf(file) ? [`src/${relative(SRC, file)} → src/${relative(SRC, target)}`] : [];
  });
}

/**
 * The engine's seam (docs/architecture.md, The protocol core): one protocol core over narrow parts. The core and the
 * in-memory parts import nothing of redis/; the core (core.ts, seam.ts, local.ts) imports no deployment (memory.ts);
 * the Redis units see the core only through its interfaces (seam.ts, local.ts): redis/engine.ts alone composes it.
 */
function seamProblems(file: string, targets: string[]): string[] {
  const rel = relative(SRC, file);
  return targets.flatMap((target) => {
    const to = relative(SRC, target);
    const wrong =
      (rel.startsWith('engine/') && !rel.startsWith('engine/redis/') && to.startsWith('engine/redis/')) ||
      (['engine/core.ts', 'engine/seam.ts', 'engine/local.ts'].includes(rel) && to === 'engine/memory.ts') ||
      (rel.startsWith('engine/redis/') && rel !== 'engine/redis/engine.ts' && (to === 'engine/core.ts' || to === 'engine/memory.ts'));
    return wrong ? [`src/${rel} → src/${to}`] : [];
  });
}

describe('layers', () => {
  it('every source file belongs to a layer', () => {
    for (const f of files) expect(() => rankOf(f)).not.toThrow();
  });

  it('no file imports from a higher layer', () => {
    expect(files.flatMap((f) => upwardImports(f, importsOf(f)))).toEqual([]);
  });

  it('the client package imports nothing of the broker: only itself, xstate and ws', () => {
    expect(clientFiles.length).toBeGreaterThan(5);
    const wrong = clientFiles.flatMap((f) => clientImportProblems(f, readFileSync(f, 'utf8')).map((p) => `${relative(CLIENT, f)} → ${p}`));
    expect(wrong).toEqual([]);
  });

  it('the broker imports the client package only in cli/ (sub, chat) and http/ (its bundle)', () => {
    const users = files.filter((f) => specifiers(readFileSync(f, 'utf8')).includes('@switchboard/client')).map((f) => relative(SRC, f));
    expect(users.length).toBeGreaterThan(0);
    expect(files.filter((f) => brokerImportsClient(f, readFileSync(f, 'utf8'))).map((f) => relative(SRC, f))).toEqual([]);
  });

  it('catches planted imports (the checks themselves work)', () => {
    const inClient = join(CLIENT, 'client.ts');
    expect(clientImportProblems(inClient, "import { ERROR_CODES } from '../../../src/protocol/errors.js';")).toEqual(['src/protocol/errors.js (outside the package)']);
    expect(clientImportProblems(inClient, "import type { Config } from '../../../src/config.js';")).toHaveLength(1);
    expect(clientImportProblems(inClient, "const p = import('pino');")).toEqual(['pino (a package other than xstate and ws)']);
    expect(clientImportProblems(inClient, "import { setup } from 'xstate';\nimport { X } from './wire.js';")).toEqual([]);
    expect(brokerImportsClient(join(SRC, 'engine/memory.ts'), "import { SwitchboardClient } from '@switchboard/client';")).toBe(true);
    expect(brokerImportsClient(join(SRC, 'cli/chat.ts'), "import { SwitchboardClient } from '@switchboard/client';")).toBe(false);
    const page = join(SRC, 'inspect/page.ts');
    expect(upwardImports(page, importsOfText(page, "import { HttpError, type Router } from '../http/router.js';"))).toEqual(['src/inspect/page.ts → src/http/router.ts']);
    expect(upwardImports(page, importsOfText(page, "import type { Router } from '../transports/router.js';"))).toEqual([]);
  });

  it('the seam: the core and the in-memory engine import nothing of redis/, Redis units see the core only through seam.ts and local.ts', () => {
    expect(files.flatMap((f) => seamProblems(f, importsOf(f)))).toEqual([]);
  });

  it('catches imports across the seam (the check itself works)', () => {
    const at = (file: string, text: string) => seamProblems(join(SRC, file), importsOfText(join(SRC, file), text));
    expect(at('engine/core.ts', "import { Cursors } from './redis/cursors.js';")).toEqual(['src/engine/core.ts → src/engine/redis/cursors.ts']);
    expect(at('engine/memory.ts', "import type { RedisNode } from './redis/node.js';")).toHaveLength(1);
    expect(at('engine/core.ts', "import { MemoryBroker } from './memory.js';")).toEqual(['src/engine/core.ts → src/engine/memory.ts']);
    expect(at('engine/redis/broker.ts', "import { ProtocolCore } from '../core.js';")).toEqual(['src/engine/redis/broker.ts → src/engine/core.ts']);
    expect(at('engine/redis/engine.ts', "import { ProtocolCore } from '../core.js';\nimport { Locals } from '../local.js';")).toEqual([]);
    expect(at('engine/redis/broker.ts', "import type { Broker } from '../seam.js';")).toEqual([]);
  });

  it('no import cycle between files, type-only imports included (two modules that need each other are one)', () => {
    expect(cyclesOf(new Map(files.map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC))])))).toEqual([]);
  });

  it('catches a planted cycle, also one made only of type imports', () => {
    const a = join(SRC, 'actors/a.ts');
    const b = join(SRC, 'actors/b.ts');
    const planted = (text: string) => new Map([[a, [b]], [b, importsOfText(b, text)]]);
    expect(cyclesOf(planted("import type { A } from './a.js';"))).toEqual(['actors/a.ts → actors/b.ts → actors/a.ts']);
    expect(cyclesOf(planted("import { A } from './a.js';"))).toHaveLength(1);
    expect(cyclesOf(planted("import type { C } from './c.js';"))).toEqual([]);
  });
});
