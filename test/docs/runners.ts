// The runners of the docs' blocks, by the ID in their `<!-- run: ID -->` marker: each runs its blocks against real
// brokers and compares what they show with what really happens. test/docs/{readme,usage,operations}.test.ts run them;
// test/docs.test.ts fails when a block has no marker or a marker no runner. `elsewhere`: the test file that runs
// those blocks itself (it reads them by ID).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { SwitchboardClient } from '@switchboard/client';
import { haveChromium, launchChromium, requireChromium } from '../helpers/chromium.js';
import { startTestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { Bindings } from './transcript.js';
import { LineConversation, replayLines, replayWs, WsConversation } from './sessions.js';
import { localize, ROOT } from './shell.js';
import { broker, cleanup, linesOf, transcript, type Runner } from './context.js';
import { OPERATIONS_RUNNERS } from './runners-ops.js';
import { USAGE_RUNNERS } from './runners-usage.js';
import { MQTT_RUNNERS } from './runners-mqtt.js';


/** The runners of README.md and docs/client.md (run by test/docs/readme.test.ts). */
export const README_RUNNERS: Record<string, Runner> = {
  'readme-quickstart': { elsewhere: 'test/package/install.test.ts' },
  'package-readme': { elsewhere: 'test/package/install.test.ts' },
  'client-install': { elsewhere: 'test/package/install.test.ts' },
  'example:client/tour.ts': { elsewhere: 'test/package/install.test.ts' },
  'example:backend/server.js': { elsewhere: 'test/hooks/example-backend.test.ts' },
  'client-rpc': { elsewhere: 'test/client/rpc.test.ts' },

  'sse-curl': { elsewhere: 'test/sse/docs.test.ts' },
  'integration-server-api': {
    // A dashboard named panel on pump 2's row, then the curl session; the last command closes it with 4100.
    async run([block]) {
      const b = await broker({ apiKey: 'change-me' });
      const panel = await TestClient.connect(`ws://127.0.0.1:${b.port}/ws/rowdata/pump/2?name=panel`);
      cleanup.push(() => panel.ws.close());
      await transcript(block!, b, new Bindings(), { ...process.env, KEY: 'change-me' });
      expect(await panel.closed).toEqual({ code: 4100, reason: 'account closed' });
    },
  },

  'readme-ws-session': {
    async run([block]) {
      const b = await broker();
      const [command, ...rest] = linesOf(block!);
      const url = /^\$ npx wscat -c (\S+)$/.exec(command!)?.[1];
      expect(url, 'the wscat command').toBeDefined();
      const conv = await WsConversation.open(localize(url!, { port: b.port }));
      cleanup.push(() => conv.close());
      await replayWs(rest, conv, new Bindings());
    },
  },

  'readme-nc-session': {
    // The nc session, with the curl block below it run where its [server] line shows.
    async run([session, curl]) {
      const b = await broker();
      const [command, ...rest] = linesOf(session!);
      expect(command).toBe('$ nc localhost 8000');
      const conv = await LineConversation.open(b.tcpPort);
      cleanup.push(() => conv.close());
      const bindings = new Bindings();
      await replayLines(rest, conv, bindings, { '[server]: deploy finished': () => transcript(curl!, b, bindings) });
    },
  },

  'browser-quickstart': {
    // Each page snippet in Chromium, in a page of the broker's own origin; what it logs is what the docs say.
    timeout: 60_000,
    async run(blocks, ctx) {
      if (!requireChromium('docs browser quick start') || !haveChromium) return ctx.skip(`Chromium is missing (apt-get install -y chromium-headless-shell, or chromium)`);
      const browser = await launchChromium();
      cleanup.push(() => browser.close());
      for (const block of blocks) {
        const b = await startTestBroker();
        const html = block.lang === 'html' ? block.text : `<script type="module">\n${block.text}</script>\n`;
        const page = await (await browser.newContext()).newPage();
        const logged: string[] = [];
        const failures: string[] = [];
        page.on('console', (m) => logged.push(m.text()));
        page.on('pageerror', (e) => failures.push(e.message));
        // A document of the broker's own origin (as a page it serves would be), then the snippet as its content.
        await page.goto(`${b.httpUrl}/healthz`);
        await page.setContent(`<!doctype html>\n${html}`);
        const said = /publish\('chat', '([^']+)'\)/.exec(block.text)![1]!;
        const deadline = Date.now() + 15_000;
        while (!logged.includes(`ada: ${said}`) && failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(failures, `${block.file}:${block.line}`).toEqual([]);
        expect(logged, `${block.file}:${block.line}: ${JSON.stringify(logged)}`).toContain(`ada: ${said}`);
        await page.context().close();
        await b.close();
      }
    },
  },

  'example:client/alarms.ts': {
    // Run twice against one broker: the second run prints only what came while it was away (its positions file).
    async run([block]) {
      expect(block!.marker?.kind).toBe('generated');
      const b = await broker({ historySize: 100 });
      const dir = mkdtempSync(join(tmpdir(), 'sb-alarms-'));
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      const writer = new SwitchboardClient({ url: b.url });
      cleanup.push(() => writer.close());
      const start = async (expected: string[], then?: () => Promise<unknown>) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'examples/client/alarms.ts', join(dir, 'alarms.json')], { cwd: ROOT, env: { ...process.env, SWITCHBOARD_WS_URL: b.url } });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
        child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
        const lines = () => out.split('\n').filter(Boolean).length;
        const deadline = Date.now() + 20_000;
        const until = async (n: number) => {
          while (lines() < n && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        };
        if (then) {
          await until(expected.length - 1);
          await then();
        }
        await until(expected.length);
        // The program prints a message, then saves its positions: stopped between the two (a loaded machine), its next
        // start would print that message again. Stopped once the file holds the last message printed.
        const last = out.split('\n').filter(Boolean).at(-1)?.split(' ');
        const saved = () => {
          try {
            return (JSON.parse(readFileSync(join(dir, 'alarms.json'), 'utf8')) as Record<string, { seq: number }>)[last![0]!]?.seq === Number(last![1]);
          } catch {
            return false;
          }
        };
        while (last?.length === 3 && !saved() && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        child.kill();
        await new Promise((r) => child.once('exit', r));
        expect(out.split('\n').filter(Boolean)).toEqual(expected);
      };
      await writer.publish('alarm/boiler/7', { level: 'high' });
      await writer.publish('alarm/pump/2', { level: 'low' });
      await start(['alarm/boiler/7 1 high', 'alarm/pump/2 1 low']);
      await writer.publish('alarm/boiler/7', { level: 'critical' });
      await start(['alarm/boiler/7 2 critical']);
      // The broker restarted (in memory): nothing can be vouched for, and the program says so.
      const port = b.port;
      await b.close();
      const again = await broker({ port });
      const w2 = new SwitchboardClient({ url: again.url });
      cleanup.push(() => w2.close());
      await w2.publish('alarm/boiler/7', { level: 'high' });
      // Not replayed (the broker cannot vouch for it, and says so); what comes next is printed.
      await start(['some alarms were missed (unknown_position): check the panel', 'alarm/boiler/7 2 low'], () => w2.publish('alarm/boiler/7', { level: 'low' }));
    },
  },
};

/** Every runner, by the ID their blocks carry. `elsewhere`: the test file that runs those blocks itself. */
export const RUNNERS: Record<string, Runner> = { ...README_RUNNERS, ...USAGE_RUNNERS, ...OPERATIONS_RUNNERS, ...MQTT_RUNNERS };
