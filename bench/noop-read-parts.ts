// Benchmark (not a test): what a no-op full sync at N reads, each part timed apart, in the
// sandbox: the in-process agent's cold sync, a settling full sync, then rounds of a no-op full
// sync beside its parts read on their own (the services dump, /proc/net/ip_vs read and parsed,
// one rotation turn of real-server dumps, the ipsets). KIPVS_BENCH_PROFILE: a CPU profile of
// three more no-op full syncs (summarise: node bench/profile-top.mjs FILE).
//
//   node --import tsx bench/noop-read-parts.ts                  N = 10,000, 3 rounds
import { allIpsetNames } from '../src/cli/agent.js';
import { FULL_READ_ROUNDS, turnOf } from '../src/kernel/proc-assisted-read.js';
import { virtualServerKey } from '../src/model/desired.js';
import { IpsetClient } from '../src/netlink/ipset/client.js';
import { IpvsClient } from '../src/netlink/ipvs/client.js';
import { readProcIpvsTable } from '../src/netlink/ipvs/proc-table.js';
import { closeAgent, openAgent } from './cluster/in-process-agent.js';
import { freshNamespace } from './cluster/namespaces.js';
import { profiled } from './cluster/profile.js';
import { log } from './cluster/shared.js';
import { generateWorkload } from './workload.js';
import { runInSandbox } from './sandboxed.js';

runInSandbox(import.meta.filename);

const size = Number(process.env.KIPVS_BENCH_SIZES ?? 10_000);
const rounds = Number(process.env.KIPVS_BENCH_ROUNDS ?? 3);

async function timed(what: string, run: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  await run();
  log(`N=${size} ${what}: ${(performance.now() - started).toFixed(0)} ms`);
}

const netns = freshNamespace();
const agent = await openAgent(netns);
const ipvs = await IpvsClient.open({ netns });
const ipsets = await IpsetClient.open({ netns });
try {
  const workload = generateWorkload(size);
  agent.store.replaceAll(workload.services, workload.endpointSlices);
  await timed('cold sync', () => agent.proxier.sync({ full: true }));
  await timed('settling full sync', () => agent.proxier.sync({ full: true }));
  for (let round = 0; round < rounds; round++) {
    await timed(`round ${round + 1}: no-op full sync`, () => agent.proxier.sync({ full: true }));
    const services = await ipvs.listServices({ withStats: false });
    await timed(`round ${round + 1}: the services dump (${services.length})`, () => ipvs.listServices({ withStats: false }));
    let shown = 0;
    await timed(`round ${round + 1}: /proc/net/ip_vs read and parsed`, () =>
      readProcIpvsTable(() => {
        shown++;
      }, netns),
    );
    if (shown !== services.length) log(`N=${size} round ${round + 1}: /proc showed ${shown} virtual servers, the dump ${services.length}`);
    const turn = services.filter((service) => turnOf(virtualServerKey(service.key)) === round % FULL_READ_ROUNDS);
    await timed(`round ${round + 1}: one turn's real-server dumps (${turn.length})`, () => ipvs.listDestinationsOf(turn, { withStats: false }));
    await timed(`round ${round + 1}: the ipsets`, async () => {
      for (const name of allIpsetNames()) await ipsets.readSet(name);
    });
  }
  await profiled(`noop-parts-${size}`, async () => {
    for (let i = 0; i < 3; i++) await timed('profiled no-op full sync', () => agent.proxier.sync({ full: true }));
  });
} finally {
  ipvs.close();
  ipsets.close();
  await closeAgent(agent);
}
