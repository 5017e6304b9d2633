// Reading a source file without trusting it: only a regular file, never one that blocks (a FIFO),
// never endless (/dev/zero, /proc/kcore), never larger than a limit; and parsed values whose
// expanded size (YAML aliases make a few lines stand for gigabytes) and nesting are bounded
// before anything walks or prints them.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, statfsSync } from 'node:fs';

/** The largest file read: 10,000 Services with their EndpointSlices print to ~30 MB. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;

// statfs(2) f_type of file systems whose "regular files" are not data (linux/magic.h).
const PSEUDO_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroupfs'],
  [0x63677270, 'cgroup2fs'],
]);

export type FileText = { readonly text: string } | { readonly refused: string };

function kindOf(stats: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isDirectory(): boolean }): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSocket()) return 'a socket';
  if (stats.isDirectory()) return 'a directory';
  return 'not a regular file';
}

const errnoOf = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? String(error);

/**
 * The file's text, or why it was refused. stat() first (a device is never opened: opening some
 * has side effects), then open non-blocking (a FIFO swapped in meanwhile cannot block) and fstat
 * the descriptor to be sure it is still the regular file that was checked.
 */
export function readRegularFile(file: string, maxBytes: number = MAX_FILE_BYTES): FileText {
  let fd: number | undefined;
  try {
    const before = statSync(file);
    if (!before.isFile()) return { refused: `${kindOf(before)}; only regular files are read` };
    const pseudo = PSEUDO_FILE_SYSTEMS.get(statfsSync(file).type);
    if (pseudo !== undefined) return { refused: `on ${pseudo}; only regular files are read` };
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.ino !== before.ino || stats.dev !== before.dev)
      return { refused: 'replaced while being opened; read again at the next change' };
    if (stats.size > maxBytes) return { refused: `${stats.size} bytes, more than the limit of ${maxBytes}` };
    return readAtMost(fd, maxBytes, stats.size);
  } catch (error) {
    return { refused: `cannot read: ${errnoOf(error)}` };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Reads to the end, refusing a file that grows past the limit while it is read. The first read
 * asks for the size the file had (and a byte more, to see the end): a file of 300 bytes costs no
 * megabyte of buffer, and one of 600 KB one read (and one more of a small buffer to see the end).
 */
function readAtMost(fd: number, maxBytes: number, expectedBytes: number): FileText {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const want = chunks.length === 0 ? expectedBytes + 1 : 64 * 1024;
    const chunk = Buffer.allocUnsafe(Math.min(want, maxBytes + 1 - total));
    const count = readSync(fd, chunk, 0, chunk.length, null);
    if (count === 0) break;
    chunks.push(chunk.subarray(0, count));
    total += count;
    if (total > maxBytes) return { refused: `more than the limit of ${maxBytes} bytes` };
  }
  const [only] = chunks;
  return { text: chunks.length === 1 && only ? only.toString('utf8', 0, total) : Buffer.concat(chunks, total).toString('utf8') };
}

/** Deepest nesting accepted: a Kubernetes object is about 8 levels deep. */
export const MAX_DEPTH = 64;

/**
 * Why a parsed document is too large or too deep to use, or undefined. Counts every node and
 * string character as a tree (an alias counts each time it is used), stopping as soon as the
 * budget is spent: an alias bomb costs the budget, not its expansion. Without aliases a
 * document's expanded size is below its text's, so a budget of twice the text length plus a
 * margin refuses only documents that aliases expand.
 */
export function exceedsLimits(value: unknown, budget: number, maxDepth: number = MAX_DEPTH): string | undefined {
  let spent = 0;
  // Two parallel stacks rather than one of {value, depth} objects: this walks every parsed node.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const current = values.pop();
    const depth = depths.pop() ?? 0;
    spent += 1;
    if (typeof current === 'string') spent += current.length;
    else if (typeof current === 'object' && current !== null) {
      if (depth >= maxDepth) return `nested deeper than ${maxDepth} levels`;
      if (Array.isArray(current)) {
        for (const child of current as unknown[]) {
          values.push(child);
          depths.push(depth + 1);
        }
      } else {
        for (const key in current) {
          spent += key.length;
          values.push((current as Record<string, unknown>)[key]);
          depths.push(depth + 1);
        }
      }
    }
    if (spent > budget) return `expands to more than ${budget} values and characters (YAML aliases?)`;
  }
  return undefined;
}

/** The budget of exceedsLimits() for a text of this length. */
export const expansionBudget = (textLength: number): number => 2 * textLength + 65_536;

/** At most `max` characters of input for a message: strings quoted, other values by their type. */
export function quoteInput(value: unknown, max = 80): string {
  if (typeof value === 'string') {
    const shown = JSON.stringify(value.length > max ? value.slice(0, max) : value);
    return value.length > max ? `${shown}… (${value.length} characters)` : shown;
  }
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
