// Services, EndpointSlices and this node's Node object from the Kubernetes API server, listed and
// watched as client-go's reflector does (list in pages, then watch from the list's
// resourceVersion), into a ClusterSink. Only the get/list/watch verbs are used, as JSON over node's
// http(s) (kube-http.ts); client-node is loaded only for credentials that need it (kube-config.ts).
//
// What each informer does (client-node's ListWatch did the same, cache.js and watch.js in 1.4.0,
// which this replaced):
// - relists after a 410 Gone, whether the API server answers the watch request with HTTP 410 or
//   sends an ERROR event with a Status of code 410 and closes the stream (after 410s in a row,
//   with backoff, as client-go's reflector waits between its rounds);
// - lists in pages; a continue token that expired mid-list is followed by one unpaged list, as
//   client-go's pager does;
// - asks for BOOKMARK events and follows them (moves its resourceVersion);
// - on a relist, passes on only objects whose resourceVersion changed, and removes the ones gone;
// - watches again at once after a watch the server ends normally, from the last resourceVersion,
//   and backs off first after watches without any event;
// - after any other error (connection refused, reset, HTTP 5xx, no answer within the request
//   timeout), retries with exponential backoff and jitter, watching from where it was.
// While the API server is away, the sink keeps what it has.
import type { Logger } from 'pino';
import { KipvsError } from '../errors.js';
import type { ClusterSink } from './cluster-store.js';
import type { EndpointSlice } from '../model/kubernetes.js';
import { toEndpointSlice, toNodeInfo, toService, type NodeInfo } from './kube-objects.js';
import { loadKubeAccess, REQUEST_TIMEOUT_MS, type KubeAccess } from './kube-config.js';
import { KubeHttpError, listPages, openWatch } from './kube-http.js';
import { PROXY_LABEL_SELECTOR, sliceNotice } from './object-checks.js';

export { toEndpointSlice, toNodeInfo, toService, type NodeInfo, loadKubeAccess };

export interface KubeSourceOptions {
  /** A kubeconfig file; without it, the in-cluster config (service account token and CA). */
  readonly kubeconfig?: string;
  readonly nodeName: string;
  readonly sink: ClusterSink;
  readonly log: Logger;
  /** This node as it changes; undefined when it does not exist (or was deleted). */
  readonly onNode?: (node: NodeInfo | undefined) => void;
  /** Delay before retrying after an error: doubles from initialMs up to maxMs, with jitter. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Watch timeoutSeconds; by default random in [300, 600) as client-go's reflector does. */
  readonly watchTimeoutSeconds?: number;
  /** A list page or watch request unanswered this long is given up and retried (default 60 s). */
  readonly requestTimeoutMs?: number;
  /** Page size of lists (limit/continue), as client-go's 500. */
  readonly pageSize?: number;
  /** Aborting rejects a start() still waiting for the first lists, and stops the source. */
  readonly signal?: AbortSignal;
}

export interface KubeSourceStatus {
  /** Services and EndpointSlices have each been listed once. */
  readonly synced: boolean;
  /** Every informer's last list or watch request was answered, and none failed since. */
  readonly connected: boolean;
  /** Lists completed after the first one of each informer (after a 410, or errors before any list). */
  readonly relists: number;
  /** Watch requests after the first one of each informer. */
  readonly watchRestarts: number;
  /** Date.now() of the last watch event (bookmarks included). */
  readonly lastEventAt?: number;
  /** Where each informer is: the resourceVersion it would watch from ('' before a list). */
  readonly resourceVersions: Readonly<Record<string, string>>;
}

const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 };

/** The informers whose first list the first sync waits for, as kube-proxy waits for its caches; not the Node's. */
const SYNC_RESOURCES = ['services', 'endpointslices'];

/** A watch open this long past its timeoutSeconds has a dead connection under it. */
const WATCH_DEADLINE_GRACE_MS = 30_000;

