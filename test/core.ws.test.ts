import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

describe('smoke', () => {
  it('hello, sub, pub', async () => {
    const a = await TestClient.connect(broker.url);
    expect(a.hello.client.transport).toBe('ws');
    expect(await a.request({ op: 'sub', topic: 'x/+' })).toMatchObject({ op: 'ack' });
    const ack = await a.request({ op: 'pub', topic: 'x/y', data: 42 });
    expect(ack).toMatchObject({ op: 'ack', seq: 1 });
    const msg = await a.next((f) => f.op === 'msg');
    expect(msg).toMatchObject({ topic: 'x/y', seq: 1, data: 42 });
    a.close();
  });
});
