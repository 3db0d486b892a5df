// A persistent session that left with as many unacknowledged messages as it may have (--mailbox-size, its in-flight
// bound) must still resume. Its resends used to be queued all at once with the CONNACK and the filters' acks: the
// mailbox overflowed and the client read CONNACK 3 at every try, for as long as the session was kept. Resends now go
// a window at a time (the next as the client acknowledges one), in their original order, and the filters resume after
// the last of them, so nothing newer on a topic overtakes what is resent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { ackPublishes, payloadsOf, RawMqtt, resumeSession, unackedSession } from '../helpers/raw-mqtt.js';

const MAILBOX = 24;
let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, mailboxSize: MAILBOX });
});
afterAll(() => broker.close());

/** Resumes `clientId`'s session (session present), acknowledging every PUBLISH as it comes until `last` has come. */
async function resumeAcking(clientId: string, last: string, what: string): Promise<{ b: RawMqtt; got: Packet[] }> {
  const b = await resumeSession(broker.mqttPort, clientId);
  const got: Packet[] = [];
  await ackPublishes(b, got, () => payloadsOf(got).includes(last), what);
  return { b, got };
}

describe('resuming a session whose unacknowledged messages fill its in-flight bound', () => {
  it('resumes: every unacknowledged message again (DUP, in order) as the client acknowledges, then what came while it was away', async () => {
    const web = await TestClient.connect(broker.url);
    // The client reads but never acknowledges: MAILBOX messages in flight fill its bound, and the next one makes it
    // a slow consumer: the broker cuts it, that one undelivered (its position stays before it).
    const a = await unackedSession(broker.mqttPort, web, 'window-1', 'win/t', 'win/t', MAILBOX);
    const unacked = payloadsOf(a.packets.filter((p) => p.cmd === 'publish'));
    expect(unacked).toEqual(Array.from({ length: MAILBOX }, (_, i) => String(i + 1)));
    await web.request({ op: 'pub', topic: 'win/t', data: 'over' });
    await a.closed;
    // Published while it is away: resumed from the history after the resends.
    await web.request({ op: 'pub', topic: 'win/t', data: 'away' });

    const { b, got } = await resumeAcking('window-1', '"away"', 'the resends, then the message published while away');
    const resent = got.filter((p) => (p as { dup: boolean }).dup);
    // Every unacknowledged message once more, marked DUP, in the order first sent; then the new one, not DUP.
    expect(payloadsOf(resent)).toEqual(unacked);
    expect(payloadsOf(got).slice(resent.length)).toEqual(['"over"', '"away"']);
    b.socket.destroy();
    web.close();
  });

  it('a message on a topic it had no position for, held back as it was cut, comes on resume', async () => {
    const web = await TestClient.connect(broker.url);
    const a = await unackedSession(broker.mqttPort, web, 'window-2', 'win2/#', 'win2/a', MAILBOX);
    // The first message of another topic finds the in-flight bound full: not sent, and the client is cut.
    await web.request({ op: 'pub', topic: 'win2/b', data: 'first of b' });
    await a.closed;
    expect(payloadsOf(a.packets.filter((p) => p.cmd === 'publish'))).not.toContain('"first of b"');

    const { b, got } = await resumeAcking('window-2', '"first of b"', 'the message held back as the session was cut');
    expect(payloadsOf(got).filter((p) => p === '"first of b"')).toHaveLength(1);
    b.socket.destroy();
    web.close();
  });
});