/** Exponential backoff with "equal jitter": between half and all of initialMs·2^(attempt-1), capped. */
export function backoffDelay(attempt: number, backoff: { initialMs: number; maxMs: number }, random: () => number = Math.random): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** The message of the API server's Status that a list's ApiException carries as a JSON string. */
function statusMessage(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  try {
    const message = (JSON.parse(body) as { message?: unknown } | null)?.message;
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

/** One line for the log: `HTTP 403: services is forbidden: …`, `connect ECONNREFUSED …`. */
function describeError(error: unknown): string {
  const { code, statusCode, body } = (error ?? {}) as { code?: unknown; statusCode?: unknown; body?: unknown };
  const httpStatus = typeof code === 'number' ? code : typeof statusCode === 'number' ? statusCode : undefined;
  if (httpStatus !== undefined) {
    const message = statusMessage(body);
    return message ? `HTTP ${httpStatus}: ${message}` : `HTTP ${httpStatus}`;
  }
  return error instanceof Error ? error.message : String(error);
}

// --- One informer -----------------------------------------------------------------------------

/** An object as the API server sends it; only its identity is read here. */
type ApiObject = Readonly<Record<string, unknown>> & {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string };
};

/** One informer: what to list and watch, and where its objects go. */
interface ReflectorSpec {
  readonly resource: string;
  readonly path: string;
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  readonly upsert: (object: ApiObject) => void;
  readonly remove: (object: ApiObject) => void;
}

interface ReflectorSettings {
  readonly log: Logger;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly watchTimeoutSeconds?: number;
  readonly requestTimeoutMs: number;
  readonly pageSize: number;
  readonly onListed: () => void;
}

function idOf(object: { readonly metadata?: { readonly name?: string; readonly namespace?: string } }): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

class Reflector {
  stopped = false;
  listed = false;
  connected = false;
  lists = 0;
  watches = 0;
  lastEventAt: number | undefined;
  /** The resourceVersion of each object passed on, by id: all a relist compares (ListWatch's cache). */
  private readonly known = new Map<string, string | undefined>();
  /** Where the next watch starts; '' means list first. */
  private resourceVersion = '';
  /** Errors in a row: the backoff before the next restart. */
  private failures = 0;
  /** Watches in a row that the server ended normally before any event. */
  private emptyWatches = 0;
  /** 410 Gone in a row, with no event between: the relists after the first wait, as client-go's. */
  private gone = 0;
  private retry: NodeJS.Timeout | undefined;
  private startedAt = 0;
  /** Bumped by each start: the callbacks of a loop given up are ignored. */
  private loop = 0;
  private abortWatch: (() => void) | undefined;
  private abortList: AbortController | undefined;

  constructor(
    private readonly spec: ReflectorSpec,
    private readonly access: KubeAccess,
    private readonly settings: ReflectorSettings,
  ) {}

  get resource(): string {
    return this.spec.resource;
  }

  latestResourceVersion(): string {
    return this.resourceVersion;
  }

  start(): void {
    this.startedAt = performance.now();
    const loop = ++this.loop;
    void this.run(loop);
  }

  /**
   * Each full sync: an informer that is neither connected nor waiting to retry, long after it
   * last started, lost its error somewhere; it is restarted rather than left silent for good.
   */
  check(): void {
    if (this.stopped || this.connected || this.retry !== undefined) return;
    if (performance.now() - this.startedAt < this.settings.requestTimeoutMs) return;
    this.settings.log.warn({ resource: this.spec.resource }, 'informer neither connected nor retrying; restarting it');
    this.cancelRequests();
    this.start();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.cancelRequests();
  }

  private cancelRequests(): void {
    this.abortWatch?.();
    this.abortWatch = undefined;
    this.abortList?.abort();
    this.abortList = undefined;
  }

  private current(loop: number): boolean {
    return !this.stopped && loop === this.loop;
  }

  private async run(loop: number): Promise<void> {
    if (this.resourceVersion === '') {
      // A server that answers every watch with 410 must not get lists back to back.
      if (this.gone > 1 && !(await this.backOff(this.gone - 1, loop))) return;
      try {
        await this.relist(loop);
      } catch (error) {
        if (this.current(loop)) this.failed(error);
        return;
      }
    }
    if (!this.current(loop)) return;
    if (!this.listed) {
      this.listed = true;
      this.settings.onListed();
    }
    this.watches++;
    // A healthy watch has events (with bookmarks, at least one a minute); after one without any,
    // back off first, so a server or proxy that closes every watch at once is not hammered.
    if (this.emptyWatches > 0 && !(await this.backOff(this.emptyWatches, loop))) return;
    this.watch(loop);
  }

  /** Waits the backoff of `attempt`; false when the loop was given up meanwhile. */
  private async backOff(attempt: number, loop: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, this.settings.backoff)).unref());
    return this.current(loop);
  }

  /** Every page of one list, each passed on as it comes; then what the list no longer has is removed. */
  private async relist(loop: number): Promise<void> {
    const started = performance.now();
    const seen = new Set<string>();
    const controller = new AbortController();
    this.abortList = controller;
    const { resourceVersion, items, pages } = await listPages(
      this.access,
      this.spec.path,
      { labelSelector: this.spec.labelSelector, fieldSelector: this.spec.fieldSelector },
      { pageSize: this.settings.pageSize, timeoutMs: this.settings.requestTimeoutMs, signal: controller.signal },
      (page) => {
        if (!this.current(loop)) return;
        // A list of many pages may outlast the request timeout; while pages come, check() leaves it be.
        this.startedAt = performance.now();
        for (const object of page as ApiObject[]) {
          seen.add(idOf(object));
          this.upsert(object);
        }
      },
    );
    if (!this.current(loop)) return;
    this.abortList = undefined;
    // Only a whole list says what is gone; a list that failed part way removed nothing.
    for (const [id, version] of this.known) {
      if (seen.has(id)) continue;
      this.known.delete(id);
      const slash = id.indexOf('/');
      this.pass(this.spec.remove, { metadata: { namespace: id.slice(0, slash) || undefined, name: id.slice(slash + 1), resourceVersion: version } });
    }
    // Where a start or a relist spends its time, as kube-proxy logs its caches' sync.
    this.settings.log.info({ resource: this.spec.resource, items, pages, ms: Math.round(performance.now() - started) }, 'listed');
    this.resourceVersion = resourceVersion;
    this.lists++;
    this.failures = 0;
    this.emptyWatches = 0;
    this.connected = true;
  }

  private watch(loop: number): void {
    const timeoutSeconds = this.settings.watchTimeoutSeconds ?? Math.floor(300 * (1 + Math.random()));
    let events = 0;
    const query = {
      resourceVersion: this.resourceVersion,
      labelSelector: this.spec.labelSelector,
      fieldSelector: this.spec.fieldSelector,
      allowWatchBookmarks: true,
      timeoutSeconds,
    };
    const timeouts = { answerMs: this.settings.requestTimeoutMs, deadlineMs: timeoutSeconds * 1000 + WATCH_DEADLINE_GRACE_MS };
    this.abortWatch = openWatch(this.access, this.spec.path, query, timeouts, {
      opened: () => {
        this.connected = true;
      },
      event: (type, object) => {
        if (!this.current(loop)) return;
        if (type !== 'ERROR') {
          // An event, not just an answer, ends a run of failures: a proxy that answers 200 and
          // then cuts every connection still meets a growing backoff.
          if (events++ === 0) this.failures = 0;
          this.gone = 0;
        }
        this.lastEventAt = Date.now();
        this.take(type, object);
      },
      ended: (error) => {
        if (!this.current(loop)) return;
        this.abortWatch = undefined;
        if (error instanceof KubeHttpError && error.statusCode === 410) this.expired();
        else if (error) {
          this.failed(error);
          return;
        }
        this.emptyWatches = events === 0 ? this.emptyWatches + 1 : 0;
        void this.run(loop);
      },
    });
  }

  private take(type: string, object: ApiObject): void {
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
        this.upsert(object);
        break;
      case 'DELETED':
        if (this.known.delete(idOf(object))) this.pass(this.spec.remove, object);
        break;
      case 'BOOKMARK':
        break;
      case 'ERROR':
        // 410: what we would watch from is compacted away; list again once the server closes.
        if ((object as { code?: unknown }).code === 410) this.expired();
        else this.settings.log.warn({ resource: this.spec.resource, err: String((object as { message?: unknown }).message) }, 'watch error event');
        return;
      default:
        return;
    }
    this.resourceVersion = object.metadata?.resourceVersion ?? '';
  }

  /** 410 Gone: what it would watch from is compacted away; it lists again. */
  private expired(): void {
    this.resourceVersion = '';
    this.gone++;
  }

  /** Passes the object on unless it was passed on at this very resourceVersion. */
  private upsert(object: ApiObject): void {
    const id = idOf(object);
    const version = object.metadata?.resourceVersion;
    if (version !== undefined && this.known.get(id) === version) return;
    this.known.set(id, version);
    this.pass(this.spec.upsert, object);
  }

  /** One object that cannot be taken costs that object only. */
  private pass(handler: (object: ApiObject) => void, object: ApiObject): void {
    try {
      handler(object);
    } catch (error) {
      this.settings.log.error({ resource: this.spec.resource, object: idOf(object), err: describeError(error) }, 'cannot take object');
    }
  }

  private failed(error: unknown): void {
    if (this.stopped) return;
    this.connected = false;
    if (this.retry) return;
    this.cancelRequests();
    this.failures++;
    const delayMs = backoffDelay(this.failures, this.settings.backoff);
    this.settings.log.warn(
      { resource: this.spec.resource, err: describeError(error), retryInMs: delayMs },
      'list/watch failed; keeping the last objects and retrying',
    );
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.start();
    }, delayMs);
  }
}

