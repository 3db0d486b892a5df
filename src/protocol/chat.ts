// Chat lines: how the seed chat server's text protocol reads and writes (PROTOCOL.md "TCP line protocol").
// Pure: plain-text commands → protocol frames, and server frames → the lines a `nc` user sees.
import type { ClientInfo, ServerFrame } from './frames.js';

/** What a plain-text line asks for; JSON lines are not commands (they go to the frame reader as they are). */
export type ChatCommand =
  | { kind: 'who' }
  | { kind: 'rename'; name: string }
  | { kind: 'quit' }
  | { kind: 'say'; text: string }
  | { kind: 'json' }
  | { kind: 'blank' };

/** Classifies one decoded line. `rename|name` takes the rest after the first `|`, trimmed. */
export function parseChatLine(line: string): ChatCommand {
  const trimmed = line.trim();
  if (trimmed.length === 0) return { kind: 'blank' };
  if (trimmed.startsWith('{')) return { kind: 'json' };
  if (trimmed === 'who') return { kind: 'who' };
  if (trimmed === 'quit') return { kind: 'quit' };
  if (trimmed.startsWith('rename|')) return { kind: 'rename', name: trimmed.slice('rename|'.length).trim() };
  return { kind: 'say', text: line };
}

// Line breaks and terminal control characters (ESC sequences) from other users never reach a terminal raw:
// a chat line is exactly one line, and nobody can forge `[addr]name: login` or recolour your screen.
// eslint-disable-next-line no-control-regex
const LINE_BREAKS = /\r\n|[\r\n\u2028\u2029]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function sanitize(text: string): string {
  return text.replace(LINE_BREAKS, ' ⏎ ').replace(CONTROLS, '\uFFFD');
}

/** The text of a chat message: strings as they are, anything else as compact JSON (`json` when already encoded). */
export function chatText(data: unknown, json?: string): string {
  return sanitize(typeof data === 'string' ? data : (json ?? JSON.stringify(data) ?? 'null'));
}

/** `[addr]name: text` — the seed chat line. Server-side publishes (no sender) read `[server]: text`. */
export function messageLine(sender: Pick<ClientInfo, 'addr' | 'name'> | undefined, data: unknown, json?: string): string {
  return sender ? `[${sender.addr}]${sender.name}: ${chatText(data, json)}\n` : `[server]: ${chatText(data, json)}\n`;
}

const PRESENCE_WORD = { join: 'login', leave: 'logout', timeout: 'time out' } as const;

/** A room presence event as a seed line; renames read `[addr]old: rename to new`. */
export function presenceLine(frame: Extract<ServerFrame, { op: 'event' }>): string {
  const { client } = frame;
  if (frame.event === 'rename') return `[${client.addr}]${frame.old ?? client.name}: rename to ${client.name}\n`;
  return `[${client.addr}]${client.name}: ${PRESENCE_WORD[frame.event]}\n`;
}

/** The greeting sent instead of `hello`: who you are and how to talk. */
export function greetingLines(hello: Extract<ServerFrame, { op: 'hello' }>, room: string): string {
  const { client, server } = hello;
  return (
    `I am here: ${server.name} ${server.version}, room '${room}'. You are ${client.name}${client.name === client.addr ? '' : ` from ${client.addr}`} (id ${client.id}).\n` +
    `Type a line to say it to the room. Commands: who | rename|<new name> | quit. ` +
    `A line starting with { is a JSON frame of the WebSocket protocol, e.g. {"op":"sub","topic":"alarm/#"}.\n`
  );
}

/** `user list:` then one `addr:name` line per client (seed format). */
export function whoLines(clients: readonly ClientInfo[]): string {
  let out = 'user list:\n';
  for (const c of clients) out += `${c.addr}:${c.name}\n`;
  return out;
}

export function errorLine(code: string, message: string): string {
  return `error ${code}: ${sanitize(message)}\n`;
}

/** The last line before the server ends the stream. */
export function byeLine(code: number, reason: string): string {
  return code === 1000 ? 'bye\n' : `bye: ${sanitize(reason)} (${code})\n`;
}
