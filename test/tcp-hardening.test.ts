// The TCP line transport against a hostile neighbour or client: lines of invalid UTF-8 are held to --rate like every
// other frame (a flood was answered line for line, never limited), and another user's text reaching a terminal in a
// JSON line carries no C1 controls, bidi controls or line separators (JSON.stringify leaves them raw).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { LineClient } from './helpers/line-client.js';
import { TestClient } from './helpers/client.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ lineLimit: 1024, rate: 10, rateBurst: 10, rateStrikes: 5 });
});
afterAll(() => broker.close());

describe('TCP lines', () => {
  it('a flood of invalid-UTF-8 lines is held to --rate like any other frame: rate_limited, then closed 1008', async () => {
    const a = await LineClient.connect(broker.tcpPort);
    await a.next((l) => l.endsWith(': login'));
    a.sendRaw(Buffer.alloc(400, Buffer.from([0xff, 0x0a]))); // 200 lines of one invalid byte, over --rate-burst 10
    expect(await a.next((l) => l.startsWith('bye'))).toBe('bye: rate limit exceeded (1008)');
    expect(a.all.filter((l) => l.startsWith('error bad_frame')).length).toBeLessThanOrEqual(10); // the burst, no more
    expect(a.all.some((l) => l.startsWith('error rate_limited'))).toBe(true);
    a.destroy();
  });

  it("a JSON line carries no C1 control, bidi control or line separator of another user's, escaped to the same value", async () => {
    const a = await LineClient.connect(broker.tcpPort);
    a.send('{"op":"sub","topic":"alarm/#","id":1}'); // the greeting's own example
    await a.nextJson((f) => f.id === 1);
    const ws = await TestClient.connect(`${broker.url}?name=mallory`);
    // U+009B is CSI as a C1 control: CSI 2 J clears the screen of a terminal that honours C1; U+0085 is NEL.
    const data = 'A\u009b2J\u0085B\u202eC\u2028D\u007f';
    await ws.request({ op: 'pub', topic: 'alarm/x', data });
    const line = await a.next((l) => l.includes('alarm/x'));
    expect(line).not.toMatch(/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
    expect(line).toContain('\\u009b2J');
    expect(JSON.parse(line).data).toBe(data);
    ws.close();
    a.close();
  });
});
