// The agent's one source of Services and EndpointSlices: files (--source) or the API server
// (--kubeconfig, or the in-cluster service account). Either feeds the ClusterStore and keeps its
// last good state when its input breaks.
import type { Logger } from 'pino';
import { KipvsError } from '../errors.js';
import type { ClusterStore } from './cluster-store.js';
import { FileSource, watchObjects, type FileSnapshot } from './file-source.js';
import type { NodeInfo } from './kube-source.js';

export interface ClusterSource {
  stop(): Promise<void>;
}

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
  /** Aborting stops waiting for the first lists (start() then rejects with KIPVS_ABORTED). */
  readonly signal?: AbortSignal;
}

/** Resolves once the store holds a first complete view (a file read, or the first lists). */
export async function startClusterSource(options: SourceOptions): Promise<ClusterSource> {
  return options.file !== undefined ? startFileSource(options.file, options) : startKubeSource(options);
}

function startFileSource(path: string, { cluster, log }: SourceOptions): ClusterSource {
  const files = new FileSource(path);
  const take = (snapshot: FileSnapshot): void => {
    for (const problem of snapshot.problems) log.warn({ file: problem.file, reason: problem.reason }, 'skipped');
    for (const id of cluster.replaceAll(snapshot.services, snapshot.endpointSlices)) {
      log.warn({ object: id, reason: 'the source holds this Service twice; the later copy is ignored' }, 'skipped');
    }
  };
  take(files.read());
  const stopWatching = watchObjects(path, () => {
    try {
      take(files.read());
    } catch (error) {
      log.error({ err: (error as Error).message }, 'cannot reload source; keeping the last good objects');
    }
  });
  return { stop: async () => stopWatching() };
}

async function startKubeSource({ kubeconfig, nodeName, cluster, log, onNode, signal }: SourceOptions): Promise<ClusterSource> {
  if (kubeconfig === undefined && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new KipvsError('KIPVS_USAGE', 'no source: give --kubeconfig FILE, run in a pod (in-cluster config), or --source FILE|DIR');
  }
  // Loaded only for the API source: client-node is most of the agent's start-up time.
  const { KubeSource } = await import('./kube-source.js');
  const source = await KubeSource.start({ kubeconfig, nodeName, sink: cluster, log, signal, onNode });
  return { stop: () => source.stop() };
}
