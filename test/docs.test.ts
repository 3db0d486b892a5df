// diagrams/ and the docs' generated blocks come from the code; this fails when someone changes a machine or a
// setting and forgets `npm run docs`. It also fails on a relative link in README.md or docs/ that leads nowhere.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DIAGRAMS } from '../scripts/diagrams.js';
import { embedDocBlocks, GENERATED_FILES } from '../scripts/doc-blocks.js';
import { SETTINGS } from '../src/config.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
// Written on another branch at the same time as the links to it; checked like any file once it exists.
const MARKDOWN = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

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

  it('shows every state of the connection lifecycle', () => {
    const text = DIAGRAMS()['connection.mmd']!;
    for (const state of ['connecting', 'online', 'idle', 'closing', 'closed', 'beating']) expect(text).toContain(state);
    expect(text).toContain('after heartbeatInterval [pongOverdue]');
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
