// SpecClient (the npm package, in headless Chromium) against a real
// mqttspec-server (embedded broker, SQLite), with MQTT.js in Node as the
// independent second client that writes rows. Covers every operation, the
// error paths (unknown entity, bad column, hook rejection, timeout),
// reconnect with requests in flight, subscription filters, async iteration,
// and liveQuery correctness under a random stream of changes compared with
// a fresh read at the end.
// Needs `cargo build --bins` (scripts/test.sh does it) and builds the
// package if client-wasm/pkg is missing (MQTT_CLIENT_REBUILD=1 forces it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackage, freePort, openPage, pkgDir, startRelay } from './mqtt_client/harness.mjs';
import { WebSocketServer } from 'ws';
import { binary, startServer, rawClient, startSpecStatic, stopAll } from './spec_client/harness.mjs';

const SECRET = 'spec-client-test-secret';

let dir, server, web, browser, page, errors, writer, ports;

/** Helpers the tests call in the page (again after a reload). */
async function installHelpers() {
  await page.evaluate(() => {
    window.connectSpec = (url, options) => window.spec.SpecClient.connect(url, options);
    window.errorOf = async (promise) => {
      try { await promise; return null; } catch (e) { return { name: e.name, code: e.code, message: e.message }; }
    };
  });
}

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run cargo build --bins first`);
  ensurePackage();
  dir = mkdtempSync(join(tmpdir(), 'spec-client-'));
  ports = { mqttPort: await freePort(), wsPort: await freePort() };
  // The timeout test speaks on a prefix no server answers: the ACL lets
  // each client use its own topics there too.
  writeFileSync(join(dir, 'acl'), 'pattern write nobody/%c/request\npattern read nobody/%c/response\npattern read nobody/%c/notify/+\n');
  ports.extra = ['--acl-file', join(dir, 'acl')];
  server = startServer({ dbFile: join(dir, 'demo.db'), ...ports });
  await server.ready;
  web = await startSpecStatic();
  ({ browser, page, errors } = await openPage(web.url));
  await installHelpers();
  writer = await rawClient(server.wsUrl, 'node-writer');
});

after(() => stopAll({ writer, browser, webs: [web], server, dir }));

test('the .d.ts types optional arguments as optional and has one interface per options kind', () => {
  // (No TypeScript compiler in node_modules: checked on the generated text.)
  const dts = readFileSync(join(pkgDir, 'mqttspec_wasm.d.ts'), 'utf8');
  for (const needle of [
    'static connect(url: string, options?: SpecConnectOptions): Promise<SpecClient>',
    'read(entity: string, options?: ReadOptions): Promise<ReadResult>',
    'create(entity: string, data: Row, options?: EntityOptions)',
    'update(entity: string, recordId: string | number, data: Row, options?: EntityOptions)',
    'delete(entity: string, recordId: string | number, options?: EntityOptions)',
    'meta(entity: string, options?: EntityOptions)',
    'subscribe(entity: string, options?: SpecSubscribeOptions, onNotification?: (n: Notification) => void)',
    'liveQuery(entity: string, options: LiveQueryOptions, onChange: (rows: Row[], change: LiveChange) => void)',
    'onError?: (error: SpecError) => void',
  ]) {
    assert.ok(dts.includes(needle), `missing in .d.ts: ${needle}`);
  }
  // Two interfaces of one name would merge into one type (MQTT and spec subscribe options).
  const names = [...dts.matchAll(/^export interface (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'interfaces declared twice');
});

test('read, create, update, delete and meta round trip', async () => {
  const out = await page.evaluate(async (url) => {
    const c = await connectSpec(url, { clientId: 'crud' });
    const one = await c.read('public.users', { recordId: 1 });
    const many = await c.read('users', {
      schema: 'public',
      options: { filters: [{ column: 'status', operator: 'eq', value: 'active' }], sort: [{ column: 'name', direction: 'asc' }], limit: 2 },
    });
    const created = await c.create('public.users', { name: 'Wasm Wendy', email: 'wendy@example.com', status: 'active' });
    const id = created.data.id;
    const updated = await c.update('public.users', id, { status: 'inactive' });
    const meta = await c.meta('public.users');
    const deleted = await c.delete('public.users', id);
    const gone = await errorOf(c.read('public.users', { recordId: id }));
    await c.end();
    return { one, many, created, updated, meta, deleted, gone };
  }, server.wsUrl);
  assert.equal(out.one.data.id, 1);
  assert.ok(out.one.data.email.includes('@'));
  assert.equal(out.many.data.length, 2);
  assert.ok(out.many.data.every((r) => r.status === 'active'));
  assert.ok(out.many.data[0].name <= out.many.data[1].name, 'sorted by name');
  assert.ok(out.many.metadata.total >= 2);
  assert.equal(out.created.data.name, 'Wasm Wendy');
  assert.equal(out.updated.data.status, 'inactive');
  assert.equal(out.updated.data.name, 'Wasm Wendy', 'partial update keeps other fields');
  assert.ok(out.meta.data.columns.some((col) => col.name === 'email'));
  assert.equal(out.deleted.data.deleted, true);
  assert.equal(out.gone?.name, 'SpecError');
});

test('errors are SpecErrors with the server code; bad arguments fail locally', async () => {
  const out = await page.evaluate(async (url) => {
    const c = await connectSpec(url, { clientId: 'errors' });
    const r = {
      unknownEntity: await errorOf(c.read('public.nope')),
      badColumn: await errorOf(c.read('users', { options: { filters: [{ column: 'name; drop table users', operator: 'eq', value: 1 }] } })),
      badSort: await errorOf(c.read('users', { options: { sort: [{ column: 'nope' }] } })),
      noData: await errorOf(c.create('users', 42)),
      badClientId: await errorOf(connectSpec(url, { clientId: 'a/b' })),
      stillThere: (await c.read('users', { recordId: 1 })).data.id,
    };
    await c.end();
    r.afterEnd = await errorOf(c.read('users', { recordId: 1 }));
    return r;
  }, server.wsUrl);
  assert.equal(out.unknownEntity.name, 'SpecError');
  assert.equal(out.unknownEntity.code, 'model_not_found');
  assert.equal(out.badColumn.code, 'invalid_column');
  assert.equal(out.badSort.code, 'invalid_column');
  assert.equal(out.noData.code, 'invalid_argument');
  assert.equal(out.badClientId.code, 'invalid_argument');
  assert.equal(out.stillThere, 1);
  assert.equal(out.afterEnd.code, 'closed');
});

test('a request nobody answers times out and its late answer is ignored', async () => {
  const out = await page.evaluate(async (url) => {
    // No server listens on this prefix.
    const c = await connectSpec(url, { clientId: 'lonely', prefix: 'nobody', timeoutMs: 300 });
    const started = Date.now();
    const err = await errorOf(c.read('users', { recordId: 1 }));
    const waited = Date.now() - started;
    await c.end();
    return { err, waited };
  }, server.wsUrl);
  assert.equal(out.err.code, 'timeout');
  assert.ok(out.waited >= 250, `rejected after the timeout, not before (${out.waited} ms)`);
});

test('hooks: no token is refused at connect; a tenancy hook rejects or rewrites requests', async () => {
  const p = { mqttPort: await freePort(), wsPort: await freePort() };
  const authed = startServer({ dbFile: join(dir, 'auth.db'), ...p,
    extra: ['--jwt-secret', SECRET, '--tenant-column', 'device_id', '--tenant-claim', 'device'] });
  try {
    await authed.ready;
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const sign = (claims) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 600, ...claims })}`;
      return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
    };
    const out = await page.evaluate(async ({ url, plainToken, deviceToken }) => {
      const anon = await errorOf(connectSpec(url, { clientId: 'anon', reconnect: false }));
      const plain = await connectSpec(url, { clientId: 'plain', token: plainToken });
      const user = (await plain.read('users', { recordId: 1 })).data.id;
      const refused = await errorOf(plain.read('public.sensor_readings'));
      await plain.end();
      const dev = await connectSpec(url, { clientId: 'device', token: deviceToken });
      const created = (await dev.create('public.sensor_readings', { device_id: 'someone-else', value: 3, ts: '2026-11-22T00:00:00Z' })).data;
      const rows = (await dev.read('public.sensor_readings')).data;
      await dev.end();
      return { anon, user, refused, created, rows };
    }, { url: authed.wsUrl, plainToken: sign({ sub: 'plain', client_id: 'plain' }), deviceToken: sign({ sub: 'dev', client_id: 'device', device: 'dev-t' }) });
    assert.equal(out.anon?.name, 'MqttError', 'connect without a token is refused');
    assert.equal(out.user, 1, 'entities without the tenant column are served');
    assert.equal(out.refused?.name, 'SpecError');
    assert.equal(out.refused.code, 'unauthorized', out.refused.message);
    assert.equal(out.created.device_id, 'dev-t', 'the hook set the tenant on create');
    assert.ok(out.rows.length >= 1 && out.rows.every((r) => r.device_id === 'dev-t'), 'reads limited to the tenant');
  } finally {
    await authed.kill();
  }
});

