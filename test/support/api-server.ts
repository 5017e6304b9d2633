// A small Kubernetes API server for tests, on node:http at 127.0.0.1: Services, EndpointSlices and
// Nodes, with the list and watch protocol as kube-apiserver speaks it (as far as client-node's
// informers use it). One resourceVersion counter for everything, as etcd's revision; a history of
// events, so a watch from a past resourceVersion replays what followed; compact() forgets that
// history, and a watch from before it gets "410 Gone" (an ERROR event, as kube-apiserver sends,
// or an HTTP 410, by option). Only GET is served; every request is logged for tests to check.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { defined } from './defined.js';

export type Resource = 'services' | 'endpointslices' | 'nodes';

const RESOURCES: Record<Resource, { readonly path: string; readonly apiVersion: string; readonly kind: string }> = {
  services: { path: '/api/v1/services', apiVersion: 'v1', kind: 'Service' },
  endpointslices: { path: '/apis/discovery.k8s.io/v1/endpointslices', apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' },
  nodes: { path: '/api/v1/nodes', apiVersion: 'v1', kind: 'Node' },
};

export interface ApiObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; [field: string]: unknown };
  [field: string]: unknown;
}

export interface ApiRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly watch: boolean;
  /** The Authorization header, when the client sent one. */
  readonly authorization?: string;
  /** The subject's CN of the client certificate, when one was sent and verified (HTTPS). */
  readonly clientCertificate?: string;
}

export interface ApiServerOptions {
  /** 0 (default): an ephemeral port, kept across stop()/start(). */
  readonly port?: number;
  /** How a watch from a compacted resourceVersion fails: an ERROR event (kube-apiserver) or HTTP 410. */
  readonly expiredWatch?: 'event' | 'status';
  /** Serve HTTPS with this key and certificate; with `ca`, ask for a client certificate signed by it. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer; readonly ca?: Buffer };
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  readonly resourceVersion: number;
  readonly resource: Resource;
  readonly type: EventType;
  readonly object: ApiObject;
}

interface Watcher {
  readonly resource: Resource;
  readonly selector: FieldSelector;
  readonly bookmarks: boolean;
  readonly response: ServerResponse;
}

type FieldSelector = (object: ApiObject) => boolean;

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** `metadata.name=x,metadata.namespace=y` (also `==`); undefined for anything else. */
function parseFieldSelector(text: string | undefined): FieldSelector | undefined {
  const terms = (text ?? '')
    .split(',')
    .filter(Boolean)
    .map((term) => /^(metadata\.name|metadata\.namespace)==?(.*)$/.exec(term));
  if (!terms.every((term) => term !== null)) return undefined;
  return (object) => terms.every(([, field, value]) => (field === 'metadata.name' ? object.metadata.name : (object.metadata.namespace ?? '')) === value);
}

/**
 * A label selector as kube-proxy sends one: `!key`, `key`, `key=value`, `key!=value`, comma-separated
 * (all must hold); undefined for anything else.
 */
function parseLabelSelector(text: string | undefined): FieldSelector | undefined {
  const terms = (text ?? '')
    .split(',')
    .filter(Boolean)
    .map((term) => /^(!?)([\w./-]+)(?:(!=|==?)(.*))?$/.exec(term));
  if (!terms.every((term) => term !== null)) return undefined;
  return (object) => {
    const labels = (object.metadata.labels ?? {}) as Record<string, string>;
    return terms.every(([term, not, keyGroup, operator, value]) => {
      const key = defined(keyGroup, `a label key in ${term}`);
      const has = Object.hasOwn(labels, key);
      if (operator === undefined) return not === '!' ? !has : has;
      return operator === '!=' ? labels[key] !== value : labels[key] === value;
    });
  };
}

/** Faults to serve, each counting down as requests use it. */
export interface ApiFaults {
  /** Requests answered HTTP 500 (lists and watches). */
  internalErrors?: number;
  /** List requests whose answer is delayed this long (ms). */
  slowListMs?: number;
  /** List answers cut in the middle of their JSON. */
  truncatedLists?: number;
  /** List answers that send their headers and half a body, and never end. */
  endlessLists?: number;
  /** List requests with a continue token answered 410 Expired (the token outlived compaction). */
  expiredContinues?: number;
  /** Watch requests answered 410 Gone (as `expiredWatch` says), whatever their resourceVersion. */
  goneWatches?: number;
}

const idOf = (object: ApiObject): string => `${object.metadata.namespace ?? ''}/${object.metadata.name}`;

export class TestApiServer {
  /** Every request, in order. */
  readonly requests: ApiRequest[] = [];
  expiredWatch: 'event' | 'status';
  /** Ends every watch right after its headers, without events (a misbehaving proxy). */
  closeWatchesAtOnce = false;
  /** Never answers a watch request (no headers): a connection that died half-open. */
  holdWatches = false;
  /** Faults for the next requests (see ApiFaults). */
  faults: ApiFaults = {};
  private readonly held = new Set<ServerResponse>();
  private resourceVersion = 1000;
  private compactedAt = 0;
  private readonly objects: Record<Resource, Map<string, ApiObject>> = { services: new Map(), endpointslices: new Map(), nodes: new Map() };
  private history: HistoryEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly pages = new Map<string, { readonly items: ApiObject[]; readonly resourceVersion: string }>();
  private server: Server | undefined;
  private listenPort: number;
  private readonly tls: ApiServerOptions['tls'];

