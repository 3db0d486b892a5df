// MQTT reason codes (3.1.1 return codes and 5.0 reason codes) the broker sends, and how protocol errors and close
// codes map onto them: one table, as errors.ts is for the JSON protocol.
import { CLOSE, type ErrorCode } from '../../protocol/errors.js';
import { RECEIVE_MAXIMUM_EXCEEDED } from './flow.js';

/** CONNACK return codes of 3.1.1 and the 5.0 reason codes that say the same. */
export const CONNACK = {
  accepted: { v4: 0x00, v5: 0x00 },
  badProtocol: { v4: 0x01, v5: 0x84 },
  badClientId: { v4: 0x02, v5: 0x85 },
  unavailable: { v4: 0x03, v5: 0x88 },
  badCredentials: { v4: 0x04, v5: 0x86 },
  notAuthorized: { v4: 0x05, v5: 0x87 },
  // A malformed CONNECT, or one breaking a 5.0 rule (a Receive Maximum of 0): 3.1.1 has no code for either, so
  // that connection is closed without a CONNACK.
  malformed: { v4: null, v5: 0x81 },
  protocolError: { v4: null, v5: 0x82 },
  // A 3.1.1 keepalive over --mqtt-max-keepalive (or none): 3.1.1 cannot be told another, so it is refused with
  // "identifier rejected", as Mosquitto does (a 5.0 client is given the limit instead, and never refused for it).
  keepalive: { v4: 0x02, v5: 0x82 },
} as const;

export type ConnackRefusal = keyof typeof CONNACK;

/** 3.1.1's only SUBACK refusal. */
export const SUBACK_FAILURE_V4 = 0x80;

/** The close reason of a connection taken over by a new one with its client id (takeover.ts): DISCONNECT 0x8E in 5.0. */
export const TAKEN_OVER = 'session taken over';

/** PUBREL / PUBCOMP reason code 0x92: packet identifier not found (5.0), for an exchange the receiver holds nothing of. */
export const PACKET_ID_NOT_FOUND = 0x92;

/** SUBACK reason code 0x9E: shared subscriptions not supported (5.0). */
export const SHARED_NOT_SUPPORTED = 0x9e;

/** The 5.0 reason code of a refused request (SUBACK, PUBACK, PUBREC), by the protocol error the engine answered. */
export function reasonOfError(code: ErrorCode | string): number {
  switch (code) {
    case 'forbidden':
    case 'unauthorized':
    case 'token_expired':
      return 0x87; // not authorized
    case 'bad_topic':
      return 0x8f; // topic filter invalid (0x90, topic name invalid, for a publish: see pubReason)
    case 'too_large':
      return 0x95; // packet too large
    case 'rate_limited':
      return 0x97; // quota exceeded
    case 'unavailable':
      return 0x88; // server unavailable
    default:
      return 0x80; // unspecified error
  }
}

/** The 5.0 reason code of a refused PUBLISH. */
export function pubReason(code: ErrorCode | string): number {
  return code === 'bad_topic' ? 0x90 : reasonOfError(code);
}

/** The 5.0 DISCONNECT reason code for a broker close code (docs/mqtt.md, Close). */
export function disconnectReason(closeCode: number, reason: string): number {
  switch (closeCode) {
    case CLOSE.normal:
      return 0x00;
    case CLOSE.goingAway:
      return 0x8b; // server shutting down
    case CLOSE.protocolError:
      // A topic alias over the maximum (0: none allowed) is 0x94, topic alias invalid [MQTT-3.3.2-9]; a client past
      // the broker's Receive Maximum 0x93, receive maximum exceeded (§3.3.4).
      if (reason.startsWith(RECEIVE_MAXIMUM_EXCEEDED)) return 0x93;
      return reason.startsWith('malformed') ? 0x81 : reason.startsWith('a topic alias') ? 0x94 : 0x82;
    case CLOSE.policy:
      // A takeover (takeover.ts) is 0x8E, session taken over [MQTT-3.1.4-3]: not "not authorized", which tells a
      // device its credentials no longer work (many stop reconnecting on it).
      if (reason === TAKEN_OVER) return 0x8e;
      return reason.startsWith('rate') ? 0x96 : 0x87; // message rate too high / not authorized
    case CLOSE.tooLarge:
      return 0x95;
    case CLOSE.slowConsumer:
      return 0x97; // quota exceeded
    case CLOSE.heartbeat:
      return 0x8d; // keep alive timeout
    case CLOSE.tokenExpired:
      return 0x87;
    case CLOSE.idle:
      return 0x89; // server busy is the nearest; idle closes apply to MQTT only with --idle-close all
    case CLOSE.tryAgainLater:
      return 0x89;
    case CLOSE.byServer:
      return 0x98; // administrative action: the server API (POST /api/clients/disconnect) ended it
    default:
      // The application's own codes (4005-4999) come from the server API too: administrative action as well.
      return closeCode > CLOSE.byServer && closeCode <= 4999 ? 0x98 : 0x83; // else implementation specific error
  }
}

/** How a publish MQTT cannot refuse in band closes the connection: the close code and the reason it gives. */
export function refusalClose(code: string, message: string): { code: number; reason: string } {
  const close = code === 'too_large' ? CLOSE.tooLarge : code === 'rate_limited' ? CLOSE.policy : code === 'internal' || code === 'unavailable' ? CLOSE.tryAgainLater : CLOSE.policy;
  const reason = code === 'rate_limited' ? 'rate limit exceeded' : `publish refused (${code}): ${message}`.slice(0, 120);
  return { code: close, reason };
}