test('a 10,000-row read (over 1 MiB) resolves with the default options', async () => {
  const seed = join(dir, 'wide.sql');
  writeFileSync(seed, `
CREATE TABLE IF NOT EXISTS public_wide_rows (id INTEGER PRIMARY KEY, label TEXT NOT NULL, note TEXT NOT NULL);
INSERT INTO public_wide_rows (label, note)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  SELECT 'row-' || i, printf('%.150d', i) FROM n
  WHERE NOT EXISTS (SELECT 1 FROM public_wide_rows);
`);
  const p = { mqttPort: await freePort(), wsPort: await freePort() };
  const wide = startServer({ dbFile: join(dir, 'wide.db'), ...p, extra: ['--schema', seed] });
  try {
    await wide.ready;
    const out = await page.evaluate(async (url) => {
      const c = await connectSpec(url, { clientId: 'bulk' });
      const { data } = await c.read('public.wide_rows', { options: { limit: 10000 } });
      const live = await c.liveQuery('public.wide_rows', { sort: [{ column: 'id' }] }, () => {});
      const liveRows = live.rows().length;
      await live.close();
      await c.end();
      return { rows: data.length, bytes: JSON.stringify(data).length, last: data[data.length - 1].label, liveRows };
    }, wide.wsUrl);
    assert.equal(out.rows, 10000);
    assert.ok(out.bytes > 1 << 20, `the answer is over 1 MiB (${out.bytes} bytes)`);
    assert.equal(out.last, 'row-10000');
    assert.equal(out.liveRows, 10000, 'a live query loads them too');
  } finally {
    await wide.kill();
  }
});

