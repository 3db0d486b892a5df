// Presence in the chat room (--room): below --room-announce-max watchers a watcher hears a member go idle and come
// back; above it joins, leaves, timeouts, `idle` and `active` are not announced (renames still are). The docs listed
// only the first three as silenced (found by a review helper); they now say what the broker does.
import { afterEach, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClient } from './helpers/client.js';
import { LineClient } from './helpers/line-client.js';
import { until } from './helpers/waits.js';

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

for (const [roomAnnounceMax, announced] of [[200, true], [1, false]] as const) {
  it(`a room watcher ${announced ? 'hears' : 'does not hear'} idle and active of a TCP member (--room-announce-max ${roomAnnounceMax})`, async () => {
    broker = await startTestBroker({ roomAnnounceMax, idleMs: 400, idleClose: 'none' });
    const watcher = await TestClient.connect(broker.url);
    await watcher.request({ op: 'sub', topic: 'chat', presence: true });
    const tcp = await LineClient.connect(broker.tcpPort!);
    await until(() => broker!.hub.inspect.clients().some((l) => l.transport === 'tcp' && l.isIdle), 'the TCP member idle', 5000);
    tcp.send('hello again');
    await watcher.next((f) => f.op === 'msg' && f.data === 'hello again');
    const events = watcher.all.filter((f) => f.op === 'event' && f.client.transport === 'tcp' && (f.event === 'idle' || f.event === 'active')).map((f) => f.event);
    expect(events).toEqual(announced ? ['idle', 'active'] : []);
  }, 15_000);
}
