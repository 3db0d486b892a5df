// Doc blocks generated from the code (machine diagrams, the settings table, example programs kept under examples/),
// so the docs cannot drift: `npm run docs` rewrites them and test/docs.test.ts fails when a file is stale. Also the
// reader of every fenced block in README.md and docs/ with the marker that says what becomes of it: run by a test
// (`<!-- run: ID -->`), generated (inside `<!-- generated:NAME -->`), or shown only (`<!-- illustrative: why -->`).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { settingsTable } from '../src/config.js';
import { DIAGRAMS } from './diagrams.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Which generated blocks live in which file (paths from the repository root). */
export const GENERATED_FILES: Record<string, string[]> = {
  'docs/configuration.md': ['settings'],
  'docs/architecture.md': ['diagram:connection.mmd', 'diagram:supervisor.mmd'],
  'docs/client.md': ['diagram:client.mmd', 'example:client/alarms.ts', 'example:client/tour.ts'],
  'docs/integration.md': ['example:backend/server.js'],
};

const FENCES: Record<string, string> = { '.ts': 'ts', '.js': 'js', '.html': 'html', '.sh': 'sh' };

/** The programs under examples/ (run by test/docs/ and test/package/), as `example:<path>` blocks. */
export function exampleBlocks(): Record<string, string> {
  const dir = join(ROOT, 'examples');
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
  const blocks: Record<string, string> = {};
  for (const file of walk(dir)) {
    const lang = FENCES[extname(file)];
    if (lang) blocks[`example:${relative(dir, file)}`] = '```' + lang + '\n' + readFileSync(file, 'utf8') + '```\n';
  }
  return blocks;
}

export function docBlocks(): Record<string, string> {
  const blocks: Record<string, string> = { settings: settingsTable(), ...exampleBlocks() };
  for (const [file, text] of Object.entries(DIAGRAMS())) blocks[`diagram:${file}`] = '```mermaid\n' + text + '```\n';
  return blocks;
}

const BLOCK = /<!-- generated:([\w.:/-]+) -->\n[\s\S]*?<!-- \/generated -->/g;

/** `doc` with every `<!-- generated:NAME -->…<!-- /generated -->` block refilled from `blocks`. */
export function embedDocBlocks(doc: string, blocks = docBlocks()): string {
  return doc.replace(BLOCK, (whole, name: string) => {
    const text = blocks[name];
    return text === undefined ? whole : `<!-- generated:${name} -->\n${text}<!-- /generated -->`;
  });
}

/** One fenced block of a Markdown file and what its marker says about it. */
export interface CodeBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
  /** `run` (with the runner's id), `illustrative` (with the reason), `generated` (with the block's name), or none. */
  marker: { kind: 'run' | 'illustrative' | 'generated'; value: string } | undefined;
}

const MARKER = /^<!-- (run|illustrative): (.+?) -->$/;

/** Every fenced block of `md` (file `file`), with its marker: the comment on the line right above the fence. */
export function codeBlocks(file: string, md: string): CodeBlock[] {
  const lines = md.split('\n');
  const out: CodeBlock[] = [];
  let generated: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const gen = /^<!-- generated:([\w.:/-]+) -->$/.exec(line);
    if (gen) generated = gen[1];
    if (line === '<!-- /generated -->') generated = undefined;
    const fence = /^(`{3,})(\S*)\s*$/.exec(line);
    if (!fence) continue;
    const close = lines.findIndex((l, j) => j > i && l.startsWith(fence[1]!) && l.trim() === fence[1]);
    if (close < 0) throw new Error(`${file}:${i + 1}: a code block that is never closed`);
    const above = MARKER.exec(lines[i - 1] ?? '');
    const marker = generated !== undefined ? { kind: 'generated' as const, value: generated } : above ? { kind: above[1] as 'run' | 'illustrative', value: above[2]! } : undefined;
    out.push({ file, line: i + 1, lang: fence[2]!, text: lines.slice(i + 1, close).join('\n') + '\n', marker });
    i = close;
  }
  return out;
}

/** README.md, every docs/*.md and the client package's README (it ships with the package), from the repository root. */
export function markdownFiles(): string[] {
  return ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`), 'packages/client/README.md'];
}

/** Every fenced block of README.md and docs/. */
export function allCodeBlocks(): CodeBlock[] {
  return markdownFiles().flatMap((f) => codeBlocks(f, readFileSync(join(ROOT, f), 'utf8')));
}

/** The blocks marked `<!-- run: id -->`, in document order (a runner may cover several). */
export function blocksToRun(id: string): CodeBlock[] {
  return allCodeBlocks().filter((b) => b.marker?.kind === 'run' && b.marker.value === id);
}
