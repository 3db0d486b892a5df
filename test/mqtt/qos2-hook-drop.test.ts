// A QoS 2 PUBLISH still waiting for the application backend's publish hook when its connection drops was never
// published, yet the session kept its packet id as received: the client's resend (DUP) on the resumed session was
// answered PUBREC and the message was lost (found by a review helper). The ids of requests never served are not
// received: the resend is published, once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { startBackend, type BackendProcess } from '../helpers/backend-process.js';
import { until } from '../helpers/waits.js';

let backend: BackendProcess;
let broker: TestBroker;
beforeAll(async () => {
  backend = await startBackend('test/helpers/hook-backend.mjs');
  broker = await startTestBroker({ mqttPort: 0, hookUrl: backend.url, hooks: 'publish', hookTimeoutMs: 5000 });
});
afterAll(async () => {
  await broker?.close();
  await backend?.stop();
});

const connect = { cmd: 'connect', clientId: 'q2-hook', keepalive: 0, clean: false, protocolId: 'MQTT', protocolVersion: 4 } as Packet;
const publish = (dup: boolean) => ({ cmd: 'publish', topic: 'q2h/t', payload: Buffer.from('"slow"'), qos: 2, messageId: 1, dup, retain: false }) as Packet;

describe('a QoS 2 publish whose connection drops while its publish hook is out', () => {
  it('is published when the client resends it on its resumed session, once', async () => {
    const web = await TestClient.connect(`${broker.url}?topics=q2h/t`);
    await backend.script({ publish: { delayMs: 800 } });
    const a = await RawMqtt.open(broker.mqttPort);
    a.send(connect);
    await a.next('connack');
    a.send(publish(false));
    await until(async () => (await backend.calls()).some((c) => c.kind === 'publish'), 'the publish hook called');
    a.socket.destroy(); // before the hook answers: the publish is never served
    await until(() => broker.hub.inspect.clientCount() === 1, 'the MQTT connection gone');
    await backend.script({ publish: {} });
    const b = await RawMqtt.open(broker.mqttPort);
    b.send(connect);
    expect(await b.next('connack')).toMatchObject({ sessionPresent: true });
    b.send(publish(true));
    await b.next('pubrec');
    b.send({ cmd: 'pubrel', messageId: 1 } as Packet);
    await b.next('pubcomp');
    await web.next((f) => f.op === 'msg' && f.data === 'slow');
    // The first call's answer (800 ms after it) comes to a connection that is gone: nothing more is published.
    const firstAt = (await backend.calls()).find((c) => c.kind === 'publish')!.at;
    await until(() => Date.now() > firstAt + 1200, 'the first hook call answered meanwhile', 5000);
    await web.request({ op: 'pub', topic: 'q2h/t', data: 'marker' });
    await web.next((f) => f.op === 'msg' && f.data === 'marker');
    expect(web.all.filter((f) => f.op === 'msg').map((f) => f.data)).toEqual(['slow', 'marker']);
    b.socket.destroy();
    web.close();
  });
});
