// The V8 heap by constructor, from a .heapsnapshot: self size and count, largest first.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

export function summariseHeapSnapshot(file: string, top: number): string {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const byName = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] ?? 0] ?? '?';
    const name = type === 'object' || type === 'native' ? (snap.strings[snap.nodes[i + nameAt] ?? 0] ?? '?') : `(${type})`;
    const bytes = snap.nodes[i + sizeAt] ?? 0;
    const entry = byName.get(name) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += bytes;
    byName.set(name, entry);
    total += bytes;
  }
  const rows = [...byName].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top);
  const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1).padStart(7);
  return [
    `heap ${mb(total)} MiB by constructor (self size, count):`,
    ...rows.map(([name, e]) => `${mb(e.bytes)} MiB ${String(e.count).padStart(9)}  ${name.slice(0, 60)}`),
  ].join('\n');
}

interface FullSnapshot extends Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  edges: number[];
}

/**
 * The same heap by what holds each object: self size grouped by `holder.edge → object`, where the
 * holder is the first object found to reference it (a V8-internal holder, such as a Map's hash
 * table, is named after its own holder). Shows which field of which kind of object the bytes hang
 * from (`IpvsDestination`s under a Map's table, strings under `.address`, …).
 */
export function summariseRetainers(file: string, top: number): string {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as FullSnapshot;
  const { node_fields: fields, node_types: nodeTypes, edge_fields: edgeFields, edge_types: edgeTypes } = snap.snapshot.meta;
  const width = fields.length;
  const edgeWidth = edgeFields.length;
  const [typeAt, nameAt, sizeAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map((f) => fields.indexOf(f)) as [number, number, number, number];
  const [edgeTypeAt, edgeNameAt, toAt] = ['type', 'name_or_index', 'to_node'].map((f) => edgeFields.indexOf(f)) as [number, number, number];
  const count = snap.nodes.length / width;
  const holder = new Int32Array(count).fill(-1);
  const holderEdge: string[] = new Array<string>(count);
  let edge = 0;
  for (let node = 0; node < count; node++) {
    const edges = snap.nodes[node * width + edgeCountAt] ?? 0;
    for (let e = 0; e < edges; e++, edge += edgeWidth) {
      const kind = edgeTypes[0][snap.edges[edge + edgeTypeAt] ?? 0] ?? '?';
      if (kind === 'weak') continue;
      const to = (snap.edges[edge + toAt] ?? 0) / width;
      if (holder[to] !== -1) continue;
      holder[to] = node;
      const nameOrIndex = snap.edges[edge + edgeNameAt] ?? 0;
      holderEdge[to] = kind === 'element' || kind === 'hidden' ? `[]` : (snap.strings[nameOrIndex] ?? '?');
    }
  }
  const type = (node: number): string => nodeTypes[0][snap.nodes[node * width + typeAt] ?? 0] ?? '?';
  const name = (node: number): string => {
    const t = type(node);
    return t === 'object' || t === 'native' || t === 'closure' ? (snap.strings[snap.nodes[node * width + nameAt] ?? 0] ?? '?').slice(0, 40) : `(${t})`;
  };
  const label = (node: number, depth: number): string => {
    const own = name(node);
    const up = holder[node] ?? -1;
    if (depth === 0 || up === -1 || !['(array)', '(hidden)', '(object shape)', '(code)'].includes(own)) return own;
    return `${label(up, depth - 1)}.${holderEdge[node] ?? '?'}>${own}`;
  };
  const byHolder = new Map<string, { count: number; bytes: number }>();
  for (let node = 0; node < count; node++) {
    const up = holder[node] ?? -1;
    const key = `${up === -1 ? '(root)' : label(up, 3)}.${holderEdge[node] ?? ''} → ${name(node)}`;
    const entry = byHolder.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[node * width + sizeAt] ?? 0;
    byHolder.set(key, entry);
  }
  const rows = [...byHolder].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top);
  const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1).padStart(7);
  return ['by holder (self size, count):', ...rows.map(([key, e]) => `${mb(e.bytes)} MiB ${String(e.count).padStart(9)}  ${key.slice(0, 140)}`)].join('\n');
}
