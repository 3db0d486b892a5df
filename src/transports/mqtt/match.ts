// MQTT's topic matching: the broker's, plus MQTT's `$` rule (a filter starting with a wildcard does not match a
// topic starting with `$`). Pure.
import { filterMatches } from '../../protocol/topic.js';

export function mqttMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 0x24 && (filter.charCodeAt(0) === 0x2b || filter.charCodeAt(0) === 0x23)) return false;
  return filter === topic || filterMatches(filter, topic);
}
