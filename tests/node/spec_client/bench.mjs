// SpecClient benchmark (bench/spec_client.sh), all in one headless Chromium
// page against one mqttspec-server (embedded broker, SQLite, release build):
//  1. read-by-id round trip, ours vs the same JSON exchange hand-written on
//     MQTT.js in the same page (interleaved blocks, p50/p99);
//  2. liveQuery notifications applied per second with 1,000 rows in view,
//     notifications published straight to the live query's notify topic by a
//     Node MQTT.js publisher (so the server's speed does not cap the figure),
//     once through the broker's WebSocket listener and once client-bound
//     (a relay hands the whole stream over in 64 KiB WebSocket messages);
//  3. a 10,000-row read: time to the resolved promise and the longest stall
//     of the page's main thread meanwhile, ours vs MQTT.js + JSON.parse.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ensurePackage, freePort, openPage, startRelay } from '../mqtt_client/harness.mjs';
import { startServer, startSpecStatic } from './harness.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1000);
const NOTIFICATIONS = Number(process.env.BENCH_NOTIFICATIONS ?? 20000);
const log = (...a) => console.log(...a);

ensurePackage();
const dir = mkdtempSync(join(tmpdir(), 'spec-bench-'));
const seed = join(dir, 'seed.sql');
writeFileSync(seed, `
CREATE TABLE IF NOT EXISTS public_bench_rows (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, value REAL NOT NULL, ts TEXT NOT NULL);
INSERT INTO public_bench_rows (device_id, value, ts)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  SELECT 'dev-' || (i % 10), (i * 7919) % 10007, '2026-11-22T00:00:00Z' FROM n
  WHERE NOT EXISTS (SELECT 1 FROM public_bench_rows);
`);
const mqttPort = await freePort();
// The publisher and the in-page MQTT.js probe (no username) use the live queries'
// notify topics, which the built-in ACL keeps to their own clients: allow them here.
const acl = join(dir, 'acl');
writeFileSync(acl, ['bench-live', 'bench-relayed'].map((c) => `topic write spec/${c}/notify/+\n`).join('')
  + 'topic read spec/bench-live/notify/+\n');
