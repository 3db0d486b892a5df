// Comparing what the docs show with what really happens. Values that differ on every run (ids, addresses, epochs,
// lives, timestamps) are variables: the first time a documented value is met it is bound to the real one, and from
// then on it must be that same value (so "c1 renamed, then c1 subscribed" stays one client). `…` in a documented line
// stands for anything (left-out log fields). Typed frames are sent with the bound values put back.

/** What varies from run to run, as it appears in documented text. `bind`: a variable; else anything matching `real`. */
const VOLATILE: { find: RegExp; bind: boolean; real: string }[] = [
  { find: /(?<="ts":)\d{10,}/g, bind: false, real: '\\d{10,}' },
  { find: /(?<="uptimeS":)\d+/g, bind: false, real: '\\d+' },
  { find: /(?<=")[0-9a-z]{8}\.[0-9a-z]+(?=")/g, bind: true, real: '[0-9a-z]{8}\\.[0-9a-z]+' },
  { find: /(?<="life":")[0-9a-z]{8}(?=")/g, bind: true, real: '[0-9a-z]{8}' },
  { find: /(?<=(?:127\.0\.0\.1|localhost):)\d{2,5}/g, bind: true, real: '\\d{2,5}' },
  { find: /\bc\d+\b/g, bind: true, real: 'c\\d+' },
  { find: /\bguest-\d+\b/g, bind: true, real: 'guest-\\d+' },
  { find: /(?<=\[)\d\d:\d\d:\d\d\.\d{3}(?=\])/g, bind: false, real: '\\d\\d:\\d\\d:\\d\\d\\.\\d{3}' },
  { find: /(?<=(?:INFO|WARN|ERROR) \()\d+(?=\))/g, bind: false, real: '\\d+' },
  { find: /(?<=^ +(?:port|tcpPort): )\d+$/g, bind: true, real: '\\d+' },
  { find: /…/g, bind: false, real: '.*?' },
];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class Bindings {
  /** Documented value → real value. */
  readonly values = new Map<string, string>();

  /** True when `actual` is `expected` with its variables bound consistently (then the new bindings are kept). */
  match(expected: string, actual: string): boolean {
    const hits: { at: number; end: number; text: string; bind: boolean; real: string }[] = [];
    for (const v of VOLATILE) {
      for (const m of expected.matchAll(v.find)) {
        const at = m.index!;
        if (hits.some((h) => at < h.end && at + m[0].length > h.at)) continue;
        hits.push({ at, end: at + m[0].length, text: m[0], bind: v.bind, real: v.real });
      }
    }
    hits.sort((a, b) => a.at - b.at);
    let pattern = '';
    let pos = 0;
    const groups: string[] = [];
    for (const h of hits) {
      pattern += escape(expected.slice(pos, h.at));
      pos = h.end;
      if (!h.bind) pattern += h.real;
      else if (this.values.has(h.text)) pattern += escape(this.values.get(h.text)!);
      else if (groups.includes(h.text)) pattern += `\\k<g${groups.indexOf(h.text)}>`;
      else {
        pattern += `(?<g${groups.length}>${h.real})`;
        groups.push(h.text);
      }
    }
    pattern += escape(expected.slice(pos));
    const m = new RegExp(`^${pattern}$`).exec(actual);
    if (!m) return false;
    groups.forEach((doc, i) => this.values.set(doc, m.groups![`g${i}`]!));
    return true;
  }

  /** `text` with every bound documented value replaced by its real one (longest first). */
  put(text: string): string {
    const keys = [...this.values.keys()].sort((a, b) => b.length - a.length);
    if (keys.length === 0) return text;
    return text.replace(new RegExp(keys.map(escape).join('|'), 'g'), (k) => this.values.get(k)!);
  }
}

/** Lines of a documented output, and of what really came, compared one by one; throws with both when they differ. */
export function expectLines(expected: string[], actual: string[], bindings = new Bindings(), what = 'output'): void {
  const bad = expected.findIndex((line, i) => actual[i] === undefined || !bindings.match(line, actual[i]!));
  if (bad < 0 && actual.length === expected.length) return;
  const show = (ls: string[]) => ls.map((l, i) => `${i === bad ? '>' : ' '} ${l}`).join('\n');
  throw new Error(`${what} differs from the docs${bad >= 0 ? ` at line ${bad + 1}` : ` (${actual.length} lines, ${expected.length} documented)`}\n--- documented\n${show(expected)}\n--- real\n${show(actual)}`);
}
