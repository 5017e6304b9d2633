// The two requests the API source makes, over node's http(s): a list page (GET, JSON) and a watch
// (GET ?watch=true, one JSON event per line, as kube-apiserver streams it). Both bounded: an
// answer's size, a request that is never answered, a line that never ends.
import { asError } from '../errors.js';
import { StringDecoder } from 'node:string_decoder';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeAccess } from './kube-config.js';

/** A list page larger than this is refused: 500 objects (a page) of 512 KB each. */
export const MAX_LIST_BYTES = 256 * 1024 * 1024;
/** A watch event line longer than this ends the watch: etcd keeps objects of at most 1.5 MB. */
export const MAX_EVENT_BYTES = 64 * 1024 * 1024;

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

/** An answer other than 200: the status and what the server said (its Status object, as text). */
export class KubeHttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: string,
  ) {
    super(`HTTP ${statusCode}`);
  }
}

function urlOf(access: KubeAccess, path: string, query: Query): URL {
  const url = new URL(access.server + path);
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
  return url;
}

async function send(access: KubeAccess, url: URL): Promise<ClientRequest> {
  const { agent, headers } = await access.requestOptions();
  const request = (url.protocol === 'http:' ? httpRequest : httpsRequest)(url, { method: 'GET', agent, headers });
  request.end();
  return request;
}

/**
 * The whole body as text, up to `maxBytes`; rejects past it (and destroys the response). Each
 * chunk is decoded as it comes: a page of 500 EndpointSlices (1.3 MB) made whole as one Buffer
 * was a block of malloc's, which after the first few came from its heap rather than a mapping of
 * its own (glibc raises its mmap threshold to the largest block freed), and that heap grew:
 * 18 MiB after the first sync at 10,000 Services against 5 MiB for the file source.
 */
function readBody(response: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    const texts: string[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        // Rejected first: destroying the response also says it was cut short.
        const tooLarge = new Error(`answer larger than ${maxBytes} bytes`);
        reject(tooLarge);
        response.destroy(tooLarge);
        return;
      }
      texts.push(decoder.write(chunk));
    });
    response.on('error', reject);
    response.on('aborted', () => reject(new Error('answer cut short')));
    response.on('end', () => resolve(texts.join('') + decoder.end()));
  });
}

/** An error body kept for the log (a Status object is well under this). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * GET `path` as JSON. Rejects with KubeHttpError for an answer other than 200, and when no whole
 * answer came within `timeoutMs` (the credentials' own time included: an exec plugin may hang) or
 * `signal` aborted.
 */
