// React bindings (shipped as `mqttspec-wasm/react`; React 18 or later).
//
//   <SpecProvider url="wss://example.com/mqtt" options={{ clientId: 'dash-1', shared: true }}>
//     <Users />
//   </SpecProvider>
//
//   function Users() {
//     const { rows, status, error } = useLiveQuery('public.users', { sort: [{ column: 'name' }], limit: 20 });
//     const spec = useSpec();            // the client, for writes (null while connecting)
//     ...
//   }
//
// The provider connects once per url and options (a remount, as StrictMode
// does, reuses the connection) and ends the connection when it unmounts.
// useLiveQuery keeps one live store per entity and options (compared by value,
// so an inline options object does not restart the query).

import { createContext, createElement, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { CONNECTING, connect, liveStore, stableKey } from './live.js';

const SpecContext = createContext(null);

// Connections by url and options, kept while some provider holds them; a
// release is deferred a little so that unmount + mount keeps the connection.
const connections = new Map();
const RELEASE_MS = 100;

function acquire(key, open) {
  let entry = connections.get(key);
  if (!entry) {
    entry = { users: 0, promise: open(), timer: null };
    entry.promise.catch(() => connections.get(key) === entry && connections.delete(key));
    connections.set(key, entry);
  }
  entry.users += 1;
  clearTimeout(entry.timer);
  return entry.promise;
}

function release(key) {
  const entry = connections.get(key);
  if (!entry || --entry.users > 0) return;
  entry.timer = setTimeout(() => {
    if (connections.get(key) !== entry || entry.users > 0) return;
    connections.delete(key);
    entry.promise.then((c) => c.end()).catch(() => {});
  }, RELEASE_MS);
}

/**
 * Makes a SpecClient available to useSpec and useLiveQuery below it: either
 * `client` (connected by you; not ended here) or one connected from `url` and
 * `options` (those of `connect` in `mqttspec-wasm/live`, `shared` included).
 */
export function SpecProvider({ url, options, client, children }) {
  const key = client ? null : stableKey([url, options ?? {}]);
  const [state, setState] = useState({ client: client ?? null, error: null });
  useEffect(() => {
    if (client) {
      setState({ client, error: null });
      return undefined;
    }
    let current = true;
    setState({ client: null, error: null });
    acquire(key, () => connect(url, options ?? {})).then(
      (c) => current && setState({ client: c, error: null }),
      (error) => current && setState({ client: null, error }),
    );
    return () => {
      current = false;
      release(key);
    };
    // `key` stands for url and options.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, key]);
  return createElement(SpecContext.Provider, { value: state }, children);
}

/** The provider's SpecClient, or null while it connects (or if connecting failed). */
export function useSpec() {
  return useContext(SpecContext)?.client ?? null;
}

const noSubscribe = () => () => {};

/**
 * Rows of a live query and its state: `{ rows, status, error }`, status
 * `connecting` | `live` | `stale` | `error` (see liveStore in `mqttspec-wasm/live`).
 * `options` are liveQuery's; a change of entity or options (by value) starts a new query.
 */
export function useLiveQuery(entity, options) {
  const context = useContext(SpecContext);
  if (!context) throw new Error('useLiveQuery needs a <SpecProvider> above it');
  const { client, error } = context;
  const key = stableKey([entity, options ?? {}]);
  // The key leaves functions out: the store calls the latest render's onError.
  const onError = useRef(options?.onError);
  onError.current = options?.onError;
  const store = useMemo(
    () => (client ? liveStore(client, entity, { ...options, onError: (e) => onError.current?.(e) }) : null),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [client, key],
  );
  const snapshot = useSyncExternalStore(
    store ? store.subscribe : noSubscribe,
    store ? store.getSnapshot : () => CONNECTING,
    () => CONNECTING,
  );
  return useMemo(() => (error && !client ? { rows: [], status: 'error', error } : snapshot), [snapshot, error, client]);
}
