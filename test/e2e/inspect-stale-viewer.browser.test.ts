// A viewer that fell behind (over 1 MiB unsent) "gets the full table once it catches up" (docs/inspect.md): a
// connection that went while it was skipping updates does not stay on its page (the page applied a full table as an
// update, so that row stayed 'online' until a reload: found by a review helper). The congestion is simulated on the
// page's own record of the viewer's socket: a real browser cannot be made to stop reading on cue.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { launchChromium, requireChromium } from '../helpers/chromium.js';
import { TestClient } from '../helpers/client.js';

const haveChromium = requireChromium('inspect-stale-viewer.browser.test');
let browser: Browser;
let broker: TestBroker;
beforeAll(async () => {
  if (!haveChromium) return;
  broker = await startTestBroker();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await broker?.close();
});

it.skipIf(!haveChromium)('a row removed while the viewer was congested is gone after its catch-up', async () => {
  const page = await browser.newPage();
  await page.goto(`${broker.httpUrl}/inspect`);
  await page.locator('#status.live').waitFor({ timeout: 10_000 });
  const client = await TestClient.connect(`${broker.url}?name=ghost`);
  const id = client.hello.client.id as string;
  const row = page.locator(`tr[data-id="${id}"]`);
  await row.locator('td.state', { hasText: 'online' }).waitFor({ timeout: 10_000 });

  // The viewer's socket is congested (as if the browser stopped reading): the page skips it.
  const viewers = (broker.observability.page as any).viewers as Map<any, { stale: boolean }>;
  expect(viewers.size).toBe(1);
  const [ws, viewer] = [...viewers][0]!;
  let congested = true;
  Object.defineProperty(ws, 'bufferedAmount', { configurable: true, get: () => (congested ? 2 * 1024 * 1024 : 0) });
  client.send({ op: 'quit' });
  await client.closed;
  // Closed, lingered 2 s, removed: all while the viewer skipped updates.
  await expect.poll(() => [...broker.observability.page.table.ids()].includes(id), { timeout: 5000 }).toBe(false);
  expect(viewer.stale).toBe(true);
  congested = false;
  await expect.poll(() => viewer.stale, { timeout: 2000 }).toBe(false); // the full table was sent
  await row.waitFor({ state: 'detached', timeout: 5000 }); // it stayed, 'online', for ever
});
