// The kipvs.io annotations a Service may carry: its IPVS scheduler and its real servers' weights.
// A bad annotation is reported and ignored; the Service keeps working with the defaults.
import { ANNOTATIONS } from '../model/settings.js';
import { IPVS_SCHEDULERS, isIpvsScheduler } from '../model/schedulers.js';
import { parseAddress, show } from './addresses.js';

/** Weights by endpoint address (canonical) or by target (pod) name. */
export interface Weights {
  readonly byAddress: ReadonlyMap<string, number>;
  readonly byTargetName: ReadonlyMap<string, number>;
}

export const NO_WEIGHTS: Weights = { byAddress: new Map(), byTargetName: new Map() };

/** The most ipvsadm accepts for a weight (its -w option); the kernel stores an int. */
const MAX_WEIGHT = 65535;

type Report = (reason: string) => void;

function annotation(annotations: unknown, name: string): unknown {
  if (typeof annotations !== 'object' || annotations === null) return undefined;
  return (annotations as Record<string, unknown>)[name];
}

/** The Service's scheduler: the annotation when it names a kernel scheduler, else the default. */
export function schedulerOf(annotations: unknown, defaultScheduler: string, report: Report): string {
  const value = annotation(annotations, ANNOTATIONS.scheduler);
  if (value === undefined) return defaultScheduler;
  if (typeof value === 'string' && isIpvsScheduler(value)) return value;
  report(`annotation ${ANNOTATIONS.scheduler} ${show(value)} is not an IPVS scheduler (${IPVS_SCHEDULERS.join(' ')}); ${defaultScheduler} used`);
  return defaultScheduler;
}

/** Parses `web-0=3,web-1=1,10.244.2.7=5`; the reason it is malformed, or the weights. */
function parseWeights(text: string): Weights | string {
  const byAddress = new Map<string, number>();
  const byTargetName = new Map<string, number>();
  for (const rawItem of text.split(',')) {
    const item = rawItem.trim();
    if (item === '') continue;
    const equals = item.indexOf('=');
    if (equals <= 0) return `${show(item)} is not name=weight`;
    const name = item.slice(0, equals).trim();
    const weightText = item.slice(equals + 1).trim();
    if (!/^\d{1,5}$/.test(weightText) || Number(weightText) > MAX_WEIGHT)
      return `weight ${show(weightText)} of ${show(name)} is not an integer in 0..${MAX_WEIGHT}`;
    const address = parseAddress(name);
    const target = address ? byAddress : byTargetName;
    const key = address ? address.address : name;
    if (target.has(key)) return `${show(name)} is named twice`;
    target.set(key, Number(weightText));
  }
  return { byAddress, byTargetName };
}

export function weightsOf(annotations: unknown, report: Report): Weights {
  const value = annotation(annotations, ANNOTATIONS.weights);
  if (value === undefined) return NO_WEIGHTS;
  const parsed = typeof value === 'string' ? parseWeights(value) : 'it is not a string';
  if (typeof parsed === 'string') {
    report(`annotation ${ANNOTATIONS.weights} ${show(value)} is malformed: ${parsed}; weights ignored`);
    return NO_WEIGHTS;
  }
  return parsed;
}

/** An endpoint's weight: by its address first (the more specific), then by its pod's name, else 1. */
export function weightOf(weights: Weights, address: string, targetName: string | undefined): number {
  if (weights === NO_WEIGHTS) return 1;
  return weights.byAddress.get(address) ?? (targetName === undefined ? undefined : weights.byTargetName.get(targetName)) ?? 1;
}