// --- The source -------------------------------------------------------------------------------

/**
 * The object last passed to the sink, per id, so that a deletion (which the API server sends
 * with the object's last state, and a relist knows only by id) hands over the object the store
 * holds. The reflector passes an object on only when its resourceVersion changed.
 */
class Converted<T> {
  private readonly byId = new Map<string, T>();

  constructor(private readonly convert: (object: object) => T) {}

  upsert(object: ApiObject): T {
    const converted = this.convert(object);
    this.byId.set(idOf(object), converted);
    return converted;
  }

  remove(object: ApiObject): T {
    const id = idOf(object);
    const last = this.byId.get(id);
    this.byId.delete(id);
    return last ?? this.convert(object);
  }
}

/** Logs what kube-proxy ignores in a slice (FQDN, no ports) once per slice and reason, not at every update. */
class SliceNotices {
  private readonly reported = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  forget(slice: EndpointSlice): void {
    this.reported.delete(idOf(slice));
  }

  report(slice: EndpointSlice): void {
    const id = idOf(slice);
    const notice = sliceNotice(slice as unknown as Record<string, unknown>);
    if (notice === undefined) {
      this.reported.delete(id);
      return;
    }
    if (this.reported.get(id) === notice) return;
    this.reported.set(id, notice);
    this.log.info({ object: id, reason: notice }, 'no endpoints');
  }
}

