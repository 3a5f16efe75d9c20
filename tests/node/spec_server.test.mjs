// MQTT.js drives mqttspec-server over MQTT-over-WebSocket (the embedded
// broker's ws listener), exactly as the protocol doc's examples do: the
// README's request messages verbatim, responses matched by id, and a
// filtered live subscription, over MQTT 3.1.1 and MQTT 5, and the
// broker's per-client isolation as MQTT.js v5 sees it (reason codes).
// Needs `cargo build --bins` first (scripts/test.sh does it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const binary = path.join(targetDir, 'debug', 'mqttspec-server');
const fixtures = JSON.parse(readFileSync(path.join(root, 'tests/fixtures/mqttspec_examples.json'), 'utf8'));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

let server;
let wsPort;
let serverLog = '';

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run cargo build --bins first`);
  const [mqttPort, port] = [await freePort(), await freePort()];
  wsPort = port;
  server = spawn(binary, [
    '--demo', '--database', 'sqlite::memory:',
    '--mqtt-listen', `127.0.0.1:${mqttPort}`, '--ws-listen', `127.0.0.1:${wsPort}`,
  ], { env: { ...process.env, RUST_LOG: 'info,rmqtt=error' }, stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in 60 s:\n${serverLog}`)), 60_000);
    const onData = (chunk) => {
      serverLog += chunk;
      if (serverLog.includes('mqttspec-server ready')) { clearTimeout(timer); resolve(); }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${serverLog}`)); });
  });
});

after(() => { server?.kill('SIGKILL'); });

/** A connected MQTT.js client speaking MQTTSpec as client `clientId`. */
async function specClient(clientId, protocolVersion = 4) {
  const client = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { clientId, protocolVersion, reconnectPeriod: 0 });
  const waiting = new Map();
  const notifications = [];
  const notified = [];
  client.on('message', (topic, payload) => {
    const message = JSON.parse(payload.toString());
    if (topic === `spec/${clientId}/response`) {
      waiting.get(message.id)?.(message);
      waiting.delete(message.id);
    } else if (notified.length) {
      notified.shift()(message);
    } else {
      notifications.push(message);
    }
  });
  await client.subscribeAsync([`spec/${clientId}/response`, `spec/${clientId}/notify/+`], { qos: 1 });
  return {
    request(message) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response to ${message.id}`)), 20_000);
        waiting.set(message.id, (m) => { clearTimeout(timer); resolve(m); });
        client.publish(`spec/${clientId}/request`, JSON.stringify(message), { qos: 1 });
      });
    },
    nextNotification() {
      if (notifications.length) return Promise.resolve(notifications.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no notification within 20 s')), 20_000);
        notified.push((m) => { clearTimeout(timer); resolve(m); });
      });
    },
    end: () => client.endAsync(),
  };
}

test('the README example requests get the documented answers', async () => {
  const c = await specClient('node-readme');
  const answers = {};
  for (const request of fixtures.requests) {
    answers[request.id] = await c.request(request);
    assert.equal(answers[request.id].id, request.id);
    assert.equal(answers[request.id].type, 'response');
    assert.ok(answers[request.id].timestamp);
  }
  assert.equal(answers['msg-1'].data.name, 'John Doe');
  assert.deepEqual(answers['msg-2'].data.map((u) => u.name), ['Alice Brown', 'Jane Smith', 'John Doe']);
  assert.deepEqual(answers['msg-123'].metadata, { total: 3, count: 3 });
  assert.equal(answers['msg-3'].data.email, 'alice@example.com');
  assert.equal(answers['msg-4'].data.status, 'inactive');
  assert.deepEqual(answers['msg-5'].data, { deleted: true });
  const sub = answers['msg-6'].data;
  assert.equal(sub.notify_topic, `spec/node-readme/notify/${sub.subscription_id}`);
  assert.equal(answers['msg-7'].success, false);
  assert.equal(answers['msg-7'].error.code, 'invalid_subscription');
  await c.end();
});

