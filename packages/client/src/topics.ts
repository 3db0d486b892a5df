// Topic filters as the client needs them: MQTT matching (`+` one segment, `#` last: zero or more) and the
// wildcard test. The broker has its own (src/protocol/topic.ts); test/client/contract.test.ts checks they agree.

export function isWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/** Does `filter` match the concrete `topic`? */
export function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
