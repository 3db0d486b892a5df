// Chat lines: how a classic TCP chat server's text protocol reads and writes (docs/protocol.md, "TCP line protocol").
// Pure: plain-text commands → protocol frames, and server frames → the lines a `nc` user sees.
import type { ClientInfo, ServerFrame } from '../../protocol/frames.js';
import { CLOSE } from '../../protocol/errors.js';

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

/** The text of a chat message: strings as they are, anything else as compact JSON (`json` when already encoded). */
export function chatText(data: unknown, json?: string): string {
  return sanitize(typeof data === 'string' ? data : (json ?? JSON.stringify(data) ?? 'null'));
}

/** A client as a room line may show it: `addr` only where docs/protocol.md allows it (see shownInRoom). */
export type RoomClient = Pick<ClientInfo, 'id' | 'name'> & { addr?: string | undefined };

/**
 * What the brackets of a room line show: the address (the classic chat room, `--room-addresses show`) where the
 * room may show one, else the client id; or always the id (`hide`). The room is the documented exception to "no
 * addresses for non-admins", and only for its TCP line clients.
 */
export type RoomLabel = (client: Pick<RoomClient, 'id' | 'addr'>) => string;
// An empty address: a publisher the room does not show by address (engine/rules.ts publisherOf).
export const showAddress: RoomLabel = (c) => c.addr || c.id;
export const showId: RoomLabel = (c) => c.id;

/** A sender or presence subject as the room may show it: a TCP line client with its address, anyone else by id. */
export function shownInRoom(c: ClientInfo | undefined): RoomClient | undefined {
  if (c === undefined) return undefined;
  return c.transport === 'tcp' ? c : { id: c.id, name: c.name };
}

/** `[addr]name: text` — the chat room line. Server-side publishes (no sender) read `[server]: text`. */
export function messageLine(sender: RoomClient | undefined, data: unknown, json?: string, label: RoomLabel = showAddress): string {
  return sender ? `[${sanitize(label(sender))}]${sanitize(sender.name)}: ${chatText(data, json)}\n` : `[server]: ${chatText(data, json)}\n`;
}

const PRESENCE_WORD: Partial<Record<string, string>> = { join: 'login', leave: 'logout', timeout: 'time out' };
// A classic chat room says nothing when someone stops typing for a while.
const SILENT_IN_ROOM = new Set(['idle', 'active']);

/** A room presence event as a chat room line; renames read `[addr]old: rename to new`. `subject` carries the address. */
export function presenceLine(frame: Extract<ServerFrame, { op: 'event' }>, subject: Pick<RoomClient, 'id' | 'addr'> | undefined, label: RoomLabel = showAddress): string {
  const { client } = frame;
  const tag = sanitize(subject ? label(subject) : client.id);
  if (SILENT_IN_ROOM.has(frame.event)) return '';
  if (frame.event === 'rename') return `[${tag}]${sanitize(frame.old ?? client.name)}: rename to ${sanitize(client.name)}\n`;
  return `[${tag}]${sanitize(client.name)}: ${PRESENCE_WORD[frame.event] ?? frame.event}\n`;
}

/** The greeting sent instead of `hello`: who you are and how to talk; `quietOver`: the room is too big to announce logins. */
export function greetingLines(hello: Extract<ServerFrame, { op: 'hello' }>, room: string, quietOver?: number): string {
  const { client, server } = hello;
  const quiet = quietOver === undefined ? '' : ` Over ${quietOver} people here: logins and logouts are not announced.`;
  const [name, addr] = [sanitize(client.name), sanitize(client.addr)];
  return (
    `I am here: ${sanitize(server.name)} ${server.version}, room '${sanitize(room)}'. You are ${name}${client.name === client.addr ? '' : ` from ${addr}`} (id ${client.id}).${quiet}\n` +
    `Type a line to say it to the room. Commands: who | rename|<new name> | quit. ` +
    `A line starting with { is a JSON frame of the WebSocket protocol, e.g. {"op":"sub","topic":"alarm/#"}.\n`
  );
}

/**
 * `user list:` then one `addr:name` line per client of the room (the classic chat format; `id:name` for those whose
 * address it may not show); `next`: a cursor for the rest of a long list of `room`.
 */
export function whoLines(clients: readonly RoomClient[], label: RoomLabel = showAddress, next?: string, room?: string): string {
  let out = 'user list:\n';
  for (const c of clients) out += `${sanitize(label(c))}:${sanitize(c.name)}\n`;
  if (next !== undefined) out += `(more: send {"op":"who",${room === undefined ? '' : `"topic":${sanitize(JSON.stringify(room))},`}"cursor":"${next}"})\n`;
  return out;
}

export function errorLine(code: string, message: string): string {
  return `error ${code}: ${sanitize(message)}\n`;
}

/** The last line before the server ends the stream. */
export function byeLine(code: number, reason: string): string {
  return code === CLOSE.normal ? 'bye\n' : `bye: ${sanitize(reason)} (${code})\n`;
}
