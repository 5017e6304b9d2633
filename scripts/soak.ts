// `npm run soak`: the soak and fault suite of issue 11, in the sandbox kernel, printing figures.
//   (a) agent restarts under traffic (alternating SIGTERM and SIGKILL, a third mid-sync)
//   (b) SIGKILL at given shares of a cold sync, then a start: the kernel equals a fresh run's
//   (c) endpoint churn with traffic: RSS and heap growth after the warm-up
// Sizes are parameters (the defaults are the issue's): --parts a,b,c --restarts 30 --services-a 3000
// --services-b 10000 --kill-at 0.3,0.8 --services-c 1000 --minutes 10 --timeout 600 (seconds, per wait).
// Shorter versions of (a) and (b), for CI: test/soak/soak-*.test.ts (npm run soak:ci).
import { parseArgs } from 'node:util';
import { churnWithTraffic } from './soak/churn.js';
import { killMidSync } from './soak/kill-mid-sync.js';
import { restartsUnderTraffic } from './soak/restarts.js';

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: 'a,b,c' },
    restarts: { type: 'string', default: '30' },
    'services-a': { type: 'string', default: '3000' },
    'services-b': { type: 'string', default: '10000' },
    'kill-at': { type: 'string', default: '0.3,0.8' },
    'services-c': { type: 'string', default: '1000' },
    minutes: { type: 'string', default: '10' },
    timeout: { type: 'string', default: '600' },
  },
});
const parts = new Set(values.parts.split(','));
const timeoutMs = Number(values.timeout) * 1000;
const started = Date.now();
const progress = (line: string): void => {
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
};
const problems: string[] = [];
const check = (ok: boolean, problem: string): void => {
  if (!ok) problems.push(problem);
};
const pct = (share: number): string => `${(100 * share).toFixed(1)} %`;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  if (parts.has('a')) {
    const a = await restartsUnderTraffic({ services: Number(values['services-a']), restarts: Number(values.restarts), timeoutMs, progress });
    const failed = a.traffic.reduce((sum, t) => sum + t.failed, 0);
    const ok = a.traffic.reduce((sum, t) => sum + t.ok, 0);
    const syncs = [...a.firstSyncSeconds].sort((x, y) => x - y);
    console.log(
      `(a) ${String(a.restarts)} restarts at ${values['services-a']} Services (${String(a.sigterm)} SIGTERM, ${String(a.sigkill)} SIGKILL; ` +
        `${String(a.midSyncCaught)} of ${String(a.midSyncPlanned)} planned mid-sync stops landed mid-sync, after ${String(a.midSyncChanges)} changes, ` +
        `holding ${a.midSyncHeld.join(', ')} changed real servers): ` +
        `${String(ok)} requests answered, ${String(failed)} failed (${a.traffic.map((t) => `${t.target} ${String(t.ok)}/${String(t.failed)}`).join(', ')}); ` +
        `held connection answered after ${String(a.heldAnswers)} of ${String(a.restarts)} restarts; counter went back ${String(a.counterWentBack.length)} times; ` +
        `start to first sync median ${(syncs[Math.floor(syncs.length / 2)] ?? 0).toFixed(1)} s, max ${(syncs.at(-1) ?? 0).toFixed(1)} s; SIGTERM exit codes ${[...new Set(a.sigtermExitCodes)].join(',')}`,
    );
    check(failed === 0, `(a) ${String(failed)} requests failed: ${a.traffic.flatMap((t) => t.errors).join('; ')}`);
    check(a.midSyncCaught === a.midSyncPlanned, `(a) ${String(a.midSyncPlanned - a.midSyncCaught)} stops meant mid-sync landed after the change`);
    check(a.heldAnswers === a.restarts, `(a) the held connection: ${a.heldFailure ?? 'missing answers'}`);
    check(a.counterWentBack.length === 0, `(a) web's counter went back (a flush): ${a.counterWentBack.join('; ')}`);
    check(
      a.sigtermExitCodes.every((code) => code === 0),
      `(a) SIGTERM exit codes ${a.sigtermExitCodes.join(',')}`,
    );
  }
  if (parts.has('b')) {
    const b = await killMidSync({ services: Number(values['services-b']), killAt: values['kill-at'].split(',').map(Number), timeoutMs, progress });
    console.log(
      `(b) ${values['services-b']} Services, SIGKILL with ${b.killedAt.map(pct).join(' then ')} of the real servers programmed; ` +
        `${b.attempts > 1 ? `(series of kills: ${String(b.attempts)}) ` : ''}the next start converged in ${b.completingRunSeconds.toFixed(1)} s (a fresh run: ${b.freshRunSeconds.toFixed(1)} s); ` +
        `compared ${String(b.kernelLines)} kernel lines: ${String(b.difference.orphans.length)} orphans, ${String(b.difference.missing.length)} missing`,
    );
    check(
      b.difference.orphans.length === 0 && b.difference.missing.length === 0,
      `(b) after the kills the kernel differs from a fresh run's: orphans ${b.difference.orphans.slice(0, 5).join(' | ')}; missing ${b.difference.missing.slice(0, 5).join(' | ')}`,
    );
  }
  if (parts.has('c')) {
    const c = await churnWithTraffic({ services: Number(values['services-c']), durationMs: Number(values.minutes) * 60_000, timeoutMs, progress });
    const failed = c.traffic.reduce((sum, t) => sum + t.failed, 0);
    console.log(
      `(c) ${values['services-c']} Services, ${c.durationSeconds.toFixed(0)} s of churn: ${String(c.changes)} file changes, ${String(c.syncs)} syncs, ` +
        `${String(c.traffic.reduce((sum, t) => sum + t.ok, 0))} requests answered, ${String(failed)} failed; ` +
        `RSS ${mib(c.rss.after)} → ${mib(c.rss.end)} (${pct(c.rss.growth)}), heap used ${mib(c.heap.after)} → ${mib(c.heap.end)} (${pct(c.heap.growth)}) after the warm-up`,
    );
    console.log(
      `(c) per minute (mean of its samples): RSS ${c.minutes.map((m) => (m.rssBytes / 2 ** 20).toFixed(1)).join(', ')} MiB; ` +
        `heap used ${c.minutes.map((m) => (m.heapUsedBytes / 2 ** 20).toFixed(1)).join(', ')} MiB`,
    );
    check(failed === 0, `(c) ${String(failed)} requests failed: ${c.traffic.flatMap((t) => t.errors).join('; ')}`);
    check(c.rss.growth <= 0.1, `(c) RSS grew ${pct(c.rss.growth)} after the warm-up`);
    check(c.heap.growth <= 0.1, `(c) heap grew ${pct(c.heap.growth)} after the warm-up`);
  }
}

try {
  await main();
  for (const problem of problems) console.error(`soak: ${problem}`);
  process.exitCode = problems.length > 0 ? 1 : 0;
} catch (error) {
  console.error(
    `soak failed after ${((Date.now() - started) / 1000).toFixed(0)} s: ${(error instanceof Error ? error.message : String(error)).split('\n')[0] ?? ''}`,
  );
  process.exitCode = 1;
}