const server = startServer({ dbFile: join(dir, 'bench.db'), mqttPort, wsPort: await freePort(), extra: ['--schema', seed, '--acl-file', acl] });
let web, browser;
try {
  await server.ready;
  web = await startSpecStatic();
  let page;
  ({ browser, page } = await openPage(web.url));
  await page.evaluate(async (url) => {
    const { SpecClient } = window.spec;
    window.brokerUrl = url;
    window.ours = await SpecClient.connect(url, { clientId: 'bench-ours', maxPacketSize: 32 * 1024 * 1024 });
    const js = await window.mqtt.connectAsync(url, { clientId: 'bench-js' });
    const waiting = new Map();
    js.on('message', (_t, payload) => {
      const m = JSON.parse(new TextDecoder().decode(payload));
      waiting.get(m.id)?.(m);
      waiting.delete(m.id);
    });
    await js.subscribeAsync('spec/bench-js/response', { qos: 1 });
    let n = 0;
    window.byHand = (message) => new Promise((resolve) => {
      const id = `js-${++n}`;
      waiting.set(id, resolve);
      js.publish('spec/bench-js/request', JSON.stringify({ id, type: 'request', ...message }), { qos: 1 });
    });
  }, server.wsUrl);

  // 1. Round trips.
  const rt = await page.evaluate(async (rounds) => {
    const q = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
    const ours = [], byHand = [];
    const one = async (f, into) => { const t = performance.now(); await f(); into.push(performance.now() - t); };
    for (let i = 0; i < 50; i++) { await window.ours.read('public.users', { recordId: 1 }); await window.byHand({ operation: 'read', schema: 'public', entity: 'users', record_id: '1' }); }
    for (let block = 0; block < rounds / 50; block++) {
      for (let i = 0; i < 50; i++) await one(() => window.ours.read('public.users', { recordId: 1 }), ours);
      for (let i = 0; i < 50; i++) await one(() => window.byHand({ operation: 'read', schema: 'public', entity: 'users', record_id: '1' }), byHand);
    }
    return { ours: [q(ours, 0.5), q(ours, 0.99)], byHand: [q(byHand, 0.5), q(byHand, 0.99)] };
  }, ROUNDS);
  log(`round trip (read by id, ${ROUNDS} each): ours p50 ${rt.ours[0].toFixed(2)} ms p99 ${rt.ours[1].toFixed(2)} ms; MQTT.js by hand p50 ${rt.byHand[0].toFixed(2)} ms p99 ${rt.byHand[1].toFixed(2)} ms; ratio p50 ${(rt.ours[0] / rt.byHand[0]).toFixed(2)}x p99 ${(rt.ours[1] / rt.byHand[1]).toFixed(2)}x (target <= 1.1x)`);

  // 2. liveQuery apply rate with 1,000 rows in view (device dev-3 has 1,000 rows),
  //    (a) through the broker's WebSocket listener, (b) through a relay that
  //    holds the notifications and hands them over in 64 KiB WebSocket messages.
  await page.evaluate(() => {
    // Opens a live query on a new client and records when the last notification shows.
    window.startLive = async (url, clientId) => {
      // QoS 0, like the publisher: the figure is the client's, not the broker's in-flight window.
      const client = await window.spec.SpecClient.connect(url, { clientId, qos: 0 });
      const st = window.liveState = { changes: 0, started: undefined, finished: undefined, client };
      st.live = await client.liveQuery('public.bench_rows', {
        filters: [{ column: 'device_id', operator: 'eq', value: 'dev-3' }],
        sort: [{ column: 'value', direction: 'desc' }],
      }, (rows) => {
        st.changes += 1;
        if (st.started === undefined) st.started = performance.now();
        if (rows[0]?.value === 1e9) st.finished = performance.now();
      });
      const rows = st.live.rows();
      st.started = undefined;
      return { ids: rows.map((r) => r.id), sid: st.live.subscriptionId };
    };
  });
  const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'bench-publisher' });
  // Publishes NOTIFICATIONS updates of the view's rows to its notify topic; the last sets value 1e9.
  const publishUpdates = async (clientId, view) => {
    const topic = `spec/${clientId}/notify/${view.sid}`;
    for (let i = 0; i < NOTIFICATIONS; i++) {
      const last = i === NOTIFICATIONS - 1;
      const data = { id: view.ids[i % view.ids.length], device_id: 'dev-3', value: last ? 1e9 : (i * 31) % 10007, ts: '2026-11-22T00:00:01Z' };
      publisher.publish(topic, JSON.stringify({ type: 'notification', operation: 'update', subscription_id: view.sid, schema: 'public', entity: 'bench_rows', data }), { qos: 0 });
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
  };
  const liveResult = () => page.evaluate(() => {
    const st = window.liveState;
    return { ms: st.finished - st.started, changes: st.changes, rows: st.live.rows().length, arrivalMs: window.lastArrival - window.firstArrival };
  });

  const view = await page.evaluate(async () => {
    const view = await window.startLive(window.brokerUrl, 'bench-live');
    // Baseline: the same notifications counted on arrival by MQTT.js in this page.
    const probe = await window.mqtt.connectAsync(window.brokerUrl, { clientId: 'bench-probe' });
    window.arrived = 0;
    probe.on('message', (_t, payload) => {
      const m = JSON.parse(new TextDecoder().decode(payload));
      if (window.arrived++ === 0) window.firstArrival = performance.now();
      if (m.data.value === 1e9) window.lastArrival = performance.now();
    });
    await probe.subscribeAsync(`spec/bench-live/notify/${view.sid}`, { qos: 0 });
    return view;
  });
  const cdp = process.env.BENCH_PROFILE ? await page.context().newCDPSession(page) : null;
  if (cdp) { await cdp.send('Profiler.enable'); await cdp.send('Profiler.setSamplingInterval', { interval: 100 }); await cdp.send('Profiler.start'); }
  await publishUpdates('bench-live', view);
  await page.waitForFunction(() => window.liveState.finished !== undefined && window.lastArrival !== undefined, null, { timeout: 120_000 });
  const live = await liveResult();
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    const self = new Map();
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const dt = profile.timeDeltas; let total = 0;
    profile.samples.forEach((id, i) => { const n = byId.get(id); const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}`; self.set(k, (self.get(k) ?? 0) + (dt[i] ?? 0)); total += dt[i] ?? 0; });
    for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40)) log(`${(100 * v / total).toFixed(1)}%  ${k}`);
  }
  log(`liveQuery: ${NOTIFICATIONS} updates applied to a ${live.rows}-row view in ${live.ms.toFixed(0)} ms = ${Math.round(NOTIFICATIONS / (live.ms / 1000))} notifications/s (target >= 20000), ${live.changes} onChange calls; the same messages reached MQTT.js in the page at ${Math.round(NOTIFICATIONS / (live.arrivalMs / 1000))}/s (delivery ceiling of this broker)`);

  // (b) Client-bound: the view's client connects through the relay (to the
  // broker's TCP listener), which holds the notifications until the last one
  // is there; the clock starts just before they are released.
  const relay = await startRelay(mqttPort);
  const relayed = await page.evaluate((url) => window.startLive(url, 'bench-relayed'), relay.url);
  relay.holdFor('"value":1000000000');
  await publishUpdates('bench-relayed', relayed);
  await page.evaluate(() => { window.liveState.started = performance.now(); });
  await relay.release();
  await page.waitForFunction(() => window.liveState.finished !== undefined, null, { timeout: 120_000 });
  const bound = await liveResult();
  log(`liveQuery, client-bound (all ${NOTIFICATIONS} notifications held by a relay, then sent 64 KiB per WebSocket message): applied to a ${bound.rows}-row view in ${bound.ms.toFixed(0)} ms = ${Math.round(NOTIFICATIONS / (bound.ms / 1000))} notifications/s (target >= 20000), ${bound.changes} onChange calls`);
  await page.evaluate(() => window.liveState.client.end());
  await relay.stop();
  await publisher.endAsync();

  // 3. A 10,000-row response.
  const big = await page.evaluate(async () => {
    const measure = async (f) => {
      let last = performance.now(), stall = 0;
      const tick = setInterval(() => { const t = performance.now(); stall = Math.max(stall, t - last); last = t; }, 4);
      const t0 = performance.now();
      const rows = await f();
      const ms = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 20));
      clearInterval(tick);
      return { ms, stall, rows };
    };
    const options = { limit: 10000 };
    const ours = await measure(async () => (await window.ours.read('public.bench_rows', { options })).data.length);
    const byHand = await measure(async () => (await window.byHand({ operation: 'read', schema: 'public', entity: 'bench_rows', options })).data.length);
    return { ours, byHand };
  });
  log(`10,000-row read: ours ${big.ours.ms.toFixed(0)} ms (longest main-thread stall ${big.ours.stall.toFixed(0)} ms, ${big.ours.rows} rows); MQTT.js + JSON.parse ${big.byHand.ms.toFixed(0)} ms (stall ${big.byHand.stall.toFixed(0)} ms)`);
} finally {
  await browser?.close();
  await web?.stop();
  await server.kill();
  rmSync(dir, { recursive: true, force: true });
}
