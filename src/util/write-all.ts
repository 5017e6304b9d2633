// Writing a file in parts through one descriptor, so that a large text is never joined into one
// string (or one buffer) first.
import { closeSync, openSync, renameSync, writeSync } from 'node:fs';

/**
 * Replaces the file at `path` with the parts `write` hands on, in order, through `path.tmp` and a
 * rename: a reader sees the old file or the new one, whole.
 */
export function replaceFileInParts(path: string, write: (part: (bytes: Uint8Array | string) => void) => void): void {
  const fd = openSync(`${path}.tmp`, 'w');
  try {
    write((bytes) => {
      writeAll(fd, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    });
  } finally {
    closeSync(fd);
  }
  renameSync(`${path}.tmp`, path);
}

/** Writes all of `bytes` at the descriptor's position (writeSync may write less than asked). */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written);
}