  private constructor(options: ApiServerOptions) {
    this.listenPort = options.port ?? 0;
    this.expiredWatch = options.expiredWatch ?? 'event';
    this.tls = options.tls;
  }

  static async start(options: ApiServerOptions = {}): Promise<TestApiServer> {
    const server = new TestApiServer(options);
    await server.start();
    return server;
  }

  get port(): number {
    return this.listenPort;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.listenPort}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Listens (again, after stop(): on the same port). */
  async start(): Promise<void> {
    if (this.server) return;
    const handler = (request: IncomingMessage, response: ServerResponse): void => this.handle(request, response);
    const tls = this.tls;
    const server: Server = tls
      ? createTlsServer({ key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: tls.ca !== undefined, rejectUnauthorized: false }, handler)
      : createServer(handler);
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', resolve);
    });
    this.listenPort = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** An outage: refuses connections and cuts the open ones (watches too) until start(). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  create(resource: Resource, object: ApiObject): ApiObject {
    if (this.objects[resource].has(idOf(object))) throw new Error(`${resource} ${idOf(object)} already exists`);
    return this.write(resource, 'ADDED', object, { uid: randomUUID(), creationTimestamp: new Date().toISOString() });
  }

  update(resource: Resource, object: ApiObject): ApiObject {
    const existing = this.objects[resource].get(idOf(object));
    if (!existing) throw new Error(`${resource} ${idOf(object)} does not exist`);
    return this.write(resource, 'MODIFIED', object, { uid: existing.metadata.uid, creationTimestamp: existing.metadata.creationTimestamp });
  }

  /** Create or update. */
  apply(resource: Resource, object: ApiObject): ApiObject {
    return this.objects[resource].has(idOf(object)) ? this.update(resource, object) : this.create(resource, object);
  }

  delete(resource: Resource, name: string, namespace?: string): void {
    const id = `${namespace ?? ''}/${name}`;
    const existing = this.objects[resource].get(id);
    if (!existing) throw new Error(`${resource} ${id} does not exist`);
    this.objects[resource].delete(id);
    // The deleted object goes out with the resourceVersion of its deletion, as kube-apiserver does.
    this.record(resource, 'DELETED', { ...existing, metadata: { ...existing.metadata, resourceVersion: String(++this.resourceVersion) } });
  }

  /** The objects now, sorted by namespace/name. */
  list(resource: Resource): ApiObject[] {
    return [...this.objects[resource].values()].sort((a, b) => (idOf(a) < idOf(b) ? -1 : 1));
  }

  get currentResourceVersion(): string {
    return String(this.resourceVersion);
  }

  /** etcd compaction: the history up to now is gone; watches from before now get 410 Gone. */
  compact(): void {
    this.compactedAt = this.resourceVersion;
    this.history = [];
  }

  /** Cuts every open watch connection, as a broken network or a restarting API server would. */
  dropWatches(): void {
    for (const watcher of this.watchers) watcher.response.socket?.destroy();
    this.watchers.clear();
    for (const response of this.held) response.socket?.destroy();
    this.held.clear();
  }

