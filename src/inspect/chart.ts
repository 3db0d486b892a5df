// MachineChart: a machine definition reduced to what the live actors page draws — nested states and
// their outgoing transitions — read from the machine itself, so the page never drifts from the code.
import type { AnyStateMachine } from 'xstate';

export interface ChartTransition {
  /** Event type, or `after <delay>` for timeouts, `always` for eventless transitions. */
  event: string;
  targets: string[];
  guard?: string | undefined;
  reenter?: boolean | undefined;
}

export interface ChartNode {
  id: string;
  key: string;
  type: string;
  states: ChartNode[];
  transitions: ChartTransition[];
}

interface DefinitionNode {
  id: string;
  key: string;
  type: string;
  states: Record<string, DefinitionNode>;
  transitions: { eventType: string; delay?: unknown; target?: { id: string }[] | null; guard?: unknown; reenter?: boolean }[];
  always?: { target?: { id: string }[] | null; guard?: unknown }[];
}

export function machineChart(machine: AnyStateMachine): ChartNode {
  return chartOf(machine.root.definition as unknown as DefinitionNode);
}

function chartOf(node: DefinitionNode): ChartNode {
  const transitions: ChartTransition[] = node.transitions.map((t) => ({
    event: t.delay !== undefined ? `after ${String(t.delay)}` : t.eventType.replace(/^xstate\./, ''),
    targets: (t.target ?? []).map((s) => s.id),
    guard: guardName(t.guard),
    reenter: t.reenter || undefined,
  }));
  for (const t of node.always ?? []) transitions.push({ event: 'always', targets: (t.target ?? []).map((s) => s.id), guard: guardName(t.guard) });
  return { id: node.id, key: node.key, type: node.type, states: Object.values(node.states).map(chartOf), transitions };
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard) return String((guard as { type: unknown }).type);
  return 'guard';
}
