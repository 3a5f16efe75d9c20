// MqttClient (client-wasm, in headless Chromium) against mosquitto and
// MQTT.js (in node): interop both ways, the JS API as web developers use it
// (Promises, events, Error codes), and the hand-written TypeScript types.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { WebSocketServer } from 'ws';
import { setup, root, startRelay } from './mqtt_client/harness.mjs';
import { mqttEntrySize, MQTT_ENTRY_BUDGET } from './mqtt_client/size.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.stop(); });

const unique = (name) => `nodetest/${name}/${Math.random().toString(36).slice(2)}`;

async function mqttjs(version = 4) {
  const c = await mqtt.connectAsync(env.broker.tcpUrl, { protocolVersion: version, reconnectPeriod: 0 });
  return c;
}

test('MQTT.js publishes, our client receives QoS 0/1/2, text and binary', async () => {
  for (const version of [4, 5]) {
    const base = unique(`to-wasm-v${version}`);
    const { page } = env;
    await page.evaluate(async ({ url, base, version }) => {
      window.got = [];
      window.c = await MqttClient.connect(url, { protocolVersion: version });
      window.c.on('message', (topic, payload, info) => {
        window.got.push({ topic, payload: Array.from(payload), qos: info.qos, retain: info.retain,
          props: info.properties?.userProperties ?? null });
      });
      const granted = await window.c.subscribe(`${base}/#`, { qos: 2 });
      if (granted[0].qos !== 2 || granted[0].topic !== `${base}/#`) throw new Error('granted ' + JSON.stringify(granted));
    }, { url: env.broker.wsUrl, base, version });
    const js = await mqttjs(version);
    await js.publishAsync(`${base}/q0`, 'zero', { qos: 0 });
    await js.publishAsync(`${base}/q1`, Buffer.from([0, 1, 2, 255]), { qos: 1 });
    const props = version === 5 ? { properties: { userProperties: { origin: 'mqtt.js' } } } : {};
    await js.publishAsync(`${base}/q2`, 'two', { qos: 2, ...props });
    await js.endAsync();
    await page.waitForFunction(() => window.got.length >= 3, null, { timeout: 20000 });
    const got = await page.evaluate(() => { const g = window.got; window.c.end(); return g; });
    const by = Object.fromEntries(got.map((m) => [m.topic.split('/').pop(), m]));
    assert.equal(got.length, 3);
    assert.deepEqual(by.q0.payload, [...Buffer.from('zero')]);
    assert.equal(by.q0.qos, 0);
    assert.deepEqual(by.q1.payload, [0, 1, 2, 255]);
    assert.equal(by.q1.qos, 1);
    assert.equal(by.q2.qos, 2);
    if (version === 5) assert.deepEqual(by.q2.props, { origin: 'mqtt.js' });
  }
});

