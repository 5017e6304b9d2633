// 5. The real daemon: `kipvs agent` as a process, on the workload's files or listing and watching
// it from an API server; when its source was read, when its first sync was done, and its VmRSS.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { IMAGE_NODE_OPTIONS } from '../image.js';
import { NODE_NAME } from '../workload.js';
import { startApiServer, type BenchApiServer } from './api-server.js';
import { freshNamespace, retireNamespace } from './namespaces.js';
import { childProfileArgs } from './profile.js';
import type { DaemonRun, DaemonSource, Results } from './results.js';
import { CLI, log, sleep } from './shared.js';

/** KIPVS_BENCH_SOURCE: the daemon's sources, `file,api` (the default), `file` or `api`. */
export function daemonSources(): DaemonSource[] {
  const sources = (process.env.KIPVS_BENCH_SOURCE ?? 'file,api').split(',').map((text) => text.trim());
  if (!sources.every((source): source is DaemonSource => source === 'file' || source === 'api')) {
    throw new Error(`KIPVS_BENCH_SOURCE: file, api or file,api, not ${String(process.env.KIPVS_BENCH_SOURCE)}`);
  }
  return sources;
}

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

/** One of the agent's pino JSON lines: its message, its time (ISO 8601, src/cli/agent.ts) and fields. */
interface LogRecord {
  readonly msg?: string;
  readonly time: string;
  readonly [field: string]: unknown;
}

function records(text: string): LogRecord[] {
  // Whole lines only: the last may still be on its way.
  return text
    .slice(0, text.lastIndexOf('\n'))
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogRecord);
}

/**
 * The `kipvs agent` daemon on the workload of `size` Services, from `source`: the files in
 * `sourceDir`, or the tests' API server (paged lists, then watches) in a process of its own.
 * Times come from the agent's own log lines against the clock at its start: "starting" once the
 * source is read (the files, or the first lists of Services and EndpointSlices), "synced" after
 * the first sync; "listed" lines give each list's pages and time.
 */
export async function runDaemon(results: Results, size: number, source: DaemonSource, sourceDir: string): Promise<void> {
  let server: BenchApiServer | undefined;
  const netns = freshNamespace();
  try {
    server = source === 'api' ? await startApiServer(size) : undefined;
    const sourceArgs = server ? ['--kubeconfig', server.kubeconfig] : ['--source', sourceDir];
    const args = [...childProfileArgs(`agent-daemon-${source}-${size}`), CLI, 'agent', ...sourceArgs, '--netns', netns, '--hostname-override', NODE_NAME];
    const startedAt = Date.now();
    // As the image runs it: its memory row is the deployed daemon's.
    const daemon = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: IMAGE_NODE_OPTIONS } });
    try {
      const run = await measure(daemon, startedAt);
      results.daemons.push({ source, ...run });
      const lists = run.lists.map((list) => `${list.resource} ${list.items} in ${list.pages} pages, ${list.ms} ms`).join('; ');
      log(
        `N=${size} daemon (${source} source): read after ${run.sourceReadMs} ms${lists ? ` (${lists})` : ''}, synced after ${run.syncedAfterMs} ms; ` +
          `VmRSS ${run.rssMiB.toFixed(0)} MiB, VmHWM ${run.hwmMiB.toFixed(0)} MiB, heap ${run.heapMiB?.toFixed(0) ?? 'n/a'} MiB`,
      );
    } finally {
      const exited = new Promise((done) => daemon.once('exit', done));
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    }
  } catch (error) {
    results.problems.push(`daemon (${source} source): ${(error as Error).message}`);
  } finally {
    await server?.stop();
    await retireNamespace(netns);
  }
}

async function measure(daemon: ReturnType<typeof spawn>, startedAt: number): Promise<Omit<DaemonRun, 'source'>> {
  const { pid } = daemon;
  if (pid === undefined || !daemon.stderr) throw new Error('kipvs agent did not start');
  let stderr = '';
  const synced = new Promise<void>((resolveSynced, reject) => {
    daemon.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      // The first sync that changed something logs msg "synced".
      if (/"msg":"synced"/.test(stderr)) resolveSynced();
    });
    daemon.on('exit', (code) => reject(new Error(`kipvs agent exited ${code} before it synced: ${stderr.split('\n').slice(-5).join('\n')}`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('kipvs agent did not sync within 900 s')), 900_000)));
  await Promise.race([synced, timeout]).finally(() => clearTimeout(timer));
  // The iptables rules follow the first sync; let the agent settle into waiting.
  await sleep(2_000);
  const rssMiB = statusField(pid, 'VmRSS');
  const hwmMiB = statusField(pid, 'VmHWM');
  const heapMiB = await metricsHeapMiB();
  const logged = records(stderr);
  const timeOf = (msg: string): number => Date.parse(logged.find((record) => record.msg === msg)?.time ?? '') - startedAt;
  return {
    sourceReadMs: timeOf('starting'),
    syncedAfterMs: timeOf('synced'),
    lists: logged
      .filter((record) => record.msg === 'listed')
      .map((record) => ({ resource: String(record.resource), items: Number(record.items), pages: Number(record.pages), ms: Number(record.ms) })),
    rssMiB,
    hwmMiB,
    heapMiB,
    heapSource: heapMiB === undefined ? 'none' : 'daemon metrics (nodejs_heap_size_used_bytes)',
  };
}
