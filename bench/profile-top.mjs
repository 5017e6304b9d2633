#!/usr/bin/env node
// The functions with the most self time in a V8 CPU profile (.cpuprofile, as written by
// `node --cpu-prof` or by `KIPVS_BENCH_PROFILE=DIR npm run bench`).
//
//   node bench/profile-top.mjs FILE.cpuprofile [how many, default 20]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const [file, countText] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/profile-top.mjs FILE.cpuprofile [count]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMicros = new Map();
// samples[i] was taken timeDeltas[i] after the previous one: charge each interval to its sample.
profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const byFunction = new Map();
let total = 0;
for (const [id, micros] of selfMicros) {
  const { callFrame } = nodes.get(id);
  const where = callFrame.url ? `${relative(process.cwd(), callFrame.url.replace(/^file:\/\//, ''))}:${callFrame.lineNumber + 1}` : '';
  const key = `${callFrame.functionName || '(anonymous)'} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  total += micros;
}
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
for (const [key, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(countText ?? 20))) {
  console.log(`${(micros / 1000).toFixed(1).padStart(9)} ms ${((100 * micros) / total).toFixed(1).padStart(5)}%  ${key}`);
}
