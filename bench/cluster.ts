// Benchmark (not a test): kipvs on a cluster of N Services × 10 endpoints (bench/workload.ts),
// against the C tools programming the same kernel objects, all in one boot of the sandbox kernel,
// each cold sync in a network namespace of its own. Prints one table; docs/benchmarks.md says
// what each row measures.
//
//   npm run bench                                        N = 1,000, 5,000 and 10,000
//   KIPVS_BENCH_SIZES=1000,5000 npm run bench            other sizes (the largest gets the
//                                                        no-op, burst and memory rows)
//   KIPVS_BENCH_ROUNDS=2 npm run bench                   the cold syncs twice, each side's faster kept
//   KIPVS_BENCH_PROFILE=.sandbox/profiles npm run bench  a CPU profile of each measured section
//                                                        (summarise: node bench/profile-top.mjs FILE)
//
// Run on the host, it notes the host's CPU and runs itself in the sandbox kernel
// (scripts/sandbox.mjs), which passes on only KIPVS_* variables.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { pino } from 'pino';
import { Proxier } from '../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../src/agent/ownership.js';
import { SyncRunner } from '../src/agent/runner.js';
import { allIpsetNames } from '../src/cli/agent.js';
import { describeKernelOperation, NetlinkKernel } from '../src/kernel/netlink-kernel.js';
import { drainKey, type KernelOperation } from '../src/reconcile/state.js';
import { realServerKey, virtualServerKey } from '../src/model/desired.js';
import { ipvsSysctls } from '../src/kernel/sysctl.js';
import { DEFAULT_SETTINGS } from '../src/model/settings.js';
import { ClusterStore } from '../src/sources/cluster-store.js';
import { buildIptablesRules, iptablesRestoreInput } from '../src/translate/iptables-rules.js';
import { translate } from '../src/translate/translate.js';
import { countDifferences, desiredCounts, inNetns, kernelState, programWithCTools, toolInputs, type KernelState, type ToolRun } from './c-tools.js';
import {
  changedSlice,
  expectedCounts,
  generateWorkload,
  NODE,
  NODE_ADDRESS,
  NODE_ADDRESS_PREFIX,
  NODE_NAME,
  originalSlice,
  remoteEndpointOf,
  spreadServiceIndex,
  virtualServersOf,
  writeWorkload,
  type Workload,
} from './workload.js';

const root = resolve(import.meta.dirname, '..');

if (!process.env.KIPVS_SANDBOX) {
  // UML shows its guest processes a CPU called "UML": tell it the host's.
  const host = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release() };
  const result = spawnSync(
    process.execPath,
    [join(root, 'scripts', 'sandbox.mjs'), '--', process.execPath, '--expose-gc', '--import', 'tsx', 'bench/cluster.ts'],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, KIPVS_BENCH_HOST: JSON.stringify(host), KIPVS_SANDBOX_MEM: process.env.KIPVS_SANDBOX_MEM ?? '3G' },
    },
  );
  process.exit(result.status ?? 2);
}

const SETTINGS = DEFAULT_SETTINGS;
const DUMMY = SETTINGS.dummyInterface;
const CLI = join(root, 'dist', 'cli', 'main.js');
const CHANGES = 200;
const COLD_ROUNDS = Number(process.env.KIPVS_BENCH_ROUNDS ?? 1);
const BURST_CHANGES = 1_000;
const BURST_WINDOW_MS = 100;
const MIN_SYNC_INTERVAL_MS = 1_000;
function benchSizes(): { sizes: number[]; smallest: number; largest: number } {
  const sizes = (process.env.KIPVS_BENCH_SIZES ?? '1000,5000,10000')
    .split(',')
    .map((text) => Number(text.trim()))
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b);
  const [smallest] = sizes;
  const largest = sizes.at(-1);
  if (smallest === undefined || largest === undefined) throw new Error('KIPVS_BENCH_SIZES: give sizes like 1000,5000');
  return { sizes, smallest, largest };
}
const { sizes, smallest, largest } = benchSizes();
const changeSizes = [...new Set([smallest, largest])];
const profileDir = process.env.KIPVS_BENCH_PROFILE ? resolve(root, process.env.KIPVS_BENCH_PROFILE) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });
const workDir = join('/tmp', `kipvs-bench-${process.pid}`);

const benchStarted = performance.now();
const log = (text: string): void => void process.stderr.write(`bench [${((performance.now() - benchStarted) / 1000).toFixed(0)} s]: ${text}\n`);
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));
function percentile(values: readonly number[], p: number): number {
  const value = [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];
  if (value === undefined) throw new Error('a percentile of no values');
  return value;
}
const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

