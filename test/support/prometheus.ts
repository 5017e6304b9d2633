// Prometheus text exposition, read strictly: for the metrics unit tests and the agent's kernel test.
import { expect } from 'vitest';

export interface Family {
  type: string;
  help: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a HELP, a TYPE or a sample;
 * names and labels are well-formed; each family has one HELP and one TYPE before its samples;
 * histogram samples are _bucket (with le), _sum and _count.
 */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const help = new RegExp(`^# HELP (${name}) (.*)$`);
  const type = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`);
  const sample = new RegExp(`^(${name})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
  const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(?:,|$)/;
  expect(text.endsWith('\n'), 'ends with a newline').toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    let match = help.exec(line);
    if (match) {
      expect(families.has(match[1]!), `one HELP for ${match[1]}`).toBe(false);
      families.set(match[1]!, { type: '', help: match[2]!, samples: [] });
      continue;
    }
    match = type.exec(line);
    if (match) {
      const family = families.get(match[1]!);
      expect(family?.type, `TYPE after HELP for ${match[1]}`).toBe('');
      family!.type = match[2]!;
      continue;
    }
    match = sample.exec(line);
    expect(match, `a valid line: ${line}`).not.toBeNull();
    const [, sampleName, labelText = '', valueText] = match!;
    // Prometheus reads values with Go's strconv.ParseFloat, which takes NaN and Inf in any case
    // (prom-client writes `Nan` for an event loop lag not measured yet).
    const special = /^([+-]?)(inf|nan)$/i.exec(valueText!);
    const value = special ? (special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(valueText);
    expect(!special && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(valueText!), `a number: ${line}`).toBe(false);
    const labels: Record<string, string> = {};
    for (let rest = labelText; rest !== '';) {
      const labelMatch = label.exec(rest);
      expect(labelMatch, `valid labels: ${line}`).not.toBeNull();
      labels[labelMatch![1]!] = labelMatch![2]!;
      rest = rest.slice(labelMatch![0].length);
    }
    const base = [sampleName!, sampleName!.replace(/_(bucket|sum|count)$/, '')].find((candidate) => families.has(candidate));
    expect(base, `a declared family for ${sampleName}`).toBeDefined();
    const family = families.get(base!)!;
    if (family.type === 'histogram') {
      expect(sampleName, `histogram series of ${base}`).toMatch(/_(bucket|sum|count)$/);
      if (sampleName!.endsWith('_bucket')) expect(labels.le, `le on ${line}`).toBeDefined();
    }
    family.samples.push({ name: sampleName!, labels, value });
  }
  return families;
}
