// The browser driver of the MQTT client (`MqttClient`): the WebSocket
// (subprotocol `mqtt`, binary frames), keep-alive and reconnection timers,
// page events, the IndexedDB outbox, listeners and promises. Everything MQTT
// (packets, the session, QoS flows, topic rules, reconnection delays) is the
// sans-IO session in Rust (`crates/mqtt-session`), reached through
// `MqttCore` (`client-wasm/src/mqtt/core.rs`, which documents the arrays
// that cross the boundary). Written in JS because browser plumbing costs
// far fewer bytes here than through wasm-bindgen (issue 15: the MQTT-only
// entry point, this file plus the core, stays under 40 KB gzip).
//
// Delivery rule: the session acknowledges a QoS 1/2 message when the driver
// takes it (`core.event()`), so events are taken one at a time and handed to
// the application at once. After the first CONNACK resolves `open()` /
// `connect()`, taking events pauses for one task: the code awaiting it runs
// first and can register its `message` listener before the messages of a
// resumed session (which may arrive in the same WebSocket message as
// CONNACK) are delivered and acknowledged. Listeners may also be registered
// before connecting (`new MqttClient(url, options)`, `on`, then `open()`).

/** The wasm module's `MqttCore` class, given by the entry module (or `install_core` in Rust tests). */
let Core;

/** Called once with the wasm module's `MqttCore` class. */
export function setCore(core) {
  Core = core;
}

const EVENTS = ['message', 'connect', 'reconnect', 'offline', 'close', 'error'];
const encoder = new TextEncoder();

function mqttError(code, message) {
  const e = new Error(message);
  e.name = 'MqttError';
  e.code = code;
  return e;
}

/** An error thrown by the core (`"CODE message"`) as an MqttError; others as they are. */
function fromCore(e) {
  if (typeof e !== 'string') return e;
  const at = e.indexOf(' ');
  return mqttError(e.slice(0, at), e.slice(at + 1));
}

const ended = () => mqttError('ENDED', 'the client was ended before the operation completed');
const bad = (message) => mqttError('INVALID_OPTIONS', message);
const isObject = (v) => v !== null && typeof v === 'object';
const get = (o, key) => (isObject(o) ? o[key] : undefined);
const typed = (type) => (o, key) => {
  const v = get(o, key);
  return typeof v === type ? v : undefined;
};
const str = typed('string');
const num = typed('number');
const bool = typed('boolean');
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

function u16(v, what) {
  if (v >= 0 && v <= 65535) return v;
  throw bad(`${what} must be between 0 and 65535`);
}

/** `qos` of an options object: 0 (default), 1 or 2. */
function qosOf(o) {
  const q = num(o, 'qos') ?? 0;
  if (q === 0 || q === 1 || q === 2) return q;
  throw bad('qos must be 0, 1 or 2');
}

/** Bytes of a string (UTF-8), a Uint8Array or an ArrayBuffer; empty for none; undefined if invalid. */
function bytesOf(v) {
  if (typeof v === 'string') return encoder.encode(v);
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (v === undefined || v === null) return new Uint8Array(0);
  return undefined;
}

/** `o.userProperties` (`{name: value | value[]}`, MQTT.js's shape) as `[name, value, ...]`. */
function userPairs(o) {
  const up = get(o, 'userProperties');
  const out = [];
  if (!isObject(up)) return out;
  for (const [name, value] of Object.entries(up)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v !== 'string') throw bad('userProperties values must be strings or arrays of strings');
      out.push(name, v);
    }
  }
  return out;
}

/** Publish properties as the core's `props` array (undefined for none). */
function propsArray(p) {
  if (!isObject(p)) return undefined;
  const correlation = bytesOf(get(p, 'correlationData'));
  return [
    str(p, 'contentType'),
    str(p, 'responseTopic'),
    correlation?.length ? correlation : undefined,
    num(p, 'messageExpiryInterval'),
    bool(p, 'payloadFormatIndicator'),
    ...userPairs(p),
  ];
}

