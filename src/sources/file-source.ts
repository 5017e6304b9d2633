// The embedded default source: Service, EndpointSlice (and Node) objects from a YAML or JSON file, or a
// directory of them, exactly as `kubectl get -o yaml` prints them (single objects, multi-document
// YAML, or a List). Reloaded when the files change. A document that is not a Service or an
// EndpointSlice, or is malformed, is reported and skipped; the others are kept. A file that cannot
// be read or parsed keeps the objects it last had; one that never could makes the snapshot
// incomplete (who knows what it defines), and the sync then removes nothing.
import { compactEndpointSlice, compactService } from './compact.js';
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, extname, join } from 'node:path';
import { loadAll, YAMLException } from 'js-yaml';
import { KipvsError } from '../errors.js';
import type { ClusterSnapshot, EndpointSlice, Service } from '../model/kubernetes.js';
import { expansionBudget, exceedsLimits, quoteInput, readRegularFile } from './file-read.js';
import { excludingLabel, refusalOf, sliceNotice } from './object-checks.js';

export interface SourceProblem {
  readonly file: string;
  readonly reason: string;
}

export interface FileSnapshot extends ClusterSnapshot {
  /** Objects skipped or noted, in the files parsed by this read (an unchanged file is not reported again). */
  readonly problems: readonly SourceProblem[];
  /** Files that could not be read or parsed: the objects they last had are in the snapshot. */
  readonly failing: readonly SourceProblem[];
  /** False when a failing file never parsed: the objects it defines are unknown. */
  readonly complete: boolean;
  /** Node objects, as parsed: the agent keeps the one named as its node (labels, podCIDRs, addresses). */
  readonly nodes?: readonly object[];
}

const OBJECT_FILES = new Set(['.yaml', '.yml', '.json']);

/**
 * Refuses a source path that cannot be listed (missing, unreadable directory), with the one line
 * the agent prints, before anything on the node is touched.
 */
export function checkSourcePath(path: string): void {
  filesOf(path);
}

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
  const metadata = (value as { metadata?: { name?: unknown } | null }).metadata;
  return typeof metadata === 'object' && metadata !== null && typeof metadata.name === 'string' && metadata.name !== '';
}

interface FileObjects {
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
  readonly nodes?: readonly object[];
}

/** A file's documents, or why they cannot be used (the file then counts as failing). */
type Parsed = { readonly documents: unknown[] } | { readonly failure: SourceProblem };

/**
 * Every document of the file, or undefined (and a problem) when it does not parse. js-yaml rather
 * than the yaml package here: 20,000 kubectl-printed objects (30 MB) parse in 1 s instead of 14.
 * js-yaml keeps an alias as a reference (no expansion while parsing); exceedsLimits() then
 * refuses a document that aliases blow up before anything walks or prints it. A .json file is
 * one JSON document.
 */
function parseDocuments(file: string, text: string): Parsed {
  // A file being rewritten in place (`> file`) is empty for a moment: that is not "no objects".
  if (text.trim() === '') return { failure: { file, reason: 'empty (a writer midway?); write "---" or remove the file to define nothing' } };
  let documents: unknown[];
  try {
    documents = extname(file) === '.json' ? [JSON.parse(text)] : loadAll(text);
  } catch (error) {
    const mark = (error as YAMLException).mark as { line?: number } | undefined;
    const where = mark?.line !== undefined ? `${file}:${mark.line + 1}` : file;
    const reason = error instanceof YAMLException ? error.reason : (error as Error).message;
    return { failure: { file: where, reason: `not valid YAML/JSON: ${quoteInput(reason, 200).slice(1, -1)}` } };
  }
  const tooLarge = exceedsLimits(documents, expansionBudget(text.length));
  return tooLarge === undefined ? { documents } : { failure: { file, reason: tooLarge } };
}

