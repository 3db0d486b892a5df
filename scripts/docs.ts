// npm run docs: writes diagrams/*.mmd from the machine definitions and refreshes README's and docs/client.md's generated blocks
// (diagrams and the settings table); test/docs.test.ts fails when either drifts.
import { readFileSync, writeFileSync } from 'node:fs';
import { DIAGRAMS } from '../src/inspect/diagrams.js';
import { embedReadmeBlocks } from '../src/readme.js';

for (const [file, text] of Object.entries(DIAGRAMS())) {
  writeFileSync(new URL(`../diagrams/${file}`, import.meta.url), text);
  console.log(`wrote diagrams/${file}`);
}
// README and docs/client.md (the client lifecycle diagram) carry the same kind of generated blocks.
for (const doc of ['../README.md', '../docs/client.md']) {
  const path = new URL(doc, import.meta.url);
  writeFileSync(path, embedReadmeBlocks(readFileSync(path, 'utf8')));
  console.log(`refreshed ${doc.slice(3)} generated blocks`);
}
