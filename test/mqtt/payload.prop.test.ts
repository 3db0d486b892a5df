// The MQTT payload mapping both ways (docs/mqtt.md, Payloads): any payload an MQTT client publishes comes back to
// MQTT subscribers as it was (JSON payloads as the broker re-encodes them), with its 5.0 properties.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dataOfPayload, deliveryOfData } from '../../src/transports/mqtt/payload.js';

/** What the broker does between the two: encode the data once (encodeData). */
const through = (data: unknown) => deliveryOfData(JSON.stringify(data));

describe('MQTT payload ⇄ data', () => {
  it('a payload that is not JSON comes back byte for byte; a JSON one as the same value', () => {
    const text = (s: string) => new TextEncoder().encode(s);
    const payloads = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.string().map(text), fc.jsonValue().map((v) => text(JSON.stringify(v))));
    fc.assert(
      fc.property(payloads, (bytes) => {
        const payload = Buffer.from(bytes);
        const data = dataOfPayload(payload);
        const back = through(data).payload;
        const enveloped = typeof data === 'object' && data !== null && 'encoding' in data;
        if (enveloped) expect(back).toEqual(payload);
        else expect(JSON.parse(back.toString('utf8'))).toEqual(JSON.parse(payload.toString('utf8')));
      }),
    );
  });

  it('examples of the documented forms', () => {
    expect(dataOfPayload(Buffer.from('{"c":21.5}'))).toEqual({ c: 21.5 });
    expect(dataOfPayload(Buffer.from('on'))).toEqual({ encoding: 'utf8', payload: 'on' });
    expect(dataOfPayload(Buffer.from([0xff, 0, 1]))).toEqual({ encoding: 'base64', payload: '/wAB' });
    expect(dataOfPayload(Buffer.alloc(0))).toEqual({ encoding: 'utf8', payload: '' });
    // A JSON client's data that is exactly an envelope is the bytes it stands for; anything else is its JSON text.
    expect(through({ encoding: 'base64', payload: '3q2+7w==' }).payload).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    expect(through({ encoding: 'base64', payload: 'not base64!' }).payload.toString()).toBe('{"encoding":"base64","payload":"not base64!"}');
    expect(through({ encoding: 'utf8', payload: 'x', extra: 1 }).payload.toString()).toBe('{"encoding":"utf8","payload":"x","extra":1}');
    expect(through('hi').payload.toString()).toBe('"hi"');
  });

  it('5.0 properties travel in the envelope and come back', () => {
    const properties = { userProperties: { site: 'north', tag: ['a', 'b'] }, contentType: 'text/plain', messageExpiryInterval: 60, responseTopic: 'r/1', correlationData: Buffer.from([1, 2]) };
    const json = dataOfPayload(Buffer.from('{"v":1}'), properties);
    expect(json).toEqual({ encoding: 'json', payload: { v: 1 }, properties: { userProperties: { site: 'north', tag: ['a', 'b'] }, contentType: 'text/plain', messageExpiryInterval: 60, responseTopic: 'r/1', correlationData: 'AQI=' } });
    const back = through(json);
    expect(back.payload.toString()).toBe('{"v":1}');
    expect(back.properties).toEqual({ ...properties, userProperties: { site: 'north', tag: ['a', 'b'] } });
    const text = through(dataOfPayload(Buffer.from('on'), { userProperties: { k: 'v' } }));
    expect(text).toEqual({ payload: Buffer.from('on'), properties: { userProperties: { k: 'v' } } });
    // A user property named __proto__ is an ordinary key.
    const odd = dataOfPayload(Buffer.from('1'), { userProperties: JSON.parse('{"__proto__":"x"}') as Record<string, string> }) as { properties: { userProperties: Record<string, string> } };
    expect(Object.keys(odd.properties.userProperties)).toEqual(['__proto__']);
  });
});

describe('the QoS 0 PUBLISH the writer builds itself', () => {
  it('is the packet mqtt-packet generates, for any topic and payload size', async () => {
    const { default: mqttPacket } = await import('mqtt-packet');
    const { encodePublishQos0 } = await import('../../src/transports/mqtt/packets.js');
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 20_000 }), (topic, size) => {
        const payload = Buffer.alloc(size, 7);
        const ours = encodePublishQos0(topic, payload);
        const theirs = mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false });
        // Compared as bytes (a deep equality over 20,000 elements per run took seconds); the head shown when they differ.
        expect(ours.equals(theirs), `${ours.subarray(0, 48).toString('hex')} vs ${theirs.subarray(0, 48).toString('hex')} (${ours.length} vs ${theirs.length} bytes)`).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