// ---- network namespaces: a node with one address, nothing else ----

/**
 * Every measurement that programs from empty gets a namespace of its own: after a flush, deleted
 * real servers stay on the namespace's trash list for up to two minutes and every new one is first
 * looked up there (ip_vs_trash_get_dest), which would make a reload quadratic (bench/netlink.mjs).
 */
const namespaces: string[] = [];
function freshNamespace(): string {
  const name = `kipvs-bench-${randomBytes(3).toString('hex')}`;
  const ip = (...args: string[]): void => void spawnSync('ip', ['-n', name, ...args], { stdio: 'inherit' });
  if (spawnSync('ip', ['netns', 'add', name], { stdio: 'inherit' }).status !== 0) throw new Error(`cannot create network namespace ${name}`);
  namespaces.push(name);
  ip('link', 'set', 'lo', 'up');
  // The node's own interface and address, which NodePorts listen on (not part of any measurement).
  ip('link', 'add', 'eth0', 'type', 'dummy');
  ip('address', 'add', `${NODE_ADDRESS}/${NODE_ADDRESS_PREFIX}`, 'dev', 'eth0');
  ip('link', 'set', 'eth0', 'up');
  return name;
}

/**
 * Empties a namespace and deletes it once its measurement is over. Some of the kernel's tables
 * are shared by every namespace: in 6.1 IPVS hashes the virtual servers of all namespaces into one
 * table of 256 buckets (ip_vs_svc_table, per namespace only in later kernels), and IPv4 addresses
 * into one of 256 (inet_addr_lst). 12,000 virtual servers left behind in one namespace would
 * lengthen every lookup in the next: in a first version of this benchmark, ipvsadm -R at 10,000
 * took 168 s instead of 28 s behind the namespaces of the smaller sizes. Emptying synchronously
 * (ipvsadm -C, deleting the dummy interface) puts the shared tables back as they were; the
 * namespace's own teardown then has little left to do, and a pause lets it finish.
 */
