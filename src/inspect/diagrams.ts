// The committed diagrams: file name → Mermaid text, rendered from the live machine definitions.
import { connectionMachine } from '../actors/connection.machine.js';
import { supervisorMachine } from '../actors/supervisor.machine.js';
import { clientLifecycleMachine } from '../client/lifecycle.machine.js';
import { renderMermaid } from './mermaid.js';

export const DIAGRAMS = (): Record<string, string> => ({
  'connection.mmd': renderMermaid(connectionMachine),
  'supervisor.mmd': renderMermaid(supervisorMachine),
  'client.mmd': renderMermaid(clientLifecycleMachine),
});