function parseFile(file: string, documents: readonly unknown[], problems: SourceProblem[]): FileObjects {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  const nodes: object[] = [];
  documents.forEach((document, index) => {
    const where = `${file}#${index + 1}`;
    for (const object of objectsOf(document)) {
      const kind = (object as { kind?: unknown } | null)?.kind;
      if (kind !== 'Service' && kind !== 'EndpointSlice' && kind !== 'Node') {
        problems.push({ file: where, reason: `ignored object of kind ${quoteInput(kind)}` });
        continue;
      }
      if (!isNamed(object)) {
        problems.push({ file: where, reason: `${kind} without metadata.name` });
        continue;
      }
      if (kind === 'Node') {
        nodes.push(object);
        continue;
      }
      const refusal = refusalOf(kind, object);
      if (refusal !== undefined) {
        problems.push({ file: where, reason: `${quoteInput(object.metadata.name)}: ${refusal}` });
        continue;
      }
      // kube-proxy's label selector: what it never sees is not programmed here either.
      if (excludingLabel(object) !== undefined) continue;
      if (kind === 'Service') services.push(compactService(object));
      else {
        const notice = sliceNotice(object);
        if (notice !== undefined) problems.push({ file: where, reason: `${quoteInput(object.metadata.name)}: ${notice}` });
        endpointSlices.push(compactEndpointSlice(object as unknown as EndpointSlice));
      }
    }
  });
  return { services, endpointSlices, nodes };
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
  return { ...after, services: reuse(before.services, after.services), endpointSlices: reuse(before.endpointSlices, after.endpointSlices) };
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
 * A file or directory of objects, read again on demand. A file that cannot be read or parsed
 * (being written, or broken) keeps the objects it last had, so a half-written file never removes
 * Services; a file seen for the first time broken contributes nothing and makes the snapshot
 * incomplete.
 */
export class FileSource {
  private readonly lastGood = new Map<string, FileObjects>();
  /** A digest of each file's text when it last parsed (not the text: 30 MB for 10,000 Services). */
  private readonly lastDigest = new Map<string, string>();
  /**
   * Each file's identity, size and times when it last parsed, if they were settled then: while
   * they stay the same, the file is not read again. A change of one file (an endpoint) then reads
   * that file, not all 29 MB of 10,000 Services' objects (and leaves no 29 MB of text and buffers
   * to collect).
   */
  private readonly lastStat = new Map<string, string>();

  constructor(readonly path: string) {}

  /** Throws KipvsError when the path itself cannot be read. */
  read(): FileSnapshot {
    const problems: SourceProblem[] = [];
    const failing: SourceProblem[] = [];
    const services: Service[] = [];
    const endpointSlices: EndpointSlice[] = [];
    const nodes: object[] = [];
    const seen = new Set<string>();
    let complete = true;
    for (const file of filesOf(this.path)) {
      seen.add(file);
      const objects = this.readFile(file, problems, failing);
      if (!objects) complete = false;
      services.push(...(objects?.services ?? []));
      endpointSlices.push(...(objects?.endpointSlices ?? []));
      nodes.push(...(objects?.nodes ?? []));
    }
    for (const file of this.lastGood.keys()) {
      if (!seen.has(file)) {
        this.lastGood.delete(file);
        this.lastDigest.delete(file);
        this.lastStat.delete(file);
      }
    }
    return { services, endpointSlices, nodes, problems, failing, complete };
  }

  /** The file's objects now, or the last good ones when it fails (undefined: it never parsed). */
  private readFile(file: string, problems: SourceProblem[], failing: SourceProblem[]): FileObjects | undefined {
    const kept = this.lastGood.get(file);
    const stat = settledStat(file);
    if (kept && stat !== undefined && stat === this.lastStat.get(file)) return kept;
    const read = readRegularFile(file);
    if ('refused' in read) return this.failed({ file, reason: read.refused }, kept, problems, failing);
    const digest = createHash('sha256').update(read.text).digest('hex');
    if (kept && digest === this.lastDigest.get(file)) {
      this.remember(file, stat);
      return kept;
    }
    // Empty before it ever had objects (a first read, `--once`): it defines nothing and there is
    // nothing to lose. Empty after it had some: a writer midway through `> file` (parseDocuments).
    const parsed = !kept && read.text.trim() === '' ? { documents: [] } : parseDocuments(file, read.text);
    if ('failure' in parsed) return this.failed(parsed.failure, kept, problems, failing);
    const objects = keepUnchanged(kept, parseFile(file, parsed.documents, problems));
    this.lastGood.set(file, objects);
    this.lastDigest.set(file, digest);
    this.remember(file, stat);
    return objects;
  }

  private remember(file: string, stat: string | undefined): void {
    if (stat === undefined) this.lastStat.delete(file);
    else this.lastStat.set(file, stat);
  }

  private failed(failure: SourceProblem, kept: FileObjects | undefined, problems: SourceProblem[], failing: SourceProblem[]): FileObjects | undefined {
    problems.push(failure);
    if (kept) problems.push({ file: failure.file, reason: 'kept the objects it last had' });
    const outcome = kept ? 'kept the objects it last had' : 'its objects are unknown, so no Service is removed';
    failing.push({ file: failure.file, reason: `${failure.reason}; ${outcome}` });
    return kept;
  }
}

/** How long after its last change a file's stat is trusted to tell a later change (see settledStat). */
const SETTLED_MS = 2000;

/**
 * The file's device, inode, size, modification and change times (nanoseconds), taken before it is
 * read; undefined when it cannot be stat'ed or changed within the last SETTLED_MS. The change
 * time moves with every write and cannot be set back, so the same stat means the same content,
 * except for a write in the same clock tick as the read before it (a file system with coarse
 * times): a file changed that recently is read, and its digest compared, every time.
 */
function settledStat(file: string): string | undefined {
  try {
    const stats = statSync(file, { bigint: true });
    const changedMs = Number((stats.ctimeNs > stats.mtimeNs ? stats.ctimeNs : stats.mtimeNs) / 1_000_000n);
    if (!stats.isFile() || Date.now() - changedMs < SETTLED_MS) return undefined;
    return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
  } catch {
    return undefined;
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
 * writer such as `kubectl get -o yaml > file` first truncates, then writes), and at the latest
 * `maxWaitMs` after the first change of a burst: a file rewritten without pause must still be
 * read (a broken read keeps the last good objects). Any event in the watched directory counts:
 * a ConfigMap volume swaps a `..data` symlink and never names the file. Returns a stop function.
 */
export function watchObjects(path: string, onChange: () => void, settleMs = 200, maxWaitMs = 1000): () => void {
  let timer: NodeJS.Timeout | undefined;
  let burstStartedAt: number | undefined;
  let pending = signature(path);
  const arm = (startedAt: number): void => {
    const left = startedAt + maxWaitMs - performance.now();
    timer = setTimeout(
      () => {
        check(startedAt);
      },
      Math.max(0, Math.min(settleMs, left)),
    );
  };
  const check = (startedAt: number): void => {
    timer = undefined;
    const now = signature(path);
    if (now !== pending && performance.now() - startedAt < maxWaitMs) {
      pending = now;
      arm(startedAt);
      return;
    }
    burstStartedAt = undefined;
    onChange();
  };
  const trigger = (): void => {
    burstStartedAt ??= performance.now();
    clearTimeout(timer);
    pending = signature(path);
    arm(burstStartedAt);
  };
  const isDirectory = statSync(path).isDirectory();
  const watcher: FSWatcher = watch(isDirectory ? path : dirname(path), { persistent: false }, trigger);
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
