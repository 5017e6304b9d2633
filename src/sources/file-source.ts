// The embedded default source: Service and EndpointSlice objects from a YAML or JSON file, or a
// directory of them, exactly as `kubectl get -o yaml` prints them (single objects, multi-document
// YAML, or a List). Reloaded when the files change. A document that is not a Service or an
// EndpointSlice, or is malformed, is reported and skipped; the others are kept.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, extname, join } from 'node:path';
import { loadAll, YAMLException } from 'js-yaml';
import { KipvsError } from '../errors.js';
import type { ClusterSnapshot, EndpointSlice, Service } from '../model/kubernetes.js';

export interface SourceProblem {
  readonly file: string;
  readonly reason: string;
}

export interface FileSnapshot extends ClusterSnapshot {
  readonly problems: readonly SourceProblem[];
}

const OBJECT_FILES = new Set(['.yaml', '.yml', '.json']);

function filesOf(path: string): string[] {
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new KipvsError('KIPVS_SOURCE', `cannot read source ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!stats.isDirectory()) return [path];
  return readdirSync(path)
    .filter((name) => OBJECT_FILES.has(extname(name)) && !name.startsWith('.'))
    .sort()
    .map((name) => join(path, name));
}

function objectsOf(value: unknown): unknown[] {
  if (value && typeof value === 'object' && (value as { kind?: unknown }).kind === 'List' && Array.isArray((value as { items?: unknown }).items)) {
    return (value as { items: unknown[] }).items;
  }
  return value === null || value === undefined ? [] : [value];
}

function isNamed(value: unknown): value is { metadata: { name: string } } {
  const metadata = (value as { metadata?: { name?: unknown } }).metadata;
  return typeof metadata === 'object' && metadata !== null && typeof metadata.name === 'string' && metadata.name !== '';
}

interface FileObjects {
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
}

function readText(file: string, problems: SourceProblem[]): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    problems.push({ file, reason: `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
    return undefined;
  }
}

/**
 * Every document of the file, or undefined (and a problem) when it does not parse. js-yaml rather
 * than the yaml package here: 20,000 kubectl-printed objects (30 MB) parse in 1 s instead of 14.
 * A .json file is one JSON document.
 */
function parseDocuments(file: string, text: string, problems: SourceProblem[]): unknown[] | undefined {
  try {
    return extname(file) === '.json' ? [JSON.parse(text)] : loadAll(text);
  } catch (error) {
    const mark = (error as YAMLException).mark as { line?: number } | undefined;
    const where = mark?.line !== undefined ? `${file}:${mark.line + 1}` : file;
    const reason = error instanceof YAMLException ? error.reason : (error as Error).message;
    problems.push({ file: where, reason: `not valid YAML/JSON: ${reason}` });
    return undefined;
  }
}

function parseFile(file: string, text: string, problems: SourceProblem[]): FileObjects | undefined {
  const documents = parseDocuments(file, text, problems);
  if (!documents) return undefined;
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  documents.forEach((document, index) => {
    const where = `${file}#${index + 1}`;
    for (const object of objectsOf(document)) {
      const kind = (object as { kind?: unknown })?.kind;
      if (kind !== 'Service' && kind !== 'EndpointSlice') {
        problems.push({ file: where, reason: `ignored object of kind ${JSON.stringify(kind)}` });
      } else if (!isNamed(object)) {
        problems.push({ file: where, reason: `${kind} without metadata.name` });
      } else if (kind === 'Service') {
        services.push(object as unknown as Service);
      } else {
        endpointSlices.push(object as unknown as EndpointSlice);
      }
    }
  });
  return { services, endpointSlices };
}

/**
 * The file's objects, with each object equal to one it had before replaced by that one: the agent
 * then translates again only what an edit changed, even in a file of 10,000 Services.
 */
