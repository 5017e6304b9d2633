// Go durations (time.ParseDuration), the one parser for flags and the configuration file: pflag's
// DurationVar and metav1.Duration both call time.ParseDuration, so kube-proxy refuses a bare `30`
// in both places (only `0` may go without a unit), and so does kipvs.

const NANOS: Readonly<Record<string, number>> = { ns: 1, us: 1e3, µs: 1e3, μs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

export class DurationSyntaxError extends Error {
  readonly code = 'KIPVS_DURATION';
  constructor(readonly text: string) {
    super(`"${text}" is not a duration (like 30s, 1m0s, 500ms)`);
  }
}

/** A Go duration string ("1m0s", "1h0m0s", "0s", "0", "500ms", "1.5s", "-2s") in milliseconds. */
export function parseGoDuration(text: string): number {
  const sign = text.startsWith('-') ? -1 : 1;
  let rest = text.startsWith('-') || text.startsWith('+') ? text.slice(1) : text;
  if (rest === '0') return 0;
  if (rest === '') throw new DurationSyntaxError(text);
  let nanos = 0;
  while (rest.length > 0) {
    const part = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/.exec(rest);
    const whole = part?.[1] ?? '';
    const fraction = part?.[2] ?? '';
    const unit = NANOS[part?.[3] ?? ''];
    if (part === null || unit === undefined || (whole === '' && fraction === '')) throw new DurationSyntaxError(text);
    nanos += Number(`${whole || '0'}.${fraction || '0'}`) * unit;
    rest = rest.slice(part[0].length);
  }
  return (sign * nanos) / 1e6;
}
