// The kernel's own values for wire constants: a small C program that includes the uapi headers
// (linux-libc-dev) prints each value, so the compiler, not a parser of ours, reads the headers —
// enumerators, macros built from other macros, sizeof of a struct, all as the kernel's users see them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defined } from '../../support/defined.js';

/** Every header a netlink family of kipvs takes constants from, in an order that compiles. */
export const UAPI_INCLUDES: readonly string[] = [
  'sys/socket.h', // struct sockaddr, which linux/if.h uses and does not define
  'linux/netlink.h',
  'linux/genetlink.h',
  'linux/in.h',
  'linux/in6.h',
  'linux/netfilter.h',
  'linux/ip_vs.h',
  'linux/netfilter/nfnetlink.h',
  'linux/netfilter/nfnetlink_conntrack.h',
  'linux/netfilter/nf_conntrack_common.h',
  'linux/netfilter/ipset/ip_set.h',
  'linux/netfilter/ipset/ip_set_hash.h',
  'linux/netfilter/ipset/ip_set_bitmap.h',
  'linux/rtnetlink.h',
  'linux/if_link.h',
  'linux/if_addr.h',
  'linux/if.h',
];

const INSTALL = 'install linux-libc-dev and a C compiler (apt-get install linux-libc-dev gcc) to check wire constants';

export interface UapiValues {
  /** Each expression's value: a number, or a string for a string macro (IPVS_GENL_NAME). */
  readonly values: ReadonlyMap<string, number | string>;
  /** Expressions the headers do not define (a misspelt or unknown name), with the compiler's word. */
  readonly unknown: ReadonlyMap<string, string>;
}

interface CompilerError {
  readonly line: number;
  readonly message: string;
}

function cc(args: readonly string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('cc', args, { input, encoding: 'utf8' });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? `no C compiler: cc is not on PATH: ${INSTALL}` : `cannot run cc: ${result.error.message}: ${INSTALL}`);
  }
  return result;
}

function compile(dir: string, source: string): { ok: true } | { ok: false; errors: CompilerError[]; stderr: string } {
  const file = join(dir, 'uapi.c');
  writeFileSync(file, source);
  const result = cc(['-std=gnu11', '-w', '-o', join(dir, 'uapi'), file]);
  if (result.status === 0) return { ok: true };
  // gcc and clang both report `file:line:column: error: message`; only lines of our file count.
  const errors = [...result.stderr.matchAll(/^(.*?):(\d+):\d+: (?:fatal )?error: (.*)$/gm)]
    .filter((match) => match[1] === file)
    .map((match) => ({ line: Number(match[2]), message: defined(match[3], 'an error message') }));
  return { ok: false, errors, stderr: result.stderr };
}

function program(includes: readonly string[], expressions: readonly string[]): { source: string; firstLine: number } {
  const head = [
    '#include <stdio.h>',
    ...includes.map((header) => `#include <${header}>`),
    'static void print_integer(int index, long long value) { printf("%d\\ti\\t%lld\\n", index, value); }',
    'static void print_string(int index, const char *value) { printf("%d\\ts\\t%s\\n", index, value); }',
    // A string macro selects print_string, anything else (enumerator, integer macro, sizeof) print_integer.
    '#define PRINT(index, x) _Generic((x), char *: print_string, const char *: print_string, default: print_integer)(index, (x))',
    'int main(void) {',
  ];
  const body = expressions.map((expression, index) => `  PRINT(${index}, ${expression});`);
  return { source: [...head, ...body, '  return 0;', '}', ''].join('\n'), firstLine: head.length + 1 };
}

/**
 * Evaluates C expressions (a constant's name, or `sizeof(struct nfgenmsg)`) with the installed
 * headers. An expression that does not compile is reported in `unknown`, not thrown: the caller
 * names the table entry it came from. Throws when there is no compiler or a header is missing.
 */
export function readUapiValues(expressions: Iterable<string>, includes: readonly string[] = UAPI_INCLUDES): UapiValues {
  let remaining = [...new Set(expressions)];
  const unknown = new Map<string, string>();
  const dir = mkdtempSync(join(tmpdir(), 'kipvs-uapi-'));
  try {
    for (;;) {
      const { source, firstLine } = program(includes, remaining);
      const compiled = compile(dir, source);
      if (compiled.ok) break;
      const failing = new Set<number>();
      for (const error of compiled.errors) {
        const index = error.line - firstLine;
        if (index < 0 || index >= remaining.length) {
          throw new Error(`the uapi headers do not compile (${error.message}): ${INSTALL}\n${compiled.stderr}`);
        }
        failing.add(index);
        const expression = defined(remaining[index], `expression ${index}`);
        if (!unknown.has(expression)) unknown.set(expression, error.message);
      }
      if (failing.size === 0) throw new Error(`cc failed on the uapi program: ${INSTALL}\n${compiled.stderr}`);
      remaining = remaining.filter((_, index) => !failing.has(index));
    }
    const run = spawnSync(join(dir, 'uapi'), { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`the uapi program failed: ${run.stderr}`);
    const values = new Map<string, number | string>();
    for (const line of run.stdout.split('\n').filter(Boolean)) {
      const [index, kind, ...value] = line.split('\t');
      values.set(defined(remaining[Number(index)], `expression ${index}`), kind === 's' ? value.join('\t') : Number(value.join('\t')));
    }
    return { values, unknown };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The identifiers starting with `prefix` that appear in the given headers, read from the
 * preprocessor's output (enumerators survive preprocessing; values still come from the compiler).
 * For checks that a list of ours covers the kernel's, such as every IPSET_ERR_ name.
 */
export function uapiIdentifiers(prefix: string, includes: readonly string[]): string[] {
  if (!/^\w+$/.test(prefix)) throw new Error(`${JSON.stringify(prefix)} is not the start of a C identifier`);
  const result = cc(['-x', 'c', '-E', '-P', '-'], includes.map((header) => `#include <${header}>\n`).join(''));
  if (result.status !== 0) throw new Error(`the uapi headers do not compile: ${INSTALL}\n${result.stderr}`);
  return [...new Set(result.stdout.match(new RegExp(`\\b${prefix}\\w*`, 'g')) ?? [])];
}