test('connect fails and closes its MQTT client when the broker refuses the response topics', async () => {
  // A scripted MQTT 3.1.1 broker (one packet per WebSocket message) that refuses every SUBSCRIBE.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const sockets = [];
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (data) => {
      const type = data[0] >> 4;
      if (type === 1) ws.send(Buffer.from([0x20, 2, 0, 0])); // CONNACK accepted
      if (type === 8) {
        let i = 1;
        while (data[i] & 0x80) i++; // remaining length
        ws.send(Buffer.from([0x90, 3, data[i + 1], data[i + 2], 0x80])); // SUBACK: failure
      }
      if (type === 12) ws.send(Buffer.from([0xd0, 0])); // PINGRESP
    });
  });
  try {
    const url = `ws://127.0.0.1:${wss.address().port}/mqtt`;
    const err = await page.evaluate((url) => errorOf(connectSpec(url, { clientId: 'refused-spec' })), url);
    assert.ok(err, 'connect rejected');
    assert.equal(err.code, 'SUBSCRIBE_REFUSED', JSON.stringify(err));
    // Nobody got the client: it must not stay connected (it would keep itself alive).
    const deadline = Date.now() + 3000;
    while (sockets.some((ws) => ws.readyState === ws.OPEN) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(sockets.length, 1);
    assert.notEqual(sockets[0].readyState, sockets[0].OPEN, 'the connection was closed');
  } finally {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
  }
});