function keepUnchanged(before: FileObjects | undefined, after: FileObjects): FileObjects {
  if (!before) return after;
  const reuse = <T extends { metadata: { name: string; namespace?: string } }>(old: readonly T[], next: readonly T[]): T[] => {
    const byName = new Map(old.map((object) => [`${object.metadata.namespace ?? ''}/${object.metadata.name}`, object]));
    return next.map((object) => {
      const previous = byName.get(`${object.metadata.namespace ?? ''}/${object.metadata.name}`);
      return previous !== undefined && equalJson(previous, object) ? previous : object;
    });
  };
  return { services: reuse(before.services, after.services), endpointSlices: reuse(before.endpointSlices, after.endpointSlices) };
}

/** Deep equality of parsed YAML/JSON values (plain objects, arrays, scalars). */
function equalJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const aKeys = Object.keys(a);
  if (aKeys.length !== Object.keys(b).length) return false;
  return aKeys.every((key) => Object.hasOwn(b, key) && equalJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

/**
 * A file or directory of objects, read again on demand. A file that does not parse (being
 * written, or broken) keeps the objects it last had, so a half-written file never removes
 * Services; a file seen for the first time broken contributes nothing.
 */
export class FileSource {
  private readonly lastGood = new Map<string, FileObjects>();
  /** The text each file had when it last parsed: an unchanged file keeps its objects, identity included. */
  /** A digest of each file's text when it last parsed (not the text: 30 MB for 10,000 Services). */
  private readonly lastDigest = new Map<string, string>();

  constructor(readonly path: string) {}

  /** Throws KipvsError when the path itself cannot be read. */
  read(): FileSnapshot {
    const problems: SourceProblem[] = [];
    const services: Service[] = [];
    const endpointSlices: EndpointSlice[] = [];
    const seen = new Set<string>();
    for (const file of filesOf(this.path)) {
      seen.add(file);
      const text = readText(file, problems);
      const digest = text === undefined ? undefined : createHash('sha256').update(text).digest('hex');
      let objects = text === undefined ? undefined : digest === this.lastDigest.get(file) ? this.lastGood.get(file) : parseFile(file, text, problems);
      if (objects && objects !== this.lastGood.get(file)) objects = keepUnchanged(this.lastGood.get(file), objects);
      if (objects && text !== undefined) {
        this.lastGood.set(file, objects);
        this.lastDigest.set(file, digest!);
      } else {
        objects = this.lastGood.get(file);
        if (objects) problems.push({ file, reason: 'kept the objects it last had' });
      }
      services.push(...(objects?.services ?? []));
      endpointSlices.push(...(objects?.endpointSlices ?? []));
    }
    for (const file of this.lastGood.keys()) {
      if (!seen.has(file)) {
        this.lastGood.delete(file);
        this.lastDigest.delete(file);
      }
    }
    return { services, endpointSlices, problems };
  }
}

/** Size and modification time of every file, to tell when a writer has finished. */
function signature(path: string): string {
  try {
    return filesOf(path)
      .map((file) => {
        const stats = statSync(file);
        return `${file}:${stats.size}:${stats.mtimeMs}`;
      })
      .join('|');
  } catch {
    return 'unreadable';
  }
}

/**
 * Calls `onChange` when files under `path` change and then stay unchanged for `settleMs` (a
 * writer such as `kubectl get -o yaml > file` first truncates, then writes). Any event in the
 * watched directory counts: a ConfigMap volume swaps a `..data` symlink and never names the file.
 * Returns a stop function.
 */
export function watchObjects(path: string, onChange: () => void, settleMs = 200): () => void {
  let timer: NodeJS.Timeout | undefined;
  let pending = signature(path);
  const check = (): void => {
    const now = signature(path);
    if (now !== pending) {
      pending = now;
      timer = setTimeout(check, settleMs);
      return;
    }
    onChange();
  };
  const trigger = (): void => {
    clearTimeout(timer);
    pending = signature(path);
    timer = setTimeout(check, settleMs);
  };
  const isDirectory = statSync(path).isDirectory();
  const watcher: FSWatcher = watch(isDirectory ? path : dirname(path), { persistent: false }, trigger);
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