test('our client publishes, MQTT.js receives QoS 0/1/2 with MQTT 5 properties and retain', async () => {
  for (const version of [4, 5]) {
    const base = unique(`from-wasm-v${version}`);
    const js = await mqttjs(version);
    const received = [];
    js.on('message', (topic, payload, packet) => received.push({ topic, payload, packet }));
    await js.subscribeAsync(`${base}/#`, { qos: 2 });
    await env.page.evaluate(async ({ url, base, version }) => {
      const c = await MqttClient.connect(url, { protocolVersion: version });
      await c.publish(`${base}/text`, 'héllo', { qos: 0 });
      await c.publish(`${base}/bytes`, new Uint8Array([9, 8, 7]), { qos: 1 });
      await c.publish(`${base}/props`, '{"t":21.5}', {
        qos: 2,
        properties: { contentType: 'application/json', userProperties: { unit: 'C', tag: ['a', 'b'] } },
      });
      await c.publish(`${base}/kept`, 'retained', { qos: 1, retain: true });
      await c.end();
    }, { url: env.broker.wsUrl, base, version });
    const deadline = Date.now() + 20000;
    while (received.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const by = Object.fromEntries(received.map((m) => [m.topic.split('/').pop(), m]));
    assert.equal(received.length, 4, JSON.stringify(received.map((m) => m.topic)));
    assert.equal(by.text.payload.toString(), 'héllo');
    assert.deepEqual([...by.bytes.payload], [9, 8, 7]);
    assert.equal(by.bytes.packet.qos, 1);
    assert.equal(by.props.packet.qos, 2);
    if (version === 5) {
      assert.equal(by.props.packet.properties.contentType, 'application/json');
      assert.deepEqual({ ...by.props.packet.properties.userProperties }, { unit: 'C', tag: ['a', 'b'] });
    }
    await js.endAsync();
    // A late MQTT.js subscriber gets the retained message.
    const late = await mqttjs(version);
    const retained = new Promise((resolve) => late.on('message', (t, p, packet) => resolve({ p: p.toString(), retain: packet.retain })));
    await late.subscribeAsync(`${base}/kept`, { qos: 1 });
    assert.deepEqual(await retained, { p: 'retained', retain: true });
    await late.publishAsync(`${base}/kept`, '', { qos: 1, retain: true });
    await late.endAsync();
  }
});

test('JS API: errors are Errors with codes, events fire in order, end() rejects pending work', async () => {
  const result = await env.page.evaluate(async ({ url, topic }) => {
    const out = {};
    const c = await MqttClient.connect(url, { reconnectPeriod: 50, keepalive: 30 });
    out.connected = c.connected;
    // Options are optional: QoS 0, no retain.
    out.defaults = await c.subscribe(topic + '/defaults');
    await c.publish(topic + '/defaults', 'plain');
    try { await c.publish('a/+/b', 'x'); } catch (e) {
      out.badTopic = { isError: e instanceof Error, name: e.name, code: e.code, message: e.message };
    }
    try { await c.subscribe([], {}); } catch (e) { out.emptyFilters = e.code; }
    try { c.on('nope', () => {}); } catch (e) { out.badEvent = e.code; }
    try { await MqttClient.connect(url, { protocolVersion: 3 }); } catch (e) { out.badOption = e.code; }
    const events = [];
    for (const name of ['connect', 'offline', 'close', 'reconnect', 'error']) c.on(name, () => events.push(name));
    // `close` always gets an info object; `reconnectInMs` only when a reconnection is planned.
    const closes = [];
    c.on('close', (info) => closes.push(info === null || typeof info !== 'object' ? `not an object: ${info}`
      : 'reconnectInMs' in info ? 'reconnect' : 'final'));
    const back = new Promise((resolve) => c.on('connect', resolve));
    c.reconnect();
    out.connectedAfterDrop = c.connected;
    // Published while offline: delivered after reconnecting.
    const self = [];
    const delivered = new Promise((resolve) => c.subscribe(topic, { qos: 1 }, (t, p) => { self.push(new TextDecoder().decode(p)); resolve(); }));
    await c.publish(topic, 'while offline', { qos: 1 });
    out.connack = await back;
    await delivered;
    out.self = self;
    out.events = events;
    // end(): pending operations reject with ENDED, later ones too.
    const pending = c.publish(topic, 'x', { qos: 1 }).then(() => 'resolved', (e) => e.code);
    await c.end();
    out.pending = await pending;
    out.afterEnd = await c.publish(topic, 'late', { qos: 1 }).then(() => 'resolved', (e) => e.code);
    out.connectedAfterEnd = c.connected;
    out.closes = closes;
    try { await MqttClient.connect('ws://127.0.0.1:9/', { connectTimeout: 3000 }); } catch (e) { out.refused = e.code; }
    return out;
  }, { url: env.broker.wsUrl, topic: unique('api') });
  assert.equal(result.connected, true);
  assert.equal(result.defaults[0].qos, 0);
  assert.deepEqual(result.badTopic.isError, true);
  assert.equal(result.badTopic.name, 'MqttError');
  assert.equal(result.badTopic.code, 'INVALID_TOPIC');
  assert.match(result.badTopic.message, /wildcards/);
  assert.equal(result.emptyFilters, 'INVALID_TOPIC');
  assert.equal(result.badEvent, 'INVALID_OPTIONS');
  assert.equal(result.badOption, 'INVALID_OPTIONS');
  assert.equal(result.connectedAfterDrop, false);
  assert.deepEqual(result.self, ['while offline']);
  assert.equal(typeof result.connack.sessionPresent, 'boolean');
  assert.deepEqual(result.events.slice(0, 4), ['offline', 'close', 'reconnect', 'connect']);
  assert.equal(result.pending, 'ENDED');
  assert.equal(result.afterEnd, 'ENDED');
  assert.equal(result.connectedAfterEnd, false);
  assert.deepEqual(result.closes, ['reconnect', 'final']);
  assert.ok(['CONNECTION_FAILED', 'CONNECT_TIMEOUT'].includes(result.refused), result.refused);
  assert.deepEqual(env.errors, [], 'no uncaught page errors');
});

test('a refused SUBSCRIBE does not leave its handler registered', async () => {
  // Scripted MQTT 3.1.1 broker (mosquitto grants everything): refuses filters under
  // `refused/`, grants the rest, and on a granted `ok/#` sends `refused/x` then `ok/1`.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const publish = (topic) => {
    const t = Buffer.from(topic);
    return Buffer.concat([Buffer.from([0x30, 2 + t.length + 1, 0, t.length]), t, Buffer.from('x')]);
  };
  wss.on('connection', (ws) => ws.on('message', (data) => {
    const type = data[0] >> 4;
    if (type === 1) ws.send(Buffer.from([0x20, 2, 0, 0]));
    if (type === 12) ws.send(Buffer.from([0xd0, 0]));
    if (type === 8) {
      let i = 1;
      while (data[i] & 0x80) i++;
      const pkid = [data[i + 1], data[i + 2]];
      const filter = data.subarray(i + 5, i + 5 + data.readUInt16BE(i + 3)).toString();
      ws.send(Buffer.from([0x90, 3, ...pkid, filter.startsWith('refused/') ? 0x80 : 0]));
      if (filter === 'ok/#') { ws.send(publish('refused/x')); ws.send(publish('ok/1')); }
    }
  }));
  try {
    const out = await env.page.evaluate(async (url) => {
      const c = await MqttClient.connect(url, { reconnectPeriod: 0 });
      const all = [];
      c.on('message', (t) => all.push(t));
      const seen = [];
      const refused = await c.subscribe('refused/#', {}, (t) => seen.push(`refused handler: ${t}`))
        .then(() => 'granted', (e) => e.code);
      const okSeen = new Promise((resolve) => c.subscribe('ok/#', {}, (t) => { seen.push(`ok handler: ${t}`); resolve(); }));
      await okSeen;
      await new Promise((r) => setTimeout(r, 100));
      await c.end();
      return { refused, seen, all };
    }, `ws://127.0.0.1:${wss.address().port}`);
    assert.equal(out.refused, 'SUBSCRIBE_REFUSED');
    assert.deepEqual(out.all, ['refused/x', 'ok/1'], 'both messages arrived');
    assert.deepEqual(out.seen, ['ok handler: ok/1']);
  } finally {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
  }
});

