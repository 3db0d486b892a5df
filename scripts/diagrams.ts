// The committed diagrams: file name → Mermaid text, rendered from the live machine definitions.
import { connectionMachine } from '../src/actors/connection.machine.js';
import { supervisorMachine } from '../src/actors/supervisor.machine.js';
import { clientLifecycleMachine } from '@switchboard/client';
import { renderMermaid } from './mermaid.js';

export const DIAGRAMS = (): Record<string, string> => ({
  'connection.mmd': renderMermaid(connectionMachine),
  'supervisor.mmd': renderMermaid(supervisorMachine),
  'client.mmd': renderMermaid(clientLifecycleMachine),
});
