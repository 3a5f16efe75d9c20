// Benchmark of MqttClient (ours, wasm) vs MQTT.js 5 in the same headless
// Chromium page, through one mosquitto (websockets listener):
//   1. size: gzip -9 of the MQTT-only entry (.wasm + JS glue) vs the browser
//      bundles of MQTT.js (mqtt.min.js), paho-mqtt and u8-mqtt (the last two
//      fetched with `npm pack` into a temporary directory);
//   2. receive rate: QoS 0, 100-byte payloads pushed by a raw-TCP native
//      publisher (this process), messages/s handed to a JS callback;
//   3. publish rate: QoS 1, acknowledged publishes/s.
// Prints a report with ratios. Counts are bounded; loopback only.
import { mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { setup, root, startRelay } from './harness.mjs';
import { gz, mqttEntrySize, MQTT_ENTRY_BUDGET } from './size.mjs';

const RECEIVE_N = Number(process.env.BENCH_RECEIVE_N ?? 50000);
const PUBLISH_N = Number(process.env.BENCH_PUBLISH_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** Browser bundles of other MQTT clients, from `npm pack` (not dependencies
 * of the project): name -> gzip -9 bytes. Empty if npm cannot reach the registry. */
function otherClients() {
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-bench-pack-'));
  const bundles = {
    'paho-mqtt': ['paho-mqtt@1', 'paho-mqtt-min.js', 'MQTT 3.1.1 only'],
    'u8-mqtt': ['u8-mqtt', 'esm/web/index.min.js', 'QoS 0/1 only'],
  };
  const out = [];
  try {
    for (const [name, [spec, file, note]] of Object.entries(bundles)) {
      const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir, spec], { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop();
      const into = join(dir, name);
      execFileSync('mkdir', ['-p', into]);
      execFileSync('tar', ['-xzf', join(dir, tgz), '-C', into]);
      out.push({ name: `${name} ${tgz.replace(/^.*-(\d[^-]*)\.tgz$/, '$1')} (${file}; ${note})`, size: gz(join(into, 'package', file)) });
    }
  } catch (e) {
    console.log(`  note: npm pack failed (${e.message.split('\n')[0]}): paho-mqtt and u8-mqtt not measured`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** MQTT 3.1.1 remaining length. */
function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s) {
  const b = Buffer.from(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

/** Native publisher: raw TCP, pre-encoded QoS 0 PUBLISH packets written in bulk. */
async function publishBurst(port, topic, count) {
  const sock = tcpConnect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const body = [...str('MQTT'), 4, 0x02, 0, 60, ...str(`bench-pub-${process.pid}`)];
  sock.write(Buffer.from([0x10, ...varint(body.length), ...body]));
  await new Promise((resolve) => sock.once('data', resolve)); // CONNACK
  const payload = Buffer.alloc(100, 0x61);
  const vh = [...str(topic)];
  const packet = Buffer.from([0x30, ...varint(vh.length + payload.length), ...vh, ...payload]);
  const batch = 1000;
  const chunk = Buffer.concat(Array(batch).fill(packet));
  for (let sent = 0; sent < count; sent += batch) {
    const part = count - sent >= batch ? chunk : chunk.subarray(0, packet.length * (count - sent));
    if (!sock.write(part)) await new Promise((r) => sock.once('drain', r));
  }
  sock.end(Buffer.from([0xe0, 0x00]));
}

async function receiveRound(env, which, topic, relay = null) {
  const { page, broker } = env;
  const url = relay ? relay.url : broker.wsUrl;
  await page.evaluate(async ({ which, url, topic, n }) => {
    const state = window.bench = { count: 0, first: 0, last: 0, n };
    const onMessage = () => {
      const now = performance.now();
      if (state.count === 0) state.first = now;
      state.count += 1;
      state.last = now;
    };
    if (which === 'ours') {
      state.client = await MqttClient.connect(url, { protocolVersion: 4 });
      state.client.on('message', onMessage);
      await state.client.subscribe(topic, { qos: 0 });
    } else if (which === 'raw') {
      // Reference ceiling: a bare WebSocket counting frames, no MQTT parsing.
      const ws = new WebSocket(url, 'mqtt');
      ws.binaryType = 'arraybuffer';
      await new Promise((r) => { ws.onopen = r; });
      const enc = new TextEncoder();
      const id = enc.encode('bench-raw');
      ws.send(new Uint8Array([0x10, 12 + id.length, 0, 4, 77, 81, 84, 84, 4, 2, 0, 60, 0, id.length, ...id]));
      await new Promise((r) => { ws.onmessage = r; });
      const t = enc.encode(topic);
      ws.send(new Uint8Array([0x82, 5 + t.length, 0, 1, 0, t.length, ...t, 0]));
      await new Promise((r) => { ws.onmessage = r; });
      ws.onmessage = onMessage;
      state.client = { end: async () => ws.close() };
    } else {
      state.client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
      state.client.on('message', onMessage);
      await state.client.subscribeAsync(topic, { qos: 0 });
    }
  }, { which, url, topic, n: RECEIVE_N });
  if (relay) relay.holdFor();
  await publishBurst(broker.tcpPort, topic, RECEIVE_N);
  if (relay) {
    const remaining = 2 + Buffer.byteLength(topic) + 100;
    await relay.release(RECEIVE_N * (1 + varint(remaining).length + remaining));
  }
  // Done when everything arrived, or nothing more arrived for 2 s.
  let last = -1;
  for (;;) {
    const count = await page.evaluate(() => window.bench.count);
    if (count >= RECEIVE_N || count === last) break;
    last = count;
    await new Promise((r) => setTimeout(r, count >= RECEIVE_N ? 0 : 2000));
  }
  return page.evaluate(async (which) => {
    const s = window.bench;
    if (which === 'mqttjs') await s.client.endAsync(); else await s.client.end();
    return { count: s.count, rate: (s.count - 1) / ((s.last - s.first) / 1000) };
  }, which);
}

async function publishRound(env, which, topic) {
  return env.page.evaluate(async ({ which, url, topic, n }) => {
    const payload = new Uint8Array(100).fill(97);
    let client;
    if (which === 'ours') client = await MqttClient.connect(url, { protocolVersion: 4 });
    else client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
    const start = performance.now();
    const all = [];
    for (let i = 0; i < n; i++) {
      all.push(which === 'ours' ? client.publish(topic, payload, { qos: 1 }) : client.publishAsync(topic, payload, { qos: 1 }));
    }
    await Promise.all(all);
    const secs = (performance.now() - start) / 1000;
    if (which === 'ours') await client.end(); else await client.endAsync();
    return { count: n, rate: n / secs };
  }, { which, url: env.broker.wsUrl, topic, n: PUBLISH_N });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');

// No limit on queued QoS 0 messages: a slow reader gets every message late
// instead of losing some, so rates compare like with like.
const env = await setup(['max_queued_messages 0', 'max_queued_bytes 0']);
try {
  const size = mqttEntrySize(env.pkg);
  const ours = size.total;
  const theirs = gz(join(root, 'node_modules/mqtt/dist/mqtt.min.js'));
  console.log(`machine: ${(await import('node:os')).cpus().length} cores, load ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`size (gzip -9): ours ${fmt(ours)} B (mqttspec-wasm/mqtt: wasm ${fmt(size.wasm)} + JS glue ${fmt(size.js)}; budget ${fmt(MQTT_ENTRY_BUDGET)}, goal 40,000) vs MQTT.js ${fmt(theirs)} B -> ${(100 * ours / theirs).toFixed(1)}% (target <= 50%)`);
  for (const other of otherClients()) {
    console.log(`  vs ${other.name}: ${fmt(other.size)} B -> ours is ${(ours / other.size).toFixed(1)}x`);
  }

  const recv = { ours: [], mqttjs: [], raw: [] };
  const batched = { ours: [], mqttjs: [] };
  const relay = await startRelay(env.broker.tcpPort);
  const pub = { ours: [], mqttjs: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const which of ['ours', 'mqttjs']) {
      const res = await receiveRound(env, which, `bench/recv/${which}/${r}`);
      if (res.count < RECEIVE_N) console.log(`  note: ${which} round ${r} received ${res.count}/${RECEIVE_N}`);
      recv[which].push(res.rate);
      pub[which].push((await publishRound(env, which, `bench/pub/${which}/${r}`)).rate);
    }
    recv.raw.push((await receiveRound(env, 'raw', `bench/recv/raw/${r}`)).rate);
    for (const which of ['ours', 'mqttjs']) {
      batched[which].push((await receiveRound(env, which, `bench/batch/${which}/${r}`, relay)).rate);
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
  }
  const ro = median(recv.ours), rm = median(recv.mqttjs), rr = median(recv.raw);
  await relay.stop();
  const bo = median(batched.ours), bm = median(batched.mqttjs);
  console.log(`receive QoS 0, 100 B, ${fmt(RECEIVE_N)} msgs (median of ${ROUNDS}), all queued, then sent 64 KiB per WebSocket message (relay in front of mosquitto): ours ${fmt(bo)} msg/s vs MQTT.js ${fmt(bm)} msg/s -> ${(bo / bm).toFixed(2)}x`);
  const po = median(pub.ours), pm = median(pub.mqttjs);
  console.log(`receive QoS 0, 100 B, ${fmt(RECEIVE_N)} msgs (median of ${ROUNDS}): ours ${fmt(ro)} msg/s vs MQTT.js ${fmt(rm)} msg/s -> ${(ro / rm).toFixed(2)}x (target >= 1.5x)`);
  console.log(`  reference: bare WebSocket frame counting in the same page ${fmt(rr)} msg/s (ours at ${(100 * ro / rr).toFixed(0)}%, MQTT.js at ${(100 * rm / rr).toFixed(0)}% of it)`);
  console.log(`publish QoS 1 acked, 100 B, ${fmt(PUBLISH_N)} msgs (median of ${ROUNDS}): ours ${fmt(po)} msg/s vs MQTT.js ${fmt(pm)} msg/s -> ${(po / pm).toFixed(2)}x (target >= 1.0x)`);
} finally {
  await env.stop();
}
