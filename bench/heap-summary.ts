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