test('a connected client keeps working when the page keeps no reference to it', async () => {
  const topic = unique('unreferenced');
  await env.page.evaluate(async ({ url, topic }) => {
    window.unreferenced = [];
    // Only the callbacks survive this function.
    await MqttClient.connect(url, {}).then(async (c) => {
      c.on('message', (t, p) => window.unreferenced.push(new TextDecoder().decode(p)));
      await c.subscribe(topic, { qos: 1 });
    });
    for (let i = 0; i < 5; i++) {
      window.gc();
      await new Promise((r) => setTimeout(r, 20));
    }
  }, { url: env.broker.wsUrl, topic });
  const js = await mqttjs();
  await js.publishAsync(topic, 'still here', { qos: 1 });
  await js.endAsync();
  await env.page.waitForFunction(() => window.unreferenced.length === 1, null, { timeout: 20000 });
  assert.deepEqual(await env.page.evaluate(() => window.unreferenced), ['still here']);
});

// A relay that merges what the broker sends into one WebSocket message (as any
// proxy may): CONNACK of a resumed session and its queued QoS 1/2 messages arrive
// together. Each is delivered to a listener registered after `await connect()`,
// or before `open()`, and acknowledged only then (the broker keeps nothing back).
test('messages that arrive with CONNACK are delivered before they are acknowledged', async () => {
  const relay = await startRelay(env.broker.tcpPort);
  try {
    for (const version of [4, 5]) {
      for (const style of ['await connect()', 'on() before open()']) {
        const topic = unique(`merged-v${version}`);
        const clientId = `merged${version}${style.length}${Math.random().toString(36).slice(2, 8)}`;
        const opts = { protocolVersion: version, clientId, clean: false, reconnectPeriod: 0,
          ...(version === 5 ? { sessionExpiryInterval: 300 } : {}) };
        // Subscribe with a persistent session, then go away.
        await env.page.evaluate(async ({ url, topic, opts }) => {
          const c = await MqttClient.connect(url, opts);
          await c.subscribe(topic, { qos: 2 });
          await c.end();
        }, { url: env.broker.wsUrl, topic, opts });
        const js = await mqttjs(version);
        for (let i = 1; i <= 15; i++) await js.publishAsync(topic, `m${i}`, { qos: i % 2 ? 1 : 2 });
        await js.endAsync();
        // The relay holds CONNACK and the 15 messages, then sends them as one message.
        relay.holdFor('m15');
        const run = env.page.evaluate(async ({ url, topic, opts, style }) => {
          const got = [];
          let c;
          if (style === 'await connect()') {
            c = await MqttClient.connect(url, opts);
            c.on('message', (t, p) => got.push(new TextDecoder().decode(p)));
          } else {
            c = new MqttClient(url, opts);
            c.on('message', (t, p) => got.push(new TextDecoder().decode(p)));
            await c.open();
          }
          const sessionPresent = c.sessionPresent;
          // A marker published after the queued messages proves nothing else is coming.
          await c.subscribe(topic + '/done', { qos: 1 });
          const done = new Promise((resolve) => c.on('message', (t) => t.endsWith('/done') && resolve()));
          await c.publish(topic + '/done', 'x', { qos: 1 });
          await done;
          await c.end();
          return { got, sessionPresent };
        }, { url: relay.url, topic, opts, style });
        await relay.release();
        const { got, sessionPresent } = await run;
        assert.equal(sessionPresent, true, `${style} v${version}: sessionPresent readable`);
        assert.deepEqual(got.filter((m) => m !== 'x'),
          Array.from({ length: 15 }, (_, i) => `m${i + 1}`), `${style} v${version}`);
        // Nothing was acknowledged and lost: the broker has nothing left for this session.
        const again = await env.page.evaluate(async ({ url, topic, opts }) => {
          const c = new MqttClient(url, opts);
          const got = [];
          c.on('message', (t, p) => got.push(new TextDecoder().decode(p)));
          await c.open();
          await c.subscribe(topic + '/done2', { qos: 1 });
          const done = new Promise((resolve) => c.on('message', (t) => t.endsWith('/done2') && resolve()));
          await c.publish(topic + '/done2', 'y', { qos: 1 });
          await done;
          await c.end();
          return got.filter((m) => m !== 'y');
        }, { url: env.broker.wsUrl, topic, opts });
        assert.deepEqual(again, [], `${style} v${version}: nothing redelivered`);
      }
    }
  } finally {
    await relay.stop();
  }
});

