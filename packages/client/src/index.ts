// @switchboard/client: the browser and Node client library for the Switchboard broker (docs/client.md).
export { SwitchboardClient } from './client.js';
export type { ClientEvents, WhoOptions } from './client.js';
export type { ClientOptions } from './options.js';
export type { PublishOptions } from './publisher.js';
export type { WebSocketLike, WebSocketConstructor } from './socket.js';
export type { EventSourceLike, EventSourceConstructor } from './sse-socket.js';
export { Subscription } from './subscription.js';
export type { Message, SubscribeOptions, SubscriptionEvents, SubscriptionState } from './subscription.js';
export { SwitchboardError, BROKER_ERROR_CODES, CLIENT_ERROR_CODES } from './errors.js';
export type { SwitchboardErrorCode, BrokerErrorCode } from './errors.js';
export { clientLifecycleMachine, STOP_CODES, TOKEN_EXPIRED_CLOSE } from './lifecycle.machine.js';
export type { ClientState, LastClose, LifecycleEvent, Dial, SocketHandle, SocketReport } from './lifecycle.machine.js';
export { backoffDelay, backoffCeiling, DEFAULT_BACKOFF } from './backoff.js';
export type { Backoff } from './backoff.js';
export { matches, isWildcard } from './topics.js';
export type { Recovery } from './positions.js';
export type { Member, Position, PubAck, HelloFrame, ClientInfo, Sender, RecoveryReason, FrameId } from './wire.js';
