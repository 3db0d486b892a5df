// The chat page behind a proxy that blocks WebSocket upgrades, in Chromium: the client library falls back to
// Server-Sent Events by itself, chats with a WebSocket user, and after its stream is cut resumes with every message
// once, in order. With sseFallback: false it stays on WebSocket (and offline).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { launchChromium, requireChromium } from '../helpers/chromium.js';
import { freePort } from '../helpers/ports.js';
import { UpgradeBlockingProxy } from '../helpers/upgrade-blocking-proxy.js';
import { until } from '../helpers/waits.js';

const haveChromium = requireChromium('fallback.browser.test');

let browser: Browser;
let broker: TestBroker;
let proxy: UpgradeBlockingProxy;
let behindProxy: string;

beforeAll(async () => {
  if (!haveChromium) return;
  const port = await freePort();
  // The proxy's address is how browsers reach this broker (--public-host): its pages may connect.
  broker = await startTestBroker({ publicHost: `127.0.0.1:${port}` });
  proxy = await UpgradeBlockingProxy.start(port, broker.port);
  behindProxy = `http://127.0.0.1:${port}/`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await broker?.close();
});

async function join(name: string, url: string): Promise<{ page: Page; failures: string[] }> {
  const page = await (await browser.newContext()).newPage();
  const failures: string[] = [];
  page.on('pageerror', (err) => failures.push(err.message));
  await page.goto(url);
  await page.locator('#name-dialog[open]').waitFor();
  await page.fill('#name-input', name);
  await page.click('#name-submit');
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 15_000 });
  await page.locator('.notice', { hasText: `You joined #chat as ${name}.` }).waitFor({ timeout: 10_000 });
  return { page, failures };
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

const transports = async () => {
  const body = (await (await fetch(`${broker.httpUrl}/api/clients`)).json()) as { clients: { name: string; transport: string }[] };
  return Object.fromEntries(body.clients.map((c) => [c.name, c.transport]));
};

describe('client library: SSE fallback', () => {
  it.skipIf(!haveChromium)('the chat page behind an upgrade-blocking proxy chats over SSE and resumes every message once after a cut', { timeout: 90_000 }, async () => {
    const alice = await join('alice', behindProxy);
    const bob = await join('bob', broker.httpUrl);
    expect(proxy.upgradesRefused).toBeGreaterThan(0);
    expect(await transports()).toMatchObject({ alice: 'sse', bob: 'ws' });

    await alice.page.locator('#members li', { hasText: 'bob' }).waitFor();
    await say(alice.page, 'hello over event stream');
    await bob.page.locator('.message .text', { hasText: 'hello over event stream' }).waitFor();
    await say(bob.page, 'hello over websocket');
    await alice.page.locator('.message .text', { hasText: 'hello over websocket' }).waitFor();

    // The stream is cut; bob talks meanwhile; alice's page comes back over SSE and shows each message once, in order.
    proxy.cutAll();
    await alice.page.locator('#status:not([data-state="online"])').waitFor({ timeout: 10_000 });
    for (let i = 1; i <= 5; i++) await say(bob.page, `while away ${i}`);
    await alice.page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });
    await alice.page.locator('.message .text', { hasText: 'while away 5' }).waitFor({ timeout: 10_000 });
    const texts = await alice.page.locator('.message .text').allTextContents();
    const away = texts.filter((t) => t.startsWith('while away'));
    expect(away).toEqual(['while away 1', 'while away 2', 'while away 3', 'while away 4', 'while away 5']);
    expect(texts.filter((t) => t === 'hello over websocket')).toHaveLength(1);
    expect(await transports()).toMatchObject({ alice: 'sse', bob: 'ws' });
    expect([...alice.failures, ...bob.failures]).toEqual([]);
    await alice.page.context().close();
    await bob.page.context().close();
  });

  it.skipIf(!haveChromium)('sseFallback: false keeps to WebSocket: behind the proxy it never connects', { timeout: 30_000 }, async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${behindProxy}healthz`);
    const refusedBefore = proxy.upgradesRefused;
    // A module script of the page (vitest would rewrite an import() passed to evaluate).
    await page.addScriptTag({
      type: 'module',
      content: `
        import { SwitchboardClient } from '/client.js';
        const seen = [];
        const client = new SwitchboardClient({ url: '/ws', sseFallback: false, backoff: { minMs: 100, maxMs: 200, factor: 1 } });
        client.on('state', (s) => seen.push(s));
        window.probe = { seen, client };
      `,
    });
    // Three WebSocket dials refused: with the fallback on, the dial after a refused one is SSE (which connects, and
    // there is no next dial), so the second and third show it was not tried. Or connected after all: the test fails.
    const connected = () => page.evaluate(() => (globalThis as unknown as { probe?: { seen: string[] } }).probe?.seen.includes('connected') === true);
    await until(async () => proxy.upgradesRefused - refusedBefore >= 3 || (await connected()), 'three WebSocket dials refused');
    const states = (await page.evaluate(() => {
      const { seen, client } = (globalThis as unknown as { probe: { seen: string[]; client: { transport: string; close(): void } } }).probe;
      client.close();
      return { seen, transport: client.transport };
    })) as { seen: string[]; transport: string };
    expect(states.seen).not.toContain('connected');
    expect(states.transport).toBe('ws');
    await page.context().close();
  });
});
