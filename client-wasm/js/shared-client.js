// The tab side of `connect(url, { shared: true })`: a SpecClient whose
// connection lives in a SharedWorker (shared-worker.js) that every tab of the
// origin with the same url and options shares. Same API as SpecClient (read,
// create, update, delete, meta, subscribe, liveQuery, on, end, connected,
// clientId); identical live queries of several tabs run once in the worker.
//
// Messages (structured clone over the worker's MessagePort):
//   tab -> worker: hello {url, options, lock}; call {id, method, args};
//     live {id, lid, entity, options}; closeLive {lid};
//     subscribe {id, sid, entity, options}; unsubscribe {id, sid}; bye
//   worker -> tab: ok {id, value}; err {id, error}; event {name, arg};
//     change {lid, rows, change}; liveError {lid, error}; note {sid, n}; subError {sid, error}
// A tab holds the Web Lock `lock` while it lives; the worker asks for the same
// lock and, once granted (the tab closed or crashed), forgets the tab's live
// queries and subscriptions, and ends the connection after the last tab.

import { stableKey, withoutFunctions } from './stable-key.js';

/** Notifications an iterated subscription keeps until taken (newer ones dropped past it). */
const QUEUE_LIMIT = 10_000;

/** An Error like SpecClient's rejections: name SpecError, the server's code. */
export function specError({ name = 'SpecError', code = 'closed', message = '' } = {}) {
  return Object.assign(new Error(message), { name, code });
}

/** Holds a Web Lock until `release()` or until the page goes away; resolves with
 * `{ name, release }` once held (name null where Web Locks are missing). */
function holdTabLock() {
  if (!globalThis.navigator?.locks) return Promise.resolve({ name: null, release() {} });
  const name = `mqttspec-wasm tab ${crypto.randomUUID()}`;
  return new Promise((held) => {
    navigator.locks.request(name, () => new Promise((release) => held({ name, release })));
  });
}

export class SharedSpecClient {
  #port;
  #next = 0;
  #pending = new Map();
  #lives = new Map();
  #subs = new Map();
  #listeners = new Map();
  #ended = null; // the error every call rejects with once the client is ended or failed
  #lock = null;
  #onPageHide = (e) => { if (!e.persisted) this.end(); };
  /** True while the shared connection is up. */
  connected = false;
  /** The shared connection's MQTT client id. */
  clientId = '';
  /** Always true: this client's connection is shared by the tabs of the origin. */
  shared = true;

