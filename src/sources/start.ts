// The agent's one source of Services and EndpointSlices: files (--source) or the API server
// (--kubeconfig, or the in-cluster service account). Either feeds the ClusterStore and keeps its
// last good state when its input breaks.
import type { Logger } from 'pino';
import { KipvsError } from '../errors.js';
import type { ClusterStore } from './cluster-store.js';
import { FileSource, watchObjects, type FileSnapshot, type SourceProblem } from './file-source.js';
import { toNodeInfo, type NodeInfo } from './kube-objects.js';

export interface ClusterSource {
  stop(): Promise<void>;
  /**
   * Looks at the input again, whatever events said (each full sync calls it): a lost file event
   * is applied within one sync period; an API source restarts an informer that stopped retrying.
   */
  check(): void;
  /** What cannot be read now, with the last good objects kept in its place; empty when all is well. */
  failing(): readonly SourceProblem[];
}

export type { SourceProblem };

export interface SourceOptions {
  /** --source: a file or directory of objects. */
  readonly file?: string;
  /** --kubeconfig; neither set means in-cluster. */
  readonly kubeconfig?: string;
  readonly nodeName: string;
  readonly cluster: ClusterStore;
  readonly log: Logger;
  /** This node's object, from the API server (deletion, taints: /healthz's nodeEligible). */
  readonly onNode?: (node: NodeInfo | undefined) => void;
  /** This node's object from either source (labels, podCIDRs, addresses); undefined when it has none. */
  readonly onNodeInfo?: (node: NodeInfo | undefined) => void;
  /** Aborting stops waiting for the first lists (start() then rejects with KIPVS_ABORTED). */
  readonly signal?: AbortSignal;
  /** --ipvs-min-sync-period: files changing without pause are read at least this often. */
  readonly minSyncPeriodMs?: number;
  /** Told each time the set of failing inputs changes (health, metrics). */
  readonly onFailing?: (failing: readonly SourceProblem[]) => void;
}

/** Resolves once the store holds a first complete view (a file read, or the first lists). */
export async function startClusterSource(options: SourceOptions): Promise<ClusterSource> {
  return options.file !== undefined ? startFileSource(options.file, options) : startKubeSource(options);
}

function startFileSource(path: string, { cluster, log, minSyncPeriodMs, onFailing, nodeName, onNodeInfo }: SourceOptions): ClusterSource {
  const files = new FileSource(path);
  let failing: readonly SourceProblem[] = [];
  const take = (snapshot: FileSnapshot): void => {
    onNodeInfo?.(thisNode(snapshot.nodes ?? [], nodeName));
    for (const problem of snapshot.problems) log.warn({ file: problem.file, reason: problem.reason }, 'skipped');
    cluster.complete = snapshot.complete;
    for (const id of cluster.replaceAll(snapshot.services, snapshot.endpointSlices)) {
      log.warn({ object: id, reason: 'the source holds this Service twice; the later copy is ignored' }, 'skipped');
    }
    const before = new Set(failing.map(describe));
    const now = new Set(snapshot.failing.map(describe));
    if (before.size === now.size && [...now].every((line) => before.has(line))) return;
    failing = snapshot.failing;
    for (const problem of snapshot.failing) log.error({ file: problem.file, reason: problem.reason }, 'cannot use source file');
    if (failing.length === 0) log.info({ source: path }, 'every source file read again');
    onFailing?.(failing);
  };
  const reread = (): void => {
    try {
      take(files.read());
    } catch (error) {
      log.error({ err: (error as Error).message }, 'cannot reload source; keeping the last good objects');
    }
  };
  take(files.read());
  const stopWatching = watchObjects(path, reread, 200, minSyncPeriodMs ?? 1000);
  return {
    stop: () => {
      stopWatching();
      return Promise.resolve();
    },
    check: reread,
    failing: () => failing,
  };
}

const describe = (problem: SourceProblem): string => `${problem.file}: ${problem.reason}`;

async function startKubeSource({ kubeconfig, nodeName, cluster, log, onNode, onNodeInfo, signal }: SourceOptions): Promise<ClusterSource> {
  if (kubeconfig === undefined && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new KipvsError('KIPVS_USAGE', 'no source: give --kubeconfig FILE, run in a pod (in-cluster config), or --source FILE|DIR');
  }
  // Loaded only for the API source.
  const { KubeSource } = await import('./kube-source.js');
  const source = await KubeSource.start({
    kubeconfig,
    nodeName,
    sink: cluster,
    log,
    signal,
    onNode: (node) => {
      onNode?.(node);
      onNodeInfo?.(node);
    },
  });
  return {
    stop: () => source.stop(),
    check: () => {
      source.check();
    },
    failing: () => [],
  };
}

/** The Node object named as this node (node names are lowercase, as the agent's own). */
function thisNode(nodes: readonly object[], nodeName: string): NodeInfo | undefined {
  return nodes.map(toNodeInfo).find((info) => info.name.toLowerCase() === nodeName);
}
