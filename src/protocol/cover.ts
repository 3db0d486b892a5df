// filterCovers: may a client granted filter G subscribe to filter R? Yes exactly when every topic R matches, G matches too.
// Pure, segment by segment; the property test checks it against the reference matcher over whole topic spaces.

/**
 * True when every concrete topic matched by `requested` is also matched by `granted` (both valid filters).
 * Topics have at least one segment, so `+/#` covers `#`; topic length limits are not taken into account.
 */
export function filterCovers(granted: string, requested: string): boolean {
  const g = granted.split('/');
  const r = requested.split('/');
  for (let i = 0; ; i++) {
    if (g[i] === '#') return true;
    if (i === r.length) return i === g.length;
    if (i === g.length) return false;
    // `#` in the request matches any remainder; only `#` in the grant does too (or `+/#` at the root, as no topic is empty).
    if (r[i] === '#') return i === 0 && g.length === 2 && g[0] === '+' && g[1] === '#';
    if (g[i] === '+') continue;
    if (r[i] !== g[i]) return false; // a literal grant segment covers only the same literal, never `+`
  }
}
