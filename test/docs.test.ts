// diagrams/ and the docs' generated blocks come from the code; this fails when someone changes a machine or a
// setting and forgets `npm run docs`. It also fails on a relative link in README.md or docs/ that leads nowhere, and
// on a code block that is neither run by a test (`<!-- run: ID -->` with a runner for ID), nor generated, nor marked
// `<!-- illustrative: why -->`.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DIAGRAMS } from '../scripts/diagrams.js';
import { allCodeBlocks, codeBlocks, docBlocks, embedDocBlocks, GENERATED_FILES, markdownFiles } from '../scripts/doc-blocks.js';
import { RUNNERS } from './docs/runners.js';
import { SETTINGS } from '../src/config.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const MARKDOWN = markdownFiles();

/** Markdown without fenced code blocks and inline code, where link-like text is not a link. */
const prose = (md: string) => md.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of md.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = heading!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Every `[text](target)` and `[text]: target` link of a Markdown file that is not a web address. */
function localLinks(md: string): string[] {
  const inline = [...prose(md).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
  const defs = [...prose(md).matchAll(/^\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]!);
  return [...inline, ...defs].filter((t) => !/^[a-z][a-z+.-]*:/i.test(t));
}

describe('generated docs', () => {
  for (const [file, text] of Object.entries(DIAGRAMS())) {
    it(`diagrams/${file} matches the machine definition (run npm run docs)`, () => {
      expect(read(`diagrams/${file}`)).toBe(text);
    });
  }

  for (const [path, blocks] of Object.entries(GENERATED_FILES)) {
    it(`${path} embeds the current generated blocks (run npm run docs)`, () => {
      const doc = read(path);
      for (const name of blocks) expect(doc).toContain(`<!-- generated:${name} -->`);
      expect(embedDocBlocks(doc)).toBe(doc);
    });
  }

  it('docs/configuration.md lists every setting', () => {
    const doc = read('docs/configuration.md');
    for (const s of Object.values(SETTINGS)) expect(doc).toContain(`\`--${s.flag}\``);
  });

  it('no generated block is left outside the files that own it', () => {
    const owned = new Set(Object.keys(GENERATED_FILES));
    for (const path of MARKDOWN.filter((p) => !owned.has(p))) expect(read(path), path).not.toContain('<!-- generated:');
  });

  it('docs/architecture.md shows diagrams/engine.mmd, which names the core, every part of its seam and both deployments', () => {
    const diagram = read('diagrams/engine.mmd');
    expect(read('docs/architecture.md')).toContain('```mermaid\n' + diagram + '```');
    const seam = read('src/engine/seam.ts');
    const parts = [...seam.matchAll(/^export interface Parts<S extends Session> \{([\s\S]*?)^\}/gm)][0]![1]!;
    const kinds = [...parts.matchAll(/^\s+\w+: (\w+)(?:<S>)?;/gm)].map((m) => m[1]!);
    expect(kinds).toEqual(['Broker', 'PresenceStore', 'Ids', 'Turns', 'Deployment']);
    for (const name of [...kinds, 'ProtocolCore', 'Locals', 'MemoryEngine', 'MemoryBroker', 'LocalPresence', 'RedisEngine', 'RedisBroker', 'RedisPresence']) expect(diagram).toContain(name);
  });

  it('shows every state of the connection lifecycle', () => {
    const text = DIAGRAMS()['connection.mmd']!;
    for (const state of ['connecting', 'online', 'idle', 'closing', 'closed', 'beating']) expect(text).toContain(state);
    expect(text).toContain('after nextCheck [pongOverdue]');
  });
});

describe('links in README.md and docs/', () => {
  for (const path of MARKDOWN) {
    it(`${path}: every relative link reaches a file in the repository, every #anchor a heading`, () => {
      const md = read(path);
      const broken: string[] = [];
      for (const link of localLinks(md)) {
        const [file = '', anchor] = link.split('#') as [string, string | undefined];
        const target = file === '' ? join(ROOT, path) : join(ROOT, dirname(path), decodeURIComponent(file));
        const inside = !relative(ROOT, target).startsWith('..');
        if (!inside || !existsSync(target)) broken.push(`${link} (no such file in the repository)`);
        else if (anchor !== undefined && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(anchor)) {
          broken.push(`${link} (no heading with that anchor)`);
        }
      }
      expect(broken, `${path} has broken links`).toEqual([]);
    });
  }

  it('finds the links it checks (the checker itself works)', () => {
    expect(localLinks('[a](docs/x.md#y) `[b](no)` [c](https://e.org) [d](#z)')).toEqual(['docs/x.md#y', '#z']);
    expect([...anchors('# Conformance checker: `switchboard check`\n## A b\n## A b\n')]).toEqual([
      'conformance-checker-switchboard-check',
      'a-b',
      'a-b-1',
    ]);
  });
});

describe('code blocks in README.md and docs/: run, generated or illustrative', () => {
  const blocks = allCodeBlocks();

  it('every block is run by a test, generated, or marked illustrative with a reason', () => {
    const unmarked = blocks.filter((b) => !b.marker).map((b) => `${b.file}:${b.line} (\`\`\`${b.lang}): mark it <!-- run: ID --> (and add a runner) or <!-- illustrative: why -->`);
    expect(unmarked).toEqual([]);
    for (const b of blocks.filter((b) => b.marker?.kind === 'illustrative')) expect(b.marker!.value.length, `${b.file}:${b.line}: say why`).toBeGreaterThan(10);
  });

  it('every run marker and every embedded example has a runner, and every runner has its blocks', () => {
    const ids = new Set(blocks.filter((b) => b.marker?.kind === 'run').map((b) => b.marker!.value));
    for (const b of blocks) if (b.marker?.kind === 'generated' && b.marker.value.startsWith('example:')) ids.add(b.marker.value);
    expect([...ids].filter((id) => !Object.hasOwn(RUNNERS, id)).map((id) => `${id} has no runner in test/docs/runners.ts`)).toEqual([]);
    expect(Object.keys(RUNNERS).filter((id) => !ids.has(id)).map((id) => `runner ${id} runs no block`)).toEqual([]);
  });

  it('a runner that lives in another test is really there: that file reads its blocks by ID (an example by its path)', () => {
    for (const [id, runner] of Object.entries(RUNNERS)) {
      if (!runner.elsewhere) continue;
      expect(existsSync(join(ROOT, runner.elsewhere)), runner.elsewhere).toBe(true);
      const reads = id.startsWith('example:') ? id.replace(/^example:/, 'examples/') : `blocksToRun('${id}')`;
      expect(read(runner.elsewhere), `${runner.elsewhere} runs ${id}`).toContain(reads);
    }
  });

  it('every generated example is embedded somewhere, and every program under examples/ is one', () => {
    const names = Object.keys(docBlocks()).filter((n) => n.startsWith('example:'));
    expect(names.length).toBeGreaterThan(0);
    const embedded = new Set(blocks.filter((b) => b.marker?.kind === 'generated').map((b) => b.marker!.value));
    expect(names.filter((n) => !embedded.has(n))).toEqual([]);
  });

  it('finds the markers it checks (the checker itself works)', () => {
    const md = ['<!-- run: a -->', '```sh', 'x', '```', '', '```text', 'y', '```', '<!-- illustrative: a diagram, not a command -->', '````md', '```', '````', '<!-- generated:settings -->', '```', 'z', '```', '<!-- /generated -->'].join('\n');
    expect(codeBlocks('t.md', md).map((b) => [b.line, b.lang, b.marker?.kind, b.marker?.value])).toEqual([
      [2, 'sh', 'run', 'a'],
      [6, 'text', undefined, undefined],
      [10, 'md', 'illustrative', 'a diagram, not a command'],
      [14, '', 'generated', 'settings'],
    ]);
  });
});
