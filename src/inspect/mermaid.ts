// Mermaid state diagrams drawn from the machine definitions themselves, so diagrams/ cannot drift silently.
import type { AnyStateMachine } from 'xstate';

interface Node {
  key: string;
  id: string;
  type: string;
  states: Record<string, Node>;
  initial?: { target: Node[] };
  transitions: Map<string, Transition[]>;
  always?: Transition[];
}
interface Transition {
  eventType: string;
  target?: Node[];
  guard?: unknown;
  actions: unknown[];
}

const nameOf = (x: unknown): string | undefined =>
  typeof x === 'string' ? x : x && typeof x === 'object' && 'type' in x ? String((x as { type: unknown }).type) : undefined;

function label(t: Transition): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(t.eventType);
  const event = t.eventType === '' ? 'always' : after ? `after ${after[1]}` : t.eventType.replace(/^xstate\.(done|error)\.actor\.\*$/, 'child $1');
  const guard = nameOf(t.guard);
  const actions = t.actions.map(nameOf).filter((a): a is string => !!a && !a.startsWith('xstate.'));
  return `${event}${guard ? ` [${guard}]` : ''}${actions.length ? ` / ${actions.join(', ')}` : ''}`;
}

/** Renders `machine` as a Mermaid stateDiagram-v2 (parallel regions separated by `--`). */
export function renderMermaid(machine: AnyStateMachine): string {
  const root = machine.root as unknown as Node;
  const seen = new Set<string>();
  const lines: string[] = ['stateDiagram-v2'];
  const name = (n: Node) => n.key;

  const emit = (n: Node, depth: number) => {
    const pad = '  '.repeat(depth);
    const children = Object.values(n.states);
    if (n !== root) {
      if (seen.has(n.key)) throw new Error(`state key '${n.key}' is used twice; diagrams need unique keys`);
      seen.add(n.key);
    }
    if (children.length > 0 && n !== root) lines.push(`${pad}state ${name(n)} {`);
    const inner = n === root ? pad : pad + '  ';
    if (n.type === 'parallel') {
      children.forEach((c, i) => {
        if (i > 0) lines.push(`${inner}--`);
        emit(c, depth + (n === root ? 0 : 1));
      });
    } else {
      const initial = n.initial?.target[0];
      if (initial) lines.push(`${inner}[*] --> ${name(initial)}`);
      for (const c of children) emit(c, depth + (n === root ? 0 : 1));
    }
    if (children.length > 0 && n !== root) lines.push(`${pad}}`);
    const from = n === root ? undefined : name(n);
    if (from) {
      const all = [...[...n.transitions.values()].flat(), ...(n.always ?? [])];
      const outPad = '  '.repeat(Math.max(0, depth - 0));
      for (const t of all) {
        const to = t.target?.[0];
        lines.push(`${outPad}${from} --> ${to ? name(to) : from}: ${label(t)}`);
      }
      if (n.type === 'final') lines.push(`${outPad}${from} --> [*]`);
    } else {
      // Events the machine handles in every state: one note on the initial state.
      const everywhere = [...n.transitions.values()].flat();
      const initial = n.initial?.target[0];
      if (everywhere.length > 0 && initial) {
        lines.push(`${pad}note right of ${name(initial)}`, `${pad}  in every state:`);
        for (const t of everywhere) lines.push(`${pad}  ${label(t)}`);
        lines.push(`${pad}end note`);
      }
    }
  };
  emit(root, 1);
  return lines.join('\n') + '\n';
}
