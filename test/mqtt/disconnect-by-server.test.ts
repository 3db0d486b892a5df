// A 5.0 client disconnected through the server API (POST /api/clients/disconnect: close code 4004, or the
// application's own 4005-4999) got DISCONNECT 0x83, implementation specific error: it is 0x98, administrative action,
// which says the server's operator ended it (found by a review helper).
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
const KEY = 'admin-key';
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0, apiKey: KEY });
});
afterAll(() => broker.close());
const disconnect = (body: Record<string, unknown>) =>
  fetch(`${broker.httpUrl}/api/clients/disconnect`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify(body) });

for (const code of [undefined, 4100]) {
  it(`a 5.0 client disconnected by the server API (${code ?? 'default 4004'}) gets DISCONNECT 0x98, administrative action`, async () => {
    const clientId = `kicked-${code ?? 'default'}`;
    const c = await RawMqtt.open(broker.mqttPort, 5);
    c.send({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 5 } as Packet, 5);
    await c.next('connack');
    expect((await disconnect({ client: clientId, ...(code && { code }) })).status).toBe(200);
    expect(await c.next('disconnect')).toMatchObject({ reasonCode: 0x98 });
    await c.closed;
  });
}
