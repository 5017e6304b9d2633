// What the measurements found, filled in as they run and printed at the end (report.ts).
import type { ToolRun } from '../c-tools.js';

export interface ColdRound {
  readonly cTools: readonly ToolRun[];
  /** `kipvs agent --once` as a process, as the image runs it (its NODE_OPTIONS). */
  readonly agentProcessMs: number;
  /** The same with node's defaults (kipvs installed from npm). */
  readonly agentDefaultsMs: number;
  readonly inProcessMs: number;
}

export interface ColdSync {
  readonly size: number;
  readonly rounds: readonly ColdRound[];
  readonly inProcessOperations: number;
}

export interface ChangeRun {
  readonly size: number;
  readonly times: readonly number[];
  readonly operations: readonly number[];
  /** Milliseconds of garbage collection within each round. */
  readonly gcMs: readonly number[];
}

export type DaemonSource = 'file' | 'api';

export interface DaemonRun {
  readonly source: DaemonSource;
  /** From its start to its "starting" line: the files read, or Services and EndpointSlices listed. */
  readonly sourceReadMs: number;
  /** From its start to its first "synced" line. */
  readonly syncedAfterMs: number;
  /** The API source's lists (its "listed" lines); none for files. */
  readonly lists: readonly { readonly resource: string; readonly items: number; readonly pages: number; readonly ms: number }[];
  readonly rssMiB: number;
  readonly hwmMiB: number;
  readonly heapMiB?: number;
  readonly heapSource: string;
}

export interface Results {
  cold: ColdSync[];
  changes: ChangeRun[];
  noopMs?: readonly number[];
  /** Endpoint changes synced while full syncs ran back to back (changes-during-resync.ts). */
  resyncChanges?: {
    readonly size: number;
    readonly times: readonly number[];
    readonly fullSyncMs: readonly number[];
    readonly windowMs: number;
    /** Operations of the full syncs: drained real servers, and changes they took in. */
    readonly fullOperations: number;
    /** Changes whose own sync did not make one operation per virtual server (a full sync had taken them in). */
    readonly unexpected: number;
  };
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
  /** The real daemon, on each source (KIPVS_BENCH_SOURCE), in the order run. */
  daemons: DaemonRun[];
  inProcessHeapMiB?: number;
  /** What makes figures invalid: a kernel that does not hold the desired state, a failed operation, ... */
  problems: string[];
}
