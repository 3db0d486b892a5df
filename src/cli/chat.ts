// `switchboard chat`: an interactive terminal chat over WebSocket on the client library. In a terminal: a prompt,
// coloured names, presence notices and a status line while reconnecting. From a pipe: each line is said to the
// room, and at EOF it exits once every line was acknowledged.
import { createInterface, type Interface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config.js';
import { chatText, sanitize } from '../transports/tcp/chat.js';
import { SwitchboardClient } from '../client/client.js';
import type { SwitchboardError } from '../client/errors.js';
import type { Message, Subscription } from '../client/subscription.js';
import type { Member } from '../client/wire.js';

const HELP = `Usage: switchboard chat [--url ws://127.0.0.1:8080/ws] [--name N] [--room chat] [--token T]

Joins a chat room over WebSocket. Type a line to say it; /name <new> renames, /who lists who is here, /quit leaves.
With stdin from a pipe each line is sent and the command exits at the end of input.
  --url     the broker's WebSocket endpoint (env SWITCHBOARD_WS_URL)
  --name    your name (default: the broker's guest-<n>)
  --room    the room topic (default chat)
  --token   auth token (env SWITCHBOARD_TOKEN)
Colours only when stdout is a terminal and NO_COLOR is not set.`;

const PALETTE = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

class ChatScreen {
  constructor(
    private readonly colour: boolean,
    private readonly rl: Interface | undefined,
  ) {}

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

  /** Prints a line above the prompt, keeping what the user is typing. */
  line(text: string): void {
    if (!this.rl) return void process.stdout.write(text + '\n');
    process.stdout.write('\r\x1b[2K' + text + '\n');
    this.rl.prompt(true);
  }

  notice(text: string): void {
    this.line(this.dim(`* ${text}`));
  }
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
  const url = values.url ?? process.env.SWITCHBOARD_WS_URL ?? 'ws://127.0.0.1:8080/ws';
  const room = values.room ?? 'chat';
  const token = values.token ?? process.env.SWITCHBOARD_TOKEN;
  const interactive = process.stdin.isTTY === true;
  const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;

  const client = new SwitchboardClient({ url, ...(values.name && { name: values.name }), ...(token && { token }), connect: false });
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  const screen = new ChatScreen(colour, interactive ? rl : undefined);
  let everConnected = false;
  let outage = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const quit = (code: number) => {
    client.close();
    rl.close();
    finish(code);
  };

  client.on('reconnecting', ({ inMs, lastClose }) => {
    if (!everConnected && !interactive) {
      console.error(`switchboard chat: ${url}: cannot connect (${lastClose?.reason || lastClose?.code || 'no answer'})`);
      return quit(1);
    }
    outage = true;
    const why = lastClose ? `${lastClose.status ? `HTTP ${lastClose.status}` : lastClose.code}${lastClose.reason ? ` ${lastClose.reason}` : ''}` : '';
    screen.notice(`offline (${why}) · reconnecting in ${(inMs / 1000).toFixed(1)}s…`);
  });
  client.on('connected', (hello) => {
    if (outage) screen.notice(`reconnected as ${screen.name(hello.client)}`);
    outage = false;
    everConnected = true;
  });
  client.on('closed', (c) => {
    if (c && c.code !== 1000) {
      console.error(`switchboard chat: disconnected (${c.status ? `HTTP ${c.status}` : c.code}${c.reason ? ` ${c.reason}` : ''})`);
      quit(1);
    }
  });
  client.on('error', (err) => screen.notice(`${err.code}: ${sanitize(err.message)}`));
  client.on('direct', (d) => screen.line(`${screen.name(d.from)} ${screen.dim('(privately)')}: ${chatText(d.data)}`));
  process.once('SIGINT', () => quit(0));

  const say = (m: Message) => {
    const from = m.from ?? { id: 'server', name: 'server' };
    const time = new Date(m.ts).toTimeString().slice(0, 5);
    screen.line(`${screen.dim(time)} ${screen.name(from)}: ${chatText(m.data)}`);
  };
  const who = (members: Iterable<Member>) =>
    [...members].sort((a, b) => a.name.localeCompare(b.name)).map((m) => `${screen.name(m)}${m.state === 'idle' ? screen.dim(' (idle)') : ''}${m.transport === 'tcp' ? screen.dim(' (tcp)') : ''}`).join(', ');

  let sub: Subscription | undefined;
  client.connect().catch(() => {}); // failures arrive as the events above
  if (interactive) {
    try {
      sub = await client.subscribe(room, { presence: true });
    } catch (err) {
      console.error(`switchboard chat: cannot join #${room}: ${(err as SwitchboardError).message}`);
      quit(1);
      return done;
    }
    sub.on('message', say);
    const self = (m: Member) => m.id === client.me?.id;
    sub.on('join', (m) => !self(m) && screen.notice(`${screen.name(m)} joined`));
    sub.on('leave', (m) => screen.notice(`${screen.name(m)} left`));
    sub.on('timeout', (m) => screen.notice(`${screen.name(m)} timed out`));
    sub.on('rename', ({ member, old }) => screen.notice(self(member) ? `you are now ${screen.name(member)}` : `${sanitize(old)} is now ${screen.name(member)}`));
    sub.on('notRecovered', () => screen.notice('some messages were missed while offline'));
    screen.notice(`joined #${room} as ${screen.name(client.me ?? { id: '?', name: '?' })} · here: ${who(sub.presence.values())}`);
    screen.notice('commands: /name <new>, /who, /quit');
    rl.setPrompt(`#${room}> `);
    rl.prompt();
  }

  // Lines are handled one at a time, so a pipe is flushed in order and EOF waits for the last ack.
  (async () => {
    for await (const raw of rl) {
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
        screen.notice(`${e.code}: ${sanitize(e.message)}`);
        if (!interactive) return quit(1);
      }
      if (interactive) rl.prompt();
    }
    quit(0); // EOF: every line above was acknowledged
  })().catch((err: unknown) => {
    console.error('switchboard chat:', err);
    quit(1);
  });
  return done;
}
