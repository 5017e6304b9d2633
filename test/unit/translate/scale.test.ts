// A measurement, not a benchmark gate: how long translating a large cluster takes. It prints the
// time and asserts only what was produced, never how fast.
import { describe, expect, it } from 'vitest';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { translate } from '../../../src/translate/translate.js';
import { NODE, SETTINGS } from './fixtures.js';

const SERVICES = 10_000;
const ENDPOINTS = 10;

function cluster(): { services: Service[]; endpointSlices: EndpointSlice[] } {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const name = `svc-${i}`;
    const nodePort = i % 10 === 0;
    services.push({
      metadata: { name, namespace: 'bench' },
      spec: {
        type: nodePort ? 'NodePort' : 'ClusterIP',
        clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        ports: [{ name: 'http', port: 80, targetPort: 8080, ...(nodePort ? { nodePort: 30000 + (i % 2768) } : {}) }],
      },
    });
    endpointSlices.push({
      metadata: { name: `${name}-abc`, namespace: 'bench', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: Array.from({ length: ENDPOINTS }, (_, e) => ({
        addresses: [`10.${200 + (e % 50)}.${(i >> 8) & 255}.${i & 255}`],
        nodeName: e === 0 ? 'node-a' : 'node-b',
        conditions: { ready: true },
      })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
  }
  return { services, endpointSlices };
}

describe('translate at scale', () => {
  it(`translates ${SERVICES} Services with ${ENDPOINTS} endpoints each (prints the time)`, () => {
    const snapshot = cluster();
    translate(snapshot, NODE, SETTINGS); // warm-up: JIT and caches
    const runs: number[] = [];
    let state = translate(snapshot, NODE, SETTINGS);
    for (let run = 0; run < 3; run++) {
      const started = performance.now();
      state = translate(snapshot, NODE, SETTINGS);
      runs.push(performance.now() - started);
    }
    console.log(
      `translate: ${SERVICES} Services x ${ENDPOINTS} endpoints -> ${state.virtualServers.size} virtual servers in ` +
        `${runs.map((ms) => `${ms.toFixed(0)} ms`).join(', ')} (best ${Math.min(...runs).toFixed(0)} ms)`,
    );
    // One ClusterIP virtual server each, plus a NodePort one for every tenth.
    expect(state.virtualServers.size).toBe(SERVICES + SERVICES / 10);
    expect(state.problems).toEqual([]);
    expect(state.ipsets.get('KUBE-CLUSTER-IP')?.entries.size).toBe(SERVICES);
    expect(state.ipsets.get('KUBE-LOOP-BACK')?.entries.size).toBe(SERVICES);
    for (const virtualServer of state.virtualServers.values()) expect(virtualServer.realServers.size).toBe(ENDPOINTS);
  }, 120_000);
});
