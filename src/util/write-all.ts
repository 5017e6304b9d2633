// Writing a file in parts through one descriptor, so that a large text is never joined into one
// string (or one buffer) first.
import { writeSync } from 'node:fs';

/** Writes all of `bytes` at the descriptor's position (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written);
}
