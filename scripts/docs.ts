// npm run docs: writes diagrams/*.mmd from the machine definitions and refreshes the generated blocks of the docs
// (the settings table in docs/configuration.md, the diagrams in docs/architecture.md and docs/client.md);
// test/docs.test.ts fails when any of them drifts.
import { readFileSync, writeFileSync } from 'node:fs';
import { DIAGRAMS } from './diagrams.js';
import { embedDocBlocks, GENERATED_FILES } from './doc-blocks.js';

for (const [file, text] of Object.entries(DIAGRAMS())) {
  writeFileSync(new URL(`../diagrams/${file}`, import.meta.url), text);
  console.log(`wrote diagrams/${file}`);
}
for (const path of Object.keys(GENERATED_FILES)) {
  const url = new URL(`../${path}`, import.meta.url);
  writeFileSync(url, embedDocBlocks(readFileSync(url, 'utf8')));
  console.log(`refreshed the generated blocks of ${path}`);
}
