// MQTT 5.0 properties as the codec hands them over, checked before anything reads them. mqtt-packet is lenient: a
// binary or string property whose declared length runs past the packet comes back as null, a property given twice
// as an array, a truncated user property as the name "null". Each is a malformed packet [MQTT-2.2.2-2] (only user
// properties and subscription identifiers may repeat): the connection is closed, never a TypeError later on.
import type { Packet } from 'mqtt-packet';

type Kind = 'number' | 'string' | 'binary' | 'flag';

/** Each property's type (MQTT 5.0, 2.2.2.2), as mqtt-packet names and decodes it (a byte property as a boolean). */
const KINDS: ReadonlyMap<string, Kind> = new Map<string, Kind>([
  ['payloadFormatIndicator', 'flag'],
  ['messageExpiryInterval', 'number'],
  ['contentType', 'string'],
  ['responseTopic', 'string'],
  ['correlationData', 'binary'],
  ['sessionExpiryInterval', 'number'],
  ['assignedClientIdentifier', 'string'],
  ['serverKeepAlive', 'number'],
  ['authenticationMethod', 'string'],
  ['authenticationData', 'binary'],
  ['requestProblemInformation', 'flag'],
  ['willDelayInterval', 'number'],
  ['requestResponseInformation', 'flag'],
  ['responseInformation', 'string'],
  ['serverReference', 'string'],
  ['reasonString', 'string'],
  ['receiveMaximum', 'number'],
  ['topicAliasMaximum', 'number'],
  ['topicAlias', 'number'],
  ['maximumQoS', 'number'],
  ['retainAvailable', 'flag'],
  ['maximumPacketSize', 'number'],
  ['wildcardSubscriptionAvailable', 'flag'],
  ['subscriptionIdentifiersAvailable', 'flag'],
  ['sharedSubscriptionAvailable', 'flag'],
]);

function fits(kind: Kind, value: unknown): boolean {
  switch (kind) {
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'string':
      return typeof value === 'string';
    case 'binary':
      return Buffer.isBuffer(value);
    case 'flag':
      return typeof value === 'boolean';
  }
}

const isString = (v: unknown) => typeof v === 'string';

/** What is wrong with one properties record, or undefined. */
function problemOf(properties: unknown): string | undefined {
  if (properties === undefined) return undefined;
  if (typeof properties !== 'object' || properties === null) return 'properties that cannot be read';
  for (const [name, value] of Object.entries(properties)) {
    if (name === 'userProperties') {
      if (typeof value !== 'object' || value === null) return 'user properties that cannot be read';
      for (const v of Object.values(value as Record<string, unknown>)) {
        if (!(isString(v) || (Array.isArray(v) && v.every(isString)))) return 'a truncated user property';
      }
      continue;
    }
    if (name === 'subscriptionIdentifier') {
      const ids = Array.isArray(value) ? value : [value];
      if (!ids.every((v) => fits('number', v))) return 'a subscription identifier that cannot be read';
      continue;
    }
    const kind = KINDS.get(name);
    if (kind === undefined) continue; // the codec refuses unknown property codes itself
    if (Array.isArray(value)) return `property ${name} given more than once`;
    if (!fits(kind, value)) return `property ${name} truncated or of the wrong type`;
  }
  return undefined;
}

/** A malformed packet's reason (its properties, or its will's), or undefined when everything in them can be read. */
export function propertiesProblem(packet: Packet): string | undefined {
  const p = packet as { properties?: unknown; will?: { properties?: unknown } | null };
  return problemOf(p.properties) ?? (p.will ? problemOf(p.will.properties) : undefined);
}
