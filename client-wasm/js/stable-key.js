// Query identity for caches and SharedWorker messages: the same query written
// with its keys in another order has the same key; functions (onError) are
// not part of a query.

/** Deterministic JSON of `value`: object keys sorted, functions and undefined left out,
 * objects with `toJSON` (Date) as JSON.stringify writes them. */
export function stableKey(value) {
  return JSON.stringify(sorted(value));
}

function sorted(value) {
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'function' ? null : sorted(v)));
  if (value === null || typeof value !== 'object') return value;
  if (typeof value.toJSON === 'function') return sorted(value.toJSON()); // Date -> ISO text, as JSON has it
  const out = {};
  for (const k of Object.keys(value).sort()) {
    if (typeof value[k] !== 'function' && value[k] !== undefined) out[k] = sorted(value[k]);
  }
  return out;
}

/** A copy of `value` that structured clone accepts: functions left out, keys in a stable order. */
export function withoutFunctions(value) {
  return sorted(value);
}
