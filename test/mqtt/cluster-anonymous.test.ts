// Anonymous MQTT clients (--mqtt-anonymous-acl beside tokens) on a cluster: a client without a password whose client id
// is a token user's name must not close that user's MQTT connection held on another node (it is refused, identifier
// rejected, as on one node: test/security/mqtt-anonymous.test.ts); an anonymous connection on another node is still
// taken over by the same client id, as MQTT's unique client ids ask.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { requireRedis, startNode, TestRedis, until } from '../cluster/redis.js';
import { KEYS } from '../../src/engine/redis/keys.js';
import type { TestBroker } from '../helpers/broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

const run = requireRedis('anonymous MQTT clients on a cluster');
const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const token = (sub: string) => new SignJWT({ acl: { sub: ['x/#'], pub: [] } }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

describe.skipIf(!run)('anonymous MQTT clients and token users on two nodes', () => {
  let redis: TestRedis;
  let a: TestBroker;
  let b: TestBroker;
  let inspect: Redis;
  /** Whether the cluster lists `name` (held on some node): what B finds when a client asks for it. */
  const listed = async (name: string) => (await inspect.hexists(KEYS.names, name)) === 1;
  const opened: RawMqtt[] = [];
  const open = async (node: TestBroker) => {
    const c = await RawMqtt.open(node.mqttPort);
    opened.push(c);
    return c;
  };
  const connect = async (c: RawMqtt, clientId: string, password?: string) => {
    c.send({ cmd: 'connect', clientId, keepalive: 0, clean: true, protocolId: 'MQTT', protocolVersion: 4, ...(password && { username: 'u', password: Buffer.from(password) }) });
    return (await c.next('connack', 10_000)) as { returnCode?: number };
  };

  beforeAll(async () => {
    redis = await TestRedis.start();
    inspect = new Redis(redis.port, '127.0.0.1');
    const options = { mqttPort: 0, authSecret: SECRET, mqttAnonymousAcl: '{"sub":["x/#"]}' };
    a = await startNode(redis, options);
    b = await startNode(redis, options);
  });
  afterAll(async () => {
    for (const c of opened) c.socket.destroy();
    await a?.close();
    await b?.close();
    inspect?.disconnect();
    await redis?.stop();
  });

  it("an anonymous client on B whose client id is the name of a token user's MQTT connection on A is refused; the user's connection stays", async () => {
    const carol = await open(a);
    expect(await connect(carol, 'dev-of-carol', await token('carol'))).toMatchObject({ returnCode: 0 });
    let closed = false;
    void carol.closed.then(() => (closed = true));
    const carolId = a.hub.inspect.findClient('carol')?.id;
    expect(carolId).toBeDefined();
    // The cluster lists the name held on A before the anonymous client asks B for it.
    await until(() => listed('carol'), "carol's name listed");
    const anon = await open(b);
    expect(await connect(anon, 'carol')).toMatchObject({ returnCode: 2 }); // identifier rejected
    carol.send({ cmd: 'pingreq' });
    await carol.next('pingresp');
    expect({ carolClosed: closed, carolHeldBy: a.hub.inspect.findClient('carol')?.id }).toEqual({ carolClosed: false, carolHeldBy: carolId });
  });

  it('an anonymous client on B takes over an anonymous connection of the same client id on A (unique client ids)', async () => {
    const first = await open(a);
    expect(await connect(first, 'sensor-9')).toMatchObject({ returnCode: 0 });
    await until(() => listed('sensor-9'), 'sensor-9 listed');
    const second = await open(b);
    expect(await connect(second, 'sensor-9')).toMatchObject({ returnCode: 0 });
    await first.closed;
    expect(b.hub.inspect.findClient('sensor-9')).toBeDefined();
  });
});
