// Services, EndpointSlices and this node's Node object from the Kubernetes API server, through
// client-node's informers (ListWatch: list, then watch from the list's resourceVersion), into a
// ClusterSink. Only the get/list/watch verbs are used.
//
// What client-node's ListWatch does itself (cache.js, watch.js in 1.4.0):
// - relists after a 410 Gone, whether the API server answers the watch request with HTTP 410 or
//   sends an ERROR event with a Status of code 410 and closes the stream;
// - follows BOOKMARK events (moves its resourceVersion), but never asks for them;
// - on a relist, reports only objects whose resourceVersion changed, and deletes the ones gone;
// - reconnects at once after a watch the server ends normally, from the last resourceVersion;
// - on any other error (connection refused, reset, HTTP 5xx), reports it and stops for good.
// So this file wraps it thinly: a Watch that asks for bookmarks and a server-side timeout (with a
// client-side deadline for a connection that died silently), and restarts after errors with
// exponential backoff and jitter. While the API server is away, the sink keeps what it has.
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  ListWatch,
  V1ListMeta,
  V1ObjectMeta,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KipvsError } from '../errors.js';
import type { ClusterSink } from './cluster-store.js';
import type { EndpointSlice } from '../model/kubernetes.js';
import { toEndpointSlice, toNodeInfo, toService, type NodeInfo } from './kube-objects.js';
import { loadKubeConfig } from './kube-config.js';
import { PROXY_LABEL_SELECTOR, sliceNotice } from './object-checks.js';

export { toEndpointSlice, toNodeInfo, toService, type NodeInfo, loadKubeConfig };

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
/** A list page or a watch request unanswered this long is given up (client-node sets no timeout). */
const REQUEST_TIMEOUT_MS = 60_000;

/** Rejects when `promise` has not settled within `ms`; a late result is dropped. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

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

/** One informer: what to list and watch, and where its objects go. */
interface ReflectorSpec {
  readonly resource: string;
  readonly path: string;
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  list(page: { _continue?: string; limit: number }): Promise<KubernetesListObject<KubernetesObject>>;
  readonly upsert: (object: KubernetesObject) => void;
  readonly remove: (object: KubernetesObject) => void;
}

interface ReflectorSettings {
  readonly log: Logger;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly watchTimeoutSeconds?: number;
  readonly requestTimeoutMs: number;
  readonly pageSize: number;
  readonly onListed: () => void;
}

/** client-node's Watch with what its ListWatch does not ask for, and the hooks status needs. */
class ReflectorWatch extends Watch {
  private readonly open = new Set<AbortController>();

  constructor(
    config: KubeConfig,
    private readonly reflector: Reflector,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, object: unknown, raw?: unknown) => void,
    done: (error: unknown) => void,
  ): Promise<AbortController> {
    const reflector = this.reflector;
    // ListWatch lists (when it must) then calls this synchronously: the list is applied by now.
    reflector.watchStarting();
    await reflector.pauseAfterEmptyWatches();
    if (reflector.stopped) return new AbortController();
    const timeoutSeconds = reflector.timeoutSeconds();
    let deadline: NodeJS.Timeout | undefined;
    let ended = false;
    let controller: AbortController | undefined;
    let events = 0;
    // client-node gives the request no timeout of its own: a watch whose answer never comes (a
    // half-open connection) is given up after REQUEST_TIMEOUT_MS and the informer restarted.
    let abandoned = false;
    const givenUp = (): boolean => reflector.stopped || abandoned;
    const unanswered = setTimeout(() => {
      abandoned = true;
      ended = true;
      done(new Error(`no answer to the watch of ${reflector.resource} within ${reflector.requestTimeoutMs / 1000} s`));
    }, reflector.requestTimeoutMs);
    unanswered.unref();
    // eslint-disable-next-line prefer-const -- declared above: the done callback reads it, and may run before this resolves
    controller = await super
      .watch(
        path,
        { ...query, allowWatchBookmarks: true, timeoutSeconds },
        (phase, object, raw) => {
          if (givenUp()) return;
          if (phase !== 'ERROR') events++;
          reflector.watchEvent();
          callback(phase, object, raw);
        },
        (error) => {
          if (abandoned) return;
          ended = true;
          clearTimeout(deadline);
          if (controller) this.open.delete(controller);
          reflector.watchEnded(!error && events === 0);
          done(error);
        },
      )
      .finally(() => clearTimeout(unanswered));
    // Stopped (or given up) while the request was on its way: nobody will abort it later.
    if (givenUp()) {
      controller.abort();
      return controller;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the done callback or the unanswered timer may have set it during the await
    if (!ended) {
      this.open.add(controller);
      reflector.connectedNow();
      deadline = setTimeout(() => controller.abort(), timeoutSeconds * 1000 + WATCH_DEADLINE_GRACE_MS);
      deadline.unref();
    }
    return controller;
  }

  abortAll(): void {
    for (const controller of this.open) controller.abort();
    this.open.clear();
  }
}

