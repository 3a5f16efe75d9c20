// Live data for any UI library (shipped as `mqttspec-wasm/live`).
//
//   import { connect, liveStore } from 'mqttspec-wasm/live';
//   const spec = await connect('wss://example.com/mqtt', { clientId: 'dash-1', shared: true });
//   const users = liveStore(spec, 'public.users', { sort: [{ column: 'name' }], limit: 20 });
//   const stop = users.subscribe(() => render(users.getSnapshot()));
//
// `connect` starts the wasm module and returns a SpecClient; with `shared: true`
// the connection lives in a SharedWorker that every tab of the origin shares
// (shared-client.js), or in this tab where SharedWorker is missing.
// `liveStore` wraps one live query in the external-store shape that React's
// useSyncExternalStore, Svelte's `$store` and Vue refs take as they are:
// `subscribe(listener)` returns an unsubscribe function and calls the listener
// with the snapshot at once and after every change; `getSnapshot()` returns the
// same object until something changes. The live query starts with the first
// listener and closes shortly after the last one leaves.

import init, { SpecClient } from './mqttspec_wasm.js';
import { SharedSpecClient } from './shared-client.js';
import { stableKey, withoutFunctions } from './stable-key.js';

export { stableKey };

/**
 * Connect to an MQTTSpec server. `options` are SpecClient.connect's plus
 * `shared` (one connection for all tabs of this origin, through a SharedWorker).
 */
export async function connect(url, options = {}) {
  const { shared = false, ...rest } = options;
  if (shared && typeof SharedWorker === 'function') {
    return SharedSpecClient.connect(url, withoutFunctions(rest));
  }
  await loaded();
  return SpecClient.connect(url, rest);
}

// One load of the wasm module however many connects start at once (tried again after a failure).
let loading = null;
const loaded = () => (loading ??= init().catch((e) => { loading = null; throw e; }));

/** Snapshot before a client exists or before the first rows. */
export const CONNECTING = Object.freeze({ rows: Object.freeze([]), status: 'connecting', error: null });

// One set of connection listeners per client (SpecClient.on has no `off`):
// every store of a client listens through it.
const hubs = new WeakMap();

function connectionHub(client) {
  let hub = hubs.get(client);
  if (hub) return hub;
  hub = new Set();
  const tell = (online) => () => { for (const store of [...hub]) store(online); };
  client.on('connect', tell(true));
  client.on('offline', tell(false));
  client.on('close', tell(false));
  hubs.set(client, hub);
  return hub;
}

/** Milliseconds a store without listeners keeps its live query (a component
 * that unmounts and mounts again, as React's StrictMode does, keeps it). */
const LINGER_MS = 50;

/**
 * A live query of `entity` as an external store. `options` are liveQuery's
 * (filters, sort, limit, key, schema, onError). Snapshot: `{ rows, status, error }`
 * with status `connecting` (no rows yet), `live` (rows current), `stale` (rows
 * kept, but the connection is down or reading/subscribing again failed: it is
 * retried) or `error` (the live query could not start; `error.code` says why).
 */
export function liveStore(client, entity, options = {}) {
  const listeners = new Set();
  let snapshot = CONNECTING;
  let handle = null;
  let run = 0; // which start() the current handle belongs to
  let running = false;
  let linger = null;

  const set = (patch) => {
    snapshot = Object.freeze({ ...snapshot, ...patch });
    for (const listener of [...listeners]) listener(snapshot);
  };
  const online = (up) => {
    if (!running || snapshot.status === 'error' || snapshot.status === 'connecting') return;
    set(up ? { status: 'live', error: null } : { status: 'stale' });
  };
  const onError = (error) => {
    set({ status: 'stale', error });
    options.onError?.(error);
  };

  function start() {
    running = true;
    const mine = ++run;
    connectionHub(client).add(online);
    // Rows as they are now, live unless the connection is down.
    const current = (rows) => set({ rows, status: client.connected === false ? 'stale' : 'live', error: null });
    const onChange = (rows) => {
      if (mine === run) current(rows);
    };
    client.liveQuery(entity, { ...options, onError }, onChange).then(
      (h) => {
        if (mine !== run) return void h.close().catch(() => {});
        handle = h;
        current(h.rows());
      },
      (error) => {
        if (mine === run) set({ status: 'error', error });
      },
    );
  }

  function stop() {
    running = false;
    run += 1;
    hubs.get(client)?.delete(online);
    const h = handle;
    handle = null;
    snapshot = CONNECTING;
    return h ? h.close().catch(() => {}) : Promise.resolve();
  }

  return {
    subscribe(listener) {
      listeners.add(listener);
      clearTimeout(linger);
      if (!running) start();
      listener(snapshot);
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return;
        linger = setTimeout(stop, LINGER_MS);
      };
    },
    getSnapshot: () => snapshot,
    /** Close the live query now and forget every listener. */
    close() {
      clearTimeout(linger);
      listeners.clear();
      return stop();
    },
  };
}
