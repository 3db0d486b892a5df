// The chat page in a real browser: two people join, chat, rename and see each other (and a TCP user) in the
// who list; the page reconnects and resubscribes when the broker restarts. Screenshot: __screenshots__/chat.png.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { launchChromium, requireChromium, screenshotPath } from '../helpers/chromium.js';
import { LineClient } from '../helpers/line-client.js';

const haveChromium = requireChromium('chat.browser.test');

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

/** A fresh browser profile (own localStorage) on the chat page, joined as `name`. */
async function join(name: string, url = broker.httpUrl): Promise<{ page: Page; failures: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const failures: string[] = [];
  page.on('pageerror', (err) => failures.push(err.message));
  await page.goto(url);
  await page.locator('#name-dialog[open]').waitFor();
  await page.fill('#name-input', name);
  await page.click('#name-submit');
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 10_000 });
  await page.locator('#me-name', { hasText: name }).waitFor();
  // Subscribed and listed: the page says so last.
  await page.locator('.notice', { hasText: `You joined #chat as ${name}.` }).waitFor();
  return { page, failures };
}

const member = (page: Page, name: string) => page.locator('#members li .name', { hasText: new RegExp(`^${name}$`) });

describe('chat page', () => {
  it.skipIf(!haveChromium)('connects when served at http://localhost:PORT/ and http://127.0.0.1:PORT/ (the origin check knows both)', { timeout: 30_000 }, async () => {
    for (const [name, url] of [['viaLocalhost', `http://localhost:${broker.port}/`], ['viaLoopback', `http://127.0.0.1:${broker.port}/`]] as const) {
      const { page, failures } = await join(name, url);
      expect(failures).toEqual([]);
      await page.context().close();
    }
  });

  it.skipIf(!haveChromium)('two people chat, rename and see each other and a terminal user in the who list', { timeout: 60_000 }, async () => {
    const res = await fetch(`${broker.httpUrl}/`);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).toContain('<meta name="switchboard-room" content="chat">');
    expect((await fetch(`${broker.httpUrl}/chat.js`)).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${broker.httpUrl}/chat.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');

    const alice = await join('alice');
    const bob = await join('bob');
    await member(alice.page, 'bob').waitFor();
    await member(bob.page, 'alice').waitFor();
    await alice.page.locator('.notice', { hasText: 'bob joined.' }).waitFor();

    await alice.page.fill('#message-input', 'hi bob, welcome to the switchboard');
    await alice.page.press('#message-input', 'Enter');
    await bob.page.locator('.message .text', { hasText: 'hi bob, welcome to the switchboard' }).waitFor();
    // Alice sees her own message, marked as hers.
    await alice.page.locator('.message.mine .text', { hasText: 'hi bob, welcome' }).waitFor();

    await bob.page.fill('#message-input', '/name robert');
    await bob.page.press('#message-input', 'Enter');
    await bob.page.locator('#me-name', { hasText: 'robert' }).waitFor();
    await member(alice.page, 'robert').waitFor();
    await alice.page.locator('.notice', { hasText: 'bob is now known as robert.' }).waitFor();
    expect(await member(alice.page, 'bob').count()).toBe(0);

    // Renaming to a taken name shows the error in the dialog.
    await bob.page.click('#rename');
    await bob.page.fill('#name-input', 'alice');
    await bob.page.click('#name-submit');
    await bob.page.locator('#name-error', { hasText: "name 'alice' is taken" }).waitFor();
    await bob.page.click('#name-cancel');

    // A terminal user shows up with a tcp badge and chats both ways.
    const term = await LineClient.connect(broker.tcpPort);
    term.send('rename|terminal-tom');
    await term.next('rename ok');
    await alice.page.locator('#members li', { hasText: 'terminal-tom' }).locator('.badge.tcp').waitFor();
    term.send('hello from nc');
    await alice.page.locator('.message .text', { hasText: 'hello from nc' }).waitFor();
    await robertSays(bob.page, 'héllo tom — ça va?');
    await term.next((l) => l.endsWith(']robert: héllo tom — ça va?'));

    await alice.page.screenshot({ path: screenshotPath('chat.png') });

    term.send('quit');
    await alice.page.locator('.notice', { hasText: 'terminal-tom left.' }).waitFor();
    await expect(member(alice.page, 'terminal-tom').count()).resolves.toBe(0);
    expect([...alice.failures, ...bob.failures]).toEqual([]);
    await alice.page.context().close();
    await bob.page.context().close();
  });

  it.skipIf(!haveChromium)('reconnects after a broker restart, keeps the name and chats again', { timeout: 60_000 }, async () => {
    const first = await startTestBroker();
    const port = first.port;
    const carol = await join('carol', first.httpUrl);
    await first.close();
    await carol.page.locator('#status[data-state="offline"]').waitFor({ timeout: 10_000 });

    // Same port, new process state: the page finds it again on its own.
    const second = await startTestBroker({ port });
    try {
      await carol.page.locator('#status[data-state="online"]').waitFor({ timeout: 15_000 });
      await carol.page.locator('.notice', { hasText: 'Reconnected.' }).waitFor();
      await carol.page.locator('#me-name', { hasText: 'carol' }).waitFor();
      const dave = await join('dave', second.httpUrl);
      await member(carol.page, 'dave').waitFor();
      await dave.page.fill('#message-input', 'are you back?');
      await dave.page.press('#message-input', 'Enter');
      await carol.page.locator('.message .text', { hasText: 'are you back?' }).waitFor();
      expect(carol.failures).toEqual([]);
      await dave.page.context().close();
    } finally {
      await carol.page.context().close();
      await second.close();
    }
  });
});

async function robertSays(page: Page, text: string): Promise<void> {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}
