// npm run diagrams: writes diagrams/*.mmd from the machine definitions (test/diagrams.test.ts fails on drift).
import { writeFileSync } from 'node:fs';
import { DIAGRAMS } from '../src/inspect/diagrams.js';

for (const [file, text] of Object.entries(DIAGRAMS())) {
  const path = new URL(`../diagrams/${file}`, import.meta.url);
  writeFileSync(path, text);
  console.log(`wrote diagrams/${file}`);
}
