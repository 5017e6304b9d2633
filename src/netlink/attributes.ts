// Declarative netlink attribute tables. Each attribute names the uapi constant it comes from
// (`orig`), and both directions, encode and decode, are derived from the same table, so they can
// never disagree on an attribute's size or byte order (moby/ipvs encodes a weight as u32 and
// decodes it as u16). Unlike the `netlink` package's typed codecs, which mask the type to 14 bits,
// these keep NLA_F_NESTED and NLA_F_NET_BYTEORDER: the kernel's ipset refuses nested attributes
// without NLA_F_NESTED (ip_set_core.c, flag_nested()).
import { NetlinkDecodeError, NetlinkEncodeError } from './errors.js';

export const NLA_HEADER_LENGTH = 4;
export const NLA_F_NESTED = 1 << 15;
export const NLA_F_NET_BYTEORDER = 1 << 14;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const align4 = (n: number): number => (n + 3) & ~3;

interface KindValues {
  u8: number;
  u16: number;
  u32: number;
  u64: bigint;
  /** A 64-bit counter read as a number: exact below 2^53 (9 PB, 9e15 packets), no BigInt per value. */
  counter64: number;
  /** 16-bit in network byte order (ports), the kernel's __be16. */
  be16: number;
  /** 32-bit in network byte order, the kernel's __be32. */
  be32: number;
  /** NUL-terminated string. */
  string: string;
  binary: Buffer;
  /** Zero-length attribute whose presence means true. */
  flag: true;
  /** An attribute a reader does not want decoded (a dump's counters when only the table is asked for). */
  skip: never;
}
export type ScalarKind = keyof KindValues;

export interface ScalarField<K extends ScalarKind = ScalarKind> {
  readonly id: number;
  readonly orig: string;
  readonly kind: K;
  /** Set NLA_F_NET_BYTEORDER on the type when encoding (ipset wants it on be16/be32). */
  readonly netByteOrderFlag?: boolean;
  /** For `binary`: the exact length the kernel expects, checked on decode. */
  readonly length?: number;
}

export interface NestedField<T extends AttrTable = AttrTable> {
  readonly id: number;
  readonly orig: string;
  readonly kind: 'nested';
  readonly table: T;
  /** Set NLA_F_NESTED on the type when encoding. */
  readonly nestedFlag: boolean;
}

export type Field = ScalarField | NestedField;
export type AttrTable = { readonly [name: string]: Field };

/** An attribute the table does not know: kept, so a decode/encode round trip loses nothing. */
export interface RawAttribute {
  readonly type: number;
  readonly value: Buffer;
}

type FieldValue<F> = F extends NestedField<infer T> ? Attrs<T> : F extends ScalarField<infer K> ? KindValues[K] : never;

/** The decoded (or to-be-encoded) values of a table: every attribute optional, unknown ones kept. */
export type Attrs<T extends AttrTable> = { -readonly [N in keyof T]?: FieldValue<T[N]> } & {
  unknown?: RawAttribute[];
};

export const u8 = (id: number, orig: string): ScalarField<'u8'> => ({ id, orig, kind: 'u8' });
export const u16 = (id: number, orig: string): ScalarField<'u16'> => ({ id, orig, kind: 'u16' });
export const u32 = (id: number, orig: string): ScalarField<'u32'> => ({ id, orig, kind: 'u32' });
export const u64 = (id: number, orig: string): ScalarField<'u64'> => ({ id, orig, kind: 'u64' });
export const counter64 = (id: number, orig: string): ScalarField<'counter64'> => ({ id, orig, kind: 'counter64' });
export const be16 = (id: number, orig: string, netByteOrderFlag = false): ScalarField<'be16'> => ({
  id,
  orig,
  kind: 'be16',
  netByteOrderFlag,
});
export const be32 = (id: number, orig: string, netByteOrderFlag = false): ScalarField<'be32'> => ({
  id,
  orig,
  kind: 'be32',
  netByteOrderFlag,
});
export const string = (id: number, orig: string): ScalarField<'string'> => ({ id, orig, kind: 'string' });
export const binary = (id: number, orig: string, length?: number): ScalarField<'binary'> =>
  length === undefined ? { id, orig, kind: 'binary' } : { id, orig, kind: 'binary', length };
export const flag = (id: number, orig: string): ScalarField<'flag'> => ({ id, orig, kind: 'flag' });
/** Read past without decoding or copying; never encoded. */
export const skip = (id: number, orig: string): ScalarField<'skip'> => ({ id, orig, kind: 'skip' });
export const nested = <T extends AttrTable>(id: number, orig: string, table: T, nestedFlag = false): NestedField<T> => ({
  id,
  orig,
  kind: 'nested',
  table,
  nestedFlag,
});

const FIXED_SIZE: Partial<Record<ScalarKind, number>> = { u8: 1, u16: 2, u32: 4, u64: 8, counter64: 8, be16: 2, be32: 4, flag: 0 };

function checkInteger(field: Field, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new NetlinkEncodeError(`${field.orig}: ${String(value)} is not an integer from 0 to ${max}`);
  }
  return value;
}

