// What an MQTT session is opened with (MqttSession, session.ts): the connection's protocol version and what its
// CONNECT established (client id, session expiry, the session it resumes, the client's limits), and the broker's own
// bounds for it.
import type { SessionExpiry } from './expiry.js';
import type { RetainedStore, StoredSession } from './store.js';

export type MqttVersion = 3 | 4 | 5;

export interface SessionOptions {
  version: MqttVersion;
  clientId: string;
  /** 5.0: the client id the broker gave a CONNECT without one (CONNACK says it); `clientId` is the same. */
  assignedId?: string | undefined;
  /** The session outlives the connection (3.1.1 clean session 0, 5.0 session expiry > 0). */
  persistent: boolean;
  /** How long the session outlives the connection: CONNECT's interval, which a 5.0 DISCONNECT may change. */
  expiry: SessionExpiry;
  /** What it resumes: the session kept from its last connection (CONNACK then says session present). */
  stored?: StoredSession | undefined;
  /** Unacknowledged QoS 1/2 messages at most, with those waiting for the client's Receive Maximum (beyond: a slow consumer). */
  maxInflight: number;
  /** Bytes of messages waiting for the client's Receive Maximum at most (beyond: a slow consumer); default: no bound but maxInflight. */
  maxWaitingBytes?: number | undefined;
  /** The client's Receive Maximum (5.0 CONNECT, 1-65535): unacknowledged QoS 1/2 messages sent at most. */
  receiveMaximum?: number | undefined;
  retained?: RetainedStore | undefined;
  /** The largest packet the client takes (5.0 CONNECT); a message over it is not sent to it. */
  maxPacket?: number | undefined;
  /** The largest packet the broker takes (a larger one closes the connection), and its Receive Maximum: 5.0 CONNACK says both. */
  serverMaxPacket?: number | undefined;
  serverReceiveMaximum?: number | undefined;
  /** The client's Topic Alias Maximum (5.0 CONNECT): the broker's PUBLISHes to it use aliases (aliases.ts). */
  topicAliasMaximum?: number | undefined;
  /** The keepalive the broker holds a 5.0 client to instead of the one it asked (--mqtt-max-keepalive): CONNACK says it. */
  serverKeepAlive?: number | undefined;
  /** 5.0 CONNECT's Request Problem Information was 0: no reason string but in PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29]. */
  noProblemInformation?: boolean | undefined;
}
