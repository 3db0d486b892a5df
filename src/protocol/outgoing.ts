// Outgoing: one server frame, encoded once and shared by every mailbox it is queued in.
// Each transport asks for its own bytes; the first ask encodes, the rest reuse. Client data is encoded before
// the frame exists (encodeData), so a value that cannot be encoded is refused at the sender, never at delivery.
import type { ClientInfo, PublicClient, ServerFrame } from './frames.js';
import { ProtocolError, type FrameId } from './errors.js';
import type { TopicText } from './topic.js';

/** Client `data` as JSON text, encoded once at publish/send time; the frame's JSON embeds it as it is. */
export class EncodedData {
  private _bytes: number | undefined;
  /** `bytes`: the UTF-8 size of `json` when the caller knows it (ASCII text: its length). */
  constructor(
    readonly json: string,
    bytes?: number,
  ) {
    this._bytes = bytes;
  }

  get bytes(): number {
    return (this._bytes ??= Buffer.byteLength(this.json));
  }
}

/** Printable ASCII (0x20–0x7e) but `"` and `\`: JSON.stringify escapes none of these characters. */
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Encodes client data once; a value JSON cannot encode (too deep for the stack, BigInt, a throwing toJSON) is bad_frame. */
export function encodeData(data: unknown, id?: FrameId): EncodedData | ProtocolError {
  // The common payload, a string of printable ASCII without `"` or `\`, is its own JSON once quoted: no escaping
  // scan by JSON.stringify, and its UTF-8 size is its length (the ingest hot path; the result is identical).
  if (typeof data === 'string' && PLAIN_ASCII.test(data)) return new EncodedData(`"${data}"`, data.length + 2);
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (err) {
    return new ProtocolError('bad_frame', `data cannot be encoded as JSON: ${String((err as Error)?.message ?? err).slice(0, 80)}`, id);
  }
  if (json === undefined) return new ProtocolError('bad_frame', 'data cannot be encoded as JSON', id);
  return new EncodedData(json);
}

/** Who published a message, as a publish needs it: cached per client (senderOf), rebuilt only when its name changes. */
export interface Sender {
  /** The frame's `from`. */
  readonly from: { readonly id: string; readonly name: string };
  /** `from` as JSON. */
  readonly json: string;
  /** The UTF-8 size of `json` beyond its length (0 for an ASCII id and name). */
  readonly extraBytes: number;
  /** The sender with its address (the TCP chat line shows it); never serialised. */
  readonly info: ClientInfo;
}

const senders = new WeakMap<ClientInfo, Sender>();

/** `client` as the sender of its messages, built once per client and name (a publish then allocates none of it). */
export function senderOf(client: ClientInfo): Sender {
  const known = senders.get(client);
  if (known !== undefined && known.from.name === client.name) return known;
  const from = Object.freeze({ id: client.id, name: client.name });
  const info = Object.freeze({ id: client.id, name: client.name, addr: client.addr, transport: client.transport });
  const json = JSON.stringify(from);
  const sender: Sender = { from, json, extraBytes: Buffer.byteLength(json) - json.length, info };
  senders.set(client, sender);
  return sender;
}

/**
 * The frame object of a published message: its fields, and `data` parsed back from the frame's JSON only when a
 * renderer reads it (the TCP chat line). One small object per publish, the same shape for every message.
 */
class MessageFrame {
  readonly op = 'msg';
  readonly from: { id: string; name: string } | undefined;
  readonly #json: string;
  readonly #dataAt: number;
  constructor(
    readonly topic: string,
    readonly seq: number,
    readonly epoch: string,
    from: { id: string; name: string } | undefined,
    readonly ts: number,
    json: string,
    dataAt: number,
  ) {
    this.from = from;
    this.#json = json;
    this.#dataAt = dataAt;
  }

  get data(): unknown {
    return JSON.parse(this.#json.slice(this.#dataAt, -1)) as unknown;
  }
}

/**
 * `text` flattened: a message's JSON is built by concatenation, a tree of a dozen string pieces; the history keeps it
 * for its topic's next publishes, long enough to be copied by the scavenger and promoted, so it keeps one flat string
 * instead (reading a character makes V8 flatten the tree in place; the pieces are garbage at the next scavenge).
 */
function flat(text: string): string {
  text.charCodeAt(0);
  return text;
}

/** A transport's framing of one frame (WebSocket text frame, JSON line, …); defined by the transport. */
export type Encoding = (out: Outgoing) => Buffer;

export class Outgoing {
  private _json: string | undefined;
  // Bytes per transport framing: two slots cover WebSocket and TCP without a lookup; anything more goes to the map.
  private _enc1: Encoding | undefined;
  private _buf1: Buffer | undefined;
  private _enc2: Encoding | undefined;
  private _buf2: Buffer | undefined;
  /** Renderings beyond those (e.g. the TCP chat line), cached by key. */
  private _extra: Map<unknown, Buffer> | undefined;
  private _bytes: number | undefined;
  /** A `who` reply's members, with the addresses they may be shown with, for the TCP `user list:` lines. Never serialised. */
  roster: readonly (PublicClient & { addr?: string })[] | undefined;
  /** A presence event's coalescing key (subject and filter) and the name before the first coalesced rename. */
  presence: { key: string; firstOld?: string } | undefined;

