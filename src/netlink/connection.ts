// A batching netlink connection on the `netlink` package's raw socket.
//
// Many requests go to the kernel in one datagram. Only the last message of a datagram asks for an
// ACK: the kernel handles a datagram's messages in order and reports every failure, ACK or not
// (netlink_rcv_skb() calls netlink_ack() when NLM_F_ACK is set *or* err != 0), so when the last
// message's ACK arrives every earlier message of the datagram has either failed with its own
// NLMSG_ERROR or succeeded. That keeps the receive queue short: a burst of 100,000 ACKs would
// overflow the socket's receive buffer (ENOBUFS) and lose outcomes. The bytes in flight are capped
// by what the receive buffer can hold even if every request fails.
// The raw socket module alone: the package's index also loads generated nl80211 codecs (~0.5 MB).
import { RawNetlinkSocket } from 'netlink/dist/raw.js';
import type { MessageInfo } from 'netlink/dist/raw.js';
import { KipvsError, asError } from '../errors.js';
import { pacer, SLICE_MS } from '../util/event-loop.js';
import { DumpInterruptedError, NetlinkDecodeError, NetlinkRequestError, NetlinkTransportError } from './errors.js';
import {
  encodeMessage,
  messageSpace,
  writeMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_HEADER_LENGTH,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  parseErrorPayload,
  parseMessages,
  type NetlinkMessage,
} from './message.js';
import { withNetworkNamespace } from './netns.js';

export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
export const NETLINK_GENERIC = 16;

export interface NetlinkRequest {
  readonly type: number;
  /** Extra flags besides NLM_F_REQUEST (NLM_F_CREATE, NLM_F_EXCL, ...). */
  readonly flags?: number;
  readonly payload: Buffer;
  /** What this request does, for errors: `add real server 10.244.1.2:8080 to TCP 10.96.0.1:80`. */
  readonly describe: () => string;
}

export type RequestOutcome = { readonly ok: true } | { readonly ok: false; readonly error: NetlinkRequestError };
/** The outcome of a request that was never sent: it could not be encoded. */
export type Unsent = { readonly ok: false; readonly error: NetlinkRequestError };

/** The one outcome of every acknowledged request: 169,018 of them after a first sync share it. */
export const OK: RequestOutcome = Object.freeze({ ok: true });

/** For `outcomes[i] ?? missingOutcome(what)`: execute answers one outcome per request, so a missing one is a bug of ours. */
export function missingOutcome(what: string): never {
  throw new KipvsError('KIPVS_INTERNAL', `no outcome for ${what}`);
}

export interface ConnectionOptions {
  /** Network namespace to open the socket in: a path such as /run/netns/NAME or /proc/PID/ns/net. */
  readonly netns?: string;
  /** Milliseconds before an unanswered request fails the connection's pending work. */
  readonly timeoutMs?: number;
  /** Largest datagram to send. */
  readonly maxDatagramBytes?: number;
  /** Buffer offered to each receive (default 32 KiB, see RECEIVE_BUFFER_BYTES). */
  readonly receiveBufferBytes?: number;
}

/**
 * Each receive offers a 32 KiB buffer instead of peeking at the size first. The kernel sizes the
 * datagrams of a dump by the largest buffer the reader has offered (netlink_recvmsg() records
 * max_recvmsg_len, up to 32 KiB); a peeking reader offers exactly what arrived, so dumps stay at
 * one page, and the kernel, which walks the IPVS service table from the start to resume every
 * datagram, makes a dump of 10,000 services quadratic. It also saves the peek's extra syscall.
 */
const RECEIVE_BUFFER_BYTES = 32 * 1024;

interface Pending {
  onMessage(message: NetlinkMessage): void;
  fail(error: Error): void;
}

interface Registered extends Pending {
  /** The watchdog tick at which the request was sent. */
  readonly sentAtTick: number;
}

const WATCHDOG_INTERVAL_MS = 1000;

/** One datagram of requests, written, under the sequence numbers firstSeq, firstSeq + 1, ... */
interface Batch {
  readonly datagram: Buffer;
  readonly firstSeq: number;
  /** The requests' places in the caller's list, in the datagram's order. */
  readonly indexes: readonly number[];
  /** The receive-buffer bytes their error replies could take (errorCost). */
  readonly cost: number;
}

