import { describe, expect, it } from 'vitest';
import { IncrementalTranslator } from '../../../src/translate/incremental.js';
import { translate } from '../../../src/translate/translate.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';

const node = { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet' as const] };
const service = (i: number): Service => ({
  metadata: { name: `svc-${i}`, namespace: 'default' },
  spec: { type: 'NodePort', clusterIP: `10.96.0.${i}`, ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30000 + i }] },
});
const slice = (i: number, endpoints: string[]): EndpointSlice => ({
  metadata: { name: `svc-${i}-a`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: endpoints.map((address) => ({ addresses: [address], conditions: { ready: true }, nodeName: 'node-a' })),
});

describe('IncrementalTranslator', () => {
  it('translates again only the Services whose objects changed, with the same result as a full translation', () => {
    const services = Array.from({ length: 50 }, (_, i) => service(i + 1));
    const slices = services.map((_, i) => slice(i + 1, [`10.244.0.${i + 1}`]));
    const translator = new IncrementalTranslator();
    const first = translator.translate({ services, endpointSlices: slices }, node, DEFAULT_SETTINGS);
    expect(translator.translatedLastTime).toBe(50);
    expect(first).toEqual(translate({ services, endpointSlices: slices }, node, DEFAULT_SETTINGS));

    const changedSlices = [...slices];
    changedSlices[7] = slice(8, ['10.244.0.8', '10.244.1.8']);
    const second = translator.translate({ services, endpointSlices: changedSlices }, node, DEFAULT_SETTINGS);
    expect(translator.translatedLastTime).toBe(1);
    expect(second).toEqual(translate({ services, endpointSlices: changedSlices }, node, DEFAULT_SETTINGS));

    const fewer = services.slice(1);
    const third = translator.translate({ services: fewer, endpointSlices: changedSlices }, node, DEFAULT_SETTINGS);
    expect(translator.translatedLastTime).toBe(0);
    expect(third).toEqual(translate({ services: fewer, endpointSlices: changedSlices }, node, DEFAULT_SETTINGS));
  });

  it('translates everything again when the node or the settings change, and follows the plain rules for a repeated Service', () => {
    const services = [service(1), service(2)];
    const slices = [slice(1, ['10.244.0.1']), slice(2, ['10.244.0.2'])];
    const translator = new IncrementalTranslator();
    translator.translate({ services, endpointSlices: slices }, node, DEFAULT_SETTINGS);
    const otherSettings = { ...DEFAULT_SETTINGS, scheduler: 'lc' };
    const result = translator.translate({ services, endpointSlices: slices }, node, otherSettings);
    expect(translator.translatedLastTime).toBe(2);
    expect([...result.virtualServers.values()].every((vs) => vs.service.scheduler === 'lc')).toBe(true);
    const repeated = [service(1), service(1)];
    expect(translator.translate({ services: repeated, endpointSlices: slices }, node, otherSettings)).toEqual(
      translate({ services: repeated, endpointSlices: slices }, node, otherSettings),
    );
  });
});