test('subscriptions deliver only matching changes, by callback and by async iteration', async () => {
  await page.evaluate(async (url) => {
    const c = await connectSpec(url, { clientId: 'watcher' });
    window.watched = [];
    window.iterated = [];
    window.watchSub = await c.subscribe('public.users', { filters: [{ column: 'status', operator: 'eq', value: 'vip' }] },
      (n) => window.watched.push(n));
    const all = await c.subscribe('public.users', {});
    window.iterDone = (async () => {
      for await (const n of all) {
        window.iterated.push(n);
        if (window.iterated.length === 3) break;
      }
    })();
    window.watcher = c;
  }, server.wsUrl);
  const plain = await writer.request({ operation: 'create', schema: 'public', entity: 'users', data: { name: 'Plain', email: 'p@x', status: 'active' } });
  const vip = await writer.request({ operation: 'create', schema: 'public', entity: 'users', data: { name: 'Vip', email: 'v@x', status: 'vip' } });
  await writer.request({ operation: 'update', schema: 'public', entity: 'users', record_id: String(vip.data.id), data: { status: 'active' } });
  await page.waitForFunction(() => window.iterated.length === 3 && window.watched.length === 2, null, { timeout: 10_000 });
  const out = await page.evaluate(async () => {
    await window.iterDone;
    await window.watchSub.unsubscribe();
    return { watched: window.watched, iterated: window.iterated };
  });
  assert.deepEqual(out.watched.map((n) => n.operation), ['create', 'update'], 'vip created, then left the filter');
  assert.equal(out.watched[0].data.name, 'Vip');
  assert.deepEqual(out.iterated.map((n) => n.data.id), [plain.data.id, vip.data.id, vip.data.id]);
  await writer.request({ operation: 'create', schema: 'public', entity: 'users', data: { name: 'Vip2', email: 'v2@x', status: 'vip' } });
  const after = await page.evaluate(async () => {
    await new Promise((r) => setTimeout(r, 500));
    await window.watcher.end();
    return window.watched.length;
  });
  assert.equal(after, 2, 'nothing after unsubscribe');
});

test('liveQuery stays equal to a fresh read under a random stream of changes', async () => {
  const options = {
    filters: [{ column: 'status', operator: 'in', value: ['active', 'vip'] }],
    sort: [{ column: 'name', direction: 'desc' }],
    limit: 7,
  };
  await page.evaluate(async ({ url, options }) => {
    const c = await connectSpec(url, { clientId: 'live' });
    window.changes = 0;
    window.live = await c.liveQuery('public.users', options, () => { window.changes += 1; });
    window.liveClient = c;
  }, { url: server.wsUrl, options });
  let seed = 42;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const statuses = ['active', 'vip', 'inactive'];
  const ids = [];
  for (let step = 0; step < 150; step++) {
    const roll = rand(10);
    if (ids.length < 3 || roll < 4) {
      const r = await writer.request({ operation: 'create', schema: 'public', entity: 'users',
        data: { name: `n${rand(30)}`, email: `e${step}@x`, status: statuses[rand(3)] } });
      assert.equal(r.success, true, JSON.stringify(r));
      ids.push(r.data.id);
    } else if (roll < 8) {
      const id = ids[rand(ids.length)];
      await writer.request({ operation: 'update', schema: 'public', entity: 'users', record_id: String(id),
        data: rand(2) ? { status: statuses[rand(3)] } : { name: `n${rand(30)}` } });
    } else {
      const id = ids.splice(rand(ids.length), 1)[0];
      await writer.request({ operation: 'delete', schema: 'public', entity: 'users', record_id: String(id) });
    }
  }
  const fresh = await writer.request({ operation: 'read', schema: 'public', entity: 'users',
    options: { ...options, sort: [...options.sort, { column: 'id', direction: 'asc' }] } });
  const want = fresh.data.map((r) => r.id);
  await page.waitForFunction((want) => JSON.stringify(window.live.rows().map((r) => r.id)) === JSON.stringify(want),
    want, { timeout: 10_000 }).catch(() => {});
  const got = await page.evaluate(() => ({ rows: window.live.rows(), changes: window.changes }));
  assert.deepEqual(got.rows.map((r) => r.id), want);
  assert.deepEqual(got.rows, fresh.data, 'same rows, same values');
  assert.ok(got.changes > 1, 'onChange ran for the changes');
  await page.evaluate(async () => { await window.live.close(); await window.liveClient.end(); });
});