  /**
   * `sender`: who published a `msg` (or whom a presence event is about), with the addr the frame itself does not
   * carry (the TCP chat line shows it). Never serialised: the wire format stays the frame.
   * `data`: the frame's `data` field already encoded (encodeData); the frame's own `data` is then only read by renderers.
   * Building a frame around data that was encoded cannot throw.
   */
  readonly frame: ServerFrame;
  /** A `direct` (mailboxes keep a budget for them): read per push, so kept apart from the frame's many shapes. */
  readonly direct: boolean;
  /**
   * The highest MQTT QoS a `msg` is delivered at: its publisher's QoS when an MQTT client published it at 0 or 1
   * (MQTT delivers at the lower of that and the subscription's), else 2. Never serialised.
   */
  maxQos: 0 | 1 | 2 = 2;
  /**
   * The retain flag an MQTT publisher set on a `msg` (an MQTT 5.0 subscription with Retain As Published forwards it as
   * it was published; others get 0). Never serialised.
   */
  retain = false;

  /**
   * `head`: the frame's JSON up to its data, `{…,"data":`, when the caller writes it itself (then `frame` comes
   * without `data`): the publish path does, from a template.
   */
  constructor(
    frame: ServerFrame,
    readonly sender?: ClientInfo,
    data?: EncodedData,
    head?: string,
  ) {
    this.direct = frame.op === 'direct';
    if (data === undefined) {
      this.frame = frame;
      return;
    }
    // The frame's JSON is built now around the encoded data; the data text is then kept only inside it.
    let rest = frame as Partial<ServerFrame>;
    if (head === undefined) {
      const { data: _ignored, ...others } = frame as ServerFrame & { data?: unknown };
      rest = others;
      head = JSON.stringify(rest).slice(0, -1) + ',"data":';
    }
    this._json = head + data.json + '}';
    this._bytes = Buffer.byteLength(head) + data.bytes + 1;
    this._dataAt = head.length;
    // Nor is the parsed value kept (history holds messages by their bytes): a renderer that wants it (the TCP
    // chat line) reads it back from the JSON, once per broadcast.
    Object.defineProperty(rest, 'data', { enumerable: true, get: () => JSON.parse(this.dataJson()!) as unknown });
    this.frame = rest as ServerFrame;
  }

  /**
   * A `msg` frame around encoded data, its JSON written from a template (one per publish: the ingest hot path).
   * `topic` carries the topic's JSON string (topicText() caches it per topic); `epoch` is the broker's own
   * `[0-9a-z.]` text (History), quoted as it is; `from` carries its JSON (cached per sender, see senderOf). Every
   * other character of the head is ASCII, so its UTF-8 size is its length plus what the topic and sender add: no
   * measuring per message. The frame object is a MessageFrame: no copy of the data, no per-message property definitions.
   */
  static message(topic: string, text: TopicText, seq: number, epoch: string, from: Sender | undefined, ts: number, data: EncodedData): Outgoing {
    const head =
      from === undefined
        ? `{"op":"msg","topic":${text.json},"seq":${seq},"epoch":"${epoch}","ts":${ts},"data":`
        : `{"op":"msg","topic":${text.json},"seq":${seq},"epoch":"${epoch}","from":${from.json},"ts":${ts},"data":`;
    const json = head + data.json + '}';
    const out = new Outgoing(new MessageFrame(topic, seq, epoch, from?.from, ts, json, head.length) as unknown as ServerFrame, from?.info);
    out._json = json;
    out._bytes = head.length + text.extraBytes + (from === undefined ? 0 : from.extraBytes) + data.bytes + 1;
    out._dataAt = head.length;
    return out;
  }

  /** What the history keeps of this `msg` (see KeptMessage); the Outgoing itself is garbage once it is written. */
  kept(): KeptMessage {
    return new KeptMessage(flat(this.json), this.bytes, this.sender, this.maxQos | (this.retain ? RETAIN_BIT : 0));
  }