/**
 * The datagram as written so far, its last message asking for the ACK, copied out of the
 * connection's scratch buffer at its own size: an endpoint change's datagram of a few hundred
 * bytes then takes a slice of node's buffer pool, not 64 KB.
 */
function closeDatagram(open: {
  readonly datagram: Buffer;
  readonly firstSeq: number;
  readonly indexes: number[];
  readonly offset: number;
  readonly last: number;
  readonly cost: number;
}): Batch {
  const { datagram, firstSeq, indexes, offset, last, cost } = open;
  datagram.writeUInt16LE(datagram.readUInt16LE(last + 6) | NLM_F_ACK, last + 6);
  return { datagram: Buffer.from(datagram.subarray(0, offset)), firstSeq, indexes, cost };
}

/** A request made again for its description: it was sent, so it encodes. */
const describeMade = (request: NetlinkRequest | Unsent): string => ('ok' in request ? request.error.operation : request.describe());

/** Receive-buffer bytes one failed request can take: the skb overhead plus the echoed request. */
const errorCost = (messageLength: number): number => 768 + 2 * messageLength;

export class NetlinkConnection {
  private readonly socket: RawNetlinkSocket;
  private readonly pending = new Map<number, Registered>();
  /**
   * One interval timer for all requests instead of a timer each: reading the clock per request
   * is a syscall in the UML test kernel and showed up as the top cost of a dump of 10,000 services.
   */
  private readonly watchdog: NodeJS.Timeout;
  private tick = 0;
  private nextSeq = (Math.random() * 0x7fffffff) >>> 0;
  private dumpQueue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly timeoutMs: number;
  private readonly maxDatagramBytes: number;
  /** Receive-buffer bytes we allow requests in flight to consume if all of them fail. */
  private readonly inFlightBudget: number;
  private inFlightCost = 0;
  /** Where datagrams are written before they are copied out at their own size (batches()). */
  private scratch: Buffer | undefined;
  private readonly waiters: Array<() => void> = [];
  /** Counters for metrics and benchmarks. */
  readonly stats = { datagramsSent: 0, messagesSent: 0, datagramsReceived: 0 };

  private constructor(
    readonly protocol: number,
    options: ConnectionOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxDatagramBytes = options.maxDatagramBytes ?? 64 * 1024;
    this.socket = new RawNetlinkSocket(protocol, {
      recvBufferSize: 8 * 1024 * 1024,
      sendBufferSize: 1024 * 1024,
      messagePeeking: false,
      msgBufferSize: options.receiveBufferBytes ?? RECEIVE_BUFFER_BYTES,
    });
    // The kernel clamps SO_RCVBUF to net.core.rmem_max and doubles it; use half of what we got.
    this.inFlightBudget = Math.max(32 * 1024, Math.floor(this.socket.getRecvBufferSize() / 2));
    this.socket.on('message', (data, info) => this.receive(data, info));
    this.socket.on('truncatedMessage', () => this.failAll(new NetlinkTransportError('a netlink reply was truncated')));
    this.socket.on('error', (error) =>
      this.failAll(new NetlinkTransportError('netlink socket error; outcomes of requests in flight are unknown', error.errno)),
    );
    this.socket.unref();
    // Created once and unreferenced: it never keeps the process alive, and creating a timer per
    // request would read the clock per request.
    this.watchdog = setInterval(() => this.expire(), WATCHDOG_INTERVAL_MS);
    this.watchdog.unref();
  }

  /** Opens a socket of `protocol` (NETLINK_GENERIC, NETLINK_NETFILTER, NETLINK_ROUTE). */
  static open(protocol: number, options: ConnectionOptions = {}): NetlinkConnection {
    return withNetworkNamespace(options.netns, () => new NetlinkConnection(protocol, options));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.failAll(new NetlinkTransportError('netlink connection closed'));
    this.socket.close();
  }

  private allocateSeq(): number {
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    if (this.nextSeq === 0) this.nextSeq = 1;
    return this.nextSeq;
  }