test('a failing re-read or re-subscribe after a reconnect calls onError and is retried until it works', async () => {
  const seed = join(dir, 'flaky.sql');
  writeFileSync(seed, `
CREATE TABLE IF NOT EXISTS public_flaky_rows (id INTEGER PRIMARY KEY, label TEXT NOT NULL);
INSERT INTO public_flaky_rows (label) SELECT 'first' WHERE NOT EXISTS (SELECT 1 FROM public_flaky_rows);
`);
  const p = { mqttPort: await freePort(), wsPort: await freePort() };
  const withTable = () => startServer({ dbFile: join(dir, 'flaky.db'), ...p, extra: ['--schema', seed] });
  let flaky = withTable();
  try {
    await flaky.ready;
    await page.evaluate(async (url) => {
      const c = await connectSpec(url, { clientId: 'flaky', timeoutMs: 3000, reconnectPeriod: 200, maxReconnectDelay: 500 });
      window.flakyErrors = [];
      window.flaky = c;
      window.flakyLive = await c.liveQuery('public.flaky_rows', {
        sort: [{ column: 'id' }],
        onError: (e) => window.flakyErrors.push({ name: e.name, code: e.code, at: Date.now() }),
      }, () => {});
      window.flakySubErrors = [];
      window.flakyNotes = [];
      window.flakySub = await c.subscribe('public.flaky_rows', { onError: (e) => window.flakySubErrors.push(e.code) },
        (n) => window.flakyNotes.push(n.data.label));
    }, flaky.wsUrl);
    // The server comes back without the table: the re-read fails.
    await flaky.kill();
    flaky = startServer({ dbFile: join(dir, 'flaky-empty.db'), ...p });
    await flaky.ready;
    // The live query's subscribe and read fail, each retried after 0.5 s, then 1 s, 2 s...,
    // each delay scaled by a jitter factor in [0.5, 1] (backoff-core).
    await page.waitForFunction(() => window.flakyErrors.length >= 6 && window.flakySubErrors.length >= 2, null, { timeout: 20_000 });
    const errs = await page.evaluate(() => window.flakyErrors);
    assert.equal(errs[0].name, 'SpecError');
    assert.equal(errs[0].code, 'model_not_found');
    const span = errs[5].at - errs[0].at;
    // Three failures each: at least 0.25 + 0.5 s of waiting in between.
    assert.ok(span >= 700, `backoff grows: 6 failures over ${span} ms`);
    assert.deepEqual([...new Set(await page.evaluate(() => window.flakySubErrors))], ['model_not_found']);
    // Back with the table and a new row: the view catches up by itself.
    await flaky.kill();
    flaky = withTable();
    await flaky.ready;
    await page.waitForFunction(() => window.flakySub.subscriptionId, null, { timeout: 20_000 });
    const raw = await rawClient(flaky.wsUrl, 'flaky-writer');
    await raw.request({ operation: 'create', schema: 'public', entity: 'flaky_rows', data: { label: 'second' } });
    await raw.end();
    await page.waitForFunction(() => window.flakyLive.rows().some((r) => r.label === 'second')
      && window.flakyNotes.includes('second'), null, { timeout: 20_000 });
    await page.evaluate(() => window.flaky.end());
  } finally {
    await flaky.kill();
  }
});

