// Benchmark (not a test): what a Prometheus scrape of the per-Service traffic metrics costs at
// 10,000 Services (10,000 virtual servers x 10 real servers), in a network namespace of its own:
// a scrape that reads the IPVS table, scrapes within the interval that share that read and its
// rendered text, and a storm of concurrent scrapes; as the agent runs it (the per-port counters
// from one dump of the virtual servers) and with --metrics-per-endpoint (a dump of real servers
// per virtual server, and a gauge per real server). Wall time and the process's CPU time (user + system).
//
//   npm run bench:service-metrics
//   KIPVS_BENCH_SERVICES=1000 npm run bench:service-metrics
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { IpvsClient } from '../dist/netlink/ipvs/client.js';
import { readTraffic, serviceTrafficExposition } from '../dist/agent/service-metrics.js';

if (!process.env.KIPVS_SANDBOX) {
  console.error('bench: run through npm run bench:service-metrics, which provides a kernel with IPVS');
  process.exit(2);
}
const serviceCount = Number(process.env.KIPVS_BENCH_SERVICES ?? 10_000);
const realServersPerService = 10;

const netns = `kipvs-bench-${randomBytes(3).toString('hex')}`;
execFileSync('ip', ['netns', 'add', netns]);
// With lo down the kernel refuses real servers: their addresses are not unicast to it (EINVAL).
execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
const owners = new Map();
const operations = [];
for (let i = 0; i < serviceCount; i++) {
  const address = `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const key = { family: 'inet', protocol: 'TCP', address, port: 80 };
  owners.set(`TCP ${address}:80`, { namespace: `ns-${i % 100}`, name: `svc-${i}`, port: 'http' });
  operations.push({ op: 'addService', service: { key, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 } });
  for (let j = 0; j < realServersPerService; j++) {
    const destination = {
      address: `10.${128 + j}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      family: 'inet',
      forwarding: 'masq',
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
    };
    operations.push({ op: 'addDestination', service: key, destination });
  }
}

const measure = async (what) => {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const result = await what();
  const { user, system } = process.cpuUsage(cpu);
  return { ms: performance.now() - started, cpuMs: (user + system) / 1000, result };
};

const ipvs = await IpvsClient.open({ netns: `/run/netns/${netns}` });
try {
  await ipvs.applyAll(operations);
  const fmt = (m) => `${(m.ms / 1000).toFixed(2)} s (CPU ${(m.cpuMs / 1000).toFixed(2)} s)`;
  console.log(`${serviceCount} virtual servers x ${realServersPerService} real servers`);
  console.log(
    'metrics | round | scrape that reads the table | of which the read | scrape within the interval | 10 concurrent scrapes | table reads | series | bytes',
  );
  for (const perEndpoint of [false, true]) {
    let reads = 0;
    let now = 0;
    const exposition = serviceTrafficExposition({
      perEndpoint,
      read: () => {
        reads++;
        return readTraffic(ipvs, perEndpoint);
      },
      ownerOf: (key) => owners.get(key),
      clock: () => now,
    });
    for (let round = 1; round <= 2; round++) {
      now += 60_000; // past the interval: this scrape reads the table
      const readsBefore = reads;
      const cold = await measure(() => exposition());
      const warm = await measure(() => exposition());
      const storm = await measure(() => Promise.all(Array.from({ length: 10 }, () => exposition())));
      const series = cold.result.split('\n').filter((line) => line.startsWith('kipvs_service_') && !line.startsWith('kipvs_service_traffic_read')).length;
      // The rest of the cold scrape is folding and rendering: what every scrape paid before the text was kept.
      const readMs = Number(/^kipvs_service_traffic_read_seconds (\S+)$/m.exec(cold.result)?.[1]) * 1000;
      const mode = perEndpoint ? 'per endpoint' : 'per port';
      console.log(
        `${mode} | ${round} | ${fmt(cold)} | ${(readMs / 1000).toFixed(2)} s | ${fmt(warm)} | ${fmt(storm)} | ${reads - readsBefore} | ${series} | ${cold.result.length}`,
      );
    }
  }
} finally {
  ipvs.close();
  execFileSync('ip', ['netns', 'delete', netns]);
}
