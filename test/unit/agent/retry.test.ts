// Netlink error injection: the kernel refuses one operation of a batch; the others apply, the
// refused one is retried by the next syncs with a growing, jittered, bounded delay, and lands.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Proxier } from '../../../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../../../src/agent/ownership.js';
import { RetryBackoff } from '../../../src/agent/retry.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { describeKernelOperation, type ApplyResult } from '../../../src/kernel/netlink-kernel.js';
import { NetlinkRequestError } from '../../../src/netlink/errors.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import type { KernelOperation, Plan } from '../../../src/reconcile/state.js';

const ERRNOS = { ENOENT: 2, EEXIST: 17, EINVAL: 22, ENOMEM: 12 } as const;

/** A fake kernel that refuses the operations `refuse` picks, `times` times each, with `errno`. */
class InjectingKernel extends FakeKernel {
  readonly refused: string[] = [];
  private readonly left = new Map<string, number>();
  constructor(
    private readonly refuse: (operation: KernelOperation) => boolean,
    private readonly errno: number,
    private readonly times: number,
  ) {
    super();
  }
  override async apply(plan: Plan): Promise<ApplyResult> {
    const passed: KernelOperation[] = [];
    const failures: ApplyResult['failures'][number][] = [];
    for (const operation of plan.operations) {
      const text = describeKernelOperation(operation, 'kube-ipvs0');
      const left = this.left.get(text) ?? this.times;
      if (this.refuse(operation) && left > 0) {
        this.left.set(text, left - 1);
        this.refused.push(text);
        failures.push({ operation, error: new NetlinkRequestError(text, this.errno) });
      } else passed.push(operation);
    }
    const result = await super.apply({ operations: passed, draining: plan.draining });
    return { applied: result.applied, failures: [...failures, ...result.failures] };
  }
}

function proxierFor(kernel: FakeKernel): Proxier {
  const store = new ClusterStore();
  const services = ['a', 'b', 'c'].map((name, i) => ({
    metadata: { name, namespace: 'default' },
    spec: { clusterIP: `10.96.0.${i + 1}`, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  }));
  const slices = ['a', 'b', 'c'].map((name, i) => ({
    metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [
      { addresses: [`10.244.${i}.1`], conditions: { ready: true } },
      { addresses: [`10.244.${i}.2`], conditions: { ready: true } },
    ],
  }));
  store.replaceAll(services, slices);
  const settings = DEFAULT_SETTINGS;
  return new Proxier({
    kernel,
    node: { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] },
    settings,
    log: pino({ level: 'silent' }),
    ownership: new MemoryOwnershipStore(),
    cluster: store,
  });
}

const isRealServer =
  (address: string) =>
  (operation: KernelOperation): boolean =>
    operation.kind === 'ipvs' && operation.operation.op === 'addDestination' && operation.operation.destination.address === address;

describe('a refused kernel operation', () => {
  it.each(Object.entries(ERRNOS))('%s: the rest of the batch applies, the refused one is retried with growing delays and lands', async (name, errno) => {
    const kernel = new InjectingKernel(isRealServer('10.244.1.2'), errno, 3);
    const proxier = proxierFor(kernel);
    const retry = new RetryBackoff({ initialMs: 1000, maxMs: 30_000, jitter: 0.5 }, 'kube-ipvs0', () => 1);
    const delays: number[] = [];
    for (let sync = 0; sync < 4; sync++) {
      const result = await proxier.sync({ full: false });
      const decision = retry.record(result.failures);
      if (decision.delayMs !== undefined) delays.push(decision.delayMs);
      if (sync === 0) {
        // Everything else of the batch is there after the first sync.
        expect(result.failures.map((f) => f.error.message)).toEqual([`add real server 10.244.1.2:8080 to TCP 10.96.0.2:80: ${name}`]);
        expect([...kernel.virtualServers.keys()].sort()).toEqual(['TCP 10.96.0.1:80', 'TCP 10.96.0.2:80', 'TCP 10.96.0.3:80']);
        expect([...kernel.virtualServer('TCP 10.96.0.2:80').realServers.keys()]).toEqual(['10.244.1.1:8080']);
        expect(kernel.virtualServer('TCP 10.96.0.3:80').realServers.size).toBe(2);
      }
    }
    expect(kernel.refused).toHaveLength(3);
    // Refused three times: retried after about 1 s, 2 s, 4 s (jitter takes up to half off).
    expect(delays).toEqual([500, 1000, 2000]);
    expect(kernel.virtualServer('TCP 10.96.0.2:80').realServers.size).toBe(2);
    expect((await proxier.sync()).plan.operations).toEqual([]);
  });
});

describe('RetryBackoff', () => {
  it('doubles from the first delay up to the ceiling, and jitters within the fraction given', () => {
    const fixed = new RetryBackoff({ initialMs: 1000, maxMs: 5000, jitter: 0.5 }, 'kube-ipvs0', () => 0);
    expect([1, 2, 3, 4, 10, 100].map((attempt) => fixed.delay(attempt))).toEqual([1000, 2000, 4000, 5000, 5000, 5000]);
    const random = new RetryBackoff({ initialMs: 1000, maxMs: 5000, jitter: 0.5 }, 'kube-ipvs0');
    for (let i = 0; i < 200; i++) {
      const delay = random.delay(2);
      expect(delay).toBeGreaterThanOrEqual(1000);
      expect(delay).toBeLessThanOrEqual(2000);
    }
  });

  it('forgets an operation that stopped failing, and asks for nothing when nothing failed', () => {
    const retry = new RetryBackoff({ initialMs: 100, maxMs: 1000, jitter: 0 }, 'kube-ipvs0');
    const failure = (address: string) => ({ operation: { kind: 'bindAddress' as const, address }, error: new Error('refused') });
    expect(retry.record([failure('10.96.0.1')]).delayMs).toBe(100);
    expect(retry.record([failure('10.96.0.1')]).delayMs).toBe(200);
    expect(retry.record([failure('10.96.0.1'), failure('10.96.0.2')]).delayMs).toBe(100);
    expect(retry.record([]).delayMs).toBeUndefined();
    expect(retry.record([failure('10.96.0.1')]).delayMs).toBe(100);
  });
});