// A listener that calls the client (publishes from a message handler) while more
// messages wait in the same WebSocket message: the next message is delivered after
// the listener returned, never inside it (SpecClient's listeners are Rust closures,
// which cannot be entered twice: a nested delivery lost a live notification).
test('a listener that publishes is never entered again before it returns', async () => {
  const relay = await startRelay(env.broker.tcpPort);
  try {
    const topic = unique('reentry');
    const ready = env.page.evaluate(async ({ url, topic }) => {
      const c = await MqttClient.connect(url, { reconnectPeriod: 0 });
      window.reentry = { c, log: [], sent: [] };
      const onMessage = (t, p) => {
        const m = new TextDecoder().decode(p);
        window.reentry.log.push(`enter ${m}`);
        window.reentry.sent.push(c.publish(`${topic}/echo`, m, { qos: 1 }));
        window.reentry.log.push(`exit ${m}`);
      };
      await c.subscribe(topic, { qos: 1 }, onMessage);
    }, { url: relay.url, topic });
    await ready;
    relay.holdFor('n5');
    const js = await mqttjs(5);
    for (let i = 1; i <= 5; i++) await js.publishAsync(topic, `n${i}`, { qos: 1 });
    await js.endAsync();
    await relay.release();
    await env.page.waitForFunction(() => window.reentry.log.length === 10);
    const log = await env.page.evaluate(async () => {
      await Promise.all(window.reentry.sent);
      await window.reentry.c.end();
      return window.reentry.log;
    });
    assert.deepEqual(log, [1, 2, 3, 4, 5].flatMap((i) => [`enter n${i}`, `exit n${i}`]));
  } finally {
    await relay.stop();
  }
});

