// Benchmark (not a test): programming and dumping IPVS with kipvs's netlink layer against
// ipvsadm, on the same objects, in the same kernel boot, in a network namespace of its own.
//
//   npm run bench:netlink            (10,000 services x 10 real servers)
//   KIPVS_BENCH_SERVICES=1000 npm run bench:netlink
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpvsClient } from '../dist/netlink/ipvs/client.js';

if (!process.env.KIPVS_SANDBOX) {
  console.error('bench: run through npm run bench:netlink, which provides a kernel with IPVS');
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const serviceCount = Number(process.env.KIPVS_BENCH_SERVICES ?? 10_000);
const realServersPerService = 10;

function workload() {
  const operations = [];
  const restore = [];
  for (let i = 0; i < serviceCount; i++) {
    const address = `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    const key = { family: 'inet', protocol: 'TCP', address, port: 80 };
    operations.push({ op: 'addService', service: { key, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 } });
    restore.push(`-A -t ${address}:80 -s rr`);
    for (let j = 0; j < realServersPerService; j++) {
      const real = `10.${128 + j}.${(i >> 8) & 255}.${i & 255}`;
      operations.push({
        op: 'addDestination',
        service: key,
        destination: { address: real, port: 8080, family: 'inet', forwarding: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0 },
      });
      restore.push(`-a -t ${address}:80 -r ${real}:8080 -m -w 1`);
    }
  }
  return { operations, restoreText: `${restore.join('\n')}\n` };
}

const inNetns = (netns, command, args, input) => {
  const started = performance.now();
  const result = spawnSync('ip', ['netns', 'exec', netns, command, ...args], { input, maxBuffer: 1 << 30 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
  return { ms: performance.now() - started, stdout: result.stdout };
};

/**
 * Every measurement starts from a namespace of its own. Reusing one after a flush would measure
 * the kernel's dest trash instead: deleted real servers stay on a per-namespace list for up to
 * two minutes (IP_VS_DEST_TRASH_PERIOD) and every NEW_DEST walks that list first
 * (ip_vs_trash_get_dest), which makes a reload after a flush quadratic. Namespaces are deleted
 * only at the end, so that their cleanup does not run during a measurement.
 */
const namespaces = [];
function freshNamespace() {
  const name = `kipvs-bench-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  namespaces.push(name);
  return name;
}

async function measureIpvsadm(restoreText) {
  const netns = freshNamespace();
  const restore = inNetns(netns, 'ipvsadm', ['-R'], restoreText);
  const list = inNetns(netns, 'ipvsadm', ['-Ln']);
  return { netns, restoreMs: restore.ms, listMs: list.ms, lines: list.stdout.toString().split('\n').length - 1 };
}

async function measureKipvs(operations) {
  const netns = freshNamespace();
  const ipvs = await IpvsClient.open({ netns: `/run/netns/${netns}` });
  try {
    let started = performance.now();
    const outcomes = await ipvs.apply(operations);
    const applyMs = performance.now() - started;
    const failed = outcomes.filter((outcome) => !outcome.ok).length;
    started = performance.now();
    // The same information ipvsadm -Ln prints: the table, without counters.
    const table = await ipvs.snapshot({ withStats: false });
    const snapshotMs = performance.now() - started;
    const reals = table.reduce((n, entry) => n + entry.destinations.length, 0);
    if (failed > 0 || table.length !== serviceCount || reals !== serviceCount * realServersPerService) {
      throw new Error(`kipvs did not converge: ${failed} failed, ${table.length} services, ${reals} real servers`);
    }
    const inspect = inNetns(netns, process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'inspect']);
    return { netns, applyMs, snapshotMs, inspectMs: inspect.ms, lines: inspect.stdout.toString().split('\n').length - 1 };
  } finally {
    ipvs.close();
  }
}

async function main() {
  const { operations, restoreText } = workload();
  const rows = [];
  try {
    for (let round = 1; round <= 2; round++) {
      // Alternate which tool goes first, so neither always gets the warmer kernel.
      const ipvsadm = round === 1 ? await measureIpvsadm(restoreText) : null;
      const kipvs = await measureKipvs(operations);
      const ipvsadmResult = ipvsadm ?? (await measureIpvsadm(restoreText));
      if (kipvs.lines !== ipvsadmResult.lines) throw new Error(`kipvs inspect printed ${kipvs.lines} lines, ipvsadm -Ln ${ipvsadmResult.lines}`);
      // Both listings of the same table: ipvsadm reads the table kipvs programmed too.
      const listOfKipvsTable = inNetns(kipvs.netns, 'ipvsadm', ['-Ln']);
      rows.push({ round, ...ipvsadmResult, ...kipvs, listMs: Math.min(ipvsadmResult.listMs, listOfKipvsTable.ms) });
    }
  } finally {
    for (const name of namespaces) spawnSync('ip', ['netns', 'delete', name]);
  }

  const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `\nIPVS programming, ${serviceCount} services x ${realServersPerService} real servers (${serviceCount * (realServersPerService + 1)} objects), kernel ${execFileSync('uname', ['-r']).toString().trim()} (${process.env.KIPVS_SANDBOX})`,
  );
  console.log('round | ipvsadm -R | kipvs apply | ratio | ipvsadm -Ln | kipvs dump (in process) | ratio | kipvs inspect (process) | ratio');
  for (const r of rows) {
    console.log(
      `${r.round}     | ${fmt(r.restoreMs)} | ${fmt(r.applyMs)} | ${(r.applyMs / r.restoreMs).toFixed(2)} | ${fmt(r.listMs)} | ${fmt(r.snapshotMs)} | ${(
        r.snapshotMs / r.listMs
      ).toFixed(2)} | ${fmt(r.inspectMs)} | ${(r.inspectMs / r.listMs).toFixed(2)}`,
    );
  }
}

await main();