export function getJson(access: KubeAccess, path: string, query: Query, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  let request: ClientRequest | undefined;
  let stopped: Error | undefined;
  const stop = (error: Error): void => {
    stopped ??= error;
    request?.destroy(error);
  };
  const answer = (async (): Promise<unknown> => {
    const sent = await send(access, urlOf(access, path, query));
    request = sent;
    if (stopped) sent.destroy(stopped);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      sent.on('response', resolve);
      sent.on('error', reject);
    });
    const ok = response.statusCode === 200;
    const body = await readBody(response, ok ? MAX_LIST_BYTES : MAX_ERROR_BODY_BYTES);
    if (!ok) throw new KubeHttpError(response.statusCode ?? 0, body);
    return JSON.parse(body) as unknown;
  })();
  return new Promise<unknown>((resolve, reject) => {
    const fail = (error: Error): void => {
      stop(error);
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`GET ${path}: no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    const onAbort = (): void => fail(new Error(`GET ${path}: stopped`));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    answer
      .then(resolve, (error: unknown) => reject(stopped ?? asError(error)))
      .finally(() => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      });
  });
}

export interface WatchHandlers {
  /** Called once the server answered 200: the watch is open. */
  readonly opened: () => void;
  /** Each event line: its type and object. Lines that are not an event are skipped. */
  readonly event: (type: string, object: Record<string, unknown>) => void;
  /** Once: undefined when the stream ended, else why it failed (KubeHttpError for a status). */
  readonly ended: (error: Error | undefined) => void;
}

export interface WatchTimeouts {
  /** No answer (status line) within this: the watch fails. */
  readonly answerMs: number;
  /** Open longer than this (past the server's timeoutSeconds): the connection is dead; it ends. */
  readonly deadlineMs: number;
}

/** Splits a byte stream into lines without decoding a line until it is whole. */
class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;

  /** The whole lines in `chunk` (with what came before); throws past `maxBytes` in one line. */
  push(chunk: Buffer, maxBytes: number, line: (text: string) => void): void {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline);
      const whole = this.size === 0 ? piece : Buffer.concat([...this.parts, piece], this.size + piece.length);
      this.parts = [];
      this.size = 0;
      start = newline + 1;
      if (whole.length > 0) line(whole.toString('utf8'));
    }
    if (start < chunk.length) {
      this.parts.push(chunk.subarray(start));
      this.size += chunk.length - start;
      if (this.size > maxBytes) throw new Error(`a watch event longer than ${maxBytes} bytes`);
    }
  }
}

/**
 * Opens a watch of `path` (the caller's query with watch=true). `ended` is called once, unless the
 * returned abort() was called first; after abort() no handler is called.
 */
export function openWatch(access: KubeAccess, path: string, query: Query, timeouts: WatchTimeouts, handlers: WatchHandlers): () => void {
  let request: ClientRequest | undefined;
  let finished = false;
  const timers: NodeJS.Timeout[] = [];
  const finish = (error: Error | undefined): void => {
    if (finished) return;
    finished = true;
    for (const timer of timers) clearTimeout(timer);
    request?.destroy();
    handlers.ended(error);
  };
  const abort = (): void => {
    finished = true;
    for (const timer of timers) clearTimeout(timer);
    request?.destroy();
  };
  const answer = setTimeout(() => finish(new Error(`no answer to the watch of ${path} within ${timeouts.answerMs / 1000} s`)), timeouts.answerMs);
  answer.unref();
  timers.push(answer);
  const url = urlOf(access, path, { ...query, watch: true });
  send(access, url).then(
    (sent) => {
      request = sent;
      sent.on('error', (error) => finish(error));
      if (finished) {
        sent.destroy();
        return;
      }
      sent.on('response', (response) => {
        if (response.statusCode !== 200) {
          // The answer timer still runs: an error body that never ends fails the watch too.
          readBody(response, MAX_ERROR_BODY_BYTES).then(
            (body) => finish(new KubeHttpError(response.statusCode ?? 0, body)),
            (error: unknown) => finish(asError(error)),
          );
          return;
        }
        clearTimeout(answer);
        // A connection that died silently never ends: give it up past the server's own timeout.
        const deadline = setTimeout(() => finish(undefined), timeouts.deadlineMs);
        deadline.unref();
        timers.push(deadline);
        handlers.opened();
        const lines = new LineSplitter();
        response.on('data', (chunk: Buffer) => {
          if (finished) return;
          try {
            lines.push(chunk, MAX_EVENT_BYTES, (text) => {
              if (!finished) takeEvent(text, handlers);
            });
          } catch (error) {
            finish(error as Error);
          }
        });
        response.on('end', () => finish(undefined));
        response.on('close', () => finish(undefined));
        response.on('error', (error) => finish(error));
      });
    },
    (error: unknown) => finish(asError(error)),
  );
  return abort;
}

function takeEvent(text: string, handlers: WatchHandlers): void {
  let event: unknown;
  try {
    event = JSON.parse(text);
  } catch {
    return; // Not an event (client-node skipped such lines too); the next line may be one.
  }
  const { type, object } = (event ?? {}) as { type?: unknown; object?: unknown };
  if (typeof type !== 'string' || object === null || typeof object !== 'object') return;
  handlers.event(type, object as Record<string, unknown>);
}

/** A list page as the API server sends it. */
interface ListPage {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: readonly Record<string, unknown>[];
}

export interface ListOptions {
  readonly pageSize: number;
  /** Each page's request. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Lists `path` in pages (limit/continue, as client-go's pager), handing each page's items over as
 * it comes, so that only one page of whole objects is held at a time. Resolves to the list's
 * resourceVersion (the first page's, which the others share) and its size.
 */
export async function listPages(
  access: KubeAccess,
  path: string,
  query: Query,
  options: ListOptions,
  onPage: (items: readonly Record<string, unknown>[]) => void,
): Promise<{ resourceVersion: string; items: number; pages: number }> {
  let resourceVersion: string | undefined;
  let continueToken: string | undefined;
  let items = 0;
  let pages = 0;
  do {
    if (options.signal?.aborted) throw new Error(`list ${path}: stopped`);
    let page: ListPage;
    try {
      page = (await getJson(access, path, { ...query, limit: options.pageSize, continue: continueToken }, options.timeoutMs, options.signal)) as ListPage;
    } catch (error) {
      if (!(continueToken !== undefined && error instanceof KubeHttpError && error.statusCode === 410)) throw error;
      // The continue token expired (the list outlived etcd's compaction window): as client-go's
      // pager, the rest in one unpaged list; the pages already passed on are passed again,
      // unchanged objects skipped by the caller.
      page = (await getJson(access, path, query, options.timeoutMs, options.signal)) as ListPage;
      resourceVersion = undefined;
      items = 0;
    }
    const pageItems = Array.isArray(page.items) ? page.items : [];
    resourceVersion ??= page.metadata?.resourceVersion;
    continueToken = page.metadata?.continue || undefined;
    items += pageItems.length;
    pages++;
    onPage(pageItems);
  } while (continueToken !== undefined);
  return { resourceVersion: resourceVersion ?? '', items, pages };
}
