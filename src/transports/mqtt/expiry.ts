// How long an MQTT connection's session outlives it: 3.1.1's clean session 0 keeps it until it is pushed out, 5.0's
// Session Expiry Interval for that many seconds. A 5.0 client may change the interval in its DISCONNECT
// (§3.14.2.2.2), but a session that was to end with its connection (CONNECT said 0) cannot be made to outlive it
// [MQTT-3.14.2-2]: that DISCONNECT is a protocol error, and the session still ends with the connection. Pure.

/** 5.0's session expiry interval that means "never". */
export const NEVER = 0xffffffff;

/** How long a connection's session outlives it, in seconds (NEVER, or 0: it ends with the connection). */
export const expiryOf = (version: 3 | 4 | 5, connect: { clean?: boolean; properties?: { sessionExpiryInterval?: number } }): number =>
  version === 5 ? (connect.properties?.sessionExpiryInterval ?? 0) : connect.clean === false ? NEVER : 0;

/** The protocol violation of a DISCONNECT that would keep a session its CONNECT let end with the connection (5.0: DISCONNECT 0x82). */
export const EXPIRY_FROM_ZERO = 'a DISCONNECT with a session expiry interval where CONNECT had 0 [MQTT-3.14.2-2]';

export class SessionExpiry {
  /** The interval in seconds the session ends with: CONNECT's, or what DISCONNECT changed it to. */
  private interval: number;

  constructor(
    /** The interval CONNECT set (seconds). */
    readonly connected: number,
  ) {
    this.interval = connected;
  }

  get seconds(): number {
    return this.interval;
  }

  /**
   * A DISCONNECT's Session Expiry Interval (undefined: none given, the interval stays): the interval from now on, or
   * the protocol violation of setting one where CONNECT set 0 (the interval then stays 0).
   */
  disconnect(seconds: number | undefined): string | undefined {
    if (seconds === undefined) return undefined;
    if (this.connected === 0 && seconds !== 0) return EXPIRY_FROM_ZERO;
    this.interval = seconds;
    return undefined;
  }

  /** When a session kept now is gone (ms since 1970); Infinity: kept until pushed out. */
  expiresAt(now: number): number {
    return this.interval === NEVER ? Infinity : now + this.interval * 1000;
  }
}