test('MQTT 5: requests, answers and a live subscription', async () => {
  const c = await specClient('node-v5', 5);
  const read = await c.request({ id: 'v5-1', type: 'request', operation: 'read', entity: 'users', record_id: '2' });
  assert.equal(read.data.name, 'Jane Smith');
  const sub = await c.request({ id: 'v5-2', type: 'subscription', operation: 'subscribe', entity: 'sensor_readings' });
  assert.equal(sub.success, true);
  await c.request({ id: 'v5-3', type: 'request', operation: 'create', entity: 'sensor_readings',
    data: { device_id: 'v5', value: 1.5 } });
  const n = await c.nextNotification();
  assert.deepEqual([n.operation, n.data.device_id], ['create', 'v5']);
  await c.end();
});

test('a filtered subscription notifies matching creates and rows leaving the filter', async () => {
  const watcher = await specClient('node-watcher');
  const writer = await specClient('node-writer');
  const sub = await watcher.request({
    id: 's1', type: 'subscription', operation: 'subscribe', schema: 'public', entity: 'users',
    options: { filters: [{ column: 'status', operator: 'eq', value: 'active' }] },
  });
  assert.equal(sub.success, true);
  await writer.request({ id: 'w1', type: 'request', operation: 'create', schema: 'public', entity: 'users',
    data: { name: 'Quiet', email: 'quiet@example.com', status: 'inactive' } });
  const created = await writer.request({ id: 'w2', type: 'request', operation: 'create', schema: 'public',
    entity: 'users', data: { name: 'New User', email: 'newuser@example.com', status: 'active' } });
  const n1 = await watcher.nextNotification();
  assert.equal(n1.type, 'notification');
  assert.equal(n1.operation, 'create');
  assert.equal(n1.subscription_id, sub.data.subscription_id);
  assert.equal(n1.data.name, 'New User', 'the non-matching create was not notified');
  await writer.request({ id: 'w3', type: 'request', operation: 'update', schema: 'public', entity: 'users',
    record_id: String(created.data.id), data: { status: 'inactive' } });
  const n2 = await watcher.nextNotification();
  assert.equal(n2.operation, 'update');
  assert.equal(n2.data.status, 'inactive');
  const pong = await writer.request({ id: 'p1', type: 'ping' });
  assert.deepEqual([pong.type, pong.success], ['pong', true]);
  await watcher.end();
  await writer.end();
});

test('MQTT 5: the topics of another client are refused with reason codes', async () => {
  const owner = await specClient('node-owner', 5);
  const row = await owner.request({ id: 'c1', type: 'request', operation: 'create', entity: 'users',
    data: { name: 'Owned', email: 'owned@example.com' } });
  assert.equal(row.success, true);
  const intruder = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`,
    { clientId: 'node-intruder', protocolVersion: 5, reconnectPeriod: 0 });
  const own = await intruder.subscribeAsync('spec/node-intruder/response', { qos: 1 });
  assert.deepEqual(own.map((g) => g.qos), [1]);
  for (const filter of ['spec/#', 'spec/node-owner/response', 'spec/+/notify/+']) {
    const refusal = await intruder.subscribeAsync(filter, { qos: 1 }).then(() => null, (err) => err.packet?.granted);
    assert.deepEqual(refusal, [0x87], filter);
  }
  const refused = await intruder.publishAsync('spec/node-owner/request',
    JSON.stringify({ id: 'steal', type: 'request', operation: 'delete', entity: 'users', record_id: String(row.data.id) }), { qos: 1 })
    .then((packet) => packet?.reasonCode, (err) => err.code);
  assert.equal(refused, 0x87);
  const still = await owner.request({ id: 'r1', type: 'request', operation: 'read', entity: 'users', record_id: String(row.data.id) });
  assert.equal(still.success, true, 'the stolen delete did not run');
  await intruder.endAsync();
  await owner.end();
});
