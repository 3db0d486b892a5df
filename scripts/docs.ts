// npm run docs: writes diagrams/*.mmd from the machine definitions and refreshes README's generated blocks
// (diagrams and the settings table); test/docs.test.ts fails when either drifts.
import { readFileSync, writeFileSync } from 'node:fs';
import { DIAGRAMS } from '../src/inspect/diagrams.js';
import { embedReadmeBlocks } from '../src/readme.js';

for (const [file, text] of Object.entries(DIAGRAMS())) {
  writeFileSync(new URL(`../diagrams/${file}`, import.meta.url), text);
  console.log(`wrote diagrams/${file}`);
}
const readmePath = new URL('../README.md', import.meta.url);
writeFileSync(readmePath, embedReadmeBlocks(readFileSync(readmePath, 'utf8')));
console.log('refreshed README.md generated blocks');
