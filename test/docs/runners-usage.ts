// Runners of docs/usage.md: the nc session with a browser user and a script acting in it, the HTTP API's answers,
// the push recipe (a dashboard, a publish, a resume, a restart), and the pub/sub commands.
import { expect } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { TestClient } from '../helpers/client.js';
import { broker, cleanup, linesOf, transcript, type Runner } from './context.js';
import { LineConversation, replayLines, replayWs, WsConversation } from './sessions.js';
import { commandLines, localize, Service, sh, switchboardShim } from './shell.js';
import { Bindings, expectLines } from './transcript.js';

async function api(port: number, topic: string, data: unknown, key?: string): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key && { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ topic, data }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

export const USAGE_RUNNERS: Record<string, Runner> = {
  'usage-nc-session': {
    // alice is on the chat page (a WebSocket client in the room with presence), and a script publishes an alarm.
    async run([block]) {
      const b = await broker();
      const [command, ...rest] = linesOf(block!);
      expect(command).toBe('$ nc localhost 8000');
      const conv = await LineConversation.open(b.tcpPort);
      cleanup.push(() => conv.close());
      let alice: TestClient | undefined;
      await replayLines(rest, conv, new Bindings(), {
        'alice: login': async () => {
          alice = await TestClient.connect(`${b.url}?name=alice`);
          cleanup.push(() => alice!.close());
          await alice.request({ op: 'sub', topic: 'chat', presence: true });
        },
        'alice: hi from the browser': async () => void (await alice!.request({ op: 'pub', topic: 'chat', data: 'hi from the browser' })),
        '"topic":"alarm/boiler/7"': async () => void (await api(b.port, 'alarm/boiler/7', { level: 'high' })),
      });
    },
  },

  'usage-bad-topic': {
    async run([block]) {
      await transcript(block!, await broker());
    },
  },

  'usage-push-recipe': {
    // The recipe's commands with a dashboard on /ws/rowdata/pump/42, then its resume, then its resume after a restart.
    async run([recipe, resume, restarted]) {
      const key = 'k3y-of-the-recipe';
      const b = await broker({ apiKey: key });
      const shim = switchboardShim();
      cleanup.push(shim.remove);
      const env = { ...process.env, PATH: `${shim.dir}:${process.env.PATH}`, SWITCHBOARD_API_KEY: key, SWITCHBOARD_WS_URL: b.url };
      const dashboard = await TestClient.connect(`ws://127.0.0.1:${b.port}/ws/rowdata/pump/42`);
      cleanup.push(() => dashboard.close());
      const bindings = new Bindings();
      const commands = commandLines(recipe!.text);
      expect(commands).toEqual([
        "switchboard sub 'alarm/#'",
        `curl -s -X POST localhost:8080/api/publish -H "Authorization: Bearer $SWITCHBOARD_API_KEY" -d '{"topic":"rowdata/pump/42","data":{"rpm":1450,"temp":61.5}}'`,
      ]);
      const alarms = new Service(commands[0]!, env);
      cleanup.push(() => alarms.stop());
      await alarms.until(() => b.hub.inspect.holders('alarm/#').length > 0, 'the alarm subscription');
      const r = await sh(localize(commands[1]!, b), env);
      const answer = /^# → (\{.*?\})/m.exec(recipe!.text)![1]!;
      expectLines([answer], [r.stdout], bindings, 'the publish');
      // "Each dashboard receives" the message, as the prose under the block shows it.
      const received = /Each dashboard receives\s+`(\{"op":"msg"[^`]*\})`/.exec(await readUsage())![1]!;
      const frame = await dashboard.next((f) => f.op === 'msg');
      expectLines([received], [JSON.stringify(frame)], bindings, 'the dashboard');

      // Later the dashboard reconnects with the position of that message; one more came meanwhile.
      const next = JSON.parse(/^< (\{"op":"msg".*\})$/m.exec(resume!.text)![1]!) as { data: unknown };
      await api(b.port, 'rowdata/pump/42', next.data, key);
      const back = await WsConversation.open(b.url);
      cleanup.push(() => back.close());
      expect(JSON.parse(await back.next('hello')).op).toBe('hello'); // the excerpt starts after it
      await replayWs(linesOf(resume!), back, bindings);

      // The broker restarted in memory in between: it cannot vouch for anything.
      const port = b.port;
      await b.close();
      const again = await broker({ port, apiKey: key });
      const after = await WsConversation.open(again.url);
      cleanup.push(() => after.close());
      expect(JSON.parse(await after.next('hello')).op).toBe('hello');
      await replayWs([linesOf(resume!)[0]!, ...linesOf(restarted!)], after, bindings);
    },
  },

  'usage-pub-sub': {
    // Line 2 talks to another broker ("broker:8080", with an API key); the others to the local one.
    async run([block]) {
      const local = await broker();
      const remote = await broker({ apiKey: 'KEY' });
      const shim = switchboardShim();
      cleanup.push(shim.remove);
      const env = { ...process.env, PATH: `${shim.dir}:${process.env.PATH}`, SWITCHBOARD_URL: local.httpUrl, SWITCHBOARD_WS_URL: local.url };
      const [pub, remotePub, sub, replay] = commandLines(block!.text);
      const first = await sh(pub!, env);
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ seq: 1, delivered: 0 });
      const second = await sh(remotePub!.replace('http://broker:8080', remote.httpUrl), env);
      expect(second.code, second.stderr).toBe(0);
      expect(JSON.parse(second.stdout)).toMatchObject({ seq: 1 });

      const listener = new Service(sub!, env);
      cleanup.push(() => listener.stop());
      await listener.until(() => local.hub.inspect.holders('rowdata/+/42').length > 0, 'the subscriptions');
      const w = new SwitchboardClient({ url: local.url });
      cleanup.push(() => w.close());
      await w.publish('alarm/boiler/7', { level: 'low' });
      for (let i = 1; i <= 10; i++) await w.publish('rowdata/pump/42', { rpm: 1400 + i });
      await listener.until(() => listener.stdout.split('\n').filter(Boolean).length === 11, 'eleven lines');
      expect(listener.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).topic)).toEqual(['alarm/boiler/7', ...Array(10).fill('rowdata/pump/42')]);

      const history = await sh(replay!, env);
      expect(history.code, history.stderr).toBe(0);
      expect(history.stdout.trim().split('\n').map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    },
  },
};

async function readUsage(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(new URL('../../docs/usage.md', import.meta.url), 'utf8');
}
