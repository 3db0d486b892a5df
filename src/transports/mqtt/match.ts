// MQTT's topic matching: the broker's, plus MQTT's `$` rule (a filter starting with a wildcard does not match a
// topic starting with `$`), and the QoS a topic is delivered at through a session's filters. Pure.
import type { QoS } from 'mqtt-packet';
import { filterMatches } from '../../protocol/topic.js';

export function mqttMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 && (filter.charCodeAt(0) === 0x2b || filter.charCodeAt(0) === 0x23)) return false;
  return filter === topic || filterMatches(filter, topic);
}

/** The QoS `topic` is delivered at through `filters`: the highest of those matching it but those in `skip`; undefined when none does. */
export function grantedQos(filters: ReadonlyMap<string, QoS>, topic: string, skip?: ReadonlySet<string>): QoS | undefined {
  let best: QoS | undefined;
  for (const [filter, qos] of filters) {
    if (skip?.has(filter)) continue;
    if ((best === undefined || qos > best) && mqttMatches(filter, topic)) best = qos;
  }
  return best;
}