// Hidden tabs: Chromium delays main-thread timers of a hidden page (to one wake-up a
// minute after five minutes). Headless Chromium never hides a page, so the page's
// setTimeout is made to behave that way (every delay >= 60 s): the keepalive pings,
// timed in a Worker, must still leave on time and the broker must keep the connection.
test('keepalive pings leave on time when the page\'s timers are throttled', async () => {
  const relay = await startRelay(env.broker.tcpPort);
  const topic = unique('throttled');
  try {
    await env.page.evaluate(async ({ url, topic }) => {
      window.throttledGot = [];
      window.throttledEvents = [];
      const c = await MqttClient.connect(url, { keepalive: 1, reconnectPeriod: 0 });
      for (const e of ['offline', 'close', 'error']) c.on(e, () => window.throttledEvents.push(e));
      c.on('message', (t, p) => window.throttledGot.push(new TextDecoder().decode(p)));
      await c.subscribe(topic, { qos: 1 });
      window.throttledClient = c;
      window.realSetTimeout = window.setTimeout;
      window.setTimeout = (f, d, ...a) => window.realSetTimeout(f, d > 0 ? Math.max(d, 60000) : d, ...a);
    }, { url: relay.url, topic });
    // Keepalive 1 s, the broker drops a client silent for 1.5 s: five pings prove
    // five keepalive periods passed with the connection kept.
    const deadline = Date.now() + 30000;
    while (relay.pings < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(relay.pings >= 5, `only ${relay.pings} PINGREQs`);
    const js = await mqttjs();
    await js.publishAsync(topic, 'still connected', { qos: 1 });
    await js.endAsync();
    await env.page.waitForFunction(() => window.throttledGot.length === 1, null, { timeout: 20000 });
    const out = await env.page.evaluate(() => {
      window.setTimeout = window.realSetTimeout;
      window.throttledClient.end();
      return { events: window.throttledEvents, got: window.throttledGot };
    });
    assert.deepEqual(out.events.filter((e) => e !== 'close'), [], 'the connection never dropped');
    assert.deepEqual(out.got, ['still connected']);
    assert.equal(relay.connections, 1);
  } finally {
    await env.page.evaluate(() => { if (window.realSetTimeout) window.setTimeout = window.realSetTimeout; });
    await relay.stop();
  }
});

// A tab shown again after its clock jumped past the keepalive (a sleeping laptop,
// a frozen tab) replaces its presumably dead connection at once; a tab that comes
// back online reconnects at once instead of after its backoff delay.
test('visible again after a long silence, or online again: reconnect at once', async () => {
  const relay = await startRelay(env.broker.tcpPort);
  const context = env.page.context();
  try {
    const out = await env.page.evaluate(async ({ url }) => {
      const events = [];
      // reconnectPeriod 60 s: a reconnection within this test can only be the immediate one.
      const c = await MqttClient.connect(url, { keepalive: 30, reconnectPeriod: 60000 });
      for (const e of ['offline', 'reconnect', 'connect']) c.on(e, () => events.push(e));
      c.on('error', (e) => events.push(e.code));
      window.tabClient = c;
      window.tabEvents = events;
      const back = new Promise((resolve) => c.on('connect', resolve));
      // 2 minutes pass while the tab is hidden; then it is shown.
      const realNow = Date.now;
      Date.now = () => realNow() + 120000;
      Object.defineProperty(document, 'visibilityState', { get: () => 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
      await back;
      Date.now = realNow;
      delete document.visibilityState;
      return events.slice();
    }, { url: relay.url });
    assert.deepEqual(out, ['KEEPALIVE_TIMEOUT', 'offline', 'reconnect', 'connect']);
    assert.equal(relay.connections, 2);

    // The network goes away (the relay cuts the socket): the next attempt is due in
    // 30-60 s. The browser reports `online` again: the client reconnects now.
    await env.page.evaluate(() => { window.tabClosed = new Promise((resolve) => window.tabClient.on('close', resolve)); });
    relay.cut();
    const info = await env.page.evaluate(() => window.tabClosed);
    assert.ok(info.reconnectInMs >= 30000, JSON.stringify(info));
    await env.page.evaluate(() => {
      window.tabBack = new Promise((resolve) => window.tabClient.on('connect', () => resolve('connect')));
      window.wentOffline = new Promise((resolve) => window.addEventListener('offline', resolve, { once: true }));
    });
    await context.setOffline(true);
    await env.page.evaluate(() => window.wentOffline);
    await context.setOffline(false);
    assert.equal(await env.page.evaluate(() => window.tabBack), 'connect');
    assert.equal(relay.connections, 3);
    await env.page.evaluate(() => window.tabClient.end());
  } finally {
    await context.setOffline(false);
    await relay.stop();
  }
});

// store: 'indexeddb': publishes in flight when the page reloads (sent, their acks
// not yet received) are resent by the next page with their packet ids: each QoS 2
// message reaches the subscriber exactly once, each QoS 1 at least once.
test('a persistent outbox survives a page reload mid-flight', async () => {
  const relay = await startRelay(env.broker.tcpPort);
  try {
    for (const version of [4, 5]) {
      const topic = unique(`outbox-v${version}`);
      const opts = { protocolVersion: version, clientId: `outbox${version}${Math.random().toString(36).slice(2, 8)}`,
        clean: false, store: 'indexeddb', ...(version === 5 ? { sessionExpiryInterval: 300 } : {}) };
      const seen = [];
      const js = await mqttjs(version);
      js.on('message', (t, p) => seen.push(p.toString()));
      await js.subscribeAsync(`${topic}/#`, { qos: 2 });
      const got = (n) => new Promise((resolve) => {
        const check = () => (seen.length >= n ? resolve() : setTimeout(check, 10));
        check();
      });
      await env.page.evaluate(async ({ url, opts }) => {
        window.outboxClient = await MqttClient.connect(url, opts);
      }, { url: relay.url, opts });
      // From now on the broker's acks are held: every publish stays in flight.
      relay.holdFor();
      await env.page.evaluate(({ topic }) => {
        for (let i = 0; i < 10; i++) {
          window.outboxClient.publish(`${topic}/m`, `q${i % 2 ? 1 : 2}-${i}`, { qos: i % 2 ? 1 : 2 }).catch(() => {});
        }
      }, { topic });
      // The five QoS 1 messages reached the subscriber; the five QoS 2 ones wait for
      // PUBREL at the broker (mosquitto forwards QoS 2 on PUBREL), which never comes.
      await got(5);
      while (relay.publishes < 10) await new Promise((r) => setTimeout(r, 10));
      relay.discard();
      await env.page.reload();
      await env.page.waitForFunction(() => window.ready === true, null, { timeout: 60000 });
      const restoredDone = await env.page.evaluate(async ({ url, opts, topic }) => {
        const c = await MqttClient.connect(url, opts);
        // Published after the restored ones: the broker handles them first.
        await c.publish(`${topic}/done`, 'done', { qos: 2 });
        await c.end();
        const db = await new Promise((resolve, reject) => {
          const r = indexedDB.open(`mqttspec-outbox ${opts.clientId} ${url}`);
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
        const left = await new Promise((resolve) => {
          const r = db.transaction('publishes').objectStore('publishes').count();
          r.onsuccess = () => resolve(r.result);
        });
        db.close();
        return left;
      }, { url: relay.url, opts, topic });
      await got(5 + 10 + 1);
      await js.endAsync();
      const count = (m) => seen.filter((x) => x === m).length;
      for (let i = 0; i < 10; i += 2) assert.equal(count(`q2-${i}`), 1, `v${version}: QoS 2 message ${i} exactly once: ${seen}`);
      for (let i = 1; i < 10; i += 2) assert.ok(count(`q1-${i}`) >= 1, `v${version}: QoS 1 message ${i} at least once`);
      assert.equal(count('done'), 1);
      assert.equal(restoredDone, 0, 'the outbox is empty once every flow completed');
    }
  } finally {
    await relay.stop();
  }
});

test('store: indexeddb needs a fixed clientId', async () => {
  const out = await env.page.evaluate(async (url) => {
    try { await MqttClient.connect(url, { store: 'indexeddb' }); return 'connected'; } catch (e) { return e.code + ': ' + e.message; }
  }, env.broker.wsUrl);
  assert.match(out, /^INVALID_OPTIONS: store: 'indexeddb' needs a fixed clientId/);
});

test('the MQTT-only entry point stays within its size budget (gzip -9, wasm + JS glue)', () => {
  const { wasm, js, total } = mqttEntrySize(env.pkg);
  assert.ok(total <= MQTT_ENTRY_BUDGET,
    `mqttspec-wasm/mqtt is ${total} B gzip (wasm ${wasm} + JS ${js}), over the budget of ${MQTT_ENTRY_BUDGET} B (tests/node/mqtt_client/size.mjs)`);
});

test('the package ships precise TypeScript declarations', () => {
  const dts = readFileSync(join(env.pkg, 'mqttspec_mqtt.d.ts'), 'utf8');
  for (const needle of [
    'export interface ConnectOptions',
    'export interface PublishOptions',
    'export interface MqttClientEvents',
    'static connect(url: string, options?: ConnectOptions): Promise<MqttClient>',
    'constructor(url: string, options?: ConnectOptions);',
    'open(): Promise<MqttClient>;',
    'readonly sessionPresent: boolean;',
    'publish(topic: string, payload: string | Uint8Array, options?: PublishOptions): Promise<void>',
    'subscribe(filter: string | string[], options?: SubscribeOptions',
    'on<K extends keyof MqttClientEvents>',
  ]) {
    assert.ok(dts.includes(needle), `missing in .d.ts: ${needle}`);
  }
  const pkg = JSON.parse(readFileSync(join(root, 'client-wasm/package.template.json'), 'utf8'));
  assert.equal(pkg.name, 'mqttspec-wasm');
  assert.ok(pkg.exports['./mqtt'], 'the MQTT-only entry point is exported');
});
