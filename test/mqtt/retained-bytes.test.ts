// --mqtt-retained-bytes counts a message's payload and topic *bytes* (docs/mqtt.md; Redis: Buffer.byteLength); the in-memory
// store counted characters (found by a review helper).
import { expect, it } from 'vitest';
import { MemoryRetainedStore } from '../../src/transports/mqtt/store.js';

it('a retained message whose topic is 9 UTF-8 bytes (3 characters) and payload 2 bytes is over a 10-byte bound', async () => {
  const store = new MemoryRetainedStore(100, 10);
  await store.set({ topic: '€€€', payload: Buffer.from('ab'), qos: 0 });
  expect(store.size).toBe(0);
});
