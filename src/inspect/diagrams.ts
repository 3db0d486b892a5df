// The committed diagrams: file name → Mermaid text, rendered from the live machine definitions,
// and the README blocks that embed them.
import { connectionMachine } from '../actors/connection.machine.js';
import { supervisorMachine } from '../actors/supervisor.machine.js';
import { renderMermaid } from './mermaid.js';

export const DIAGRAMS = (): Record<string, string> => ({
  'connection.mmd': renderMermaid(connectionMachine),
  'supervisor.mmd': renderMermaid(supervisorMachine),
});

const BLOCK = /<!-- diagram:([\w.-]+) -->\n[\s\S]*?<!-- \/diagram -->/g;

/** README text with every `<!-- diagram:file -->` block replaced by that diagram as a mermaid code block. */
export function embedDiagrams(readme: string, diagrams = DIAGRAMS()): string {
  return readme.replace(BLOCK, (whole, file: string) => {
    const text = diagrams[file];
    return text === undefined ? whole : `<!-- diagram:${file} -->\n\`\`\`mermaid\n${text}\`\`\`\n<!-- /diagram -->`;
  });
}