/**
 * Encodes attributes into one growing scratch buffer and copies out the result: one small
 * (pooled) allocation per message instead of one per attribute. In the UML test kernel every
 * fresh page costs a ptrace round trip, and on any host this is the hot path of a cold sync.
 */
class AttributeWriter {
  private buf = Buffer.allocUnsafe(4096);
  length = 0;

  reset(): void {
    this.length = 0;
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + bytes));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  /** Writes an attribute header with a placeholder length; returns its offset for `end()`. */
  begin(type: number): number {
    this.reserve(NLA_HEADER_LENGTH);
    const at = this.length;
    this.buf.writeUInt16LE(type & 0xffff, at + 2);
    this.length += NLA_HEADER_LENGTH;
    return at;
  }

  /** Patches the attribute's length and pads to four bytes. */
  end(at: number, orig: string): void {
    const attributeLength = this.length - at;
    if (attributeLength > 0xffff) throw new NetlinkEncodeError(`${orig}: attribute is too long (${attributeLength} bytes)`);
    this.buf.writeUInt16LE(attributeLength, at);
    const padding = align4(this.length) - this.length;
    this.reserve(padding);
    this.buf.fill(0, this.length, this.length + padding);
    this.length += padding;
  }

  bytes(value: Uint8Array): void {
    this.reserve(value.length);
    this.buf.set(value, this.length);
    this.length += value.length;
  }

  scalar(field: ScalarField, value: unknown): void {
    switch (field.kind) {
      case 'u8':
        this.reserve(1);
        this.buf.writeUInt8(checkInteger(field, value, 0xff), this.length);
        this.length += 1;
        return;
      case 'u16':
        this.reserve(2);
        this.buf.writeUInt16LE(checkInteger(field, value, 0xffff), this.length);
        this.length += 2;
        return;
      case 'be16':
        this.reserve(2);
        this.buf.writeUInt16BE(checkInteger(field, value, 0xffff), this.length);
        this.length += 2;
        return;
      case 'u32':
        this.reserve(4);
        this.buf.writeUInt32LE(checkInteger(field, value, 0xffffffff), this.length);
        this.length += 4;
        return;
      case 'be32':
        this.reserve(4);
        this.buf.writeUInt32BE(checkInteger(field, value, 0xffffffff), this.length);
        this.length += 4;
        return;
      case 'u64':
        if (typeof value !== 'bigint' || value < 0n || value > 0xffffffffffffffffn) {
          throw new NetlinkEncodeError(`${field.orig}: ${String(value)} is not a bigint from 0 to 2^64-1`);
        }
        this.reserve(8);
        this.buf.writeBigUInt64LE(value, this.length);
        this.length += 8;
        return;
      case 'counter64': {
        const counter = checkInteger(field, value, Number.MAX_SAFE_INTEGER);
        this.reserve(8);
        this.buf.writeUInt32LE(counter % 0x1_0000_0000, this.length);
        this.buf.writeUInt32LE(Math.floor(counter / 0x1_0000_0000), this.length + 4);
        this.length += 8;
        return;
      }
      case 'string': {
        if (typeof value !== 'string' || value.includes('\0')) {
          throw new NetlinkEncodeError(`${field.orig}: expected a string without NUL`);
        }
        const size = Buffer.byteLength(value, 'utf8');
        this.reserve(size + 1);
        this.buf.write(value, this.length, 'utf8');
        this.buf.writeUInt8(0, this.length + size);
        this.length += size + 1;
        return;
      }
      case 'binary':
        if (!(value instanceof Uint8Array)) throw new NetlinkEncodeError(`${field.orig}: expected a Buffer`);
        if (field.length !== undefined && value.length !== field.length) {
          throw new NetlinkEncodeError(`${field.orig}: expected ${field.length} bytes, got ${value.length}`);
        }
        this.bytes(value);
        return;
      case 'flag':
        if (value !== true) throw new NetlinkEncodeError(`${field.orig}: a flag is encoded only as true`);
        return;
      case 'skip':
        throw new NetlinkEncodeError(`${field.orig}: a skipped attribute is never encoded`);
    }
  }

  attributes(table: AttrTable, values: Record<string, unknown>): void {
    for (const name in table) {
      const field = table[name];
      const value = values[name];
      if (field === undefined || value === undefined) continue;
      if (field.kind === 'nested') {
        const at = this.begin(field.id | (field.nestedFlag ? NLA_F_NESTED : 0));
        this.attributes(field.table, value as Record<string, unknown>);
        this.end(at, field.orig);
      } else {
        const at = this.begin(field.id | (field.netByteOrderFlag ? NLA_F_NET_BYTEORDER : 0));
        this.scalar(field, value);
        this.end(at, field.orig);
      }
    }
    const unknown = values.unknown as RawAttribute[] | undefined;
    for (const attribute of unknown ?? []) {
      const at = this.begin(attribute.type);
      this.bytes(attribute.value);
      this.end(at, `attribute type ${attribute.type & NLA_TYPE_MASK}`);
    }
  }

  /** A copy of what was written after `prefix` bytes of header, in a pooled allocation. */
  take(prefix: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(prefix.length + this.length);
    out.set(prefix, 0);
    this.buf.copy(out, prefix.length, 0, this.length);
    return out;
  }
}

