// MachineChart: a machine definition reduced to what the live actors page draws — nested states and
// their outgoing transitions — read from the machine itself, so the page never drifts from the code.
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

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

export function machineChart(machine: AnyStateMachine): ChartNode {
  return chartOf(machine.root);
}

/** From public StateNode fields only: `transitions` (by event), `after` (for the delay names), `always`. */
function chartOf(node: AnyStateNode): ChartNode {
  const delays = new Map(node.after.map((t) => [t.eventType, t.delay]));
  const transitions: ChartTransition[] = [...node.transitions.values()].flat().map((t) => ({
    event: delays.has(t.eventType) ? `after ${String(delays.get(t.eventType))}` : t.eventType.replace(/^xstate\./, ''),
    targets: targetIds(t),
    guard: guardName(t.guard),
    reenter: t.reenter || undefined,
  }));
  for (const t of node.always ?? []) transitions.push({ event: 'always', targets: targetIds(t), guard: guardName(t.guard) });
  return { id: node.id, key: node.key, type: node.type, states: Object.values(node.states).map(chartOf), transitions };
}

function targetIds(t: AnyTransitionDefinition): string[] {
  return (t.target ?? []).map((s) => s.id);
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard) return String((guard as { type: unknown }).type);
  return 'guard';
}
