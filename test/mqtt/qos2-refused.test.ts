// A 3.1.1 QoS 2 PUBLISH the broker refused (over the rate: the connection is closed, 3.1.1 has no refusal) was never
// published and never answered PUBREC: the client sends it again (DUP) on its resumed session and it must be
// published then, not answered PUBREC as if it had been received (exactly once became never; found by a review helper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, rate: 1, rateBurst: 2 });
});
afterAll(() => broker.close());

const connect = (clientId: string) => ({ cmd: 'connect', clientId, keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 4 }) as Packet;
const publish = (payload: string, messageId: number, dup = false) =>
  ({ cmd: 'publish', topic: 'r7/q2', payload: Buffer.from(payload), qos: 2, messageId, dup, retain: false }) as Packet;

describe('3.1.1 QoS 2 refused by the rate limit', () => {
  it('is published when the client resends it (DUP) after reconnecting', async () => {
    const web = await TestClient.connect(`${broker.url}?topics=r7/q2`);
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect('r7-q2'));
    await a.next('connack');
    a.sendAll([publish('"one"', 1), publish('"two"', 2), publish('"three"', 3)]);
    await a.closed; // the third is over the burst: closed, no PUBREC for it
    const answered = a.packets.filter((p) => p.cmd === 'pubrec').map((p) => (p as { messageId: number }).messageId);
    expect(answered).not.toContain(3);
    const b = await RawMqtt.open(broker.mqttPort);
    b.send(connect('r7-q2'));
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    b.send(publish('"three"', 3, true)); // [MQTT-4.4.0-1]: unacknowledged, sent again
    await b.next('pubrec');
    b.send({ cmd: 'pubrel', messageId: 3 } as Packet);
    await b.next('pubcomp');
    await web.next((f) => f.op === 'msg' && f.data === 'three');
    expect(web.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['one', 'two', 'three']);
    b.socket.destroy();
    web.close();
  });
});
