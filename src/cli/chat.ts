// `switchboard chat`: an interactive terminal chat over WebSocket on the client library. In a terminal: a prompt,
// coloured names, presence notices and a status line while reconnecting. From a pipe: each line is said to the
// room, and at EOF it exits once every line was acknowledged.
import { createInterface, type Interface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError, LOCAL_WS_URL } from '../config.js';
import { chatText, sanitize } from '../transports/tcp/chat.js';
import type { Member, Message, Recovery, SwitchboardError } from '@switchboard/client';
import { cliClient } from './pubsub.js';
import { closeText, StatusLine } from './status-line.js';

const HELP = `Usage: switchboard chat [--url ws://127.0.0.1:8080/ws] [--name N] [--room chat] [--token T]

Joins a chat room over WebSocket. Type a line to say it; /name <new> renames, /who lists who is here, /quit leaves.
With stdin from a pipe each line is sent and the command exits at the end of input (a broker that cannot be
reached: exit 1); in a terminal a status line retries until it can.
  --url     the broker's WebSocket endpoint (env SWITCHBOARD_WS_URL; default ws://127.0.0.1:8080/ws)
  --name    your name (default: the broker's guest-<n>)
  --room    the room topic (default chat)
  --token   auth token (env SWITCHBOARD_TOKEN)
Colours only when stdout is a terminal and NO_COLOR is not set.`;

const PALETTE = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

class ChatScreen {
  /** While offline in a terminal: one line, rewritten in place, with the countdown to the next attempt. */
  readonly status: StatusLine;

  constructor(
    private readonly colour: boolean,
    private readonly rl: Interface | undefined,
  ) {
    this.status = new StatusLine(process.stdout, '* ');
  }

