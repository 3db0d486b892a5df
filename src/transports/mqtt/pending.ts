// The requests an MQTT session sent to the engine on its client's behalf, by the numeric frame id the engine's answer
// carries, and the SUBACK / UNSUBACK that gathers the answers of one packet's filters.
import mqttPacket, { type Packet, type QoS } from 'mqtt-packet';
import type { RetainedRead } from './retained-order.js';
import type { Retained } from './store.js';

/** A request sent to the engine on the client's behalf, by the numeric frame id its answer will carry. */
export type Pending =
  /** `unsupported`: a 5.0 feature the broker does not have asked for (a shared subscription), the SUBACK reason refusing it. */
  | { kind: 'sub'; group: AckGroup; index: number; filter: string; qos: QoS; noLocal: boolean; retainAsPublished: boolean; subscriptionId: number | undefined; retainHandling: number; unsupported?: number | undefined }
  | { kind: 'unsub'; group: AckGroup; index: number; filter: string }
  /** A QoS 0 publish with the retain flag: answered by nothing, but kept as retained once the engine took it. */
  | { kind: 'pub0'; retain: Retained; kept?: Promise<void> | undefined }
  | { kind: 'puback'; pid: number; retain?: Retained | undefined; kept?: Promise<void> | undefined }
  | { kind: 'pubrec'; pid: number; retain?: Retained | undefined; kept?: Promise<void> | undefined }
  /** A persistent session's filter subscribed again on reconnect, resuming from its positions. */
  | { kind: 'resub'; filter: string; qos: QoS }
  /** A retained message for a new subscription (with its Subscription Identifier, if any). */
  | { kind: 'retained'; message: Retained; qos: QoS; ids: number[] | undefined }
  /** Behind a subscription's retained messages: the live messages held meanwhile go out now. */
  | { kind: 'retainedEnd'; read: RetainedRead }
  | { kind: 'resend'; pid: number }
  /** The turn of the messages waiting for the client's Receive Maximum (flow.ts), behind what the mailbox held. */
  | { kind: 'release' }
  /** Answers the broker gives without asking the engine, sent through the mailbox to keep their order (`reasonCode`: 5.0, other than 0x00). */
  | { kind: 'pubcomp'; pid: number; reasonCode?: number | undefined }
  | { kind: 'pubrel'; pid: number; reasonCode?: number | undefined }
  | { kind: 'ping' }
  /** A PUBACK or PUBREC held until the retained message of its publish was kept. */
  | { kind: 'ready'; packet: Buffer };

/** SUBACK / UNSUBACK: one answer for all the filters of one packet. */
export interface AckGroup {
  pid: number;
  codes: number[];
  left: number;
}

/** Records one filter's answer; the whole SUBACK / UNSUBACK once every filter of the packet has one (else undefined). */
export function settle(group: AckGroup, index: number, code: number, cmd: 'suback' | 'unsuback', options: { protocolVersion: 4 | 5 }): Buffer | undefined {
  group.codes[index] = code;
  if (--group.left > 0) return undefined;
  if (cmd === 'unsuback' && options.protocolVersion !== 5) return mqttPacket.generate({ cmd, messageId: group.pid } as Packet, options);
  return mqttPacket.generate({ cmd, messageId: group.pid, granted: group.codes } as Packet, options);
}