async function retireNamespace(name: string): Promise<void> {
  spawnSync('ip', ['netns', 'exec', name, 'ipvsadm', '-C'], { stdio: 'ignore' });
  spawnSync('ip', ['-n', name, 'link', 'delete', DUMMY], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  namespaces.splice(namespaces.indexOf(name), 1);
  await sleep(1_000);
}

// ---- profiling ----

async function profiled<T>(name: string, run: () => Promise<T>): Promise<T> {
  if (!profileDir) return run();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(profileDir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

const childProfileArgs = (name: string): string[] => (profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${name}.cpuprofile`] : []);

// ---- the in-process agent: the store, the proxier and the netlink kernel ----

interface InProcessAgent {
  readonly netns: string;
  readonly store: ClusterStore;
  readonly proxier: Proxier;
  readonly kernel: NetlinkKernel;
  readonly ownership: MemoryOwnershipStore;
}

async function openAgent(netns: string): Promise<InProcessAgent> {
  const kernel = await NetlinkKernel.open({ netns, dummyInterface: DUMMY, ipsetNames: allIpsetNames() });
  const store = new ClusterStore();
  const ownership = new MemoryOwnershipStore();
  const proxier = new Proxier({ kernel, node: NODE, settings: SETTINGS, log: pino({ level: 'warn' }), ownership, cluster: store });
  return { netns, store, proxier, kernel, ownership };
}

async function closeAgent(agent: InProcessAgent): Promise<void> {
  agent.kernel.close();
  await retireNamespace(agent.netns);
}

// ---- results ----

interface ColdRound {
  readonly cTools: readonly ToolRun[];
  readonly agentProcessMs: number;
  readonly inProcessMs: number;
}

interface ColdSync {
  readonly size: number;
  readonly rounds: readonly ColdRound[];
  readonly inProcessOperations: number;
}

const C_TOOLS_WITHOUT_RULES = ['ip -batch', 'ipset restore', 'ipvsadm -R'];
/** The C tools' total: all five, or only those that program what the in-process sync programs. */
const cTotal = (round: ColdRound, withRules: boolean): number =>
  sum(round.cTools.filter((run) => withRules || C_TOOLS_WITHOUT_RULES.includes(run.tool)).map((run) => run.ms));
/** Each side's fastest round: under UML, the slower ones measure other load on the machine too. */
const fastest = (cold: ColdSync, pick: (round: ColdRound) => number): number => Math.min(...cold.rounds.map(pick));

interface ChangeRun {
  readonly size: number;
  readonly times: readonly number[];
  readonly operations: readonly number[];
  /** Milliseconds of garbage collection within each round. */
  readonly gcMs: readonly number[];
}

interface Results {
  cold: ColdSync[];
  changes: ChangeRun[];
  noopMs?: readonly number[];
  noopOperations?: number;
  drainedBeforeNoop?: number;
  burst?: {
    syncs: number;
    convergedMs: number;
    feedMs: number;
    operations: number;
    expectedOperations: number;
    drainedDeletions: number;
    remainingOperations: number;
  };
  memory?: { rssMiB: number; hwmMiB: number; syncedAfterMs: number; heapMiB?: number; heapSource: string };
  inProcessHeapMiB?: number;
  problems: string[];
}

const results: Results = { cold: [], changes: [], problems: [] };

function verify(what: string, netns: string, expected: ReturnType<typeof desiredCounts>): KernelState {
  const state = kernelState(netns, DUMMY);
  const differences = countDifferences(expected, state);
  if (differences.length > 0) results.problems.push(`${what}: the kernel does not hold the desired state: ${differences.join('; ')}`);
  return state;
}

// ---- 1. cold sync ----

async function coldSyncs(size: number, workload: Workload, sourceDir: string, order: number): Promise<InProcessAgent> {
  const desired = translate(workload, NODE, SETTINGS);
  const expected = expectedCounts(size);
  const translated = desiredCounts(desired, 0);
  if (
    translated.virtualServers !== expected.virtualServers ||
    translated.realServers !== expected.realServers ||
    translated.boundAddresses !== expected.boundAddresses ||
    translated.ipsetEntries.get('KUBE-LOOP-BACK') !== expected.loopBackEntries
  ) {
    throw new Error(
      `bench: N=${size}: the translation does not match the workload: ${JSON.stringify({ expected, translated: { ...translated, ipsetEntries: Object.fromEntries(translated.ipsetEntries) } })}`,
    );
  }
  const ruleset = buildIptablesRules(SETTINGS, { family: 'inet' });
  const ruleCount = ruleset.rules.nat.length + ruleset.rules.filter.length + ruleset.jumps.length;
  const sysctls = ipvsSysctls({ kernelRelease: release() }).desired.map(({ name, value }) => `${name}=${value}`);
  const inputs = toolInputs(desired, DUMMY, iptablesRestoreInput(ruleset), sysctls);
  const withRules = desiredCounts(desired, ruleCount);
  const withoutRules = desiredCounts(desired, 0);

  const rounds: ColdRound[] = [];
  let inProcessOperations = 0;
  let agent: InProcessAgent | undefined;
  const fingerprints: string[] = [];
  for (let round = 0; round < COLD_ROUNDS; round++) {
    const tag = `${size}-r${round + 1}`;
    let cTools: ToolRun[] = [];
    let agentProcessMs = 0;
    let inProcessMs = 0;
    const steps = {
      c: async () => {
        const netns = freshNamespace();
        cTools = programWithCTools(netns, inputs);
        fingerprints.push(verify(`N=${size} C tools`, netns, withRules).fingerprint);
        await retireNamespace(netns);
        log(`N=${size} round ${round + 1} C tools: ${cTools.map((run) => `${run.tool} ${run.ms.toFixed(0)} ms`).join(', ')}`);
      },
      process: async () => {
        const netns = freshNamespace();
        const args = [
          ...childProfileArgs(`agent-once-${tag}`),
          CLI,
          'agent',
          '--once',
          '--source',
          sourceDir,
          '--netns',
          netns,
          '--hostname-override',
          NODE_NAME,
        ];
        const started = performance.now();
        const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
        agentProcessMs = performance.now() - started;
        if (run.status !== 0) throw new Error(`kipvs agent --once (N=${size}) exited ${run.status}: ${run.stderr.split('\n').slice(-5).join('\n')}`);
        fingerprints.push(verify(`N=${size} kipvs agent --once`, netns, withRules).fingerprint);
        await retireNamespace(netns);
        log(`N=${size} round ${round + 1} kipvs agent --once: ${agentProcessMs.toFixed(0)} ms`);
      },
      inProcess: async () => {
        // The agent of the last round stays open for the change measurements.
        if (agent) await closeAgent(agent);
        const netns = freshNamespace();
        const opened = (agent = await openAgent(netns));
        const { result, ms } = await profiled(`cold-in-process-${tag}`, async () => {
          const started = performance.now();
          opened.store.replaceAll(workload.services, workload.endpointSlices);
          const synced = await opened.proxier.sync({ full: true });
          return { result: synced, ms: performance.now() - started };
        });
        inProcessMs = ms;
        inProcessOperations = result.plan.operations.length;
        const [firstFailure] = result.failures;
        if (firstFailure) results.problems.push(`N=${size} in-process sync: ${result.failures.length} operations failed, first: ${firstFailure.error.message}`);
        fingerprints.push(verify(`N=${size} in-process sync`, netns, withoutRules).fingerprint);
        log(`N=${size} round ${round + 1} in-process sync: ${inProcessMs.toFixed(0)} ms, ${inProcessOperations} operations`);
      },
    };
    // Alternate which goes first, so that none always meets the freshest kernel.
    for (const step of (order + round) % 2 === 0 ? (['c', 'process', 'inProcess'] as const) : (['inProcess', 'process', 'c'] as const)) await steps[step]();
    rounds.push({ cTools, agentProcessMs, inProcessMs });
  }
  if (new Set(fingerprints).size !== 1) results.problems.push(`N=${size}: the namespaces hold different objects (fingerprints ${fingerprints.join(', ')})`);
  results.cold.push({ size, rounds, inProcessOperations });
  if (!agent) throw new Error('KIPVS_BENCH_ROUNDS: run at least one round');
  return agent;
}

// ---- 2. one endpoint change ----

async function oneChanges(size: number, workload: Workload, { store, proxier }: InProcessAgent): Promise<void> {
  const times: number[] = [];
  const spans: [number, number][] = [];
  const operations: number[] = [];
  let unexpected = 0;
  // Garbage collections during the rounds, to tell a slow change's own work from a GC pause.
  const collections: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) collections.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  await profiled(`change-${size}`, async () => {
    for (let round = 0; round < CHANGES; round++) {
      // Pairs on one Service: a pod joins (a new real server), then leaves (its real server goes
      // to weight 0 and drains: gracefulTerminationSeconds is the default 900).
      const index = spreadServiceIndex(round >> 1, size, 1);
      const slice = round % 2 === 0 ? changedSlice(index, { extra: round >> 1 }, round + 1) : originalSlice(workload, index);
      const started = performance.now();
      store.upsertEndpointSlice(slice);
      const result = await proxier.sync({ full: false });
      const ended = performance.now();
      times.push(ended - started);
      spans.push([started, ended]);
      operations.push(result.plan.operations.length);
      // One real server in each virtual server of the Service: its ClusterIP's, and its NodePort's.
      if (result.plan.operations.length !== virtualServersOf(index)) unexpected++;
      const [firstFailure] = result.failures;
      if (firstFailure) results.problems.push(`N=${size} change ${round}: ${firstFailure.error.message}`);
    }
  });
  await sleep(10); // GC entries are delivered asynchronously
  observer.disconnect();
  const gcMs = spans.map(([start, end]) => sum(collections.map((gc) => Math.max(0, Math.min(end, gc.end) - Math.max(start, gc.start)))));
  if (unexpected > 0)
    results.problems.push(`N=${size}: ${unexpected} of ${CHANGES} endpoint changes did not make one kernel operation per virtual server of their Service`);
  results.changes.push({ size, times, operations, gcMs });
  log(`N=${size} one change: median ${percentile(times, 0.5).toFixed(2)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms`);
}

// ---- 3. no-op resync ----

/**
 * A full sync, its plan split into the deletions of real servers that were draining (removed
 * endpoints: at weight 0 and without connections, their draining is over) and everything else
 * (which should be nothing).
 */
async function fullSyncClassified({ proxier, ownership }: InProcessAgent): Promise<{ drainedDeletions: number; others: KernelOperation[] }> {
  const draining = ownership.load().draining;
  const { plan } = await proxier.sync({ full: true });
  const others = plan.operations.filter(
    (o) =>
      !(
        o.kind === 'ipvs' &&
        o.operation.op === 'deleteDestination' &&
        draining.has(drainKey(virtualServerKey(o.operation.service), realServerKey(o.operation.destination)))
      ),
  );
  return { drainedDeletions: plan.operations.length - others.length, others };
}

const describe = (operations: readonly KernelOperation[]): string =>
  operations
    .slice(0, 3)
    .map((o) => describeKernelOperation(o, DUMMY))
    .join('; ');

async function noopResyncs(size: number, agent: InProcessAgent): Promise<void> {
  const { proxier } = agent;
  // The first full sync reads the kernel's connection counters and deletes the real servers the
  // change rounds left draining (none has a connection): that is work, not a no-op.
  const settle = await fullSyncClassified(agent);
  results.drainedBeforeNoop = settle.drainedDeletions;
  if (settle.others.length > 0)
    results.problems.push(
      `N=${size}: the full sync after the endpoint changes had ${settle.others.length} operations besides drained real servers: ${describe(settle.others)}`,
    );
  const times: number[] = [];
  let operations = 0;
  await profiled(`noop-${size}`, async () => {
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      const result = await proxier.sync({ full: true });
      times.push(performance.now() - started);
      operations += result.plan.operations.length;
      if (result.plan.operations.length > 0) results.problems.push(`N=${size} no-op resync: ${describe(result.plan.operations)}`);
    }
  });
  results.noopMs = times;
  results.noopOperations = operations;
  log(`N=${size} no-op full resync: ${times.map((ms) => ms.toFixed(0)).join(', ')} ms, ${operations} operations`);
}

// ---- 4. burst ----

interface SyncRecord {
  readonly started: number;
  readonly ended: number;
  readonly operations: number;
}

async function burst(size: number, agent: InProcessAgent): Promise<void> {
  const { store, proxier } = agent;
  const syncs: SyncRecord[] = [];
  const errors: unknown[] = [];
  const runner = new SyncRunner({
    minIntervalMs: MIN_SYNC_INTERVAL_MS,
    maxIntervalMs: 30_000,
    sync: async () => {
      const started = performance.now();
      const result = await proxier.sync({ full: false });
      syncs.push({ started, ended: performance.now(), operations: result.plan.operations.length });
    },
    onError: (error) => errors.push(error),
  });
  store.onChange(() => runner.request());
  // Half the changes add a pod on another node, half take one away: one real server each.
  const changes = Array.from({ length: BURST_CHANGES }, (_, k) => {
    const index = spreadServiceIndex(k, size, 3);
    return k % 2 === 0 ? changedSlice(index, { extra: 100_000 + k }, 1_000 + k) : changedSlice(index, { removed: remoteEndpointOf(index) }, 1_000 + k);
  });
  const expectedOperations = sum(Array.from({ length: BURST_CHANGES }, (_, k) => virtualServersOf(spreadServiceIndex(k, size, 3))));
  runner.start();
  while (syncs.length === 0 && errors.length === 0) await sleep(10);
  // The agent has been idle for longer than the minimum interval when the burst begins.
  await sleep(MIN_SYNC_INTERVAL_MS + 100);
  const before = syncs.length;
  const { feedStarted, lastFedAt, convergedAt } = await profiled(`burst-${size}`, async () => {
    const feedStarted = performance.now();
    const perTick = BURST_CHANGES / BURST_WINDOW_MS;
    for (let tick = 0; tick < BURST_WINDOW_MS; tick++) {
      for (const change of changes.slice(tick * perTick, (tick + 1) * perTick)) store.upsertEndpointSlice(change);
      await sleep(1);
    }
    const lastFedAt = performance.now();
    const deadline = performance.now() + 120_000;
    let covering: SyncRecord | undefined;
    while (!(covering = syncs.find((sync) => sync.started > lastFedAt)) && errors.length === 0 && performance.now() < deadline) await sleep(5);
    return { feedStarted, lastFedAt, convergedAt: covering?.ended };
  });
  await runner.stop();
  if (errors.length > 0 || convergedAt === undefined) {
    results.problems.push(`burst: ${errors.length > 0 ? `sync failed: ${String(errors[0])}` : 'no sync covered the last change within 120 s'}`);
    return;
  }
  const burstSyncs = syncs.slice(before).filter((sync) => sync.started <= convergedAt);
  // Converged: a full sync (reading the whole kernel) has nothing left to do but delete the real
  // servers the burst took away, which have drained (no connections).
  const check = await fullSyncClassified(agent);
  results.burst = {
    syncs: burstSyncs.length,
    convergedMs: convergedAt - feedStarted,
    feedMs: lastFedAt - feedStarted,
    operations: sum(burstSyncs.map((sync) => sync.operations)),
    expectedOperations,
    drainedDeletions: check.drainedDeletions,
    remainingOperations: check.others.length,
  };
  if (results.burst.operations !== expectedOperations)
    results.problems.push(`burst: ${BURST_CHANGES} changes made ${results.burst.operations} kernel operations, not ${expectedOperations}`);
  if (check.others.length > 0)
    results.problems.push(`burst: a full sync afterwards still had ${check.others.length} operations to do: ${describe(check.others)}`);
  log(`N=${size} burst: ${JSON.stringify(results.burst)}`);
}

// ---- 5. memory of the real daemon ----

function statusField(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

async function metricsHeapMiB(): Promise<number | undefined> {
  try {
    const response = await fetch('http://127.0.0.1:10249/metrics', { signal: AbortSignal.timeout(2_000) });
    const match = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)$/m.exec(await response.text());
    return match ? Number(match[1]) / 2 ** 20 : undefined;
  } catch {
    return undefined;
  }
}

async function daemonMemory(size: number, sourceDir: string): Promise<void> {
  const netns = freshNamespace();
  const args = [...childProfileArgs(`agent-daemon-${size}`), CLI, 'agent', '--source', sourceDir, '--netns', netns, '--hostname-override', NODE_NAME];
  const started = performance.now();
  const daemon = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const { pid } = daemon;
  if (pid === undefined) throw new Error('kipvs agent did not start');
  let stderr = '';
  const synced = new Promise<number>((resolveSynced, reject) => {
    daemon.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      // pino's JSON lines: the first sync that changed something logs msg "synced".
      if (/"msg":"synced"/.test(stderr)) resolveSynced(performance.now() - started);
    });
    daemon.on('exit', (code) => reject(new Error(`kipvs agent exited ${code} before it synced: ${stderr.split('\n').slice(-5).join('\n')}`)));
  });
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('kipvs agent did not sync within 600 s')), 600_000)));
    const syncedAfterMs = await Promise.race([synced, timeout]).finally(() => clearTimeout(timer));
    // The iptables rules follow the first sync; let the agent settle into waiting.
    await sleep(2_000);
    const rssMiB = statusField(pid, 'VmRSS');
    const hwmMiB = statusField(pid, 'VmHWM');
    const heapMiB = await metricsHeapMiB();
    results.memory = { rssMiB, hwmMiB, syncedAfterMs, heapMiB, heapSource: heapMiB === undefined ? 'none' : 'daemon metrics (nodejs_heap_size_used_bytes)' };
    log(
      `N=${size} daemon: synced after ${syncedAfterMs.toFixed(0)} ms; VmRSS ${rssMiB.toFixed(0)} MiB, VmHWM ${hwmMiB.toFixed(0)} MiB, heap ${heapMiB?.toFixed(0) ?? 'n/a'} MiB`,
    );
  } catch (error) {
    results.problems.push(`memory: ${(error as Error).message}`);
  } finally {
    const exited = new Promise((done) => daemon.once('exit', done));
    daemon.kill('SIGTERM');
    await Promise.race([exited, sleep(30_000)]);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    await retireNamespace(netns);
  }
}

// ---- the table ----

const ms = (value: number): string =>
  value >= 10_000
    ? `${(value / 1000).toFixed(1)} s`
    : value >= 1000
      ? `${(value / 1000).toFixed(2)} s`
      : value >= 10
        ? `${value.toFixed(0)} ms`
        : `${value.toFixed(2)} ms`;
const n = (value: number): string => value.toLocaleString('en-US');
const verdict = (met: boolean): string => (met ? 'met' : 'missed');

function table(): string {
  const rows: string[][] = [];
  const row = (measurement: string, size: string, kipvs: string, c: string, ratio: string, target: string, met: string): void =>
    void rows.push([measurement, size, kipvs, c, ratio, target, met]);
  for (const cold of results.cold) {
    const [all, withoutRules] = [fastest(cold, (r) => cTotal(r, true)), fastest(cold, (r) => cTotal(r, false))];
    const [agentProcessMs, inProcessMs] = [fastest(cold, (r) => r.agentProcessMs), fastest(cold, (r) => r.inProcessMs)];
    const targeted = cold.size === largest;
    const ratioA = agentProcessMs / all;
    const ratioB = inProcessMs / withoutRules;
    const of = cold.rounds.length > 1 ? ` (faster of ${cold.rounds.length} rounds)` : '';
    row(
      `cold sync${of}: \`kipvs agent --once\` process vs ip + ipset + ipvsadm + iptables-restore + sysctl`,
      n(cold.size),
      ms(agentProcessMs),
      ms(all),
      ratioA.toFixed(2),
      targeted ? '≤ 0.50' : '',
      targeted ? verdict(ratioA <= 0.5) : '',
    );
    row(
      `cold sync${of}: in-process sync vs ip + ipset + ipvsadm`,
      n(cold.size),
      ms(inProcessMs),
      ms(withoutRules),
      ratioB.toFixed(2),
      targeted ? '≤ 0.50' : '',
      targeted ? verdict(ratioB <= 0.5) : '',
    );
  }
  for (const change of results.changes) {
    row(`one endpoint change: median of ${change.times.length}`, n(change.size), ms(percentile(change.times, 0.5)), '', '', '', '');
    const p99 = percentile(change.times, 0.99);
    row(
      `one endpoint change: p99 of ${change.times.length}`,
      n(change.size),
      ms(p99),
      '',
      '',
      change.size === largest ? '≤ 10 ms' : '',
      change.size === largest ? verdict(p99 <= 10) : '',
    );
  }
  const [small, large] = [results.changes.find((c) => c.size === smallest), results.changes.find((c) => c.size === largest)];
  if (small && large && small !== large) {
    const growth = percentile(large.times, 0.99) / percentile(small.times, 0.99);
    row(`one endpoint change: p99(${n(largest)}) / p99(${n(smallest)})`, '', growth.toFixed(2), '', '', '≤ 1.20', verdict(growth <= 1.2));
  }
  if (results.noopMs) {
    const median = percentile(results.noopMs, 0.5);
    row(
      `no-op full resync (median of ${results.noopMs.length}; plan ${results.noopOperations === 0 ? 'empty' : `${results.noopOperations} operations`})`,
      n(largest),
      ms(median),
      '',
      '',
      '≤ 1 s',
      verdict(median <= 1000 && results.noopOperations === 0),
    );
  }
  if (results.burst) {
    const b = results.burst;
    row(
      `burst: ${n(BURST_CHANGES)} changes in ${ms(b.feedMs)}, min interval ${ms(MIN_SYNC_INTERVAL_MS)}: syncs`,
      n(largest),
      String(b.syncs),
      '',
      '',
      '≤ 3',
      verdict(b.syncs <= 3),
    );
    row(
      `burst: first change to kernel converged (${b.remainingOperations === 0 ? 'full plan then empty' : `NOT converged: ${b.remainingOperations} left`})`,
      n(largest),
      ms(b.convergedMs),
      '',
      '',
      '',
      '',
    );
  }
  if (results.memory) {
    const m = results.memory;
    row(
      'memory: `kipvs agent` daemon VmRSS after its first sync',
      n(largest),
      `${m.rssMiB.toFixed(0)} MiB`,
      '',
      '',
      '≤ 250 MB',
      verdict(m.rssMiB * 2 ** 20 <= 250e6),
    );
    if (m.heapMiB !== undefined) row(`memory: daemon V8 heap used (${m.heapSource})`, n(largest), `${m.heapMiB.toFixed(0)} MiB`, '', '', '', '');
  }
  if (results.inProcessHeapMiB !== undefined) {
    row(
      'memory: V8 heap used, in-process (bench process holding store + proxier, after gc)',
      n(largest),
      `${results.inProcessHeapMiB.toFixed(0)} MiB`,
      '',
      '',
      '',
      '',
    );
  }
  const header = ['measurement', 'N', 'kipvs', 'C tools', 'ratio', 'target', 'met'];
  return [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function machine(): string {
  const host = process.env.KIPVS_BENCH_HOST
    ? (JSON.parse(process.env.KIPVS_BENCH_HOST) as { cpu: string; cores: number; memoryGiB: number; kernel: string })
    : undefined;
  const sandbox =
    process.env.KIPVS_SANDBOX === 'uml'
      ? `User-Mode Linux ${release()}, ${Math.round(totalmem() / 2 ** 20)} MiB, 1 CPU`
      : `${process.env.KIPVS_SANDBOX} kernel ${release()}`;
  const hostText = host
    ? `${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, kernel ${host.kernel}`
    : `${cpus()[0]?.model ?? 'unknown'} (as the sandbox shows it), ${cpus().length} CPUs`;
  const heapLimit = `V8 heap limit ${Math.round(getHeapStatistics().heap_size_limit / 2 ** 20)} MiB`;
  return `host: ${hostText}\nsandbox: ${sandbox}; node ${process.version}, ${heapLimit}; ${new Date().toISOString().slice(0, 10)}\n${calibration}`;
}

function notes(): string {
  const lines: string[] = [];
  for (const cold of results.cold) {
    const e = expectedCounts(cold.size);
    lines.push(
      `N=${n(cold.size)}: ${n(e.virtualServers)} virtual servers, ${n(e.realServers)} real servers, ${n(e.boundAddresses)} addresses, ${n(e.loopBackEntries)} KUBE-LOOP-BACK entries; in-process plan ${n(cold.inProcessOperations)} operations`,
    );
    cold.rounds.forEach((round, i) =>
      lines.push(
        `N=${n(cold.size)} round ${i + 1}: agent --once ${ms(round.agentProcessMs)}, in-process ${ms(round.inProcessMs)}; C tools ${ms(cTotal(round, true))}: ${round.cTools.map((run) => `${run.tool} ${ms(run.ms)}`).join(', ')}`,
      ),
    );
  }
  for (const change of results.changes) {
    const counts = [...new Set(change.operations)];
    const slowest = change.times
      .map((time, round) => ({ time, round }))
      .sort((a, b) => b.time - a.time)
      .slice(0, 5);
    lines.push(
      `N=${n(change.size)}: endpoint changes made ${counts.sort().join(' or ')} kernel operation(s) each: one per virtual server of the Service (ClusterIP; NodePort too for one in five); ` +
        `p90 ${ms(percentile(change.times, 0.9))}; slowest (round: time, of which GC) ${slowest.map(({ time, round }) => `#${round + 1}: ${ms(time)}, ${ms(change.gcMs[round] ?? NaN)}`).join('; ')}`,
    );
  }
  if (results.noopMs) lines.push(`no-op full resyncs at N=${n(largest)}: ${results.noopMs.map(ms).join(', ')}`);
  if (results.noopMs)
    lines.push(
      `before the no-op resyncs, one full sync deleted the ${n(results.drainedBeforeNoop ?? 0)} real servers the change rounds had left draining (weight 0, no connections)`,
    );
  if (results.burst) {
    const b = results.burst;
    lines.push(
      `burst: ${n(b.operations)} kernel operations (expected ${n(b.expectedOperations)}) over ${b.syncs} sync(s); a full sync afterwards found ${b.remainingOperations} to do besides deleting the ${n(b.drainedDeletions)} drained real servers`,
    );
  }
  if (results.memory)
    lines.push(`daemon at N=${n(largest)}: first sync logged ${ms(results.memory.syncedAfterMs)} after start; VmHWM ${results.memory.hwmMiB.toFixed(0)} MiB`);
  return lines.map((line) => `- ${line}`).join('\n');
}

// ---- main ----

/**
 * Each program's first run in a boot reads its files over hostfs; the first measurement would pay
 * for that alone. One run of each, on examples/ in a namespace of its own, before any measurement.
 */
function warmUp(): Promise<void> {
  const netns = freshNamespace();
  const agent = spawnSync(process.execPath, [CLI, 'agent', '--once', '--source', join(root, 'examples'), '--netns', netns, '--hostname-override', NODE_NAME], {
    encoding: 'utf8',
  });
  if (agent.status !== 0) throw new Error(`kipvs agent --once on examples/ exited ${agent.status}: ${agent.stderr}`);
  inNetns(netns, 'ipvsadm', ['-Sn']);
  inNetns(netns, 'ipset', ['save']);
  inNetns(netns, 'ip', ['-batch', '-'], 'link show\n');
  inNetns(netns, 'iptables-legacy-save', []);
  inNetns(netns, 'sysctl', ['-n', 'net.ipv4.ip_forward']);
  // How fast this boot is: UML's speed varies several-fold between boots on the same machine.
  const lines = Array.from({ length: 100 }, (_, i) => [
    `-A -t 10.96.1.${i + 1}:80 -s rr`,
    ...Array.from({ length: 10 }, (_, j) => `-a -t 10.96.1.${i + 1}:80 -r 10.${128 + j}.1.${i + 1}:8080 -m -w 1`),
  ]).flat();
  const restore = inNetns(netns, 'ipvsadm', ['-R'], `${lines.join('\n')}\n`);
  const started = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  calibration = `this boot: ipvsadm -R ${((restore.ms * 1000) / lines.length).toFixed(0)} µs per line (${lines.length} lines), \`node -e 0\` ${ms(performance.now() - started)}`;
  return retireNamespace(netns);
}

let calibration = '';

async function main(): Promise<void> {
  log(`sizes ${sizes.join(', ')}; changes at ${changeSizes.join(', ')}${profileDir ? `; CPU profiles in ${profileDir}` : ''}`);
  let agent: InProcessAgent | undefined;
  try {
    await warmUp();
    for (const [order, size] of sizes.entries()) {
      const workload = generateWorkload(size);
      const sourceDir = join(workDir, `n${size}`);
      writeWorkload(sourceDir, workload);
      agent = await coldSyncs(size, workload, sourceDir, order);
      if (changeSizes.includes(size)) await oneChanges(size, workload, agent);
      if (size === largest) {
        await noopResyncs(size, agent);
        await burst(size, agent);
        gc();
        results.inProcessHeapMiB = process.memoryUsage().heapUsed / 2 ** 20;
      }
      await closeAgent(agent);
      agent = undefined;
    }
    gc();
    await daemonMemory(largest, join(workDir, `n${largest}`));
    log(`kernel memory: ${/^MemAvailable:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? '?'} kB available`);
  } finally {
    agent?.kernel.close();
    for (const name of namespaces) spawnSync('ip', ['netns', 'delete', name]);
    rmSync(workDir, { recursive: true, force: true });
  }
  console.log(`\n${machine()}\n\n${table()}\n\n${notes()}`);
  if (results.problems.length > 0) {
    console.log(`\nPROBLEMS (the figures above are not valid where these apply):\n${results.problems.map((problem) => `- ${problem}`).join('\n')}`);
    process.exitCode = 1;
  }
}

await main();
