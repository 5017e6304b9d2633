// Benchmark (not a test): the agent's cost for one endpoint change at N Services, against the
// in-memory kernel, so only kipvs's own work is measured (translation, diff, cache upkeep).
//   node --import tsx bench/change-cost.ts
import { pino } from 'pino';
import { Proxier } from '../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../src/agent/ownership.js';
import { FakeKernel } from '../test/support/fake-kernel.js';
import { ClusterStore } from '../src/sources/cluster-store.js';
import { DEFAULT_SETTINGS } from '../src/model/settings.js';
import type { ClusterSnapshot, EndpointSlice, Service } from '../src/model/kubernetes.js';
import { percentile } from './stats.js';

function cluster(count: number, extraEndpoint?: number): ClusterSnapshot {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${i}`;
    services.push({
      metadata: { name, namespace: 'default' },
      spec: { clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    const endpoints = Array.from({ length: i === extraEndpoint ? 11 : 10 }, (_, j) => ({
      addresses: [`10.${128 + j}.${(i >> 8) & 255}.${i & 255}`],
      conditions: { ready: true },
    }));
    endpointSlices.push({
      metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints,
    });
  }
  return { services, endpointSlices };
}

for (const count of [1_000, 10_000]) {
  const store = new ClusterStore();
  const proxier = new Proxier({
    kernel: new FakeKernel(),
    node: { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] },
    settings: DEFAULT_SETTINGS,
    log: pino({ level: 'silent' }),
    ownership: new MemoryOwnershipStore(),
    cluster: store,
  });
  const base = cluster(count);
  const before = base.endpointSlices[count >> 1];
  const after = cluster(count, count >> 1).endpointSlices[count >> 1];
  if (!before || !after) throw new Error(`N=${count}: no EndpointSlice ${count >> 1}`);
  store.replaceAll(base.services, base.endpointSlices);
  await proxier.sync();
  const times: number[] = [];
  for (let round = 0; round < 200; round++) {
    const started = performance.now();
    store.upsertEndpointSlice(round % 2 === 0 ? after : before);
    const { plan } = await proxier.sync({ full: false });
    const durationMs = performance.now() - started;
    if (plan.operations.length !== 1) throw new Error(`expected one operation, got ${plan.operations.length}`);
    times.push(durationMs);
  }
  console.log(
    `N=${count}: one endpoint change, ${times.length} times: median ${percentile(times, 0.5).toFixed(1)} ms, p99 ${percentile(times, 0.99).toFixed(1)} ms (1 kernel operation each)`,
  );
}