test('reconnect: requests made while the server is down complete after it returns; subscriptions come back', async () => {
  await page.evaluate(async (url) => {
    const c = await connectSpec(url, { clientId: 'survivor', timeoutMs: 60_000, reconnectPeriod: 200, maxReconnectDelay: 1000 });
    window.survivor = c;
    window.events = [];
    for (const e of ['offline', 'reconnect', 'connect']) c.on(e, () => window.events.push(e));
    window.survivorNotes = [];
    await c.subscribe('public.sensor_readings', {}, (n) => window.survivorNotes.push(n));
  }, server.wsUrl);
  await server.kill();
  await page.waitForFunction(() => window.events.includes('offline'), null, { timeout: 20_000 });
  await page.evaluate(() => {
    window.inFlight = Promise.all([
      window.survivor.read('public.users', { recordId: 1 }),
      window.survivor.create('public.sensor_readings', { device_id: 'dev-r', value: 1.5, ts: '2026-11-22T00:00:00Z' }),
    ]);
  });
  server = startServer({ dbFile: join(dir, 'demo.db'), ...ports });
  await server.ready;
  const out = await page.evaluate(async () => {
    const [read, created] = await window.inFlight;
    return { read: read.data.id, created: created.data.device_id };
  });
  assert.deepEqual(out, { read: 1, created: 'dev-r' });
  // The subscription was re-established on the new server.
  await writer.end();
  writer = await rawClient(server.wsUrl, 'node-writer');
  await writer.request({ operation: 'create', schema: 'public', entity: 'sensor_readings', data: { device_id: 'dev-n', value: 2, ts: '2026-11-22T00:00:01Z' } });
  await page.waitForFunction(() => window.survivorNotes.some((n) => n.data.device_id === 'dev-n'), null, { timeout: 10_000 });
  await page.evaluate(() => window.survivor.end());
  assert.deepEqual(errors, [], 'no uncaught page errors');
});

/** Users rows with `email`, read by the Node writer. */
async function usersWithEmail(email) {
  return (await writer.request({ operation: 'read', schema: 'public', entity: 'users',
    options: { filters: [{ column: 'email', operator: 'eq', value: email }] } })).data;
}

/** Reload the page, then connect `clientId` with its IndexedDB outbox and
 * count the users with `email` (read after the restored requests went out). */
async function reloadAndCount(url, clientId, email) {
  await page.reload();
  await page.waitForFunction(() => window.ready === true, null, { timeout: 60000 });
  await installHelpers();
  return page.evaluate(async ({ url, clientId, email }) => {
    const c = await window.spec.SpecClient.connect(url, { clientId, store: 'indexeddb' });
    // Sent after the restored requests: the server answers them in order.
    const r = await c.read('public.users', { options: { filters: [{ column: 'email', operator: 'eq', value: email }] } });
    await c.end();
    return r.data.length;
  }, { url, clientId, email });
}

// store: 'indexeddb': a create whose response had not arrived when the page
// reloaded is resent by the next page (same request id) and runs once: the
// server deduplicates by client id and request id.
test('a create in flight when the page reloads runs once with a persistent outbox', async () => {
  const relay = await startRelay(ports.mqttPort);
  const clientId = `reload${Math.random().toString(36).slice(2, 8)}`;
  const email = `${clientId}@example.com`;
  const rows = () => usersWithEmail(email);
  try {
    await page.evaluate(async ({ url, clientId }) => {
      window.reloading = await window.spec.SpecClient.connect(url, { clientId, store: 'indexeddb' });
    }, { url: relay.url, clientId });
    relay.holdFor(); // the response never reaches the page
    await page.evaluate(({ email }) => {
      window.reloading.create('public.users', { name: 'Reload Rita', email, status: 'active' }).catch(() => {});
    }, { email });
    while ((await rows()).length === 0) await new Promise((r) => setTimeout(r, 20));
    relay.discard();
    assert.equal(await reloadAndCount(relay.url, clientId, email), 1);
    assert.equal((await rows()).length, 1, 'the resent create ran once');
  } finally {
    await relay.stop();
  }
});

