// The SharedWorker behind `connect(url, { shared: true })`: one SpecClient for
// every tab that connects with the same url and options. Identical live
// queries (same entity and options, in any key order) run once and fan out to
// every tab that asked. Message protocol: shared-client.js.

import init, { SpecClient } from './mqttspec_wasm.js';
import { stableKey } from './stable-key.js';

let client = null; // Promise<SpecClient> while some tab is attached
const tabs = new Map(); // port -> { lives: Map<lid, key>, subs: Map<sid, Promise<handle>> }
const lives = new Map(); // query key -> { members: Map<port, Set<lid>>, rows, ready, handle }

const EVENTS = ['connect', 'reconnect', 'offline', 'close', 'error'];

function errorData(e) {
  return { name: e?.name ?? 'Error', code: e?.code ?? 'internal', message: String(e?.message ?? e) };
}

function broadcast(message) {
  for (const port of tabs.keys()) port.postMessage(message);
}

function start(url, options) {
  const connecting = init().then(() => SpecClient.connect(url, options));
  connecting.then((c) => {
    for (const name of EVENTS) {
      c.on(name, (arg) => broadcast({ t: 'event', name, arg: name === 'error' ? errorData(arg) : arg }));
    }
  }, () => {
    if (client === connecting) client = null; // the next tab tries again
  });
  return connecting;
}

async function hello(port, { url, options, lock }) {
  tabs.set(port, { lives: new Map(), subs: new Map() });
  if (lock && self.navigator?.locks) self.navigator.locks.request(lock, () => leave(port));
  client ??= start(url, options);
  try {
    const c = await client;
    return { clientId: c.clientId, connected: c.connected };
  } catch (e) {
    forget(port); // the tab gives up (its port stays open for this answer)
    throw e;
  }
}

function toMembers(entry, message) {
  for (const [port, lids] of entry.members) for (const lid of lids) port.postMessage({ ...message, lid });
}

function openLive(c, key, entity, options) {
  const entry = { members: new Map(), rows: [], handle: null };
  const onError = (e) => toMembers(entry, { t: 'liveError', error: errorData(e) });
  const onChange = (rows, change) => {
    entry.rows = rows;
    if (entry.handle) toMembers(entry, { t: 'change', rows, change });
  };
  entry.ready = c.liveQuery(entity, { ...options, onError }, onChange).then((h) => {
    entry.handle = h;
    entry.rows = h.rows();
    if (entry.members.size === 0) closeEntry(key, entry);
  }, (e) => {
    closeEntry(key, entry);
    throw e;
  });
  lives.set(key, entry);
  return entry;
}

function closeEntry(key, entry) {
  if (lives.get(key) === entry) lives.delete(key);
  entry.handle?.close().catch(() => {});
}

async function live(port, { lid, entity, options }) {
  const c = await client;
  const key = stableKey([entity, options]);
  const entry = lives.get(key) ?? openLive(c, key, entity, options);
  if (!entry.members.has(port)) entry.members.set(port, new Set());
  entry.members.get(port).add(lid);
  tabs.get(port)?.lives.set(lid, key);
  try {
    await entry.ready;
  } catch (e) {
    closeLive(port, { lid });
    throw e;
  }
  return { rows: entry.rows, subscriptionId: entry.handle.subscriptionId };
}

function closeLive(port, { lid }) {
  const key = tabs.get(port)?.lives.get(lid);
  tabs.get(port)?.lives.delete(lid);
  const entry = lives.get(key);
  const lids = entry?.members.get(port);
  if (!lids) return;
  lids.delete(lid);
  if (lids.size === 0) entry.members.delete(port);
  if (entry.members.size === 0 && entry.handle) closeEntry(key, entry);
}

async function subscribe(port, { sid, entity, options }) {
  const c = await client;
  const onError = (e) => port.postMessage({ t: 'subError', sid, error: errorData(e) });
  const handle = c.subscribe(entity, { ...options, onError }, (n) => port.postMessage({ t: 'note', sid, n }));
  tabs.get(port)?.subs.set(sid, handle);
  const h = await handle;
  return { subscriptionId: h.subscriptionId };
}

async function unsubscribe(port, { sid }) {
  const handle = tabs.get(port)?.subs.get(sid);
  tabs.get(port)?.subs.delete(sid);
  await (await handle)?.unsubscribe();
}

async function call({ method, args }) {
  const c = await client;
  if (!['read', 'create', 'update', 'delete', 'meta'].includes(method)) {
    throw Object.assign(new Error(`unknown method ${method}`), { name: 'SpecError', code: 'invalid_argument' });
  }
  return c[method](...args);
}

/** A tab went away: drop its live queries and subscriptions, close its port. */
function leave(port) {
  forget(port);
  port.close();
}

/** Drop what a tab held; end the connection after the last tab. */
function forget(port) {
  const tab = tabs.get(port);
  if (!tab) return;
  for (const lid of [...tab.lives.keys()]) closeLive(port, { lid });
  for (const handle of tab.subs.values()) handle.then((h) => h.unsubscribe()).catch(() => {});
  tabs.delete(port);
  if (tabs.size === 0 && client) {
    const ending = client;
    client = null;
    lives.clear();
    ending.then((c) => c.end()).catch(() => {});
  }
}

const HANDLERS = { hello, live, subscribe, unsubscribe, call: (_port, m) => call(m) };

function receive(port, m) {
  if (m.t === 'bye') return leave(port);
  if (m.t === 'closeLive') return closeLive(port, m);
  const handler = HANDLERS[m.t];
  if (!handler) return;
  Promise.resolve()
    .then(() => handler(port, m))
    .then((value) => port.postMessage({ t: 'ok', id: m.id, value }),
      (e) => port.postMessage({ t: 'err', id: m.id, error: errorData(e) }));
}

self.onconnect = (e) => {
  const port = e.ports[0];
  port.onmessage = (m) => receive(port, m.data);
  port.start();
};