  private receive(data: Buffer, info: MessageInfo): void {
    if (info.port !== 0) return; // only the kernel speaks to us
    this.stats.datagramsReceived++;
    let messages: NetlinkMessage[];
    try {
      messages = parseMessages(data);
    } catch (error) {
      this.failAll(error as Error);
      return;
    }
    for (const message of messages) this.pending.get(message.seq)?.onMessage(message);
  }

  private failAll(error: Error): void {
    const handlers = new Set(this.pending.values());
    for (const handler of handlers) handler.fail(error);
  }

  /** Routes the answers to sequence numbers first .. first + count - 1 to the handler. */
  private register(first: number, count: number, handler: Pending): () => void {
    const registered: Registered = { ...handler, sentAtTick: this.tick };
    for (let seq = first; seq < first + count; seq++) this.pending.set(seq, registered);
    if (this.pending.size > 0) this.socket.ref();
    return () => {
      for (let seq = first; seq < first + count; seq++) this.pending.delete(seq);
      if (this.pending.size === 0 && !this.closed) this.socket.unref();
    };
  }

  private expire(): void {
    this.tick++;
    const limit = Math.ceil(this.timeoutMs / WATCHDOG_INTERVAL_MS);
    const expired = new Set([...this.pending.values()].filter((handler) => this.tick - handler.sentAtTick > limit));
    for (const handler of expired) handler.fail(new NetlinkTransportError(`no answer from the kernel within ${this.timeoutMs} ms`));
  }

  /**
   * Sends and waits for the kernel's answer, not for the send callback: the answer often
   * arrives first, and waiting for both costs an event-loop turn per round trip.
   */
  private sendAndWait<T>(datagram: Buffer, messages: number, answered: Promise<T>, fail: (error: Error) => void): Promise<T> {
    this.sendDatagram(datagram, messages).catch(fail);
    return answered;
  }