test('a create made offline survives a page reload with a persistent outbox and runs once', async () => {
  const relay = await startRelay(ports.mqttPort);
  const clientId = `offline${Math.random().toString(36).slice(2, 8)}`;
  const email = `${clientId}@example.com`;
  const rows = () => usersWithEmail(email);
  try {
    await page.evaluate(async ({ url, clientId }) => {
      window.offlineSpec = await window.spec.SpecClient.connect(url, { clientId, store: 'indexeddb', reconnect: false });
      window.offlineSpec.on('offline', () => { window.wentOffline = true; });
    }, { url: relay.url, clientId });
    relay.cut();
    await page.waitForFunction(() => window.wentOffline === true);
    // Made while offline (and no reconnection): only the outbox has it.
    const stored = await page.evaluate(async ({ url, clientId, email }) => {
      window.offlineSpec.create('public.users', { name: 'Offline Olga', email, status: 'active' }).catch(() => {});
      const count = () => new Promise((resolve, reject) => {
        const r = indexedDB.open(`mqttspec-outbox ${clientId} ${url}`);
        r.onerror = () => reject(r.error);
        r.onsuccess = () => {
          const q = r.result.transaction('publishes').objectStore('publishes').count();
          q.onsuccess = () => { r.result.close(); resolve(q.result); };
        };
      });
      while ((await count()) === 0) await new Promise((r) => setTimeout(r, 10));
      return count();
    }, { url: relay.url, clientId, email });
    assert.equal(stored, 1);
    assert.equal((await rows()).length, 0, 'not sent before the reload');
    assert.equal(await reloadAndCount(relay.url, clientId, email), 1,
      'the stored create was sent after the reload, before the read');
    assert.equal((await rows()).length, 1);
  } finally {
    await relay.stop();
  }
});

// After a reconnect a live query resumes from the last change sequence it saw
// (subscribe with options.since): it receives the changes it missed, not its
// whole result set again, and ends equal to a fresh read.
test('a live query resumes after a reconnect with only the changes it missed', async () => {
  const relay = await startRelay(ports.mqttPort);
  const fresh = async () => (await writer.request({ operation: 'read', schema: 'public', entity: 'users',
    options: { sort: [{ column: 'id', direction: 'asc' }] } })).data;
  try {
    await page.evaluate(async (url) => {
      window.resumer = await connectSpec(url, { clientId: 'resumer', reconnectPeriod: 100, maxReconnectDelay: 200 });
      window.resumerLive = await window.resumer.liveQuery('public.users', { sort: [{ column: 'id' }] }, () => {});
    }, relay.url);
    // A change seen live gives the view a sequence to resume from.
    await writer.request({ operation: 'create', schema: 'public', entity: 'users', data: { name: 'Seen Sam', email: 'sam@x', status: 'active' } });
    await page.waitForFunction(() => window.resumerLive.rows().some((r) => r.email === 'sam@x'));
    relay.refuse = true;
    relay.recording = true;
    await page.evaluate(() => { window.resumerBack = new Promise((resolve) => window.resumer.on('connect', resolve)); });
    relay.cut();
    const missed = [];
    for (const name of ['Missed Mia', 'Missed Max', 'Missed Moe']) {
      missed.push((await writer.request({ operation: 'create', schema: 'public', entity: 'users',
        data: { name, email: `${name.split(' ')[1].toLowerCase()}@x`, status: 'active' } })).data.id);
    }
    await writer.request({ operation: 'delete', schema: 'public', entity: 'users', record_id: String(missed[0]) });
    relay.refuse = false;
    await page.evaluate(() => window.resumerBack);
    const expected = await fresh();
    await page.waitForFunction((n) => window.resumerLive.rows().length === n, expected.length);
    assert.deepEqual(await page.evaluate(() => window.resumerLive.rows()), expected);
    const sent = relay.recorded.map((b) => b.toString('latin1'));
    assert.ok(sent.some((p) => p.includes('"operation":"subscribe"') && p.includes('"since":')), 'resumed with since');
    assert.ok(!sent.some((p) => p.includes('"operation":"read"')), 'no read of the whole result set');
    await page.evaluate(() => window.resumer.end());
  } finally {
    await relay.stop();
  }
});
