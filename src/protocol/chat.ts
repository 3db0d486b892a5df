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
// Bidi controls would reorder the rest of the line (and the next ones, in some terminals): dropped.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Any text from elsewhere (other users' text, names, addresses) as one safe terminal line fragment. */
export function sanitize(text: string): string {
  return text.replace(LINE_BREAKS, ' ⏎ ').replace(CONTROLS, '\uFFFD').replace(BIDI, '');
}

/** A client as `[addr]name`, both sanitized. */
function speaker(client: Pick<ClientInfo, 'addr' | 'name'>, name = client.name): string {
  return `[${sanitize(client.addr)}]${sanitize(name)}`;
}

/** The text of a chat message: strings as they are, anything else as compact JSON. */
export function chatText(data: unknown): string {
  return sanitize(typeof data === 'string' ? data : (JSON.stringify(data) ?? 'null'));
}

/** `[addr]name: text` — the seed chat line. Server-side publishes (no sender) read `[server]: text`. */
export function messageLine(sender: Pick<ClientInfo, 'addr' | 'name'> | undefined, data: unknown): string {
  return sender ? `${speaker(sender)}: ${chatText(data)}\n` : `[server]: ${chatText(data)}\n`;
}

const PRESENCE_WORD = { join: 'login', leave: 'logout', timeout: 'time out' } as const;
const SILENT_IN_ROOM = new Set(['idle', 'active']);

/** A room presence event as a seed line; renames read `[addr]old: rename to new`. */
export function presenceLine(frame: Extract<ServerFrame, { op: 'event' }>): string {
  const { client } = frame;
  if (frame.event === 'rename') return `${speaker(client, frame.old ?? client.name)}: rename to ${sanitize(client.name)}
`;
  // A classic chat room says nothing when someone stops typing for a while.
  if (SILENT_IN_ROOM.has(frame.event)) return '';
  return `${speaker(client)}: ${PRESENCE_WORD[frame.event as keyof typeof PRESENCE_WORD]}
`;
}

/** The greeting sent instead of `hello`: who you are and how to talk. */
export function greetingLines(hello: Extract<ServerFrame, { op: 'hello' }>, room: string): string {
  const { client, server } = hello;
  const [name, addr] = [sanitize(client.name), sanitize(client.addr)];
  return (
    `I am here: ${sanitize(server.name)} ${server.version}, room '${sanitize(room)}'. You are ${name}${client.name === client.addr ? '' : ` from ${addr}`} (id ${client.id}).\n` +
    `Type a line to say it to the room. Commands: who | rename|<new name> | quit. ` +
    `A line starting with { is a JSON frame of the WebSocket protocol, e.g. {"op":"sub","topic":"alarm/#"}.\n`
  );
}

/** `user list:` then one `addr:name` line per client (seed format). */
export function whoLines(clients: readonly ClientInfo[]): string {
  let out = 'user list:\n';
  for (const c of clients) out += `${sanitize(c.addr)}:${sanitize(c.name)}\n`;
  return out;
}

export function errorLine(code: string, message: string): string {
  return `error ${code}: ${sanitize(message)}\n`;
}

/** The last line before the server ends the stream. */
export function byeLine(code: number, reason: string): string {
  return code === 1000 ? 'bye\n' : `bye: ${sanitize(reason)} (${code})\n`;
}