  /** Start (or join) the SharedWorker named after `url` and `options`. */
  static async connect(url, options) {
    const name = `mqttspec-wasm ${stableKey([url, options])}`;
    const worker = new SharedWorker(new URL('./shared-worker.js', import.meta.url), { type: 'module', name });
    const client = new SharedSpecClient(worker);
    client.#lock = await holdTabLock();
    try {
      const hello = await client.#call({ t: 'hello', url, options, lock: client.#lock.name });
      client.connected = hello.connected;
      client.clientId = hello.clientId;
    } catch (e) {
      await client.end();
      throw e;
    }
    globalThis.addEventListener?.('pagehide', client.#onPageHide);
    return client;
  }

  constructor(worker) {
    this.#port = worker.port;
    this.#port.onmessage = (e) => this.#receive(e.data);
    worker.onerror = () => this.#fail(specError({ code: 'worker_failed',
      message: 'the SharedWorker (mqttspec-wasm/shared-worker.js) could not start: check that the bundler emitted it' }));
    this.#port.start();
  }

  read(entity, options) { return this.#invoke('read', [entity, options]); }
  create(entity, data, options) { return this.#invoke('create', [entity, data, options]); }
  update(entity, recordId, data, options) { return this.#invoke('update', [entity, recordId, data, options]); }
  delete(entity, recordId, options) { return this.#invoke('delete', [entity, recordId, options]); }
  meta(entity, options) { return this.#invoke('meta', [entity, options]); }

  /** Listen to `connect`, `reconnect`, `offline`, `close` or `error` of the shared connection. */
  on(event, listener) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, []);
    this.#listeners.get(event).push(listener);
    return this;
  }

  /** Notifications of `entity` (filtered by `options.filters`); one subscription per call. */
  async subscribe(entity, options, onNotification) {
    const sid = ++this.#next;
    const queue = [];
    const waiters = [];
    // Notifications are queued for `for await` only once iteration has started (as SpecClient does).
    const entry = { onNotification, onError: options?.onError, queue, waiters, iterating: false };
    const value = await this.#open(this.#subs, sid, entry, { t: 'subscribe', sid, entity, options: withoutFunctions(options ?? {}) });
    const unsubscribe = async () => {
      if (!this.#subs.delete(sid) || this.#ended) return;
      for (const w of waiters.splice(0)) w({ done: true, value: undefined });
      await this.#call({ t: 'unsubscribe', sid });
    };
    return {
      /** The server's id when subscribed (a SpecClient's changes after a reconnect; this one keeps the first). */
      subscriptionId: value.subscriptionId,
      unsubscribe,
      next: () => {
        entry.iterating = true;
        if (queue.length) return Promise.resolve({ done: false, value: queue.shift() });
        if (!this.#subs.has(sid)) return Promise.resolve({ done: true, value: undefined });
        return new Promise((r) => waiters.push(r));
      },
      finish: async () => { await unsubscribe(); return { done: true, value: undefined }; },
      [Symbol.asyncIterator]() { return { next: this.next, return: this.finish }; },
    };
  }

  /** A live query kept current by the worker (one per identical query for all tabs). */
  async liveQuery(entity, options, onChange) {
    const lid = ++this.#next;
    const entry = { rows: [], onChange, onError: options?.onError };
    const value = await this.#open(this.#lives, lid, entry, { t: 'live', lid, entity, options: withoutFunctions(options ?? {}) });
    entry.rows = value.rows;
    onChange?.(value.rows, { added: value.rows, updated: [], removed: [] });
    return {
      rows: () => entry.rows,
      subscriptionId: value.subscriptionId,
      close: async () => {
        if (!this.#lives.delete(lid)) return;
        this.#port.postMessage({ t: 'closeLive', lid });
      },
    };
  }

  /** Leave the shared connection (it ends when the last tab leaves). */
  async end() {
    if (this.#ended) return;
    this.#port.postMessage({ t: 'bye' });
    this.#fail(specError({ code: 'closed', message: 'the client was ended' }));
    this.#port.close();
    this.#lock?.release();
    globalThis.removeEventListener?.('pagehide', this.#onPageHide);
  }

  /** Keeps `entry` under `id` in `table` (where the worker's messages find it) while the
   * worker opens it with `message`; takes it out again if that fails. */
  async #open(table, id, entry, message) {
    table.set(id, entry);
    try {
      return await this.#call(message);
    } catch (e) {
      table.delete(id);
      throw e;
    }
  }

  #invoke(method, args) {
    while (args.length && args[args.length - 1] === undefined) args.pop();
    // A plain JSON-like copy: reactive proxies, Dates and functions cannot be posted as they are.
    return this.#call({ t: 'call', method, args: withoutFunctions(args) });
  }

  #call(message) {
    if (this.#ended) return Promise.reject(this.#ended);
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      try {
        this.#port.postMessage({ ...message, id });
      } catch (e) {
        reject(specError({ code: 'invalid_argument', message: `cannot send this request to the SharedWorker: ${e.message}` }));
        return;
      }
      this.#pending.set(id, { resolve, reject });
    });
  }

  #fail(error) {
    this.#ended ??= error;
    this.connected = false;
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
    for (const { waiters } of this.#subs.values()) for (const w of waiters.splice(0)) w({ done: true, value: undefined });
    this.#subs.clear();
    this.#lives.clear();
  }

  #emit(name, arg) {
    for (const listener of this.#listeners.get(name) ?? []) listener(arg);
  }

  #receive(m) {
    switch (m.t) {
      case 'ok': case 'err': {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (m.t === 'ok') p?.resolve(m.value);
        else p?.reject(specError(m.error));
        break;
      }
      case 'event':
        if (m.name === 'connect') this.connected = true;
        if (m.name === 'offline' || m.name === 'close') this.connected = false;
        this.#emit(m.name, m.name === 'error' ? specError(m.arg) : m.arg);
        break;
      case 'change': {
        const live = this.#lives.get(m.lid);
        if (!live) break;
        live.rows = m.rows;
        live.onChange?.(m.rows, m.change);
        break;
      }
      case 'liveError':
        this.#lives.get(m.lid)?.onError?.(specError(m.error));
        break;
      case 'subError':
        this.#subs.get(m.sid)?.onError?.(specError(m.error));
        break;
      case 'note': {
        const sub = this.#subs.get(m.sid);
        if (!sub) break;
        sub.onNotification?.(m.n);
        const waiter = sub.waiters.shift();
        if (waiter) waiter({ done: false, value: m.n });
        else if (sub.iterating && sub.queue.length < QUEUE_LIMIT) sub.queue.push(m.n);
        break;
      }
    }
  }
}
