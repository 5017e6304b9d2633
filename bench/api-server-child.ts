// The API server of bench/retained-heap.ts's API-source mode, in a process of its own so that its
// objects are not in the measured heap: the workload of N Services (argv[2]) served by the tests'
// API server; its kubeconfig's path goes to the parent, and each message { index, n } from the
// parent rewrites one Service's EndpointSlice (the n-th endpoint change).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestApiServer, type ApiObject } from '../test/support/api-server.js';
import { changedSlice, generateWorkload, remoteEndpointOf } from './workload.js';

const size = Number(process.argv[2]);
const server = await TestApiServer.start();
const workload = generateWorkload(size);
for (const service of workload.services) server.create('services', service as unknown as ApiObject);
for (const slice of workload.endpointSlices) server.create('endpointslices', slice as unknown as ApiObject);
process.send?.({ kubeconfig: server.writeKubeconfig(mkdtempSync(join(tmpdir(), 'kipvs-api-'))) });
process.on('message', ({ index, n }: { index: number; n: number }) => {
  server.update('endpointslices', changedSlice(index, { removed: n % 2 === 0 ? remoteEndpointOf(index) : undefined }, n + 1) as unknown as ApiObject);
  process.send?.({ updated: n });
});
process.on('disconnect', () => void server.stop().then(() => process.exit(0)));
