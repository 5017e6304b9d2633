// The embedded default source: Service and EndpointSlice objects from a YAML or JSON file, or a
// directory of them, exactly as `kubectl get -o yaml` prints them (single objects, multi-document
// YAML, or a List). Reloaded when the files change. A document that is not a Service or an
// EndpointSlice, or is malformed, is reported and skipped; the others are kept.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KipvsError } from '../netlink/errors.js';
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

/** Reads every object once. Throws KipvsError when the path itself cannot be read. */
export function readObjects(path: string): FileSnapshot {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  const problems: SourceProblem[] = [];
  for (const file of filesOf(path)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      problems.push({ file, reason: `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
      continue;
    }
    parseAllDocuments(text).forEach((document, index) => {
      const where = `${file}#${index + 1}`;
      if (document.errors.length > 0) {
        problems.push({ file: where, reason: `not valid YAML/JSON: ${document.errors[0]!.message.split('\n')[0]}` });
        return;
      }
      for (const object of objectsOf(document.toJS())) {
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
  }
  return { services, endpointSlices, problems };
}

/** Calls `onChange` (debounced) when files under `path` change; returns a stop function. */
export function watchObjects(path: string, onChange: () => void, debounceMs = 100): () => void {
  let timer: NodeJS.Timeout | undefined;
  const trigger = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  // A file is watched through its directory: editors and kubectl replace files by renaming.
  const isDirectory = statSync(path).isDirectory();
  const watcher: FSWatcher = watch(isDirectory ? path : dirname(path), { persistent: false }, (_event, name) => {
    if (isDirectory || name === null || name === basename(path)) trigger();
  });
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