/** The core's `props` array as MQTT.js's properties object. */
function propsObject(a) {
  const o = {};
  const names = ['contentType', 'responseTopic', 'correlationData', 'messageExpiryInterval', 'payloadFormatIndicator'];
  names.forEach((name, i) => {
    if (a[i] !== undefined) o[name] = a[i];
  });
  if (a.length > 5) {
    const up = {};
    for (let i = 5; i + 1 < a.length; i += 2) {
      const [name, value] = [a[i], a[i + 1]];
      const prev = Object.hasOwn(up, name) ? up[name] : undefined;
      const next = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
      Object.defineProperty(up, name, { value: next, enumerable: true, writable: true, configurable: true });
    }
    o.userProperties = up;
  }
  return o;
}

/** A publish from `publish(topic, payload, options)` (or an outbox record). */
function publishOf(topic, payload, o) {
  if (typeof topic !== 'string') throw mqttError('INVALID_TOPIC', 'topic must be a string');
  const bytes = bytesOf(payload);
  if (!bytes) throw mqttError('INVALID_PAYLOAD', 'payload must be a string or a Uint8Array');
  return { topic, payload: bytes, qos: qosOf(o), retain: bool(o, 'retain') ?? false, props: propsArray(get(o, 'properties')) };
}

function filterList(v) {
  const list = typeof v === 'string' ? [v] : v;
  if (Array.isArray(list) && list.length && list.every((f) => typeof f === 'string')) return list;
  throw mqttError('INVALID_TOPIC', 'expected a topic filter string or a non-empty array of them');
}

/** `mqttspec_` and 8 random hex digits. */
const randomClientId = () => `mqttspec_${Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0')}`;

/** The connect options (names follow MQTT.js) checked, with defaults. */
function parseOptions(o) {
  const version = num(o, 'protocolVersion') ?? 4;
  if (version !== 4 && version !== 5) throw bad('protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5)');
  const user = str(o, 'username');
  const pass = str(o, 'password');
  const props = get(o, 'properties');
  const expiry = num(props, 'sessionExpiryInterval') ?? num(o, 'sessionExpiryInterval');
  const store = get(o, 'store');
  if (store !== undefined && store !== 'memory' && store !== 'indexeddb') throw bad("store must be 'memory' or 'indexeddb'");
  if (store === 'indexeddb' && str(o, 'clientId') === undefined) {
    throw bad("store: 'indexeddb' needs a fixed clientId: the outbox is found again by it after a reload");
  }
  return {
    clientId: str(o, 'clientId') ?? randomClientId(),
    v5: version === 5,
    keepalive: u16(num(o, 'keepalive') ?? 60, 'keepalive (seconds)'),
    clean: bool(o, 'clean') ?? true,
    login: user !== undefined || pass !== undefined ? [user ?? '', pass ?? ''] : undefined,
    connectTimeout: clamp(num(o, 'connectTimeout') ?? 30000, 0, 0xffffffff),
    resubscribe: bool(o, 'resubscribe') ?? true,
    maxOffline: clamp(num(o, 'maxOfflineQueue') ?? 1000, 0, 0xffffffff),
    maxPacketSize: clamp(num(o, 'maxPacketSize') ?? 1 << 20, 16, 268435455),
    topicAliasMaximum: u16(num(o, 'topicAliasMaximum') ?? 0, 'topicAliasMaximum'),
    sessionExpiry: expiry === undefined ? undefined : clamp(expiry, 0, 0xffffffff),
    user: userPairs(props),
    reconnectPeriod: clamp(num(o, 'reconnectPeriod') ?? 1000, 0, 0xffffffff),
    maxReconnectDelay: clamp(num(o, 'maxReconnectDelay') ?? 30000, 0, 0xffffffff),
    will: willOf(get(o, 'will')),
    persistent: store === 'indexeddb',
  };
}

