// 5. Memory of the real daemon: `kipvs agent` as a process, its VmRSS after the first sync.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NODE_NAME } from '../workload.js';
import { freshNamespace, retireNamespace } from './namespaces.js';
import { childProfileArgs } from './profile.js';
import type { Results } from './results.js';
import { CLI, log, sleep } from './shared.js';

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

/** The `kipvs agent` daemon on the workload's files: its resident memory once it has synced. */
export async function daemonMemory(results: Results, size: number, sourceDir: string): Promise<void> {
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
