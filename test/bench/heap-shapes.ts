// Heap growth between two V8 heap snapshots, grouped finer than by constructor: plain objects by their property
// names, arrays and internal nodes by who holds them (owner's constructor and the edge's name). Used by
// connection-parts.ts --shapes to tell which xstate or Switchboard structure a byte belongs to.
import { readFileSync } from 'node:fs';

interface Snap {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export function shapes(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snap;
  const nf = snap.snapshot.meta.node_fields;
  const ef = snap.snapshot.meta.edge_fields;
  const ntypes = snap.snapshot.meta.node_types[0];
  const etypes = snap.snapshot.meta.edge_types[0];
  const nw = nf.length;
  const ew = ef.length;
  const [iType, iName, iSize, iEdges] = [nf.indexOf('type'), nf.indexOf('name'), nf.indexOf('self_size'), nf.indexOf('edge_count')];
  const [eType, eName, eTo] = [ef.indexOf('type'), ef.indexOf('name_or_index'), ef.indexOf('to_node')];
  const count = snap.nodes.length / nw;
  const label = (n: number): string => {
    const t = ntypes[snap.nodes[n * nw + iType]!]!;
    return t === 'object' || t === 'closure' ? `${t} ${snap.strings[snap.nodes[n * nw + iName]!]}` : `(${t})`;
  };
  // Edges: names per node, and the first retainer of each node.
  const props: string[][] = new Array(count);
  const holder = new Int32Array(count).fill(-1);
  const holderEdge: string[] = new Array(count);
  let e = 0;
  for (let n = 0; n < count; n++) {
    const edges = snap.nodes[n * nw + iEdges]!;
    const names: string[] = [];
    for (let k = 0; k < edges; k++, e += ew) {
      const et = etypes[snap.edges[e + eType]!]!;
      const nameOrIndex = snap.edges[e + eName]!;
      const to = snap.edges[e + eTo]! / nw;
      const name = et === 'element' || et === 'hidden' ? `[${et}]` : String(snap.strings[nameOrIndex]);
      if (et === 'property') names.push(name);
      if (holder[to] === -1 && et !== 'weak') {
        holder[to] = n;
        holderEdge[to] = name;
      }
    }
    props[n] = names;
  }
  const out = new Map<string, { count: number; bytes: number }>();
  for (let n = 0; n < count; n++) {
    const base = label(n);
    let key = base;
    if (base === 'object Object') key = `{${props[n]!.slice(0, 10).join(',')}}`;
    else if (!base.startsWith('object ') && !base.startsWith('closure ')) {
      const h = holder[n]!;
      key = h >= 0 ? `${base} in ${label(h) === 'object Object' ? `{${props[h]!.slice(0, 6).join(',')}}` : label(h)}.${holderEdge[n]}` : base;
    }
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += snap.nodes[n * nw + iSize]!;
    out.set(key, g);
  }
  return out;
}

export function growth(before: string, after: string, n: number, min = 8): { name: string; count: number; bytes: number }[] {
  const g0 = shapes(before);
  const g1 = shapes(after);
  return [...g1]
    .map(([name, g]) => ({ name, count: (g.count - (g0.get(name)?.count ?? 0)) / n, bytes: (g.bytes - (g0.get(name)?.bytes ?? 0)) / n }))
    .filter((r) => r.bytes > min)
    .sort((a, b) => b.bytes - a.bytes);
}