const writer = new AttributeWriter();
const NO_PREFIX = new Uint8Array(0);

/**
 * Encodes `values` by `table`, in table order, then the unknown attributes as they were; `prefix`
 * (a family header such as genlmsghdr or nfgenmsg) is put in front.
 */
export function encodeAttributes<T extends AttrTable>(table: T, values: Attrs<T>, prefix: Uint8Array = NO_PREFIX): Buffer {
  writer.reset();
  try {
    writer.attributes(table, values);
    return writer.take(prefix);
  } finally {
    writer.reset();
  }
}

function fieldsById(table: AttrTable): Map<number, [string, Field]> {
  let index = byIdCache.get(table);
  if (!index) {
    index = new Map(Object.entries(table).map(([name, field]) => [field.id, [name, field]]));
    byIdCache.set(table, index);
  }
  return index;
}
const byIdCache = new WeakMap<AttrTable, Map<number, [string, Field]>>();

/** Reads a scalar at buf[start, end) without slicing: dumps decode hundreds of thousands. */
function decodeScalar(field: ScalarField, buf: Buffer, start: number, end: number): unknown {
  const length = end - start;
  const size = FIXED_SIZE[field.kind];
  if (size !== undefined && length !== size) {
    throw new NetlinkDecodeError(`${field.orig}: expected ${size} bytes, got ${length}`);
  }
  switch (field.kind) {
    case 'u8':
      return buf[start];
    case 'u16':
      return buf.readUInt16LE(start);
    case 'be16':
      return buf.readUInt16BE(start);
    case 'u32':
      return buf.readUInt32LE(start);
    case 'be32':
      return buf.readUInt32BE(start);
    case 'u64':
      return buf.readBigUInt64LE(start);
    case 'counter64':
      return buf.readUInt32LE(start + 4) * 0x1_0000_0000 + buf.readUInt32LE(start);
    case 'string': {
      const nul = buf.indexOf(0, start);
      return buf.toString('utf8', start, nul < 0 || nul >= end ? end : nul);
    }
    case 'binary':
      if (field.length !== undefined && length !== field.length) {
        throw new NetlinkDecodeError(`${field.orig}: expected ${field.length} bytes, got ${length}`);
      }
      // A view into the received datagram, not a copy: codecs turn it into addresses and
      // strings at once. Unknown attributes, which live on, are copied.
      return buf.subarray(start, end);
    case 'flag':
      return true;
    case 'skip':
      return undefined;
  }
}

/** The length of the attribute at `offset`, its header included, checked to fit in `buf`. */
function attributeLength(buf: Buffer, offset: number): number {
  if (buf.length - offset < NLA_HEADER_LENGTH) {
    throw new NetlinkDecodeError(`truncated attribute header (${buf.length - offset} bytes left)`, offset);
  }
  const length = buf.readUInt16LE(offset);
  if (length < NLA_HEADER_LENGTH || offset + length > buf.length) {
    throw new NetlinkDecodeError(`attribute length ${length} does not fit in ${buf.length - offset} bytes`, offset);
  }
  return length;
}

/**
 * Each attribute of `buf` in order, its type (flags included) and a view of its value, for an
 * attribute that repeats one type (ipset's IPSET_ATTR_ADT): the caller decodes each at once, and
 * no list of them, copied or not, lives while a large one is walked.
 */
export function forEachAttribute(buf: Buffer, visit: (type: number, value: Buffer) => void): void {
  let offset = 0;
  while (offset < buf.length) {
    const length = attributeLength(buf, offset);
    visit(buf.readUInt16LE(offset + 2), buf.subarray(offset + NLA_HEADER_LENGTH, offset + length));
    offset += align4(length);
  }
}

/** Decodes attributes by `table`; attributes it does not know go to `unknown`, byte for byte. */
export function decodeAttributes<T extends AttrTable>(table: T, buf: Buffer, depth = 0): Attrs<T> {
  if (depth > 16) throw new NetlinkDecodeError('attributes nested too deeply');
  const index = fieldsById(table);
  const result: Record<string, unknown> = {};
  let unknown: RawAttribute[] | undefined;
  let offset = 0;
  while (offset < buf.length) {
    const length = attributeLength(buf, offset);
    const type = buf.readUInt16LE(offset + 2);
    const start = offset + NLA_HEADER_LENGTH;
    const end = offset + length;
    const entry = index.get(type & NLA_TYPE_MASK);
    if (entry?.[1].kind === 'skip') {
      offset += align4(length);
      continue;
    }
    if (!entry) {
      (unknown ??= []).push({ type, value: Buffer.from(buf.subarray(start, end)) });
    } else {
      const [name, field] = entry;
      result[name] = field.kind === 'nested' ? decodeAttributes(field.table, buf.subarray(start, end), depth + 1) : decodeScalar(field, buf, start, end);
    }
    offset += align4(length);
  }
  if (unknown) result.unknown = unknown;
  return result as Attrs<T>;
}
