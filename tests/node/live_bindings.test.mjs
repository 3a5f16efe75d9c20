// `mqttspec-wasm/live` in headless Chromium against mqttspec-server --demo:
// liveStore's snapshot and status through a connection that is cut and comes
// back, and `shared: true`: two tabs of one origin share one broker connection
// (counted at a relay in front of the server), an identical live query of both
// tabs runs once, closing a tab drops what it held and keeps the other tab
// live, and a browser without SharedWorker gets a connection of its own.
// MQTT.js in Node writes rows as an independent client.
// Needs `cargo build --bin mqttspec-server`; builds the package if missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackage, freePort, pkgDir, startRelay, startStatic, launchBrowser } from './mqtt_client/harness.mjs';
import { binary, createUser as createUserBy, rawClient, startServer, stopAll, userIds } from './spec_client/harness.mjs';

const PAGE = `<!doctype html><meta charset="utf-8"><title>live bindings test</title>
<script type="module">
  window.live = await import('/pkg/live.js');
  window.ready = true;
</script>`;

const QUERY = { sort: [{ column: 'id', direction: 'desc' }], limit: 3 };

let dir, server, web, browser, writer;

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run cargo build --bin mqttspec-server first`);
  ensurePackage();
  dir = mkdtempSync(join(tmpdir(), 'live-bindings-'));
  const mqttPort = await freePort();
  server = startServer({ dbFile: join(dir, 'demo.db'), mqttPort, wsPort: await freePort() });
  server.tcpPort = mqttPort;
  await server.ready;
  web = await startStatic(pkgDir, PAGE);
  browser = await launchBrowser();
  writer = await rawClient(server.wsUrl, 'live-writer');
});

after(() => stopAll({ writer, browser, webs: [web], server, dir }));

async function newPage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(web.url);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 60_000 });
  return { page, errors };
}

/** Ids of the newest three users, read by the independent client. */
const newestIds = () => userIds(writer, QUERY);
const createUser = (name) => createUserBy(writer, name);

/** Opens a store on the page (window.store) that records every snapshot it is given. */
async function openStore(page, url, options, query = QUERY) {
  await page.evaluate(async ({ url, options, query }) => {
    window.spec = await window.live.connect(url, options);
    window.store = window.live.liveStore(window.spec, 'public.users', query);
    window.seen = [];
    window.store.subscribe((s) => window.seen.push({ status: s.status, ids: s.rows.map((r) => r.id), code: s.error?.code }));
  }, { url, options, query });
}

function waitForStore(page, status, ids) {
  return page.waitForFunction(({ status, ids }) => {
    const s = window.store.getSnapshot();
    return s.status === status && (!ids || JSON.stringify(s.rows.map((r) => r.id)) === JSON.stringify(ids));
  }, { status, ids }, { timeout: 20_000 });
}

test('liveStore: connecting, then live rows equal to a fresh read; stale while cut off, live again after', async () => {
  const relay = await startRelay(server.tcpPort);
  const context = await browser.newContext();
  try {
    const { page, errors } = await newPage(context);
    await openStore(page, relay.url, { clientId: 'store-page', reconnectPeriod: 200 });
    await waitForStore(page, 'live', await newestIds());
    const first = await page.evaluate(() => window.seen[0]);
    assert.deepEqual(first, { status: 'connecting', ids: [], code: undefined }, 'a listener gets the snapshot at once');
    assert.equal(await page.evaluate(() => window.store.getSnapshot() === window.store.getSnapshot()), true,
      'getSnapshot returns one object until something changes');

    const id = await createUser('store-live');
    await waitForStore(page, 'live', await newestIds());
    assert.equal((await newestIds())[0], id);

    relay.refuse = true;
    relay.cut();
    await waitForStore(page, 'stale', await newestIds());
    const created = await createUser('store-while-cut');
    relay.refuse = false;
    await waitForStore(page, 'live', await newestIds());
    assert.equal((await newestIds())[0], created, 'the row created while cut off is in the view once live again');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await relay.stop();
  }
});

test('liveStore: a query the server refuses gives status error with its code; the store closes its live query', async () => {
  const context = await browser.newContext();
  try {
    const { page } = await newPage(context);
    const snap = await page.evaluate(async (url) => {
      const spec = await window.live.connect(url, { clientId: 'store-error' });
      const store = window.live.liveStore(spec, 'public.no_such_table', {});
      const done = new Promise((resolve) => store.subscribe((s) => s.status === 'error' && resolve(s)));
      const s = await done;
      await store.close();
      await spec.end();
      return { status: s.status, code: s.error.code, message: s.error.message, rows: s.rows.length };
    }, server.wsUrl);
    assert.equal(snap.status, 'error');
    assert.equal(snap.code, 'model_not_found', snap.message);
    assert.equal(snap.rows, 0);
  } finally {
    await context.close();
  }
});

/** MQTTSpec requests the tabs sent through the relay with this operation. */
function sentOperations(relay, operation) {
  return relay.recorded.filter((packet) => packet.includes(`"operation":"${operation}"`)).length;
}

async function until(condition, what) {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('shared: two tabs, one broker connection, one run of an identical live query; closing a tab keeps the other live', async () => {
  const relay = await startRelay(server.tcpPort);
  relay.recording = true;
  const context = await browser.newContext();
  try {
    const a = await newPage(context);
    const b = await newPage(context);
    const options = { clientId: 'shared-tabs', shared: true };
    await openStore(a.page, relay.url, options);
    // The same query with its keys in another order is the same query.
    await openStore(b.page, relay.url, options, { limit: 3, sort: [{ direction: 'desc', column: 'id' }] });
    const ids = await newestIds();
    await Promise.all([waitForStore(a.page, 'live', ids), waitForStore(b.page, 'live', ids)]);
    assert.equal(await a.page.evaluate(() => window.spec.shared), true, 'a shared client');
    assert.equal(relay.connections, 1, 'both tabs use one broker connection');
    assert.equal(sentOperations(relay, 'subscribe'), 1, 'the identical live query runs once');
    assert.equal(sentOperations(relay, 'read'), 1, 'and reads once');

    // A query only tab A has, and a write through the shared connection.
    await a.page.evaluate(async () => {
      window.mine = await window.spec.liveQuery('public.users', { filters: [{ column: 'status', operator: 'eq', value: 'pending' }] }, () => {});
    });
    const { data: row } = await b.page.evaluate(() => window.spec.create('public.users',
      { name: 'from-tab-b', email: 'from-tab-b@example.com', status: 'active' }));
    const afterWrite = await newestIds();
    assert.equal(afterWrite[0], row.id);
    await Promise.all([waitForStore(a.page, 'live', afterWrite), waitForStore(b.page, 'live', afterWrite)]);

    await a.page.close();
    // The worker notices the closed tab (its Web Lock is released) and drops the query only it had.
    await until(() => sentOperations(relay, 'unsubscribe') === 1, "the closed tab's own live query to be unsubscribed");
    const id = await createUser('after-tab-a-closed');
    const now = await newestIds();
    assert.equal(now[0], id);
    await waitForStore(b.page, 'live', now);
    assert.equal(relay.connections, 1, 'still one connection');
    assert.equal(sentOperations(relay, 'unsubscribe'), 1, "the shared query stays for tab B");
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await context.close();
    await relay.stop();
  }
});

test('shared: without SharedWorker, each tab connects on its own and the store works the same', async () => {
  const relay = await startRelay(server.tcpPort);
  const context = await browser.newContext();
  await context.addInitScript(() => { delete window.SharedWorker; });
  try {
    const a = await newPage(context);
    const b = await newPage(context);
    await openStore(a.page, relay.url, { clientId: 'fallback-a', shared: true });
    await openStore(b.page, relay.url, { clientId: 'fallback-b', shared: true });
    const ids = await newestIds();
    await Promise.all([waitForStore(a.page, 'live', ids), waitForStore(b.page, 'live', ids)]);
    assert.equal(await a.page.evaluate(() => window.spec.shared ?? false), false, 'a SpecClient of the tab');
    assert.equal(relay.connections, 2);
  } finally {
    await context.close();
    await relay.stop();
  }
});

test('shared: connection events reach every tab; subscribe (callback and for await), update, delete and meta go through the worker', async () => {
  const relay = await startRelay(server.tcpPort);
  const context = await browser.newContext();
  try {
    const a = await newPage(context);
    const b = await newPage(context);
    const options = { clientId: 'shared-ops', shared: true, reconnectPeriod: 200 };
    await openStore(a.page, relay.url, options);
    await openStore(b.page, relay.url, options);
    await Promise.all([waitForStore(a.page, 'live', await newestIds()), waitForStore(b.page, 'live', await newestIds())]);

    // Tab A iterates a subscription, tab B has one with a callback.
    await a.page.evaluate(async () => {
      const sub = await window.spec.subscribe('public.users', {});
      window.firstNote = (async () => { for await (const n of sub) return { operation: n.operation, name: n.data.name }; })();
    });
    await b.page.evaluate(async () => {
      window.notes = [];
      window.sub = await window.spec.subscribe('public.users', { filters: [{ column: 'status', operator: 'eq', value: 'active' }] },
        (n) => window.notes.push(n.operation));
    });
    const id = await createUser('shared-ops-row');
    assert.deepEqual(await a.page.evaluate(() => window.firstNote), { operation: 'create', name: 'shared-ops-row' });
    await b.page.waitForFunction(() => window.notes.includes('create'));

    relay.refuse = true;
    relay.cut();
    await Promise.all([waitForStore(a.page, 'stale'), waitForStore(b.page, 'stale')]);
    assert.equal(await a.page.evaluate(() => window.spec.connected), false);
    relay.refuse = false;
    await Promise.all([waitForStore(a.page, 'live'), waitForStore(b.page, 'live')]);
    assert.equal(await b.page.evaluate(() => window.spec.connected), true);

    const renamed = await b.page.evaluate((id) => window.spec.update('public.users', id, { name: 'renamed-in-b' }), id);
    assert.equal(renamed.data.name, 'renamed-in-b');
    await a.page.waitForFunction((id) => window.store.getSnapshot().rows.find((r) => r.id === id)?.name === 'renamed-in-b', id);
    const meta = await b.page.evaluate(() => window.spec.meta('public.users'));
    assert.ok(meta.data.columns.some((c) => c.name === 'email'), JSON.stringify(meta.data));
    const refused = await b.page.evaluate(() => window.spec.read('public.nope').then(() => null, (e) => ({ name: e.name, code: e.code })));
    assert.deepEqual(refused, { name: 'SpecError', code: 'model_not_found' });
    await a.page.evaluate((id) => window.spec.delete('public.users', id), id);
    await Promise.all([waitForStore(a.page, 'live', await newestIds()), waitForStore(b.page, 'live', await newestIds())]);
    assert.ok(!(await newestIds()).includes(id));
    await b.page.waitForFunction(() => window.notes.includes('delete'));
  } finally {
    await context.close();
    await relay.stop();
  }
});

test('shared: a SharedWorker script that cannot load rejects connect with worker_failed, naming the file', async () => {
  const context = await browser.newContext();
  await context.route('**/shared-worker.js', (route) => route.fulfill({ status: 404, body: 'not here' }));
  try {
    const { page } = await newPage(context);
    const error = await page.evaluate((url) => window.live.connect(url, { shared: true, clientId: 'no-worker' })
      .then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message })), server.wsUrl);
    assert.equal(error?.code, 'worker_failed', JSON.stringify(error));
    assert.match(error.message, /shared-worker\.js/);
  } finally {
    await context.close();
  }
});

test('shared: a tab whose connect failed leaves nothing behind (the connection ends with the last tab); Dates in writes travel as JSON', async () => {
  const relay = await startRelay(server.tcpPort);
  const context = await browser.newContext();
  try {
    const { page, errors } = await newPage(context);
    const options = { clientId: 'shared-retry', shared: true };
    relay.refuse = true;
    const failed = await page.evaluate(({ url, options }) => window.live.connect(url, options)
      .then(() => null, (e) => ({ name: e.name, code: e.code })), { url: relay.url, options });
    assert.equal(failed?.code, 'CONNECTION_FAILED', JSON.stringify(failed));
    relay.refuse = false;
    const row = await page.evaluate(async ({ url, options }) => {
      window.spec = await window.live.connect(url, options);
      const { data } = await window.spec.create('public.users',
        { name: 'dated', email: 'dated@example.com', status: 'active', created_at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) });
      return data;
    }, { url: relay.url, options });
    assert.equal(row.created_at, '2026-01-02T03:04:05.000Z');
    assert.equal(relay.connections, 1);
    await page.evaluate(() => window.spec.end());
    await until(() => relay.ws.readyState === relay.ws.CLOSED, 'the shared connection to end after its last tab');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await relay.stop();
  }
});

test('connect: two at once load the wasm module once and both clients work', async () => {
  const context = await browser.newContext();
  try {
    const { page, errors } = await newPage(context);
    const counts = await page.evaluate(async (url) => {
      const [a, b] = await Promise.all([window.live.connect(url, { clientId: 'twin-a' }), window.live.connect(url, { clientId: 'twin-b' })]);
      const reads = await Promise.all([a, b].map((c) => c.read('public.users', { options: { limit: 2 } })));
      await Promise.all([a.end(), b.end()]);
      return reads.map((r) => r.data.length);
    }, server.wsUrl);
    assert.deepEqual(counts, [2, 2]);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