class Reflector {
  stopped = false;
  listed = false;
  connected = false;
  lists = 0;
  watches = 0;
  lastEventAt: number | undefined;
  /** Errors in a row: the backoff before the next restart. */
  private failures = 0;
  /** Watches in a row that the server ended normally before any event. */
  private emptyWatches = 0;
  private retry: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private readonly watcher: ReflectorWatch;
  private readonly informer: ListWatch<KubernetesObject>;

  constructor(
    private readonly spec: ReflectorSpec,
    config: KubeConfig,
    private readonly settings: ReflectorSettings,
  ) {
    this.watcher = new ReflectorWatch(config, this);
    this.informer = new ListWatch(spec.path, this.watcher, () => this.listAll(), false, spec.labelSelector, spec.fieldSelector);
    // ListWatch calls these from inside Watch's line handler, which swallows exceptions as JSON
    // parse errors: report them here instead.
    const guarded =
      (handler: (object: KubernetesObject) => void) =>
      (object: KubernetesObject): void => {
        if (this.stopped) return;
        try {
          handler(object);
        } catch (error) {
          settings.log.error({ resource: spec.resource, object: idOf(object), err: describeError(error) }, 'cannot take object');
        }
      };
    const taken =
      (handler: (object: KubernetesObject) => void) =>
      (object: KubernetesObject): void => {
        guarded(handler)(object);
        keepOnlyIdentity(object);
      };
    this.informer.on('add', taken(spec.upsert));
    this.informer.on('update', taken(spec.upsert));
    this.informer.on('delete', guarded(spec.remove));
    this.informer.on('error', (error) => this.failed(error));
  }

  get resource(): string {
    return this.spec.resource;
  }

  resourceVersion(): string {
    return this.informer.latestResourceVersion();
  }

  start(): void {
    this.startedAt = performance.now();
    this.informer.start().catch((error: unknown) => this.failed(error));
  }

