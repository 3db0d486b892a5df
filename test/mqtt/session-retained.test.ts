// MqttSession's retained messages against live ones, without sockets or Redis: a subscription's retained messages come
// from a store that answers after the SUBACK (Redis on a cluster), and a live message of its topics must never reach
// the client before them, whenever the store answers: also when the live message was already queued in the mailbox
// (not yet written) at that moment, the interleaving that made test/mqtt/cluster.test.ts's retained test intermittent.
import { describe, expect, it } from 'vitest';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { MqttSession } from '../../src/transports/mqtt/session.js';
import { NEVER, SessionExpiry } from '../../src/transports/mqtt/expiry.js';
import type { Retained, RetainedStore } from '../../src/transports/mqtt/store.js';
import { Link } from '../../src/actors/link.js';
import type { Wire } from '../../src/actors/mailbox.js';
import type { FrameReader } from '../../src/actors/reader.js';
import { Outgoing } from '../../src/protocol/outgoing.js';
import type { ServerFrame } from '../../src/protocol/frames.js';

/** A retained store whose look-ups answer when the test says. */
class SlowStore implements RetainedStore {
  readonly asked: { filter: string; answer: (messages: Retained[]) => void }[] = [];
  set(): Promise<void> {
    return Promise.resolve();
  }
  matching(filter: string): Promise<Retained[]> {
    return new Promise((answer) => this.asked.push({ filter, answer }));
  }
}

/** A session on a link whose wire parses what the mailbox writes; the requests its reader got. */
function connected(store: RetainedStore, options: { persistent?: boolean; maxInflight?: number } = {}) {
  const packets: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (p: Packet) => packets.push(p));
  const session = new MqttSession({ version: 4, clientId: 'reader', persistent: options.persistent ?? false, expiry: new SessionExpiry(options.persistent ? NEVER : 0), maxInflight: options.maxInflight ?? 100, retained: store });
  const wire: Wire = {
    transport: 'mqtt',
    canPing: false,
    bufferedBytes: 0,
    encode: (out) => session.encode(out),
    write: (chunk) => (parser.parse(chunk), true),
    onDrain: () => undefined,
    ping: () => undefined,
    close: () => undefined,
    terminate: () => undefined,
  };
  const link = new Link({ addr: 'test', wire, mailboxLimits: { messages: 100, bytes: 1_000_000 }, slowConsumer: 'close' });
  link.isOpen = true;
  const requests: { op: string; id?: number }[] = [];
  session.attach(link, { parsed: (frame: { op: string; id?: number }) => requests.push(frame) } as unknown as FrameReader);
  return { session, link, packets, requests };
}

/** Until the mailbox wrote what `cond` waits for (it writes once per event-loop turn). */
async function written(cond: () => boolean): Promise<void> {
  for (let turns = 0; !cond(); turns++) {
    if (turns > 100) throw new Error('the mailbox did not write it');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const live = (topic: string, seq: number, data: string) => new Outgoing({ op: 'msg', topic, seq, epoch: 'e', ts: Date.now(), data } as ServerFrame);
const published = (packets: Packet[]) => packets.flatMap((p) => (p.cmd === 'publish' ? [`${p.topic} ${p.payload.toString()}${p.retain ? ' (r)' : ''}`] : []));

describe('MQTT retained messages before live ones', () => {
  it('a live message queued before the store answered still comes after the retained messages, and in order with the next', async () => {
    const store = new SlowStore();
    const { session, link, packets, requests } = connected(store);
    session.inbound({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'status/+', qos: 1 }] } as Packet, 20);
    link.send({ op: 'ack', id: requests[0]!.id! } as ServerFrame); // the engine took the filter
    await written(() => packets.some((p) => p.cmd === 'suback'));
    expect(store.asked.map((a) => a.filter)).toEqual(['status/+']);
    // A live message is queued, and the store answers before the mailbox writes it.
    link.mailbox.push(live('status/marker', 1, 'live'));
    store.asked[0]!.answer([{ topic: 'status/fan', payload: Buffer.from('on'), qos: 1 }]);
    await Promise.resolve();
    link.mailbox.push(live('status/marker', 2, 'next'));
    await written(() => published(packets).length === 3);
    expect(published(packets)).toEqual(['status/fan on (r)', 'status/marker "live"', 'status/marker "next"']);
    // The read is over: later live messages go out at once.
    link.mailbox.push(live('status/marker', 3, 'later'));
    await written(() => published(packets).length === 4);
    expect(published(packets)[3]).toBe('status/marker "later"');
  });

  it('a live message that comes while the store is still reading waits for the retained messages', async () => {
    const store = new SlowStore();
    const { session, link, packets, requests } = connected(store);
    session.inbound({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'status/#', qos: 1 }] } as Packet, 20);
    link.send({ op: 'ack', id: requests[0]!.id! } as ServerFrame);
    await written(() => packets.some((p) => p.cmd === 'suback'));
    link.mailbox.push(live('status/marker', 1, 'live'));
    await written(() => link.mailbox.framesOut >= 2); // written, and held
    expect(published(packets)).toEqual([]);
    store.asked[0]!.answer([{ topic: 'status/fan', payload: Buffer.from('on'), qos: 1 }]);
    await written(() => published(packets).length === 2);
    expect(published(packets)).toEqual(['status/fan on (r)', 'status/marker "live"']);
  });
});

describe('a persistent session out of packet ids', () => {
  it('a message that could not have a packet id (the client stopped acknowledging) is not passed by the kept position', async () => {
    const store = new SlowStore();
    const { session, link, packets, requests } = connected(store, { persistent: true, maxInflight: 2 });
    session.inbound({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'p/t', qos: 1 }] } as Packet, 20);
    link.send({ op: 'ack', id: requests[0]!.id! } as ServerFrame);
    await written(() => packets.some((p) => p.cmd === 'suback'));
    store.asked[0]!.answer([]); // no retained messages: the read ends, live ones go out
    for (let seq = 1; seq <= 3; seq++) link.mailbox.push(live('p/t', seq, `m${seq}`));
    await written(() => published(packets).length === 2 && link.mailbox.framesOut >= 4); // m3 taken from the mailbox too
    expect(published(packets)).toEqual(['p/t "m1"', 'p/t "m2"']); // two packet ids, both unacknowledged
    // Kept now, the session resumes after m2: m3 (never sent) comes then. It resumed after m3, which was lost.
    expect(session.keep(() => [], Infinity)!.positions.get('p/t')).toEqual({ seq: 2, epoch: 'e' });
  });
});
