// Keys grouped by a name (ipset entry keys by set): what the drift, the touched keys and the
// audited diff scope each collect.

/** Adds `key` to the set of `name`, making the set on its first key. */
export function addKeyOf(map: Map<string, Set<string>>, name: string, key: string): void {
  const keys = map.get(name);
  if (keys) keys.add(key);
  else map.set(name, new Set([key]));
}
