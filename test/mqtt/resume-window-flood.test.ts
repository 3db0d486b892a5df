// SUBSCRIBEs a client sends while its resumed session's resends go out are served after them (session.ts): they are
// still frames it sent then, counted against its inbound rate (--rate) when they arrive, as every other request is,
// and at most 1,000 wait (reader.ts LATER_MAX): a client that does not acknowledge its resends cannot pile them up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { persistentConnect, RawMqtt, resumeSession, unackedSession } from '../helpers/raw-mqtt.js';
import { until } from '../helpers/waits.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, mailboxSize: 24, rate: 50, rateBurst: 50, rateStrikes: 3 });
});
afterAll(() => broker.close());

const publishes = (c: RawMqtt) => c.packets.filter((p) => p.cmd === 'publish');
const subscribes = (n: number) => Array.from({ length: n }, (_, i) => ({ cmd: 'subscribe', messageId: i + 1, subscriptions: [{ topic: `fl/${i}`, qos: 1 }] }) as Packet);

/** Sends `n` SUBSCRIBEs at once on `c` and resolves once the broker closed it. */
async function floodUntilClosed(c: RawMqtt, n: number, what: string): Promise<void> {
  let closed = false;
  void c.closed.then(() => (closed = true));
  c.sendAll(subscribes(n));
  await until(() => closed, what, 5000);
}

/** A resumed session whose client has its first window of resends (6 of 10) and acknowledges none. */
async function inWindow(on: TestBroker, web: TestClient, clientId: string, topic: string): Promise<RawMqtt> {
  const a = await unackedSession(on.mqttPort, web, clientId, topic, topic, 10);
  a.socket.destroy();
  await until(() => on.hub.isNameFree(clientId), 'the first connection gone');
  const b = await resumeSession(on.mqttPort, clientId);
  await until(() => publishes(b).length === 6, 'the first window of resends');
  return b;
}

describe('the resend window and the inbound rate', () => {
  it('a SUBSCRIBE flood outside the window is closed (the baseline)', async () => {
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(persistentConnect('fl-base'));
    await a.next('connack');
    await floodUntilClosed(a, 500, 'the flooder closed');
  });

  it('a SUBSCRIBE flood while the resends go out (the client never acknowledges them) is closed too, not queued without bound', async () => {
    const web = await TestClient.connect(broker.url);
    const b = await inWindow(broker, web, 'fl-win', 'flw/t');
    await floodUntilClosed(b, 500, 'the flooder closed'); // and never a PUBACK
    web.close();
  });

  it('without a rate limit (--rate 0), requests held for the window are bounded too: past 1,000 the connection is closed', async () => {
    const open = await startTestBroker({ mqttPort: 0, mailboxSize: 24, rate: 0 });
    try {
      const web = await TestClient.connect(open.url);
      const b = await inWindow(open, web, 'fl-open', 'flo/t');
      await floodUntilClosed(b, 1500, 'the client closed'); // and never a PUBACK
      web.close();
    } finally {
      await open.close();
    }
  });
});

describe('a resumed session and a low --rate-burst', () => {
  it('every filter of the session is resumed: the broker\'s own resubscriptions are not charged to the client\'s rate', async () => {
    const tight = await startTestBroker({ mqttPort: 0, rate: 1, rateBurst: 3, rateStrikes: 1000 });
    try {
      const filters = Array.from({ length: 6 }, (_, i) => `tight/${i}`);
      const a = await RawMqtt.open(tight.mqttPort);
      a.send(persistentConnect('tight-1'));
      await a.next('connack');
      // One SUBSCRIBE per filter, paced by the client's own rate (1 a second after a burst of 3): all granted.
      for (const [i, topic] of filters.entries()) {
        await until(async () => {
          a.send({ cmd: 'subscribe', messageId: i + 1, subscriptions: [{ topic, qos: 1 }] } as Packet);
          const ack = (await a.next('suback', 3000)) as { granted: number[] };
          return ack.granted[0] === 1;
        }, `filter ${topic} granted`, 15_000);
      }
      a.socket.destroy();
      await until(() => tight.hub.isNameFree('tight-1'), 'the first connection gone');
      const b = await resumeSession(tight.mqttPort, 'tight-1');
      // Every filter is still the session's: a message on each topic (published over HTTP: no connection's rate) comes.
      for (const topic of filters) {
        const res = await fetch(`${tight.httpUrl}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic, data: topic }) });
        expect(res.status).toBe(200);
      }
      await until(() => filters.every((t) => b.published.includes(JSON.stringify(t))), 'a message through each resumed filter', 10_000);
      b.socket.destroy();
    } finally {
      await tight.close();
    }
  }, 40_000);
});
