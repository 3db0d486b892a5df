// README blocks generated from the code (machine diagrams, the settings table), so the docs cannot drift:
// `npm run docs` rewrites them and test/docs.test.ts fails when README is stale.
import { settingsTable } from './config.js';
import { DIAGRAMS } from './inspect/diagrams.js';

export function readmeBlocks(): Record<string, string> {
  const blocks: Record<string, string> = { settings: settingsTable() };
  for (const [file, text] of Object.entries(DIAGRAMS())) blocks[`diagram:${file}`] = '```mermaid\n' + text + '```\n';
  return blocks;
}

const BLOCK = /<!-- generated:([\w.:-]+) -->\n[\s\S]*?<!-- \/generated -->/g;

/** `readme` with every `<!-- generated:NAME -->…<!-- /generated -->` block refilled from `blocks`. */
export function embedReadmeBlocks(readme: string, blocks = readmeBlocks()): string {
  return readme.replace(BLOCK, (whole, name: string) => {
    const text = blocks[name];
    return text === undefined ? whole : `<!-- generated:${name} -->\n${text}<!-- /generated -->`;
  });
}