  private sendDatagram(datagram: Buffer, messages = 1): Promise<void> {
    this.stats.datagramsSent++;
    this.stats.messagesSent += messages;
    return new Promise((resolve, reject) => {
      this.socket.send(datagram, {}, (error) => {
        if (error) reject(new NetlinkTransportError('sendmsg on netlink socket failed', error.errno));
        else resolve();
      });
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new NetlinkTransportError('netlink connection closed');
  }

  /**
   * Sends every request, many per datagram, and returns one outcome per request, in order. A failed
   * request does not hide the outcome of the others. Rejects only when the transport fails, in
   * which case the outcome of requests in flight is unknown (the caller re-reads the kernel).
   */
  execute(requests: readonly NetlinkRequest[]): Promise<RequestOutcome[]> {
    return this.executeEach(requests.length, (index) => requests[index] ?? missingOutcome(`request ${index}`));
  }

  /**
   * As execute(), but each request is made (encoded) only when its datagram is filled and is
   * written into it at once: what is held while datagrams are in flight is their bytes and the
   * requests' indexes, not the requests (a first sync sends 169,018, and a request kept until its
   * answer outlives the young generation). `make(index)` returns the index-th request, or the
   * outcome of one that cannot be sent (it does not encode): that one fails alone. A request the
   * kernel refuses is made again, for its description.
   */
  async executeEach(count: number, make: (index: number) => NetlinkRequest | Unsent): Promise<RequestOutcome[]> {
    this.assertOpen();
    const outcomes = new Array<RequestOutcome>(count);
    const datagrams = new Set<Promise<void>>();
    // The first transport failure: it stops further sends (the outcome of what is in flight is
    // unknown) and is thrown once every datagram has settled, never left unhandled meanwhile.
    let failure: Error | undefined;
    const batches = this.batches(count, make, outcomes);
    for (let next = batches.next(); !next.done; next = batches.next()) {
      const batch = next.value;
      await this.acquire(batch.cost);
      if (failure !== undefined) {
        this.release(batch.cost);
        break;
      }
      const sent: Promise<void> = this.sendBatch(batch, make, outcomes).finally(() => {
        this.release(batch.cost);
        datagrams.delete(sent);
      });
      // sendBatch rejects only with Errors: a transport failure or a reply that does not decode.
      sent.catch((error: unknown) => (failure ??= error as Error));
      datagrams.add(sent);
    }
    await Promise.allSettled(datagrams);
    if (failure !== undefined) throw failure;
    return outcomes;
  }

  /**
   * The requests, in order, as datagrams of at most maxDatagramBytes whose error replies take at
   * most a quarter of the in-flight budget (a request too big for either goes alone), made one
   * datagram at a time as the sender asks for the next. Each request is written into its datagram
   * as soon as it is made and not kept: one kept for the rest of its datagram (hundreds of
   * requests) lives through a young-generation collection or two and is promoted, and a first
   * sync then leaves 70 MB of garbage in the old generation. An unsent request's outcome goes
   * straight to `outcomes`.
   */
  private *batches(count: number, make: (index: number) => NetlinkRequest | Unsent, outcomes: RequestOutcome[]): Generator<Batch, void, undefined> {
    const datagramBudget = this.inFlightBudget / 4;
    let open: { datagram: Buffer; firstSeq: number; indexes: number[]; offset: number; last: number; cost: number } | undefined;
    for (let index = 0; index < count; index++) {
      const request = make(index);
      if ('ok' in request) {
        outcomes[index] = request;
        continue;
      }
      const space = messageSpace(request.payload.length);
      if (open && (open.offset + space > open.datagram.length || open.cost + errorCost(space) > datagramBudget)) {
        yield closeDatagram(open);
        open = undefined;
      }
      if (!open) {
        // Each datagram is written and closed within one step of this generator, so one scratch
        // buffer serves every execute() on the connection, even several at once.
        const datagram = space > this.maxDatagramBytes ? Buffer.allocUnsafe(space) : (this.scratch ??= Buffer.allocUnsafe(this.maxDatagramBytes));
        // Consecutive sequence numbers for the whole datagram, without wrapping to 0 midway.
        if (this.nextSeq > 0xffffffff - datagram.length / NLMSG_HEADER_LENGTH) this.nextSeq = 0;
        open = { datagram, firstSeq: this.nextSeq + 1, indexes: [], offset: 0, last: 0, cost: 0 };
      }
      const seq = open.firstSeq + open.indexes.length;
      this.nextSeq = seq;
      open.last = open.offset;
      open.offset = writeMessage(open.datagram, open.offset, request.type, NLM_F_REQUEST | (request.flags ?? 0), seq, request.payload);
      open.indexes.push(index);
      open.cost += errorCost(space);
    }
    if (open) yield closeDatagram(open);
  }

  private acquire(cost: number): Promise<void> {
    if (this.inFlightCost === 0 || this.inFlightCost + cost <= this.inFlightBudget) {
      this.inFlightCost += cost;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiters.push(() => {
        this.inFlightCost += cost;
        resolve();
      }),
    );
  }

  private release(cost: number): void {
    this.inFlightCost -= cost;
    // Admit waiters while the window has room (or is empty, for an oversized batch).
    while (this.waiters.length > 0 && (this.inFlightCost <= 0 || this.inFlightCost < this.inFlightBudget)) this.waiters.shift()?.();
  }

  private async sendBatch(batch: Batch, make: (index: number) => NetlinkRequest | Unsent, outcomes: RequestOutcome[]): Promise<void> {
    const { datagram, firstSeq, indexes } = batch;
    const lastSeq = firstSeq + indexes.length - 1;
    let unregister = (): void => {};
    let failBatch: (error: Error) => void = () => {};
    const done = new Promise<void>((resolve, reject) => {
      failBatch = reject;
      unregister = this.register(firstSeq, indexes.length, {
        onMessage: (message) => {
          if (message.type !== NLMSG_ERROR) return; // replies to a request we did not ask for: ignore
          const index = indexes[message.seq - firstSeq];
          if (index === undefined) return; // registered for this batch's seqs only
          let errno: number;
          let extack: string | undefined;
          try {
            ({ errno, extackMessage: extack } = parseErrorPayload(message));
          } catch (error) {
            reject(error instanceof Error ? error : new NetlinkDecodeError(String(error)));
            return;
          }
          outcomes[index] = errno === 0 ? OK : { ok: false, error: new NetlinkRequestError(describeMade(make(index)), errno, extack) };
          if (message.seq === lastSeq) {
            for (const sent of indexes) outcomes[sent] ??= OK;
            resolve();
          }
        },
        fail: reject,
      });
    });
    done.catch(() => {}); // the kernel may answer before the send callback; awaited below
    try {
      await this.sendAndWait(datagram, indexes.length, done, failBatch);
    } finally {
      unregister();
    }
  }

  /** Sends one request and throws its NetlinkRequestError if the kernel refuses it. */
  async executeOne(request: NetlinkRequest): Promise<void> {
    const [outcome] = await this.execute([request]);
    if (outcome && !outcome.ok) throw outcome.error;
  }

  /**
   * A request that the kernel answers with messages (a GET that is not a dump), then an ACK.
   * Resolves with the answers.
   */
  async query(request: NetlinkRequest): Promise<NetlinkMessage[]> {
    this.assertOpen();
    const seq = this.allocateSeq();
    const replies: NetlinkMessage[] = [];
    let unregister = (): void => {};
    let failQuery: (error: Error) => void = () => {};
    const done = new Promise<NetlinkMessage[]>((resolve, reject) => {
      failQuery = reject;
      unregister = this.register(seq, 1, {
        onMessage: (message) => {
          if (message.type === NLMSG_ERROR) {
            const { errno, extackMessage } = parseErrorPayload(message);
            if (errno === 0) resolve(replies);
            else reject(new NetlinkRequestError(request.describe(), errno, extackMessage));
          } else {
            replies.push(message);
          }
        },
        fail: reject,
      });
    });
    done.catch(() => {}); // the kernel may answer before the send callback; awaited below
    try {
      return await this.sendAndWait(encodeMessage(request.type, NLM_F_REQUEST | NLM_F_ACK | (request.flags ?? 0), seq, request.payload), 1, done, failQuery);
    } finally {
      unregister();
    }
  }

  /**
   * A dump (NLM_F_DUMP): resolves with every message of the multi-part answer. Dumps on one socket
   * run one after another: the kernel refuses a second dump while one is running (EBUSY).
   * When the kernel says the dump was interrupted by a change (NLM_F_DUMP_INTR), it is retried;
   * after three interrupted attempts it fails with DumpInterruptedError: what an interrupted dump
   * returns may be inconsistent (a change between two datagrams can hide an object or show it twice),
   * and a caller that diffed against it would delete or recreate what exists.
   */
  dump(request: NetlinkRequest): Promise<NetlinkMessage[]> {
    return this.dumpRead(request, collectMessages);
  }

  /**
   * A dump read as it arrives: each attempt gets a fresh reader from `newReader`, fed every
   * message in order, and the result of the first attempt not interrupted is returned (an
   * interrupted one's reader is dropped, so nothing it read is ever seen). A reader that decodes
   * each message and keeps only what it decoded keeps no message of the dump: 12,000 messages of a
   * dump of the virtual servers, kept until the last arrived, lived through young-generation
   * collections and were promoted at every full read. The reader runs in slices of SLICE_MS, so
   * that a sync due meanwhile waits a slice, not the decoding of the 32 datagrams the socket reads
   * at once. Retried, and run one at a time per socket, as dump() says.
   */
  dumpRead<T>(request: NetlinkRequest, newReader: () => DumpReader<T>): Promise<T> {
    const run = this.dumpQueue.then(() => this.dumpWithRetry(request, newReader, 3));
    this.dumpQueue = run.catch(() => undefined);
    return run;
  }

  private async dumpWithRetry<T>(request: NetlinkRequest, newReader: () => DumpReader<T>, attempts: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const reader = new PacedReader(newReader());
      const interrupted = await this.dumpOnce(request, reader);
      if (!interrupted) return reader.reader.result();
      if (attempt >= attempts) throw new DumpInterruptedError(request.describe(), attempts);
    }
  }

  /** One attempt of a dump, its messages handed to `reader`; resolves once it has read them all, with whether the kernel said it was interrupted. */
  private async dumpOnce<T>(request: NetlinkRequest, reader: PacedReader<T>): Promise<boolean> {
    this.assertOpen();
    const seq = this.allocateSeq();
    let interrupted = false;
    let unregister = (): void => {};
    let failDump: (error: Error) => void = () => {};
    const done = new Promise<void>((resolve, reject) => {
      failDump = reject;
      const finish = (): void => void reader.finished().then(resolve, reject);
      unregister = this.register(seq, 1, {
        onMessage: (message) => {
          if (message.flags & NLM_F_DUMP_INTR) interrupted = true;
          switch (message.type) {
            case NLMSG_DONE: {
              // The DONE payload carries the dump's final status (negative errno), when present.
              const status = message.payload.length >= 4 ? -message.payload.readInt32LE(0) : 0;
              if (status > 0) reject(new NetlinkRequestError(request.describe(), status));
              else finish();
              return;
            }
            case NLMSG_ERROR: {
              const { errno, extackMessage } = parseErrorPayload(message);
              if (errno === 0) finish();
              else reject(new NetlinkRequestError(request.describe(), errno, extackMessage));
              return;
            }
            case NLMSG_NOOP:
              return;
            case NLMSG_OVERRUN:
              reject(new NetlinkDecodeError('NLMSG_OVERRUN in dump'));
              return;
            default:
              // A reader's throw is kept until DONE: the kernel is still sending this dump, and a
              // dump asked for meanwhile on this socket would be refused (EBUSY).
              reader.push(message);
          }
        },
        fail: reject,
      });
    });
    done.catch(() => {}); // the kernel may answer before the send callback; awaited below
    try {
      await this.sendAndWait(encodeMessage(request.type, NLM_F_REQUEST | NLM_F_DUMP | (request.flags ?? 0), seq, request.payload), 1, done, failDump);
    } finally {
      unregister();
    }
    return interrupted;
  }
}

/** What reads one attempt of a dump (NetlinkConnection.dumpRead). */
export interface DumpReader<T> {
  /** The attempt's next message; a throw (a reply that does not decode) fails the dump. */
  read(message: NetlinkMessage): void;
  /** What the reader made of the whole attempt; asked only of one that was not interrupted. */
  result(): T;
}

/** dump()'s reader: the messages themselves. */
function collectMessages(): DumpReader<NetlinkMessage[]> {
  const messages: NetlinkMessage[] = [];
  return { read: (message) => void messages.push(message), result: () => messages };
}

/**
 * Hands a dump's messages to its reader as they arrive until a slice of SLICE_MS is used up, and
 * the rest in later slices, between which the event loop runs; in order either way.
 */
class PacedReader<T> {
  /** Messages that arrived while the reader waited for its next slice, from `next` on. */
  private backlog: NetlinkMessage[] = [];
  private next = 0;
  private waiting: Promise<void> | undefined;
  private failure: Error | undefined;
  private readonly pace = pacer(SLICE_MS, 64);

  constructor(readonly reader: DumpReader<T>) {}

  push(message: NetlinkMessage): void {
    if (this.failure) return;
    if (this.waiting) {
      this.backlog.push(message);
      return;
    }
    try {
      this.reader.read(message);
    } catch (error) {
      // Reported once the dump is done (finished()); the rest of its messages are not read.
      this.failure = asError(error);
      return;
    }
    const turn = this.pace();
    if (turn) this.waiting = this.drainAfter(turn);
  }

  private async drainAfter(turn: Promise<void>): Promise<void> {
    try {
      await turn;
      while (this.next < this.backlog.length) {
        const message = this.backlog[this.next] as NetlinkMessage;
        // Not kept once read: the backlog may hold a few datagrams' messages until it is empty.
        this.backlog[this.next++] = undefined as unknown as NetlinkMessage;
        this.reader.read(message);
        const later = this.pace();
        if (later) await later;
      }
    } catch (error) {
      this.failure = asError(error);
    } finally {
      this.backlog = [];
      this.next = 0;
      this.waiting = undefined;
    }
  }

  /** Resolves once every message pushed has been read; rejects with what the reader threw. */
  async finished(): Promise<void> {
    while (this.waiting) await this.waiting;
    if (this.failure) throw this.failure;
  }
}
