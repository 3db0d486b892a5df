// MQTT 5.0: a CONNECT with an empty client id is given a unique one, and is processed as if the client had sent it
// [MQTT-3.1.3-7]: CONNACK says it (Assigned Client Identifier), it names the connection, and with a session expiry the
// session is kept for a reconnect that sends that id. Raw packets over real sockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { TestClient } from '../helpers/client.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ mqttPort: 0 });
});
afterAll(async () => {
  await broker?.close();
});

type Connack = Packet & { sessionPresent: boolean; reasonCode?: number; returnCode?: number; properties?: { assignedClientIdentifier?: string } };

async function connect(clientId: string, version: 4 | 5, clean: boolean, properties?: Record<string, unknown>): Promise<{ c: RawMqtt; connack: Connack }> {
  const c = await RawMqtt.open(broker.mqttPort, version);
  c.send({ cmd: 'connect', clientId, keepalive: 0, clean, protocolId: 'MQTT', protocolVersion: version, ...(properties && { properties }) } as Packet, version);
  return { c, connack: (await c.next('connack')) as Connack };
}

describe('assigned client identifiers', () => {
  it('a 5.0 client without a client id gets one, named by it, and its session is kept for a reconnect that sends it', async () => {
    const { c, connack } = await connect('', 5, true, { sessionExpiryInterval: 60 });
    const id = connack.properties?.assignedClientIdentifier;
    expect(id).toMatch(/^mqtt-[0-9a-f]{18}$/);
    expect(connack.sessionPresent).toBe(false);
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'as/t', qos: 1 }] } as Packet, 5);
    await c.next('suback');
    // The connection goes by the assigned id.
    const watcher = await TestClient.connect(broker.url);
    expect((await watcher.request({ op: 'who' })).clients.map((x: { name: string }) => x.name)).toContain(id);
    c.send({ cmd: 'disconnect', reasonCode: 0 } as Packet, 5);
    await c.closed;
    // Published while it is away: kept in its session.
    await watcher.request({ op: 'pub', topic: 'as/t', data: 'while away' });
    const back = await connect(id!, 5, false, { sessionExpiryInterval: 60 });
    expect(back.connack).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(back.connack.properties?.assignedClientIdentifier).toBeUndefined();
    const message = (await back.c.next('publish')) as Packet & { topic: string; payload: Buffer; messageId?: number };
    // (a WebSocket client's data reaches MQTT as its JSON text: docs/mqtt.md, Payloads)
    expect({ topic: message.topic, data: JSON.parse(message.payload.toString()) }).toEqual({ topic: 'as/t', data: 'while away' });
    back.c.send({ cmd: 'puback', messageId: message.messageId } as Packet, 5);
    back.c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } } as Packet, 5);
    watcher.close();
  });

  it('every empty client id gets its own; 3.1.1 (clean session) gets none and a guest name, as before', async () => {
    const [a, b] = await Promise.all([connect('', 5, true), connect('', 5, true)]);
    expect(a.connack.properties?.assignedClientIdentifier).not.toBe(b.connack.properties?.assignedClientIdentifier);
    const v4 = await connect('', 4, true);
    expect(v4.connack.returnCode).toBe(0);
    const watcher = await TestClient.connect(broker.url);
    const names = (await watcher.request({ op: 'who' })).clients.map((x: { name: string }) => x.name);
    expect(names).toEqual(expect.arrayContaining([a.connack.properties!.assignedClientIdentifier, b.connack.properties!.assignedClientIdentifier]));
    expect(names.some((n: string) => n.startsWith('guest-'))).toBe(true);
    for (const x of [a.c, b.c]) x.send({ cmd: 'disconnect' } as Packet, 5);
    v4.c.send({ cmd: 'disconnect' } as Packet);
    watcher.close();
  });
});