  name(member: { id: string; name: string }): string {
    const clean = sanitize(member.name);
    if (!this.colour) return clean;
    let h = 0;
    for (const ch of member.id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return `\x1b[1;${PALETTE[h % PALETTE.length]}m${clean}\x1b[0m`;
  }

  dim(text: string): string {
    return this.colour ? `\x1b[2m${text}\x1b[0m` : text;
  }

  /** Prints a line above the prompt (or the status line), keeping what the user is typing. */
  line(text: string, stream: NodeJS.WriteStream = process.stdout): void {
    if (!this.rl) return void stream.write(text + '\n');
    process.stdout.write('\r\x1b[2K');
    stream.write(text + '\n');
    this.restore();
  }

  notice(text: string): void {
    this.line(this.dim(`* ${text}`));
  }

  /** A problem the user should know about: on stderr, so it reaches them even when stdout is kept. */
  problem(text: string): void {
    this.line(`switchboard chat: ${text}`, process.stderr);
  }

  /** Online again: the status line gives way to the prompt. */
  online(): void {
    this.status.clear();
    this.restore();
  }

  private restore(): void {
    if (this.status.visible) this.status.redraw();
    else if (this.prompting) this.rl?.prompt(true);
  }

  /** The prompt shows once the room is joined. */
  prompting = false;
}

/** `not recovered (recovered:false, epoch_changed): messages may be missing on chat (epoch_changed)`. */
export function notRecoveredText(v: Recovery, resumed: boolean): string {
  const topics = Object.entries(v.missed).map(([t, why]) => `${t} (${why})`);
  return `not recovered${resumed ? ' after reconnecting' : ''} (recovered:false, ${v.reason}): messages may be missing on ${topics.join(', ') || 'its topics'}`;
}

export async function chatCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { url: { type: 'string' }, name: { type: 'string' }, room: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const url = values.url ?? process.env.SWITCHBOARD_WS_URL ?? LOCAL_WS_URL;
  const room = values.room ?? 'chat';
  const token = values.token ?? process.env.SWITCHBOARD_TOKEN;
  const interactive = process.stdin.isTTY === true;
  const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;

  const client = cliClient({ url, ...(values.name && { name: values.name }), ...(token && { token }) });
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  const screen = new ChatScreen(colour, interactive ? rl : undefined);
  let everConnected = false;
  let outage = false;
  let quitting = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  // One way out, so nothing is said twice on the way (the close that quitting causes is not news).
  const quit = (code: number, why?: string) => {
    if (quitting) return;
    quitting = true;
    screen.status.clear();
    if (why) console.error(`switchboard chat: ${why}`);
    client.close();
    rl.close();
    finish(code);
  };

  client.on('state', (s) => s === 'connecting' && screen.status.connecting());
  client.on('reconnecting', ({ inMs, lastClose }) => {
    const why = lastClose ? closeText(lastClose) : 'no answer';
    if (!interactive) {
      if (!everConnected) return quit(1, `${url}: cannot connect (${why})`);
      if (!outage) screen.problem(`connection lost (${why}); reconnecting…`);
    } else screen.status.offline(lastClose, inMs);
    outage = true;
  });
  client.on('connected', (hello) => {
    screen.online();
    if (outage && everConnected) screen.notice(`reconnected as ${screen.name(hello.client)}`);
    outage = false;
    everConnected = true;
  });
  client.on('closed', (c) => {
    if (c.code !== 1000) quit(1, `${everConnected ? 'disconnected' : `${url}: cannot connect`} (${closeText(c)})`);
  });
  client.on('error', (err) => screen.problem(`${err.code}: ${sanitize(err.message)}`));
  client.on('direct', (d) => screen.line(`${screen.name(d.from)} ${screen.dim('(privately)')}: ${chatText(d.data)}`));
  process.once('SIGINT', () => quit(0));

  const say = (m: Message) => {
    const from = m.from ?? { id: 'server', name: 'server' };
    const time = new Date(m.ts).toTimeString().slice(0, 5);
    screen.line(`${screen.dim(time)} ${screen.name(from)}: ${chatText(m.data)}`);
  };
  const who = (members: Iterable<Member>) =>
    [...members].sort((a, b) => a.name.localeCompare(b.name)).map((m) => `${screen.name(m)}${m.state === 'idle' ? screen.dim(' (idle)') : ''}${m.transport === 'tcp' ? screen.dim(' (tcp)') : ''}`).join(', ');

  // Listeners first, then subscribe: nothing the room sends (or says about the resume) comes before them.
  const sub = interactive ? client.subscription(room, { presence: true }) : undefined;
  if (sub) {
    let joined = false;
    sub.on('message', say);
    const self = (m: Member) => m.id === client.me?.id;
    sub.on('join', (m) => !self(m) && screen.notice(`${screen.name(m)} joined`));
    sub.on('leave', (m) => screen.notice(`${screen.name(m)} left`));
    sub.on('timeout', (m) => screen.notice(`${screen.name(m)} timed out`));
    sub.on('rename', ({ member, old }) => screen.notice(self(member) ? `you are now ${screen.name(member)}` : `${sanitize(old)} is now ${screen.name(member)}`));
    sub.on('notRecovered', (v) => screen.problem(`#${room}: ${notRecoveredText(v, joined)}`));
    client.connect().catch(() => {}); // failures arrive as the events above
    try {
      await sub.subscribe();
      joined = true;
    } catch (err) {
      quit(1, `cannot join #${room}: ${(err as SwitchboardError).message}`);
      return done;
    }
    screen.notice(`joined #${room} as ${screen.name(client.me ?? { id: '?', name: '?' })} · here: ${who(sub.presence.values())}`);
    screen.notice('commands: /name <new>, /who, /quit');
    rl.setPrompt(`#${room}> `);
    screen.prompting = true;
    if (screen.status.visible) screen.status.redraw();
    else rl.prompt();
  } else {
    client.connect().catch(() => {}); // failures arrive as the events above
  }
  // From a pipe, nothing is said before the broker answered: under the name asked for, or not at all (a script must
  // not have its lines go out as guest-<n> when its --name was refused: exit 1).
  const admitted = interactive
    ? Promise.resolve(true)
    : new Promise<boolean>((resolve) =>
        client.once('connected', (hello) => {
          if (values.name === undefined || hello.client.name === values.name) return resolve(true);
          quit(1, `--name '${sanitize(values.name)}' was refused by the broker (it named this connection ${sanitize(hello.client.name)}); nothing was sent`);
          resolve(false);
        }),
      );

  // Lines are handled one at a time, so a pipe is flushed in order and EOF waits for the last ack.
  (async () => {
    for await (const raw of rl) {
      if (!(await admitted)) return; // inside the loop: lines piped meanwhile are kept by its iterator, none lost
      const line = raw.trim();
      if (line === '') {
        if (interactive) rl.prompt();
        continue;
      }
      try {
        if (line === '/quit') return quit(0);
        if (line === '/who') screen.notice(`here: ${who(sub ? sub.presence.values() : await client.whoAll(room))}`);
        else if (line.startsWith('/name ') || line.startsWith('/nick ')) {
          const name = await client.rename(line.slice(6).trim());
          if (!sub) screen.notice(`you are now ${name}`);
        } else if (line.startsWith('/')) screen.notice(`unknown command ${sanitize(line.split(' ')[0]!)}; try /name, /who, /quit`);
        else await client.publish(room, raw);
      } catch (err) {
        const e = err as SwitchboardError;
        if (!interactive) return quit(1, `${e.code}: ${sanitize(e.message)}`);
        screen.problem(`${e.code}: ${sanitize(e.message)}`);
      }
      if (interactive) rl.prompt();
    }
    quit(0); // EOF: every line above was acknowledged
  })().catch((err: unknown) => quit(1, String(err)));
  return done;
}