function willOf(w) {
  if (!isObject(w)) return undefined;
  const topic = str(w, 'topic');
  if (topic === undefined) throw bad('will.topic is required');
  const payload = bytesOf(get(w, 'payload'));
  if (!payload) throw bad('will.payload must be a string or a Uint8Array');
  const p = get(w, 'properties');
  return [topic, payload, qosOf(w), bool(w, 'retain') ?? false, num(p, 'willDelayInterval'), propsArray(p)];
}

/** An error for a negative ack, naming the MQTT 5 reason code. */
function refused(code, what, reason) {
  const names = { 0x87: 'not authorized', 0x8f: 'topic filter invalid', 0x90: 'topic name invalid', 0x95: 'packet too large', 0x97: 'quota exceeded', 0x9e: 'shared subscriptions not supported', 0xa2: 'wildcard subscriptions not supported' };
  const name = names[reason];
  return mqttError(code, `${what} (reason code 0x${reason.toString(16).padStart(2, '0')}${name ? `: ${name}` : ''})`);
}

/** Call `f(...args)`; an exception of application code is reported, not thrown into the driver. */
function call(f, ...args) {
  try {
    f(...args);
  } catch (e) {
    (globalThis.reportError ?? console.error)(e);
  }
}

// Timers that keep time in a background tab. Browsers throttle the
// main-thread timers of hidden pages (Chrome: one wake-up per second, then
// per minute after five minutes hidden), which makes a keep-alive ping leave
// after the broker gave up on the connection (the most reported browser
// problem of MQTT.js, which moved its timers into a Worker). Timers of a
// dedicated Worker are not throttled that way, so they run in one small
// Worker per page made from a Blob URL: the page posts `[id, delay]` (or
// `[id, -1]` to cancel) and the Worker posts `id` back. Where no Worker can
// be made (a CSP without `worker-src blob:`, or inside a Worker) the
// main-thread `setTimeout` is used.
const WORKER_JS = 'const t=new Map();onmessage=({data:[i,d]})=>{clearTimeout(t.get(i));t.delete(i);if(d>=0)t.set(i,setTimeout(()=>{t.delete(i);postMessage(i)},d))}';
let clock; // undefined: not tried yet; null: no Worker
const waiting = new Map();
let nextTimer = 0;

function startClock() {
  try {
    const url = URL.createObjectURL(new Blob([WORKER_JS], { type: 'text/javascript' }));
    const worker = new Worker(url);
    URL.revokeObjectURL(url);
    worker.onmessage = ({ data }) => {
      const f = waiting.get(data);
      waiting.delete(data);
      f?.();
    };
    return worker;
  } catch {
    return null;
  }
}

/** Run `f` once after `ms`; returns the function that cancels it. */
function later(ms, f) {
  if (clock === undefined) clock = startClock();
  if (clock) {
    const id = ++nextTimer;
    clock.postMessage([id, ms]);
    waiting.set(id, f);
    return () => waiting.delete(id) && clock.postMessage([id, -1]);
  }
  const t = setTimeout(f, ms);
  return () => clearTimeout(t);
}

// The persistent outbox (`store: 'indexeddb'`): QoS 1/2 publishes survive a
// page reload. One database per broker URL and client id, one object store
// of records `{seq, pkid, topic, payload, qos, retain, properties?,
// released}` keyed by `seq` (the order of publishing). A publish is written,
// with its packet identifier, before the session sends it (held, then
// released once the write committed); it is marked `released` when PUBREC
// hands a QoS 2 message to the broker, and deleted when its flow completes.
// A client made with the same URL and client id reads the records before it
// connects and gives them back to the session, which resends each with its
// packet identifier (DUP when the broker kept the session) or only its
// PUBREL: QoS 2 arrives exactly once and QoS 1 at least once across the
// reload, as long as the broker keeps the session.
const STORE = 'publishes';

function storeError(what, e) {
  const detail = e?.message ?? (typeof e === 'string' ? e : undefined);
  return mqttError('STORE_FAILED', `the IndexedDB outbox ${what}${detail ? `: ${detail}` : ''} (the publish is sent without it; check storage quota and private browsing)`);
}