  /** Where the encoded data sits in the JSON text, when it was given pre-encoded. */
  private _dataAt: number | undefined;

  /** The encoded data starts at `at` in the JSON text (a kept message rebuilt for a replay). */
  dataFrom(at: number): void {
    this._dataAt = at;
  }

  /** The frame's JSON text. Frames built by the broker itself always encode; client data arrives pre-encoded. */
  get json(): string {
    return (this._json ??= JSON.stringify(this.frame));
  }

  /** The `data` field as JSON text when it arrived pre-encoded (a slice of the frame's JSON, not a copy). */
  dataJson(): string | undefined {
    return this._dataAt === undefined ? undefined : this.json.slice(this._dataAt, -1);
  }

  /** UTF-8 size of the JSON text: what a mailbox charges for holding this frame. */
  get bytes(): number {
    if (this._bytes === undefined) {
      const json = this.json;
      this._bytes ??= Buffer.byteLength(json);
    }
    return this._bytes;
  }

  /** Builds a frame around pre-encoded JSON parts (a cached `who` page): `json` and its UTF-8 size are given. */
  static prebuilt(frame: ServerFrame, json: string, bytes: number, sender?: ClientInfo): Outgoing {
    const out = new Outgoing(frame, sender);
    out._json = json;
    out._bytes = bytes;
    return out;
  }

  /** The bytes of this frame in a transport's framing (`encoding` is the transport's), built once, shared after. */
  bytesFor(encoding: Encoding): Buffer {
    if (this._enc1 === encoding) return this._buf1!;
    if (this._enc2 === encoding) return this._buf2!;
    const known = this._extra?.get(encoding);
    if (known) return known;
    const buf = encoding(this);
    if (this._enc1 === undefined) [this._enc1, this._buf1] = [encoding, buf];
    else if (this._enc2 === undefined) [this._enc2, this._buf2] = [encoding, buf];
    else (this._extra ??= new Map()).set(encoding, buf);
    return buf;
  }

  /** A rendering cached under `key`, built by `render` on first use. */
  rendered(key: string, render: (frame: ServerFrame) => string): Buffer {
    this._extra ??= new Map();
    let buf = this._extra.get(key);
    if (!buf) this._extra.set(key, (buf = Buffer.from(render(this.frame))));
    return buf;
  }
}

/** KeptMessage's MQTT marks: the QoS in the two low bits, the retain flag in this one. */
const RETAIN_BIT = 4;

/**
 * A `msg` as the history keeps it: its JSON text, its size, who sent it and its MQTT QoS and retain flag, one small
 * object beside the text. A message lives in the history for 100 publishes of its topic: whatever it holds survives the young
 * generation and is promoted, so the history holds no frame object, no transport bytes, no Outgoing (five objects
 * where this is two: the scavenger copies each one twice, and the old generation's marking visits it). A resume
 * rebuilds the Outgoing: the same frame, JSON, size, sender and QoS as when it was published (and keeps it).
 */
export class KeptMessage {
  constructor(
    readonly json: string,
    readonly bytes: number,
    readonly sender: ClientInfo | undefined,
    /** Its MQTT QoS and retain flag in one small integer (one field per message kept, not two). */
    private readonly mqtt: number,
  ) {}

  get maxQos(): 0 | 1 | 2 {
    return (this.mqtt & 3) as 0 | 1 | 2;
  }

  get retain(): boolean {
    return (this.mqtt & RETAIN_BIT) !== 0;
  }

  /**
   * The replayed message is kept from its first replay on: a reconnecting crowd resuming the same topic shares it
   * (and its encodings) as it shared the live one, at the memory a message cost before it was kept this way.
   */
  private replayed: Outgoing | undefined;

  /** The message for a replay, as Outgoing.message built it (its `data` still read back from the JSON when asked). */
  replay(): Outgoing {
    return (this.replayed ??= this.rebuild());
  }

  private rebuild(): Outgoing {
    const json = this.json;
    const f = JSON.parse(json) as { topic: string; seq: number; epoch: string; from?: { id: string; name: string }; ts: number };
    // `data` is the frame's last field; `,"data":` cannot occur earlier outside a string, and inside one its quotes
    // would be escaped (topic and name are the only strings before it).
    const dataAt = json.indexOf(',"data":') + 8;
    const out = Outgoing.prebuilt(new MessageFrame(f.topic, f.seq, f.epoch, f.from, f.ts, json, dataAt) as unknown as ServerFrame, json, this.bytes, this.sender);
    out.dataFrom(dataAt);
    out.maxQos = this.maxQos;
    out.retain = this.retain;
    return out;
  }
}
