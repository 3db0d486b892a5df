// Mermaid state diagrams drawn from the machine definitions themselves, so diagrams/ cannot drift silently.
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

const nameOf = (x: unknown): string | undefined =>
  typeof x === 'string' ? x : x && typeof x === 'object' && 'type' in x ? String((x as { type: unknown }).type) : undefined;

function label(t: AnyTransitionDefinition): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(t.eventType);
  const event = t.eventType === '' ? 'always' : after ? `after ${after[1]}` : t.eventType;
  const guard = nameOf(t.guard);
  const actions = t.actions.map(nameOf).filter((a): a is string => !!a && !a.startsWith('xstate.'));
  return `${event}${guard ? ` [${guard}]` : ''}${actions.length ? ` / ${actions.join(', ')}` : ''}`;
}

/**
 * Renders `machine` as a Mermaid stateDiagram-v2 (parallel regions separated by `--`). The states are declared
 * in their nesting first and every transition follows at the top level: Mermaid places a state in the first
 * block that mentions it, so a transition written inside a block would pull its target into that block.
 */
export function renderMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const seen = new Set<string>();
  const structure: string[] = [];
  const transitions: string[] = [];
  const name = (n: AnyStateNode) => n.key;

  const declare = (n: AnyStateNode, depth: number) => {
    const pad = '  '.repeat(depth);
    if (seen.has(n.key)) throw new Error(`state key '${n.key}' is used twice; diagrams need unique keys`);
    seen.add(n.key);
    const children = Object.values(n.states);
    if (children.length === 0) {
      structure.push(`${pad}${name(n)}`);
    } else {
      structure.push(`${pad}state ${name(n)} {`);
      body(n, depth + 1);
      structure.push(`${pad}}`);
    }
    for (const t of [...[...n.transitions.values()].flat(), ...(n.always ?? [])]) {
      const to = t.target?.[0];
      transitions.push(`  ${name(n)} --> ${to ? name(to) : name(n)}: ${label(t)}`);
    }
    if (n.type === 'final') transitions.push(`  ${name(n)} --> [*]`);
  };

  const body = (n: AnyStateNode, depth: number) => {
    const pad = '  '.repeat(depth);
    const children = Object.values(n.states);
    if (n.type === 'parallel') {
      children.forEach((c, i) => {
        if (i > 0) structure.push(`${pad}--`);
        declare(c, depth);
      });
      return;
    }
    const initial = n.initial.target[0];
    if (initial) structure.push(`${pad}[*] --> ${name(initial)}`);
    for (const c of children) declare(c, depth);
  };

  body(root, 1);
  const lines = ['stateDiagram-v2', ...structure, ...transitions];
  // Events the machine handles in every state: one note on the initial state.
  const everywhere = [...root.transitions.values()].flat();
  const initial = root.initial.target[0];
  if (everywhere.length > 0 && initial) {
    lines.push(`  note right of ${name(initial)}`, '    in every state:');
    for (const t of everywhere) lines.push(`    ${label(t)}`);
    lines.push('  end note');
  }
  return lines.join('\n') + '\n';
}
