// The report: the machine, the table of figures against their targets, and notes.
import { cpus, release, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { percentile, sum } from '../stats.js';
import { ENDPOINTS_PER_SERVICE, expectedCounts } from '../workload.js';
import { BURST_CHANGES, MIN_SYNC_INTERVAL_MS } from './burst.js';
import type { ColdRound, ColdSync, DaemonRun, Results } from './results.js';

const C_TOOLS_WITHOUT_RULES = ['ip -batch', 'ipset restore', 'ipvsadm -R'];
/** The C tools' total: all five, or only those that program what the in-process sync programs. */
const cTotal = (round: ColdRound, withRules: boolean): number =>
  sum(round.cTools.filter((run) => withRules || C_TOOLS_WITHOUT_RULES.includes(run.tool)).map((run) => run.ms));
/** Each side's fastest round: under UML, the slower ones measure other load on the machine too. */
const fastest = (cold: ColdSync, pick: (round: ColdRound) => number): number => Math.min(...cold.rounds.map(pick));

/** A duration as the table shows it: 1.23 s, 45 ms, 0.67 ms. */
export const ms = (value: number): string =>
  value >= 10_000
    ? `${(value / 1000).toFixed(1)} s`
    : value >= 1000
      ? `${(value / 1000).toFixed(2)} s`
      : value >= 10
        ? `${value.toFixed(0)} ms`
        : `${value.toFixed(2)} ms`;
const n = (value: number): string => value.toLocaleString('en-US');
const verdict = (met: boolean): string => (met ? 'met' : 'missed');

/**
 * Issue 13's targets for the daemon's resident memory after its first sync, by shape: 90 MB at
 * 1,000 Services × 10 endpoints, 200 MB at 10,000 × 10, 300 MB at 5,000 × 50; none elsewhere.
 */
function memoryTargetMB(size: number): number | undefined {
  const targets: Record<string, number> = { '1000x10': 90, '10000x10': 200, '5000x50': 300 };
  return targets[`${size}x${ENDPOINTS_PER_SERVICE}`];
}

/** The markdown table of docs/benchmarks.md: one row per figure, with its target where it has one. */
export function table(results: Results, { smallest, largest }: { readonly smallest: number; readonly largest: number }): string {
  const rows: string[][] = [];
  const row = (measurement: string, size: string, kipvs: string, c: string, ratio: string, target: string, met: string): void =>
    void rows.push([measurement, size, kipvs, c, ratio, target, met]);
  for (const cold of results.cold) {
    const [all, withoutRules] = [fastest(cold, (r) => cTotal(r, true)), fastest(cold, (r) => cTotal(r, false))];
    const [agentProcessMs, agentDefaultsMs, inProcessMs] = [
      fastest(cold, (r) => r.agentProcessMs),
      fastest(cold, (r) => r.agentDefaultsMs),
      fastest(cold, (r) => r.inProcessMs),
    ];
    const targeted = cold.size === largest;
    const ratioB = inProcessMs / withoutRules;
    const of = cold.rounds.length > 1 ? ` (faster of ${cold.rounds.length} rounds)` : '';
    for (const [how, processMs] of [
      ['as the image runs it (its NODE_OPTIONS)', agentProcessMs],
      ["with node's defaults", agentDefaultsMs],
    ] as const) {
      const ratio = processMs / all;
      row(
        `cold sync${of}: \`kipvs agent --once\` process ${how} vs ip + ipset + ipvsadm + iptables-restore + sysctl`,
        n(cold.size),
        ms(processMs),
        ms(all),
        ratio.toFixed(2),
        targeted ? '≤ 0.50' : '',
        targeted ? verdict(ratio <= 0.5) : '',
      );
    }
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
  if (results.resyncChanges) {
    const r = results.resyncChanges;
    const p99 = percentile(r.times, 0.99);
    row(
      `one endpoint change during full resyncs (${r.fullSyncMs.length} back to back): p99 of ${r.times.length}, store event to kernel`,
      n(r.size),
      ms(p99),
      '',
      '',
      '≤ 10 ms',
      verdict(p99 <= 10 && r.fullSyncMs.length >= 3),
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
  const fileDaemon = results.daemons.find((run) => run.source === 'file');
  for (const run of results.daemons) {
    const which = run.source === 'file' ? 'file source' : 'API source';
    // The API source's figures beside the file source's of the same boot.
    const ratio = (pick: (r: DaemonRun) => number): string => (run.source === 'api' && fileDaemon ? (pick(run) / pick(fileDaemon)).toFixed(2) : '');
    const vsFile = run.source === 'api' && fileDaemon ? ' (ratio: to the file source)' : '';
    row(
      run.source === 'file'
        ? '`kipvs agent` daemon, file source: start to its files read'
        : '`kipvs agent` daemon, API source: start to Services and EndpointSlices listed (pages of 500)',
      n(largest),
      ms(run.sourceReadMs),
      '',
      ratio((r) => r.sourceReadMs),
      '',
      '',
    );
    row(
      `\`kipvs agent\` daemon, ${which}: start to its first sync done${vsFile}`,
      n(largest),
      ms(run.syncedAfterMs),
      '',
      ratio((r) => r.syncedAfterMs),
      '',
      '',
    );
    const target = memoryTargetMB(largest);
    row(
      `memory: \`kipvs agent\` daemon VmRSS after its first sync, ${which}${vsFile}`,
      n(largest),
      `${run.rssMiB.toFixed(0)} MiB`,
      '',
      ratio((r) => r.rssMiB),
      target === undefined ? '' : `≤ ${target} MB`,
      target === undefined ? '' : verdict(run.rssMiB * 2 ** 20 <= target * 1e6),
    );
    if (run.heapMiB !== undefined)
      row(`memory: daemon V8 heap used, ${which} (${run.heapSource})`, n(largest), `${run.heapMiB.toFixed(0)} MiB`, '', '', '', '');
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

/** The host, the sandbox kernel and this boot's speed (`calibration`, from warmUp). */
export function machine(calibration: string): string {
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

/** What the table leaves out: the counts, every round, the slowest changes. */
export function notes(results: Results, largest: number): string {
  const lines: string[] = [];
  for (const cold of results.cold) {
    const e = expectedCounts(cold.size);
    lines.push(
      `N=${n(cold.size)}: ${n(e.virtualServers)} virtual servers, ${n(e.realServers)} real servers, ${n(e.boundAddresses)} addresses, ${n(e.loopBackEntries)} KUBE-LOOP-BACK entries; in-process plan ${n(cold.inProcessOperations)} operations`,
    );
    cold.rounds.forEach((round, i) =>
      lines.push(
        `N=${n(cold.size)} round ${i + 1}: agent --once ${ms(round.agentProcessMs)} (node's defaults ${ms(round.agentDefaultsMs)}), in-process ${ms(round.inProcessMs)}; C tools ${ms(cTotal(round, true))}: ${round.cTools.map((run) => `${run.tool} ${ms(run.ms)}`).join(', ')}`,
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
  if (results.resyncChanges) {
    const r = results.resyncChanges;
    lines.push(
      `changes during full resyncs at N=${n(r.size)}: full syncs ${r.fullSyncMs.map(ms).join(', ')} (${n(r.fullOperations)} operations: drained real servers and changes they took in) over ${ms(r.windowMs)}; changes median ${ms(percentile(r.times, 0.5))}, p90 ${ms(percentile(r.times, 0.9))}, max ${ms(Math.max(...r.times))}; ${r.unexpected} taken in by a full sync`,
    );
  }
  if (results.burst) {
    const b = results.burst;
    lines.push(
      `burst: ${n(b.operations)} kernel operations (expected ${n(b.expectedOperations)}) over ${b.syncs} sync(s); a full sync afterwards found ${b.remainingOperations} to do besides deleting the ${n(b.drainedDeletions)} drained real servers`,
    );
  }
  for (const run of results.daemons) {
    const lists = run.lists.map((list) => `${list.resource}: ${n(list.items)} in ${list.pages} page(s), ${ms(list.ms)}`).join('; ');
    lines.push(
      `daemon at N=${n(largest)}, ${run.source} source: ${lists ? `lists ${lists}; ` : ''}first sync logged ${ms(run.syncedAfterMs)} after start; VmHWM ${run.hwmMiB.toFixed(0)} MiB`,
    );
  }
  return lines.map((line) => `- ${line}`).join('\n');
}
