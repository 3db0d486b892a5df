// npm run diagrams: writes diagrams/*.mmd from the machine definitions and embeds them in README.md
// (test/diagrams.test.ts fails when either drifts).
import { readFileSync, writeFileSync } from 'node:fs';
import { DIAGRAMS, embedDiagrams } from '../src/inspect/diagrams.js';

const diagrams = DIAGRAMS();
for (const [file, text] of Object.entries(diagrams)) {
  writeFileSync(new URL(`../diagrams/${file}`, import.meta.url), text);
  console.log(`wrote diagrams/${file}`);
}
const readmePath = new URL('../README.md', import.meta.url);
writeFileSync(readmePath, embedDiagrams(readFileSync(readmePath, 'utf8'), diagrams));
console.log('updated README.md diagram blocks');
