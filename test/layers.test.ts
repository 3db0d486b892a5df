// The direction of imports is the architecture: protocol (pure) ← engine ← actors ← transports ← http/inspect ←
// check ← broker ← cli. A file may import from its own layer or lower ones, never from a higher one; the client
// library imports only the protocol; nothing in src/ imports the docs tooling or tests.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src', import.meta.url).pathname;

/** Lower numbers are lower layers. Keys are paths under src/ (a folder ends with '/'). */
const LAYERS: [prefix: string, rank: number][] = [
  ['protocol/', 0],
  ['client/', 1],
  ['auth/', 1],
  ['config.ts', 1],
  ['log.ts', 1],
  ['engine/', 2],
  ['actors/', 3],
  ['transports/', 4],
  ['http/', 5],
  ['inspect/', 5],
  ['open-files.ts', 5],
  ['check/', 6],
  ['broker.ts', 7],
  ['cli/', 8],
  ['cli.ts', 8],
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

const IMPORT = /(?:^|\n)\s*(import|export)\s(type\s)?[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** Relative imports of `file`, resolved; `values`: only those that load code at run time (not `import type`). */
function importsOf(file: string, values = false): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    if (values && m[2]) continue;
    const spec = (m[3] ?? m[4])!;
    out.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}

const files = sources(SRC);

describe('layers', () => {
  it('every source file belongs to a layer', () => {
    for (const f of files) expect(() => rankOf(f)).not.toThrow();
  });

  it('no file imports from a higher layer', () => {
    const upward: string[] = [];
    for (const f of files) {
      for (const target of importsOf(f)) {
        if (!target.startsWith(SRC)) {
          upward.push(`src/${relative(SRC, f)} imports ${relative(join(SRC, '..'), target)} (outside src/)`);
          continue;
        }
        if (rankOf(target) > rankOf(f)) upward.push(`src/${relative(SRC, f)} → src/${relative(SRC, target)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('the client library imports only the protocol and itself', () => {
    const wrong: string[] = [];
    for (const f of files.filter((f) => relative(SRC, f).startsWith('client/'))) {
      for (const target of importsOf(f)) {
        const rel = relative(SRC, target);
        if (!rel.startsWith('client/') && !rel.startsWith('protocol/')) wrong.push(`src/${relative(SRC, f)} → src/${rel}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('no import cycle between files (type-only imports aside: they load nothing)', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f, true).filter((t) => t.startsWith(SRC))]));
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
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
