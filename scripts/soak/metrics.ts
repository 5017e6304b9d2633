// The agent's Prometheus metrics, as the soak reads them: the count of completed syncs (also the
// syncs that changed nothing, which log no line), RSS and heap.

/** The Prometheus text served on 127.0.0.1:`port`, or undefined while nothing answers there. */
export async function scrapeMetrics(port: number): Promise<string | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${String(port)}/metrics`, { signal: AbortSignal.timeout(10_000) });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

/** The sum of a metric's samples (over its labels), or undefined when it is absent. */
export function metricValue(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!rest.startsWith(' ') && !rest.startsWith('{')) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Completed syncs of the agent serving metrics on `port` (kubeproxy_sync_proxy_rules_duration_seconds_count); 0 while unknown. */
export async function completedSyncs(port: number): Promise<number> {
  return metricValue(await scrapeMetrics(port), 'kubeproxy_sync_proxy_rules_duration_seconds_count') ?? 0;
}

/** The flags that serve the agent's metrics on 127.0.0.1:`port` and no health server. */
export const metricsFlags = (port: number): string[] => ['--metrics-bind-address', `127.0.0.1:${String(port)}`, '--healthz-bind-address', ''];
