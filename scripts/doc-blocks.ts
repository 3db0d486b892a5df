// Doc blocks generated from the code (machine diagrams, the settings table), so the docs cannot drift:
// `npm run docs` rewrites them and test/docs.test.ts fails when a file is stale.
import { settingsTable } from '../src/config.js';
import { DIAGRAMS } from './diagrams.js';

/** Which generated blocks live in which file (paths from the repository root). */
export const GENERATED_FILES: Record<string, string[]> = {
  'docs/configuration.md': ['settings'],
  'docs/architecture.md': ['diagram:connection.mmd', 'diagram:supervisor.mmd'],
  'docs/client.md': ['diagram:client.mmd'],
};

export function docBlocks(): Record<string, string> {
  const blocks: Record<string, string> = { settings: settingsTable() };
  for (const [file, text] of Object.entries(DIAGRAMS())) blocks[`diagram:${file}`] = '```mermaid\n' + text + '```\n';
  return blocks;
}

const BLOCK = /<!-- generated:([\w.:-]+) -->\n[\s\S]*?<!-- \/generated -->/g;

/** `doc` with every `<!-- generated:NAME -->…<!-- /generated -->` block refilled from `blocks`. */
export function embedDocBlocks(doc: string, blocks = docBlocks()): string {
  return doc.replace(BLOCK, (whole, name: string) => {
    const text = blocks[name];
    return text === undefined ? whole : `<!-- generated:${name} -->\n${text}<!-- /generated -->`;
  });
}