/** The result of an IndexedDB request, rejected with `what` on failure. */
function settled(request, what) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(storeError(what, request.error));
  });
}

class Outbox {
  /** Open (or create) the outbox of `clientId` at `url`: `[outbox, restored publishes]`. */
  static async open(url, clientId) {
    if (!globalThis.indexedDB) throw storeError('needs IndexedDB, which this environment lacks');
    let request;
    try {
      request = indexedDB.open(`mqttspec-outbox ${clientId} ${url}`, 1);
    } catch (e) {
      throw storeError('cannot be opened', e);
    }
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'seq' });
    const db = await settled(request, 'cannot be opened');
    let records;
    try {
      records = db.transaction(STORE).objectStore(STORE).getAll();
    } catch (e) {
      throw storeError('cannot be read', e);
    }
    const outbox = new Outbox(db);
    return [outbox, outbox.#restore(await settled(records, 'cannot be read'))];
  }

  #db;
  #nextSeq = 1;
  /** Packet id -> seq of the records held. */
  #records = new Map();

  constructor(db) {
    this.#db = db;
  }

  #restore(records) {
    const restored = [];
    for (const record of records) {
      this.#nextSeq = Math.max(this.#nextSeq, record.seq + 1);
      let p;
      try {
        p = publishOf(record.topic, record.payload, record);
      } catch {
        continue; // a record this version cannot read
      }
      if (!record.pkid || !p.qos) continue;
      this.#records.set(record.pkid, record.seq);
      restored.push({ ...p, pkid: record.pkid, released: record.released === true });
    }
    return restored;
  }

  #store() {
    return this.#db.transaction(STORE, 'readwrite').objectStore(STORE);
  }

  /** Write publish `p` with packet id `pkid`; resolves once committed, with the error if it failed. */
  put(pkid, p) {
    const seq = this.#nextSeq++;
    const record = { seq, pkid, topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, released: false };
    if (p.props) record.properties = propsObject(p.props);
    return new Promise((resolve) => {
      try {
        const store = this.#store();
        store.put(record);
        this.#records.set(pkid, seq);
        const tx = store.transaction;
        tx.oncomplete = () => resolve();
        tx.onerror = tx.onabort = () => resolve(storeError('could not write a publish', tx.error));
      } catch (e) {
        resolve(storeError('could not write a publish', e));
      }
    });
  }

  /** QoS 2 publish `pkid` was received by the broker: only PUBREL is left. */
  markReleased(pkid) {
    const seq = this.#records.get(pkid);
    if (seq === undefined) return;
    try {
      const store = this.#store();
      const read = store.get(seq);
      read.onsuccess = () => {
        if (isObject(read.result)) store.put({ ...read.result, released: true, payload: new Uint8Array(0) });
      };
    } catch {
      // The record is resent whole after a reload: QoS 2 still arrives once.
    }
  }

  /** The flow of `pkid` completed (or failed): forget it. */
  remove(pkid) {
    const seq = this.#records.get(pkid);
    if (seq === undefined) return;
    this.#records.delete(pkid);
    try {
      this.#store().delete(seq);
    } catch {
      // Left over: resent after a reload, which the broker deduplicates (QoS 2) or tolerates (QoS 1).
    }
  }
}

/** An MQTT over WebSocket connection (see the TypeScript declarations). */
export class MqttClient {
  #url;
  #o;
  #core;
  #ws = null;
  #listeners = Object.fromEntries(EVENTS.map((e) => [e, []]));
  /** `[filter, subscription]` of the message handlers given to `subscribe`. */
  #handlers = [];
  #connectReplies = [];
  #opened = false;
  #connectedOnce = false;
  /** Events are not taken (and so not acknowledged) until the code awaiting `open()` had its turn. */
  #holding = false;
  /** `#pump` is taking events (a listener that publishes only flushes). */
  #pumping = false;
  #sessionPresent = false;
  #ended = false;
  #publishes = new Map();
  #subscribes = new Map();
  #unsubscribes = new Map();
  #cancelTimer = null;
  #timerAt = 0;
  #cancelReconnect = null;
  #unlistenPage = null;
  #outbox = null;
  /** `[pkid, publish]` held before the outbox was open, written once it is. */
  #unstored = [];