  /**
   * Each full sync: an informer that is neither connected nor waiting to retry, long after it
   * last started, lost its error somewhere; it is restarted rather than left silent for good.
   */
  check(): void {
    if (this.stopped || this.connected || this.retry !== undefined) return;
    if (performance.now() - this.startedAt < this.settings.requestTimeoutMs) return;
    this.settings.log.warn({ resource: this.spec.resource }, 'informer neither connected nor retrying; restarting it');
    this.watcher.abortAll();
    void this.informer.stop().then(() => {
      if (!this.stopped) this.start();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    void this.informer.stop();
    this.watcher.abortAll();
  }

  get requestTimeoutMs(): number {
    return this.settings.requestTimeoutMs;
  }

  timeoutSeconds(): number {
    return this.settings.watchTimeoutSeconds ?? Math.floor(300 * (1 + Math.random()));
  }

  watchStarting(): void {
    if (!this.listed) {
      this.listed = true;
      this.settings.onListed();
    }
    this.watches++;
  }

  connectedNow(): void {
    this.connected = true;
    this.failures = 0;
  }

  watchEvent(): void {
    this.lastEventAt = Date.now();
  }

  watchEnded(empty: boolean): void {
    this.emptyWatches = empty ? this.emptyWatches + 1 : 0;
  }

  /**
   * ListWatch reconnects at once after a watch the server ended normally. A healthy watch has
   * events (with bookmarks, at least one a minute); after one without any, back off first, so a
   * server or proxy that closes every watch at once is not hammered.
   */
  async pauseAfterEmptyWatches(): Promise<void> {
    if (this.emptyWatches === 0) return;
    await new Promise((resolve) => setTimeout(resolve, backoffDelay(this.emptyWatches, this.settings.backoff)).unref());
  }

  /** Every page of one list (limit/continue, as client-go's pager), as one list for ListWatch. */
  private async listAll(): Promise<KubernetesListObject<KubernetesObject>> {
    const items: KubernetesObject[] = [];
    let page: KubernetesListObject<KubernetesObject>;
    let resourceVersion: string | undefined;
    let continueToken: string | undefined;
    let pages = 0;
    const started = performance.now();
    do {
      page = await withTimeout(
        this.spec.list({ limit: this.settings.pageSize, ...(continueToken ? { _continue: continueToken } : {}) }),
        this.settings.requestTimeoutMs,
        `list ${this.spec.resource}`,
      );
      items.push(...page.items);
      resourceVersion ??= page.metadata?.resourceVersion;
      continueToken = page.metadata?._continue || undefined;
      pages++;
    } while (continueToken);
    // Where a start or a relist spends its time, as kube-proxy logs its caches' sync.
    this.settings.log.info({ resource: this.spec.resource, items: items.length, pages, ms: Math.round(performance.now() - started) }, 'listed');
    this.lists++;
    this.failures = 0;
    this.emptyWatches = 0;
    this.connected = true;
    // As client-node's own lists come: its models are classes.
    const metadata = new V1ListMeta();
    metadata.resourceVersion = resourceVersion;
    return { metadata, items };
  }

  private failed(error: unknown): void {
    if (this.stopped) return;
    this.connected = false;
    if (this.retry) return;
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
 * The object last passed to the sink, per id: an object seen again at the same resourceVersion is
 * passed as that very object, which the store skips (===) instead of translating its Service
 * again. ListWatch already leaves such objects out of a relist (cache.js isSameVersion); this is
 * the same guarantee at our boundary, and gives a deletion the object the store knows.
 */
class Converted<T extends { metadata: { resourceVersion?: string } }> {
  private readonly byId = new Map<string, T>();

  constructor(private readonly convert: (object: object) => T) {}

  upsert(object: KubernetesObject): T {
    const id = idOf(object);
    const last = this.byId.get(id);
    const version = object.metadata?.resourceVersion;
    if (last && version !== undefined && last.metadata.resourceVersion === version) return last;
    const converted = this.convert(object);
    this.byId.set(id, converted);
    return converted;
  }

  remove(object: KubernetesObject): T {
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
    this.reported.delete(`${slice.metadata.namespace ?? ''}/${slice.metadata.name}`);
  }

  report(slice: EndpointSlice): void {
    const id = `${slice.metadata.namespace ?? ''}/${slice.metadata.name}`;
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

/**
 * ListWatch caches every object it hands over, whole (a list's items are client-node's model
 * classes, with status, managedFields, everything), beside the compact copy the store keeps: the
 * cluster twice. Of its cache it reads only each object's namespace, name and resourceVersion
 * (cache.js in 1.4.0: addOrUpdateObject, isSameVersion, deleteItems, deleteObject), and a deletion
 * hands back the cached object, of which remove() reads the same. So once taken, the object the
 * cache holds is cut down to those, in place.
 */
function keepOnlyIdentity(object: KubernetesObject): void {
  const metadata = object.metadata;
  const fields = object as unknown as Record<string, unknown>;
  for (const key of Object.keys(fields)) if (key !== 'metadata') fields[key] = undefined;
  const identity = new V1ObjectMeta();
  identity.name = metadata?.name;
  identity.namespace = metadata?.namespace;
  identity.resourceVersion = metadata?.resourceVersion;
  object.metadata = identity;
}

function idOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

export class KubeSource {
  private readonly reflectors: Reflector[];
  private readonly synced: Promise<void>;
  private stopped = false;

  private constructor(options: KubeSourceOptions, config: KubeConfig) {
    const core = config.makeApiClient(CoreV1Api);
    const discovery = config.makeApiClient(DiscoveryV1Api);
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
        list: (page) => core.listServiceForAllNamespaces({ ...page, labelSelector: PROXY_LABEL_SELECTOR }),
        upsert: (object) => sink.upsertService(services.upsert(object)),
        remove: (object) => sink.deleteService(services.remove(object)),
      },
      {
        resource: 'endpointslices',
        path: '/apis/discovery.k8s.io/v1/endpointslices',
        labelSelector: PROXY_LABEL_SELECTOR,
        list: (page) => discovery.listEndpointSliceForAllNamespaces({ ...page, labelSelector: PROXY_LABEL_SELECTOR }),
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
        list: (page) => core.listNode({ ...page, fieldSelector: nodeSelector }),
        upsert: (object) => options.onNode?.(toNodeInfo(object)),
        remove: () => options.onNode?.(undefined),
      },
    ];
    this.reflectors = specs.map((spec) => new Reflector(spec, config, settings(spec.resource)));
  }

  /**
   * Starts the informers; resolves once Services and EndpointSlices have been listed once (as
   * kube-proxy waits for its caches to sync), retrying with backoff until then. Rejects only on a
   * bad kubeconfig, or when options.signal aborts first.
   */
  static async start(options: KubeSourceOptions): Promise<KubeSource> {
    const source = new KubeSource(options, loadKubeConfig(options.kubeconfig));
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
      resourceVersions: Object.fromEntries(this.reflectors.map((reflector) => [reflector.resource, reflector.resourceVersion()])),
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
