// What the measurements found, filled in as they run and printed at the end (report.ts).
import type { ToolRun } from '../c-tools.js';

export interface ColdRound {
  readonly cTools: readonly ToolRun[];
  readonly agentProcessMs: number;
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
  memory?: { rssMiB: number; hwmMiB: number; syncedAfterMs: number; heapMiB?: number; heapSource: string };
  inProcessHeapMiB?: number;
  /** What makes figures invalid: a kernel that does not hold the desired state, a failed operation, ... */
  problems: string[];
}
