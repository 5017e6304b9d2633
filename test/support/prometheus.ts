// Prometheus text exposition, read strictly: for the metrics unit tests and the agent's kernel test.
import { expect } from 'vitest';
import { defined } from './defined.js';

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
      const familyName = defined(match[1], `a HELP name: ${line}`);
      expect(families.has(familyName), `one HELP for ${familyName}`).toBe(false);
      families.set(familyName, { type: '', help: defined(match[2], `a HELP text: ${line}`), samples: [] });
      continue;
    }
    match = type.exec(line);
    if (match) {
      const familyName = defined(match[1], `a TYPE name: ${line}`);
      const family = families.get(familyName);
      expect(family?.type, `TYPE after HELP for ${familyName}`).toBe('');
      defined(family, `a HELP before the TYPE of ${familyName}`).type = defined(match[2], `a TYPE: ${line}`);
      continue;
    }
    match = sample.exec(line);
    expect(match, `a valid line: ${line}`).not.toBeNull();
    const [, sampleNameGroup, labelText = '', valueGroup] = defined(match, `a valid line: ${line}`);
    const sampleName = defined(sampleNameGroup, `a sample name: ${line}`);
    const valueText = defined(valueGroup, `a sample value: ${line}`);
    // Prometheus reads values with Go's strconv.ParseFloat, which takes NaN and Inf in any case
    // (prom-client writes `Nan` for an event loop lag not measured yet).
    const special = /^([+-]?)(inf|nan)$/i.exec(valueText);
    const value = special ? (/nan/i.test(valueText) ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(valueText);
    expect(!special && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(valueText), `a number: ${line}`).toBe(false);
    const labels: Record<string, string> = {};
    for (let rest = labelText; rest !== '';) {
      const labelMatch = label.exec(rest);
      expect(labelMatch, `valid labels: ${line}`).not.toBeNull();
      const [labelSource, labelName, labelValue] = defined(labelMatch, `valid labels: ${line}`);
      labels[defined(labelName, `a label name: ${line}`)] = defined(labelValue, `a label value: ${line}`);
      rest = rest.slice(labelSource.length);
    }
    const base = [sampleName, sampleName.replace(/_(bucket|sum|count)$/, '')].find((candidate) => families.has(candidate));
    expect(base, `a declared family for ${sampleName}`).toBeDefined();
    const familyName = defined(base, `a declared family for ${sampleName}`);
    const family = defined(families.get(familyName), `family ${familyName}`);
    if (family.type === 'histogram') {
      expect(sampleName, `histogram series of ${familyName}`).toMatch(/_(bucket|sum|count)$/);
      if (sampleName.endsWith('_bucket')) expect(labels.le, `le on ${line}`).toBeDefined();
    }
    family.samples.push({ name: sampleName, labels, value });
  }
  return families;
}
