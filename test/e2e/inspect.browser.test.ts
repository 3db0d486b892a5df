// The live actors page in a real browser: a client appears, goes idle, is highlighted in the chart, and disappears on quit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import WebSocket from 'ws';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { launchChromium, requireChromium, screenshotPath } from '../helpers/chromium.js';
import { TestClient } from '../helpers/client.js';

const haveChromium = requireChromium('inspect.browser.test');

let browser: Browser;
let broker: TestBroker;

beforeAll(async () => {
  if (!haveChromium) return;
  broker = await startTestBroker({ idleMs: 600, idleGraceMs: 60_000 });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await broker?.close();
});

describe('GET /inspect', () => {
  it.skipIf(!haveChromium)('shows a new client, its state turning idle in the table and the chart, and drops it when it quits', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
    const failures: string[] = [];
    page.on('pageerror', (err) => failures.push(err.message));
    await page.goto(`${broker.httpUrl}/inspect`);
    await page.locator('#status.live').waitFor({ timeout: 10_000 });
    await page.locator('tr[data-id="supervisor"] td.state', { hasText: 'running' }).waitFor();

    const other = await TestClient.connect(`${broker.url}?name=bystander`);
    expect(await other.request({ op: 'sub', topic: 'news/#' })).toMatchObject({ op: 'ack' });
    const client = await TestClient.connect(`${broker.url}?name=watched`);
    const id = client.hello.client.id as string;
    expect(await client.request({ op: 'sub', topic: 'rooms/lobby' })).toMatchObject({ op: 'ack' });
    const row = page.locator(`tr[data-id="${id}"]`);
    await row.locator('td.name', { hasText: 'watched' }).waitFor({ timeout: 10_000 });
    await expect.poll(() => row.locator('td.subs').textContent(), { timeout: 10_000 }).toContain('rooms/lobby');

    // No frames for idleMs: the connection machine moves online → idle, and the page says so.
    await row.locator('td.state', { hasText: 'idle' }).waitFor({ timeout: 10_000 });
    await row.click();
    await page.locator('#detail [data-state-id="connection.open.activity.idle"].active').waitFor({ timeout: 10_000 });
    expect(await page.locator('#detail [data-state-id="connection.open.activity.online"]').getAttribute('class')).not.toContain('active');
    await page.locator('#recent li.transition', { hasText: 'online → idle on after nextCheck' }).waitFor();
    await page.screenshot({ path: screenshotPath('inspect.png'), fullPage: false });

    // A frame wakes it up again.
    expect(await client.request({ op: 'ping' })).toMatchObject({ op: 'pong' });
    await row.locator('td.state', { hasText: 'online' }).waitFor({ timeout: 10_000 });

    client.send({ op: 'quit' });
    await client.closed;
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('#detail.gone').waitFor({ timeout: 10_000 });
    // The other client is untouched.
    expect(await page.locator(`tr[data-id="${other.hello.client.id}"] td.state`).textContent()).toMatch(/online|idle/);
    other.close();
    expect(failures).toEqual([]);
    await page.close();
  });

  // 200 keeps `npm test` short; INSPECT_PAGE_LOAD=1000 (or more) runs the same check at scale (about 30 s on 2 shared cores).
  const load = Number(process.env.INSPECT_PAGE_LOAD ?? 200);
  it.skipIf(!haveChromium)(`keeps up with ${load} connections arriving and leaving at once`, { timeout: 20_000 + load * 40 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
    const failures: string[] = [];
    page.on('pageerror', (err) => failures.push(err.message));
    await page.goto(`${broker.httpUrl}/inspect`);
    await page.locator('#status.live').waitFor({ timeout: 10_000 });
    // Counted by their names: an actor of an earlier test may still be shown, or leave, meanwhile.
    const loadRows = page.locator('#actors tbody tr', { has: page.locator('td.name', { hasText: /^load-\d+$/ }) });
    const actors = async (): Promise<number> => Number(/(\d+) actors/.exec((await page.locator('#summary').textContent()) ?? '')?.[1] ?? -1);
    const sockets: WebSocket[] = [];
    for (let i = 0; i < load; i += 100) {
      sockets.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(100, load - i) }, (_, k) => {
            const ws = new WebSocket(`${broker.url}?name=load-${i + k}&topics=load/${k % 10}`);
            return new Promise<WebSocket>((resolve, reject) => {
              ws.once('message', () => resolve(ws)); // hello
              ws.once('error', reject);
            });
          }),
        )),
      );
    }
    await expect.poll(() => loadRows.count(), { timeout: 15_000 }).toBe(load);
    await page.locator('tr[data-id] td.name', { hasText: `load-${load - 1}` }).waitFor();
    // The summary counts every actor shown, the load's among them.
    await expect.poll(async () => (await actors()) === (await page.locator('#actors tbody tr').count()) && (await actors()) >= load).toBe(true);
    await page.screenshot({ path: screenshotPath(`inspect-${load}.png`) });
    for (const ws of sockets) ws.close();
    await expect.poll(() => loadRows.count(), { timeout: 15_000 }).toBe(0);
    expect(failures).toEqual([]);
    await page.close();
  });
});