  /** A BOOKMARK with the current resourceVersion to every watch (of one resource) that allowed bookmarks. */
  bookmark(resource?: Resource): void {
    for (const watcher of this.watchers) if (watcher.bookmarks && (resource === undefined || watcher.resource === resource)) this.sendBookmark(watcher);
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  /** Watch requests held without an answer (holdWatches) whose connection is still open. */
  get heldWatches(): number {
    return this.held.size;
  }

  /**
   * A kubeconfig for this server, without authentication. client-node refuses a plain http://
   * server unless insecure-skip-tls-verify is set (config.js createAgent), whence the flag.
   */
  /** A kubeconfig for this server: `user`'s credentials, `cluster`'s settings beside the server. */
  writeKubeconfig(dir: string, user: Record<string, unknown> = {}, cluster: Record<string, unknown> = { 'insecure-skip-tls-verify': true }): string {
    const path = join(dir, 'kubeconfig');
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: this.url, ...cluster } }],
      users: [{ name: 'test', user }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
      'current-context': 'test',
    };
    writeFileSync(path, JSON.stringify(config, null, 2)); // JSON is YAML
    return path;
  }

  private write(resource: Resource, type: EventType, object: ApiObject, kept: Record<string, unknown>): ApiObject {
    const { apiVersion, kind } = RESOURCES[resource];
    const previous = this.objects[resource].get(idOf(object));
    const stored: ApiObject = structuredClone({
      ...object,
      apiVersion,
      kind,
      metadata: { ...object.metadata, ...kept, resourceVersion: String(++this.resourceVersion) },
    });
    this.objects[resource].set(idOf(stored), stored);
    this.record(resource, type, stored, previous);
    return structuredClone(stored);
  }

  /**
   * To each watch whose selectors the object matches. An update that moves the object into or
   * out of a watch's selection is sent as ADDED or DELETED, as kube-apiserver does.
   */
  private record(resource: Resource, type: EventType, object: ApiObject, previous?: ApiObject): void {
    const event: HistoryEvent = { resourceVersion: this.resourceVersion, resource, type, object };
    this.history.push(event);
    for (const watcher of this.watchers) {
      if (watcher.resource !== resource) continue;
      const matches = watcher.selector(object);
      const matched = type === 'MODIFIED' && previous !== undefined ? watcher.selector(previous) : matches;
      if (matches && matched) this.send(watcher.response, type, object);
      else if (matches) this.send(watcher.response, 'ADDED', object);
      else if (matched) this.send(watcher.response, 'DELETED', object);
    }
  }

  /** A line that is not JSON on every open watch (a broken proxy in between). */
  sendGarbage(): void {
    for (const watcher of this.watchers) watcher.response.write('{"type": "ADDED", "object": {"metadata": \n<html>502 Bad Gateway</html>\n');
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    const socket = request.socket as Partial<TLSSocket>;
    const peer = socket.authorized === true ? socket.getPeerCertificate?.() : undefined;
    this.requests.push({
      method: request.method ?? '',
      path: url.pathname,
      query,
      watch,
      authorization: request.headers.authorization,
      ...(peer?.subject ? { clientCertificate: String(peer.subject.CN) } : {}),
    });
    const resource = (Object.keys(RESOURCES) as Resource[]).find((name) => RESOURCES[name].path === url.pathname);
    if (request.method !== 'GET') {
      this.reply(response, 405, status(405, 'MethodNotAllowed', `${request.method} is not served here`));
      return;
    }
    if (!resource) {
      this.reply(response, 404, status(404, 'NotFound', `the server could not find the requested resource ${url.pathname}`));
      return;
    }
    const fields = parseFieldSelector(query.fieldSelector);
    if (!fields) {
      this.reply(response, 400, status(400, 'BadRequest', `field selector not supported: ${query.fieldSelector}`));
      return;
    }
    const labels = parseLabelSelector(query.labelSelector);
    if (!labels) {
      this.reply(response, 400, status(400, 'BadRequest', `label selector not supported: ${query.labelSelector}`));
      return;
    }
    const selector: FieldSelector = (object) => fields(object) && labels(object);
    if (this.faults.internalErrors) {
      this.faults.internalErrors--;
      this.reply(response, 500, status(500, 'InternalError', 'etcdserver: request timed out'));
      return;
    }
    if (watch) this.serveWatch(resource, selector, query, response);
    else this.serveList(resource, selector, query, response);
  }

  private serveList(resource: Resource, selector: FieldSelector, query: Record<string, string>, response: ServerResponse): void {
    let page: { items: ApiObject[]; resourceVersion: string };
    if (query.continue) {
      const rest = this.pages.get(query.continue);
      if (!rest || this.faults.expiredContinues) {
        if (this.faults.expiredContinues) this.faults.expiredContinues--;
        this.reply(response, 410, status(410, 'Expired', 'The provided continue parameter is too old'));
        return;
      }
      this.pages.delete(query.continue);
      page = rest;
    } else {
      page = { items: this.list(resource).filter(selector), resourceVersion: this.currentResourceVersion };
    }
    const limit = Number(query.limit) > 0 ? Number(query.limit) : Infinity;
    const metadata: Record<string, string> = { resourceVersion: page.resourceVersion };
    if (page.items.length > limit) {
      metadata.continue = randomUUID();
      this.pages.set(metadata.continue, { items: page.items.slice(limit), resourceVersion: page.resourceVersion });
    }
    const { apiVersion, kind } = RESOURCES[resource];
    // List items come without apiVersion and kind, as from kube-apiserver.
    const items = page.items.slice(0, limit).map(({ apiVersion: _apiVersion, kind: _kind, ...item }) => item);
    const body = JSON.stringify({ apiVersion, kind: `${kind}List`, metadata, items });
    const answer = (): void => {
      if (this.faults.endlessLists) {
        this.faults.endlessLists--;
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.write(body.slice(0, body.length / 2));
        return;
      }
      if (this.faults.truncatedLists) {
        this.faults.truncatedLists--;
        response.writeHead(200, { 'Content-Type': 'application/json' });
        return void response.end(body.slice(0, body.length / 2));
      }
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(body);
    };
    if (this.faults.slowListMs) setTimeout(answer, this.faults.slowListMs);
    else answer();
  }

  private serveWatch(resource: Resource, selector: FieldSelector, query: Record<string, string>, response: ServerResponse): void {
    const from = query.resourceVersion ?? '';
    if (from !== '' && from !== '0' && !/^\d+$/.test(from)) {
      this.reply(response, 400, status(400, 'BadRequest', `invalid resourceVersion ${from}`));
      return;
    }
    const gone = this.faults.goneWatches !== undefined && this.faults.goneWatches > 0;
    if (gone) this.faults.goneWatches = (this.faults.goneWatches ?? 1) - 1;
    if (gone || (from !== '' && from !== '0' && Number(from) < this.compactedAt)) {
      const expired = status(410, 'Expired', `too old resource version: ${from} (${this.compactedAt})`);
      if (this.expiredWatch === 'status') {
        this.reply(response, 410, expired);
        return;
      }
      response.writeHead(200, { 'Content-Type': 'application/json' });
      return void response.end(`${JSON.stringify({ type: 'ERROR', object: expired })}\n`);
    }
    if (this.holdWatches) {
      // Neither headers nor an error: a half-open connection, as far as the client can tell.
      this.held.add(response);
      response.on('close', () => this.held.delete(response));
      return;
    }
    response.writeHead(200, { 'Content-Type': 'application/json' });
    if (this.closeWatchesAtOnce) return void response.end();
    response.flushHeaders();
    const watcher: Watcher = { resource, selector, bookmarks: query.allowWatchBookmarks === 'true', response };
    if (from === '' || from === '0') {
      // Without a resourceVersion a watch starts with the current state as ADDED events.
      for (const object of this.list(resource).filter(selector)) this.send(response, 'ADDED', object);
    } else {
      for (const event of this.history) {
        if (event.resourceVersion > Number(from) && event.resource === resource && selector(event.object)) this.send(response, event.type, event.object);
      }
    }
    this.watchers.add(watcher);
    const timeoutSeconds = Number(query.timeoutSeconds);
    const timer =
      timeoutSeconds > 0
        ? setTimeout(() => {
            // kube-apiserver ends a watch at its timeout with a last bookmark when allowed.
            if (watcher.bookmarks) this.sendBookmark(watcher);
            this.watchers.delete(watcher);
            response.end();
          }, timeoutSeconds * 1000)
        : undefined;
    response.on('close', () => {
      clearTimeout(timer);
      this.watchers.delete(watcher);
    });
  }

  private sendBookmark(watcher: Watcher): void {
    const { apiVersion, kind } = RESOURCES[watcher.resource];
    this.send(watcher.response, 'BOOKMARK', { apiVersion, kind, metadata: { resourceVersion: this.currentResourceVersion } });
  }

  private send(response: ServerResponse, type: EventType | 'BOOKMARK', object: object): void {
    response.write(`${JSON.stringify({ type, object })}\n`);
  }

  private reply(response: ServerResponse, code: number, body: object): void {
    response.writeHead(code, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify(body));
  }
}