  /**
   * A client for `url` that is not connected yet: register listeners with
   * `on`, then call `open()`. Throws an MqttError for invalid options.
   */
  constructor(url, options) {
    if (!Core) throw new Error('mqttspec-wasm: call the default export (init) before making a client');
    const o = parseOptions(options);
    this.#url = String(url);
    this.#o = o;
    this.#core = new Core(o.clientId, o.v5, o.keepalive, o.clean, o.login, o.connectTimeout, o.resubscribe, o.maxOffline, o.maxPacketSize, o.topicAliasMaximum, o.sessionExpiry, o.user, o.reconnectPeriod, o.maxReconnectDelay);
    if (o.will) this.#core.will(...o.will);
  }

  /** `new MqttClient(url, options).open()`. */
  static connect(url, options) {
    try {
      return new MqttClient(url, options).open();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Open the connection (the first call only). Resolves with the client once
   * the broker accepted the first connection; rejects if that attempt fails
   * or the client was ended. Later losses are handled by reconnecting.
   */
  open() {
    if (this.#ended) return Promise.reject(ended());
    if (this.#connectedOnce) return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      this.#connectReplies.push([resolve, reject]);
      if (this.#opened) return;
      this.#opened = true;
      this.#listenPage();
      if (this.#o.persistent) this.#openOutbox();
      else this.#openSocket();
    });
  }

  /** The MQTT client identifier (given or generated). */
  get clientId() {
    return this.#o.clientId;
  }

  /** True while the connection is up (CONNACK received). */
  get connected() {
    return this.#core.connected();
  }

  /** `sessionPresent` of the last CONNACK (false before the first). */
  get sessionPresent() {
    return this.#sessionPresent;
  }

  /** Listen to `message`, `connect`, `reconnect`, `offline`, `close` or `error`. */
  on(event, listener) {
    this.#listenersOf(event).push(listener);
    return this;
  }

  /** Remove a listener added with `on`. */
  off(event, listener) {
    const list = this.#listenersOf(event);
    const at = list.indexOf(listener);
    if (at >= 0) list.splice(at, 1);
    return this;
  }

  /**
   * Publish `payload` (string = UTF-8, or bytes). Resolves when the QoS flow
   * completes, at once for QoS 0; while offline the message waits in the
   * bounded offline queue. `options.store: false` keeps it out of the
   * IndexedDB outbox.
   */
  publish(topic, payload, options) {
    return this.#request((resolve, reject) => {
      const p = publishOf(topic, payload, options);
      const persist = this.#o.persistent && get(options, 'store') !== false;
      const pkid = this.#core.publish(p.topic, p.payload, p.qos, p.retain, p.props, persist ? 1 : 0, 0);
      if (!pkid) return resolve();
      this.#publishes.set(pkid, [resolve, reject]);
      if (persist) this.#store(pkid, p);
    });
  }

  /**
   * Subscribe to one filter or several. Resolves with what was granted;
   * rejects if the broker refused a filter. `onMessage`, if given, receives
   * the messages matching these filters (besides `on('message')`).
   */
  subscribe(filter, options, onMessage) {
    return this.#request((resolve, reject) => {
      const filters = filterList(filter);
      const pkid = this.#core.subscribe(filters, qosOf(options));
      const sub = { filters, onMessage: typeof onMessage === 'function' ? onMessage : undefined, resolve, reject };
      if (sub.onMessage) for (const f of filters) this.#handlers.push([f, sub]);
      this.#subscribes.set(pkid, sub);
    });
  }