export class KubeSource {
  private readonly reflectors: Reflector[];
  private readonly synced: Promise<void>;
  private stopped = false;

  private constructor(options: KubeSourceOptions, access: KubeAccess) {
    const services = new Converted(toService);
    const slices = new Converted(toEndpointSlice);
    const { sink, log } = options;
    const notices = new SliceNotices(log);
    let markListed!: (resource: string) => void;
    this.synced = new Promise<void>((resolve) => {
      const listed = new Set<string>();
      markListed = (resource) => {
        listed.add(resource);
        if (SYNC_RESOURCES.every((name) => listed.has(name))) resolve();
      };
    });
    const settings = (resource: string): ReflectorSettings => ({
      log,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
      requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      pageSize: options.pageSize ?? 500,
      onListed: () => markListed(resource),
    });
    const nodeSelector = `metadata.name=${options.nodeName}`;
    const specs: ReflectorSpec[] = [
      {
        resource: 'services',
        path: '/api/v1/services',
        // kube-proxy's selector: the server leaves out what is not ours, and sends a Service that
        // gains one of the labels as DELETED (it left the selection).
        labelSelector: PROXY_LABEL_SELECTOR,
        upsert: (object) => sink.upsertService(services.upsert(object)),
        remove: (object) => sink.deleteService(services.remove(object)),
      },
      {
        resource: 'endpointslices',
        path: '/apis/discovery.k8s.io/v1/endpointslices',
        labelSelector: PROXY_LABEL_SELECTOR,
        upsert: (object) => {
          const slice = slices.upsert(object);
          notices.report(slice);
          sink.upsertEndpointSlice(slice);
        },
        remove: (object) => {
          const slice = slices.remove(object);
          notices.forget(slice);
          sink.deleteEndpointSlice(slice);
        },
      },
      {
        resource: 'nodes',
        path: '/api/v1/nodes',
        fieldSelector: nodeSelector,
        upsert: (object) => options.onNode?.(toNodeInfo(object)),
        remove: () => options.onNode?.(undefined),
      },
    ];
    this.reflectors = specs.map((spec) => new Reflector(spec, access, settings(spec.resource)));
  }

  /**
   * Starts the informers; resolves once Services and EndpointSlices have been listed once (as
   * kube-proxy waits for its caches to sync), retrying with backoff until then. Rejects only on a
   * bad kubeconfig, or when options.signal aborts first.
   */
  static async start(options: KubeSourceOptions): Promise<KubeSource> {
    const source = new KubeSource(options, await loadKubeAccess(options.kubeconfig, { execTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS }));
    const { signal } = options;
    if (signal?.aborted) throw new KipvsError('KIPVS_ABORTED', 'stopped before the first list from the API server');
    for (const reflector of source.reflectors) reflector.start();
    if (!signal) {
      await source.synced;
      return source;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        void source.stop();
        reject(new KipvsError('KIPVS_ABORTED', 'stopped before the first list from the API server'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      void source.synced.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
    return source;
  }

  status(): KubeSourceStatus {
    const lastEvents = this.reflectors.map((reflector) => reflector.lastEventAt).filter((at): at is number => at !== undefined);
    return {
      synced: this.reflectors.filter((reflector) => SYNC_RESOURCES.includes(reflector.resource)).every((reflector) => reflector.listed),
      connected: this.reflectors.every((reflector) => reflector.connected),
      relists: this.reflectors.reduce((sum, reflector) => sum + Math.max(0, reflector.lists - 1), 0),
      watchRestarts: this.reflectors.reduce((sum, reflector) => sum + Math.max(0, reflector.watches - 1), 0),
      ...(lastEvents.length > 0 ? { lastEventAt: Math.max(...lastEvents) } : {}),
      resourceVersions: Object.fromEntries(this.reflectors.map((reflector) => [reflector.resource, reflector.latestResourceVersion()])),
    };
  }

  /** Restarts informers that stopped without retrying (called at each full sync). */
  check(): void {
    for (const reflector of this.reflectors) reflector.check();
  }

  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      for (const reflector of this.reflectors) reflector.stop();
    }
    return Promise.resolve();
  }
}