  /** Unsubscribe from one filter or several (their `onMessage` handlers stop at once). */
  unsubscribe(filter) {
    return this.#request((resolve, reject) => {
      const filters = filterList(filter);
      this.#handlers = this.#handlers.filter(([f]) => !filters.includes(f));
      this.#unsubscribes.set(this.#core.unsubscribe(filters), [resolve, reject]);
    });
  }

  /**
   * Drop the connection without DISCONNECT (the broker publishes the will)
   * and reconnect with the usual backoff, resending what was not acknowledged.
   */
  reconnect() {
    if (!this.#ended && this.#ws) this.#closed();
  }

  /**
   * Close cleanly (DISCONNECT: the will is not published), stop reconnecting
   * and reject pending operations with code `ENDED`.
   */
  end() {
    if (!this.#ended) {
      this.#core.end();
      this.#flush();
      const wasOpen = this.#ws !== null;
      this.#shutdown(ended());
      if (wasOpen) this.#emit('close', {}); // no `reconnectInMs`: no reconnection
    }
    return Promise.resolve();
  }

  /** A promise for an operation: `start` registers it; errors reject it; the session is pumped after. */
  #request(start) {
    const promise = new Promise((resolve, reject) => {
      try {
        start(resolve, reject);
      } catch (e) {
        reject(fromCore(e));
      }
    });
    this.#pump();
    return promise;
  }

  #listenersOf(event) {
    if (!EVENTS.includes(event)) throw bad(`unknown event '${event}': use ${EVENTS.slice(0, -1).join(', ')} or error`);
    return this.#listeners[event];
  }

  #emit(event, ...args) {
    for (const f of [...this.#listeners[event]]) call(f, ...args);
  }

  /** `online` and a shown tab wake a client up (see `#wake`). Absent in a Worker. */
  #listenPage() {
    if (typeof window === 'undefined' || !window.document) return;
    const wake = () => this.#wake();
    const shown = () => document.visibilityState === 'visible' && this.#wake();
    window.addEventListener('online', wake);
    document.addEventListener('visibilitychange', shown);
    this.#unlistenPage = () => {
      window.removeEventListener('online', wake);
      document.removeEventListener('visibilitychange', shown);
    };
  }

  /**
   * The page is back (online again, or shown after being hidden): a
   * connection that heard nothing for longer than the keep alive is presumed
   * dead and replaced, and a client waiting to reconnect does so now instead
   * of after its backoff delay (which a hidden tab's timers may stretch).
   */
  #wake() {
    if (this.#core.stale(Date.now())) {
      this.#closed(mqttError('KEEPALIVE_TIMEOUT', 'nothing from the broker for longer than the keep alive while the page was hidden or offline: reconnecting now'));
    }
    if (!this.#ended && this.#cancelReconnect) {
      this.#cancelReconnect();
      this.#cancelReconnect = null;
      this.#core.backoffReset();
      this.#reconnect();
    }
  }

  /**
   * Open a WebSocket to the broker. Its callbacks hold the client: an open
   * connection keeps it alive even if the page keeps no reference (as with
   * MQTT.js); `end()` lets it go.
   */
  #openSocket() {
    let ws;
    try {
      ws = new WebSocket(this.#url, 'mqtt');
    } catch (e) {
      return this.#closed(mqttError('INVALID_URL', e?.message ?? 'invalid WebSocket URL'));
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.#step(() => this.#core.start(Date.now()));
    ws.onmessage = ({ data }) => {
      if (!(data instanceof ArrayBuffer)) {
        return this.#closed(mqttError('PROTOCOL_ERROR', 'protocol violation by the server: text WebSocket message: MQTT needs binary messages'));
      }
      this.#step(() => this.#core.input(new Uint8Array(data), Date.now()));
    };
    ws.onclose = ({ code }) => this.#closed(this.#connectedOnce ? undefined : mqttError('CONNECTION_FAILED', `could not connect to ${this.#url} (WebSocket closed with code ${code}): check the URL, that the broker listens for MQTT over WebSocket, and TLS`));
    this.#detachSocket();
    this.#ws = ws;
  }

  /** Feed the core (`feed` may throw its error), deliver what it produced, then close on an error. */
  #step(feed) {
    let error;
    try {
      feed();
    } catch (e) {
      error = fromCore(e);
    }
    this.#pump(); // what arrived before a bad packet is still delivered
    if (error) this.#closed(error);
  }

  #detachSocket() {
    const ws = this.#ws;
    if (!ws) return;
    this.#ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.close();
  }

  /** The socket closed or was given up: keep the session, report, and reconnect unless ended. */
  #closed(error) {
    const wasConnected = this.#core.connected();
    this.#core.lost();
    this.#detachSocket();
    this.#stopTimer();
    if (error) this.#emit('error', error);
    if (!this.#connectedOnce) {
      // The first attempt decides the open() promise: no retry.
      this.#shutdown(error ?? mqttError('CONNECTION_FAILED', 'the connection closed before CONNACK'));
      this.#emit('close', {});
      return;
    }
    if (wasConnected) this.#emit('offline');
    const info = {};
    if (!this.#ended && this.#o.reconnectPeriod > 0) {
      // `close` tells when the next attempt starts, for a countdown.
      info.reconnectInMs = this.#core.backoff(Math.random());
      this.#cancelReconnect = later(info.reconnectInMs, () => {
        this.#cancelReconnect = null;
        if (!this.#ended) this.#reconnect();
      });
    }
    this.#emit('close', info);
  }

  #reconnect() {
    this.#emit('reconnect');
    if (!this.#ended) this.#openSocket();
  }

  /** Everything stops: socket closed, timers cancelled, operations rejected with `error`. */
  #shutdown(error) {
    this.#ended = true;
    this.#detachSocket();
    this.#stopTimer();
    this.#cancelReconnect?.();
    this.#cancelReconnect = null;
    this.#unlistenPage?.();
    this.#unlistenPage = null;
    this.#unstored = []; // their promises are in #publishes, rejected below
    const pending = [...this.#connectReplies, ...this.#publishes.values(), ...this.#unsubscribes.values()];
    for (const [, reject] of pending) reject(error);
    for (const sub of this.#subscribes.values()) sub.reject(error);
    this.#connectReplies = [];
    this.#publishes.clear();
    this.#subscribes.clear();
    this.#unsubscribes.clear();
  }

  /** Write every packet the session produced, one per WebSocket message. */
  #flush() {
    for (let bytes; (bytes = this.#core.transmit()); ) {
      try {
        this.#ws?.send(bytes);
      } catch {
        // Not open (yet, or any more): the session resends after reconnecting.
      }
    }
  }

  #stopTimer() {
    this.#cancelTimer?.();
    this.#cancelTimer = null;
  }

  /** (Re)arm the keep-alive / CONNACK timer if the session's deadline is earlier. */
  #armTimer() {
    const deadline = this.#core.deadline();
    if (deadline < 0 || (this.#cancelTimer && deadline >= this.#timerAt)) return;
    this.#stopTimer();
    this.#timerAt = deadline;
    this.#cancelTimer = later(clamp(deadline - Date.now(), 0, 2 ** 30), () => {
      this.#cancelTimer = null;
      this.#step(() => this.#core.timeout(Date.now()));
    });
  }

  /**
   * Send what the session wants sent, then hand its events to the
   * application one at a time (taking one may queue its acknowledgement),
   * until both are drained or events are held. A listener that calls the
   * client (publish from a message handler) only gets its packets sent: the
   * next event waits until the listener returned, so no listener runs
   * inside another (SpecClient's handlers are Rust closures, which may not
   * be entered twice).
   */
  #pump() {
    if (this.#pumping) return this.#flush();
    this.#pumping = true;
    try {
      for (;;) {
        this.#flush();
        this.#armTimer();
        if (this.#holding) return;
        const event = this.#core.event();
        if (!event) return;
        this.#dispatch(event);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #dispatch(event) {
    const [kind, a, b] = event;
    switch (kind) {
      case 0: return this.#connected(a);
      case 1: return this.#message(...event.slice(1));
      case 2: {
        this.#outbox?.remove(a);
        const reply = this.#publishes.get(a);
        this.#publishes.delete(a);
        if (reply && b < 0x80) reply[0]();
        else reply?.[1](refused('PUBLISH_REFUSED', 'the server refused the publish', b));
        return;
      }
      case 3: return this.#subscribed(a, b);
      case 4: {
        const reply = this.#unsubscribes.get(a);
        this.#unsubscribes.delete(a);
        return reply?.[0]();
      }
      case 5: return this.#outbox?.markReleased(a);
    }
  }

  #connected(sessionPresent) {
    this.#core.backoffReset();
    this.#connectedOnce = true;
    this.#sessionPresent = sessionPresent;
    const replies = this.#connectReplies;
    this.#connectReplies = [];
    if (replies.length) {
      for (const [resolve] of replies) resolve(this);
      // Stop taking events until the code awaiting open() has run.
      this.#holding = true;
      setTimeout(() => {
        this.#holding = false;
        this.#pump();
      }, 0);
    }
    this.#emit('connect', { sessionPresent });
  }

  #message(topic, payload, qos, retain, dup, props) {
    const info = { qos, retain, dup };
    if (props) info.properties = propsObject(props);
    const handlers = this.#handlers.filter(([f]) => this.#core.matches(f, topic));
    this.#emit('message', topic, payload, info);
    for (const [, sub] of handlers) call(sub.onMessage, topic, payload, info);
  }

  #subscribed(pkid, codes) {
    const sub = this.#subscribes.get(pkid);
    if (!sub) return;
    this.#subscribes.delete(pkid);
    const at = codes.findIndex((c) => c >= 0x80);
    if (at < 0) return sub.resolve(sub.filters.map((topic, i) => ({ topic, qos: codes[i] })));
    // A refused filter gets no messages: forget this subscribe's handler for it
    // (an earlier subscribe of the same filter keeps its own).
    const lost = sub.filters.filter((_, i) => codes[i] >= 0x80);
    this.#handlers = this.#handlers.filter(([f, s]) => s !== sub || !lost.includes(f));
    sub.reject(refused('SUBSCRIBE_REFUSED', `the server refused the subscription to ${sub.filters[at]}`, codes[at]));
  }

  /**
   * `store: 'indexeddb'`: open the outbox, give what a previous page left in
   * it back to the session, write the publishes made meanwhile, then connect.
   * Without IndexedDB the first connection fails with `STORE_FAILED`.
   */
  #openOutbox() {
    Outbox.open(this.#url, this.#o.clientId).then(([outbox, restored]) => {
      if (this.#ended) return;
      for (const r of restored) {
        try {
          this.#core.publish(r.topic, r.payload, r.qos, r.retain, r.props, r.released ? 3 : 2, r.pkid);
        } catch {
          // An id taken twice (it cannot be, written by one session): skipped, not sent twice.
        }
      }
      this.#outbox = outbox;
      const unstored = this.#unstored;
      this.#unstored = [];
      for (const [pkid, p] of unstored) this.#store(pkid, p);
      this.#openSocket();
    }, (error) => {
      this.#shutdown(error);
      this.#emit('error', error);
    });
  }

  /**
   * Write held publish `p` to the outbox, then let the session send it (also
   * when the write failed: the publish goes out, unpersisted, and the
   * application hears of it through an `error` event).
   */
  #store(pkid, p) {
    // A copy: the page may reuse its array before the outbox is open.
    if (!this.#outbox) return this.#unstored.push([pkid, { ...p, payload: p.payload.slice() }]);
    this.#outbox.put(pkid, p).then((error) => {
      if (error) this.#emit('error', error);
      this.#step(() => this.#core.release(pkid));
    });
  }
}
