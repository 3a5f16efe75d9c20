// The live admin (web/) in headless Chromium, against real servers:
// - mqttspec-server --demo on a SQLite file: the entity list, filters with
//   several operators, sort and pages, rows written elsewhere (MQTT.js and
//   the sqlite3 CLI) appearing live and flashing, create / edit / delete
//   through the generated form, a server error shown with its code, the
//   chart's points equal to the readings in the database;
// - a server without the entity list (answering as ResolveSpec's does, over
//   mosquitto): the page says so and opens an entity typed by name;
// - a fresh PostgreSQL schema the page has never seen (numeric, boolean,
//   timestamptz, jsonb, nullable text): listed, its rows shown as stored,
//   a row edited through the form, a psql insert appearing live, and the
//   chart of a numeric column over the timestamptz column.
// Every check compares the page with what the database holds. Screenshots:
// tests/artifacts/admin-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackage, launchBrowser, root, startMosquitto } from './mqtt_client/harness.mjs';
import { rawClient } from './spec_client/harness.mjs';
import { serveAdmin, startListlessServer, startPostgres, startSpecServer } from './admin/harness.mjs';

const artifacts = join(root, 'tests/artifacts');
let dir, dbFile, server, web, browser, page, writer, pg, pgServer;
const pageErrors = [];

/** Rows of the SQLite file as objects (sqlite3 -json; LIKE case-sensitive as the server has it). */
function sqlite(sql) {
  const out = execFileSync('sqlite3', ['-json', '-cmd', 'PRAGMA case_sensitive_like = ON', dbFile, sql], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}

/** A value as the page's table shows it: null stays null, objects as JSON, the rest as text. */
const cell = (v) => (v === null || v === undefined ? null : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** JSON text with its object keys sorted (jsonb keeps its own key order; JSON objects have none). */
function canon(text) {
  if (typeof text !== 'string' || !/^[[{]/.test(text)) return text;
  const sorted = (v) => (Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object'
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  try { return JSON.stringify(sorted(JSON.parse(text))); } catch { return text; }
}

/** The table on the page: one array of cells per row (null for NULL cells). */
const domRows = async () => (await page.$$eval('#rows tbody tr', (trs) => trs.map((tr) =>
  [...tr.children].map((td) => (td.classList.contains('null') ? null : td.textContent))))).map((r) => r.map(canon));

/** Database rows in the page's column order, as the page would show them. */
async function asShown(rows) {
  const columns = await page.evaluate(() => window.admin.meta.columns.map((c) => c.name));
  return rows.map((r) => columns.map((c) => canon(cell(r[c]))));
}

/** Wait until the table shows exactly the rows with `ids`, in order. */
async function waitIds(ids, timeout = 15_000) {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#rows tbody tr')].map((tr) => tr.dataset.key);
    return JSON.stringify(got) === JSON.stringify(want.map(String));
  }, ids, { timeout }).catch(async (e) => {
    const got = await page.$$eval('#rows tbody tr', (trs) => trs.map((tr) => tr.dataset.key));
    throw new Error(`table shows ${JSON.stringify(got)}, wanted ${JSON.stringify(ids)}: ${e.message}`);
  });
}

/** Open an entity from the list and wait for its table. */
async function openEntity(name) {
  await page.click(`#entity-list button[data-entity="${name}"]`);
  await page.waitForFunction((n) => window.admin.table && document.getElementById('entity-title').textContent === n
    && document.querySelector('#rows caption')?.textContent.startsWith(n), name);
}

/** Replace the filters through the builder and apply them. */
async function setFilters(filters) {
  await page.click('#clear-filters');
  for (const [i, f] of filters.entries()) {
    await page.click('#add-filter');
    const row = page.locator('.filter-row').nth(i);
    if (f.logic) await row.locator('select[name=logic]').selectOption(f.logic);
    await row.locator('select[name=column]').selectOption(f.column);
    await row.locator('select[name=operator]').selectOption(f.operator);
    for (const name of ['value', 'pattern', 'list', 'low', 'high']) {
      if (f[name] !== undefined) await row.locator(`[name=${name}]`).fill(String(f[name]));
    }
  }
  await page.click('#apply-filters');
}

before(async () => {
  ensurePackage();
  dir = mkdtempSync(join(tmpdir(), 'admin-test-'));
  dbFile = join(dir, 'demo.db');
  server = await startSpecServer(['--demo', '--database', `sqlite:${dbFile}`]);
  web = await serveAdmin();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  writer = await rawClient(server.wsUrl, 'admin-writer');
  await page.goto(`${web.url}?broker=${encodeURIComponent(server.wsUrl)}#public.users`);
  await page.waitForFunction(() => window.admin?.state === 'connected' && window.admin.table?.rows().length > 0,
    null, { timeout: 60_000 });
});

after(async () => {
  await writer?.end();
  await browser?.close();
  await web?.stop();
  await server?.stop();
  await pgServer?.stop();
  pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the entity list shows the demo tables and the table shows what the database holds', async () => {
  const listed = await page.$$eval('#entity-list button', (bs) => bs.map((b) => b.dataset.entity));
  assert.deepEqual(listed, ['public.sensor_readings', 'public.users']);
  assert.equal(await page.textContent('#entity-title'), 'public.users', 'opened from the URL hash');
  const users = sqlite('SELECT * FROM public_users ORDER BY id');
  await waitIds(users.map((u) => u.id));
  assert.deepEqual(await domRows(), await asShown(users));
  const types = await page.$$eval('#columns-table tr', (trs) => trs.slice(1).map((tr) => tr.children[0].textContent));
  assert.deepEqual(types, ['id', 'name', 'email', 'status', 'created_at']);
  assert.ok(await page.isHidden('#chart-card'), 'no chart: users have no measurement besides the key');
});

test('filters with every operator give the rows the database gives', async () => {
  const cases = [
    [[{ column: 'status', operator: 'eq', value: 'active' }, { column: 'name', operator: 'like', pattern: '%o%' }],
      "status = 'active' AND name LIKE '%o%'"],
    [[{ column: 'id', operator: 'between', low: 2, high: 4 }, { logic: 'OR', column: 'email', operator: 'ilike', pattern: 'CAROL%' }],
      "id BETWEEN 2 AND 4 OR lower(email) LIKE 'carol%'"],
    [[{ column: 'status', operator: 'not_in', list: 'active, pending' }], "status NOT IN ('active', 'pending')"],
    [[{ column: 'id', operator: 'in', list: '1, 3, 5' }, { column: 'email', operator: 'is_not_null' }],
      'id IN (1, 3, 5) AND email IS NOT NULL'],
    [[{ column: 'created_at', operator: 'gte', value: '2024-01-03T10:00:00.000Z' }, { column: 'id', operator: 'neq', value: 5 }],
      "created_at >= '2024-01-03T10:00:00.000Z' AND id <> 5"],
    [[{ column: 'id', operator: 'gt', value: 1 }, { column: 'id', operator: 'lte', value: 3 }],
      'id > 1 AND id <= 3'],
    [[{ column: 'email', operator: 'is_null' }, { logic: 'OR', column: 'id', operator: 'lt', value: 3 }],
      'email IS NULL OR id < 3'],
  ];
  const used = new Set(cases.flatMap(([filters]) => filters.map((f) => f.operator)));
  const all = await page.evaluate(async () => (await import('./filters.js')).OPERATORS.map((o) => o.op));
  assert.deepEqual([...used].sort(), [...all].sort(), 'every operator of the builder is exercised');
  const wire = [...readFileSync(join(root, 'crates/mqttspec-proto/src/options.rs'), 'utf8')
    .matchAll(/FilterOp::\w+ => "(\w+)"/g)].map((m) => m[1]);
  assert.deepEqual(all, wire, 'the builder offers the protocol\'s operators (mqttspec_proto::FilterOp), in wire order');
  for (const [filters, where] of cases) {
    await setFilters(filters);
    const expected = sqlite(`SELECT * FROM public_users WHERE ${where} ORDER BY id`);
    assert.ok(expected.length > 0 && expected.length < 5, `${where}: a real selection (${expected.length})`);
    await waitIds(expected.map((r) => r.id));
    assert.deepEqual(await domRows(), await asShown(expected), where);
  }
  await setFilters([]);
  await waitIds(sqlite('SELECT id FROM public_users ORDER BY id').map((r) => r.id));
});

test('a bad operand and a server error are shown with their code and message', async () => {
  await setFilters([{ column: 'id', operator: 'eq', value: '' }]);
  await page.waitForSelector('#error:not([hidden])');
  assert.equal(await page.getAttribute('#error', 'data-code'), 'invalid_input');
  assert.match(await page.textContent('#error'), /id: "" is not an integer/);
  // A duplicate e-mail: the database refuses, the server answers create_error.
  await page.click('#new-row');
  await page.fill('#row-form [name=name]', 'Dup');
  await page.fill('#row-form [name=email]', 'john@example.com');
  await page.click('#save');
  await page.waitForFunction(() => window.admin.error?.code === 'create_error');
  assert.match(await page.textContent('#error'), /create_error: database refused the operation: .*UNIQUE/i);
  assert.equal(sqlite("SELECT count(*) AS n FROM public_users WHERE name = 'Dup'")[0].n, 0);
  await setFilters([]);
});

test('sort by a header and pages of the readings follow the database order', async () => {
  await openEntity('public.sensor_readings');
  await page.selectOption('#page-size', '10');
  await page.waitForFunction(() => document.querySelectorAll('#rows tbody tr').length === 10);
  await page.click('#rows th:has-text("value")');
  await page.waitForSelector('#rows th[aria-sort=ascending]:has-text("value")');
  await page.click('#rows th:has-text("value")');
  await page.waitForSelector('#rows th[aria-sort=descending]:has-text("value")');
  const all = sqlite('SELECT * FROM public_sensor_readings ORDER BY value DESC, id');
  await waitIds(all.slice(0, 10).map((r) => r.id));
  assert.deepEqual(await domRows(), await asShown(all.slice(0, 10)));
  await page.click('#next-page');
  await waitIds(all.slice(10, 20).map((r) => r.id));
  assert.deepEqual(await domRows(), await asShown(all.slice(10, 20)));
  await page.waitForFunction((n) => document.getElementById('page-info').textContent === `rows 11–20 of ${n}`, all.length);
  await page.click('#prev-page');
  await waitIds(all.slice(0, 10).map((r) => r.id));
  // A reading far below this page changes no row shown, but the count follows it.
  const low = await writer.request({ operation: 'create', schema: 'public', entity: 'sensor_readings',
    data: { device_id: 'device-1', value: 0.5, ts: '2024-01-01T00:30:00.000Z' } });
  assert.equal(low.success, true, JSON.stringify(low));
  await page.waitForFunction((n) => document.getElementById('page-info').textContent === `rows 1–10 of ${n}`, all.length + 1);
  await waitIds(all.slice(0, 10).map((r) => r.id));
});

test('the chart draws the readings the database holds, one line per device, and follows new ones', async () => {
  // Still on sensor_readings: value over ts, lines by device_id.
  assert.deepEqual(await page.$eval('#chart-y', (s) => s.value), 'value');
  assert.deepEqual(await page.$eval('#chart-x', (s) => s.value), 'ts');
  assert.deepEqual(await page.$eval('#chart-by', (s) => s.value), 'device_id');
  const check = async () => {
    const rows = sqlite('SELECT device_id, value, ts FROM public_sensor_readings ORDER BY ts DESC, id LIMIT 200');
    await page.waitForFunction((n) => Number(document.getElementById('chart')?.dataset.points) === n, rows.length);
    const drawn = await page.$$eval('#chart circle', (cs) => cs.map((c) => ({
      series: c.dataset.series, t: c.dataset.t, v: Number(c.dataset.v), x: Number(c.getAttribute('cx')), y: Number(c.getAttribute('cy')) })));
    const key = (p) => `${p.series}|${p.t}|${p.v}`;
    assert.deepEqual(drawn.map(key).sort(), rows.map((r) => key({ series: r.device_id, t: r.ts, v: r.value })).sort());
    // x grows with time and y falls as the value grows, on one scale for all lines.
    const byTime = [...drawn].sort((a, b) => Date.parse(a.t) - Date.parse(b.t));
    for (let i = 1; i < byTime.length; i++) assert.ok(byTime[i].x >= byTime[i - 1].x, 'x follows time');
    const byValue = [...drawn].sort((a, b) => a.v - b.v);
    for (let i = 1; i < byValue.length; i++) assert.ok(byValue[i].y <= byValue[i - 1].y, 'y follows value');
    const lines = await page.$$eval('#chart polyline', (ls) => ls.map((l) => l.dataset.series));
    assert.deepEqual(lines, [...new Set(rows.map((r) => r.device_id))].sort());
    return drawn;
  };
  await check();
  const created = await writer.request({ operation: 'create', schema: 'public', entity: 'sensor_readings',
    data: { device_id: 'device-9', value: 99.5, ts: new Date().toISOString() } });
  assert.equal(created.success, true, JSON.stringify(created));
  const drawn = await check();
  const top = drawn.find((p) => p.series === 'device-9');
  assert.equal(top.v, 99.5);
  assert.equal(Math.min(...drawn.map((p) => p.y)), top.y, 'the highest value is drawn highest');
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'admin-readings.png'), fullPage: true });
});

test('rows written elsewhere (MQTT.js, the sqlite3 CLI) appear live and flash', async () => {
  await openEntity('public.users');
  const created = await writer.request({ operation: 'create', schema: 'public', entity: 'users',
    data: { name: 'Live Lena', email: 'lena@example.com', status: 'pending' } });
  assert.equal(created.success, true, JSON.stringify(created));
  const id = created.data.id;
  await page.waitForSelector(`#rows tr[data-key="${id}"][data-flashed]`);
  assert.ok(await page.$eval(`#rows tr[data-key="${id}"]`, (tr) => tr.classList.contains('flash')));
  sqlite("INSERT INTO public_users (name, email, status) VALUES ('Cli Carl', NULL, 'active')");
  const [carl] = sqlite("SELECT * FROM public_users WHERE name = 'Cli Carl'");
  await page.waitForSelector(`#rows tr[data-key="${carl.id}"][data-flashed]`);
  const users = sqlite('SELECT * FROM public_users ORDER BY id');
  await waitIds(users.map((u) => u.id));
  assert.deepEqual(await domRows(), await asShown(users));
  const flashedBefore = await page.$eval(`#rows tr[data-key="${id}"]`, (tr) => Number(tr.dataset.flashed));
  sqlite(`UPDATE public_users SET status = 'inactive' WHERE id = ${id}`);
  await page.waitForFunction(([k, n]) => Number(document.querySelector(`#rows tr[data-key="${k}"]`)?.dataset.flashed) > n, [id, flashedBefore]);
  assert.deepEqual(await domRows(), await asShown(sqlite('SELECT * FROM public_users ORDER BY id')));
});

test('create, edit and delete through the generated form', async () => {
  await page.click('#new-row');
  await page.fill('#row-form [name=name]', 'Form Fay');
  await page.fill('#row-form [name=email]', 'fay@example.com');
  await page.fill('#row-form [name=status]', 'active');
  await page.click('#save');
  await page.waitForFunction(() => /^Created public\.users \d+$/.test(document.getElementById('result').textContent));
  const id = Number((await page.textContent('#result')).split(' ').at(-1));
  const [fay] = sqlite(`SELECT * FROM public_users WHERE id = ${id}`);
  assert.equal(fay.name, 'Form Fay');
  assert.equal(fay.email, 'fay@example.com');
  assert.ok(fay.created_at, 'the database default filled created_at');
  await page.waitForSelector(`#rows tr[data-key="${id}"]`);

  await page.click(`#rows tr[data-key="${id}"]`);
  await page.waitForFunction((k) => document.getElementById('form-title').textContent.endsWith(`id = ${k}`), id);
  assert.equal(await page.inputValue('#row-form [name=name]'), 'Form Fay');
  assert.ok(await page.isDisabled('#row-form [name=id]'), 'the key is not edited');
  await page.fill('#row-form [name=status]', 'inactive');
  await page.check('#row-form [name="email.null"]');
  await page.click('#save');
  await page.waitForFunction((k) => document.getElementById('result').textContent === `Updated public.users ${k}`, id);
  const [edited] = sqlite(`SELECT * FROM public_users WHERE id = ${id}`);
  assert.deepEqual([edited.name, edited.email, edited.status], ['Form Fay', null, 'inactive']);
  await page.waitForFunction((k) => document.querySelector(`#rows tr[data-key="${k}"] td:nth-child(3)`)?.classList.contains('null'), id);
  assert.deepEqual(await domRows(), await asShown(sqlite('SELECT * FROM public_users ORDER BY id')));

  await page.click('#delete');
  await page.waitForFunction((k) => document.getElementById('result').textContent === `Deleted public.users ${k}`, id);
  assert.equal(sqlite(`SELECT count(*) AS n FROM public_users WHERE id = ${id}`)[0].n, 0);
  await page.waitForSelector(`#rows tr[data-key="${id}"]`, { state: 'detached' });
  assert.deepEqual(await domRows(), await asShown(sqlite('SELECT * FROM public_users ORDER BY id')));
  await page.screenshot({ path: join(artifacts, 'admin-users.png'), fullPage: true });
});

test('against a server without the entity list the page says so and opens a typed name', async () => {
  // mosquitto and a stand-in answering as the reference server does (meta of "*": model_not_found).
  const broker = await startMosquitto();
  const users = sqlite('SELECT * FROM public_users ORDER BY id LIMIT 3');
  const meta = await page.evaluate(() => window.admin.spec.meta('public.users').then((r) => r.data));
  const listless = await startListlessServer(broker.tcpUrl, meta, users);
  const old = await browser.newPage();
  try {
    old.on('pageerror', (e) => pageErrors.push(e.message));
    await old.goto(`${web.url}?broker=${encodeURIComponent(broker.wsUrl)}`);
    await old.waitForFunction(() => window.admin?.state === 'connected' && document.getElementById('entity-hint').dataset.listed === 'false');
    assert.equal(await old.textContent('#entity-hint'), 'This server does not list its entities: type a name to open one.');
    assert.equal(await old.$$eval('#entity-list li', (lis) => lis.length), 0);
    assert.ok(await old.isHidden('#error'), 'no list is not an error');
    await old.fill('#entity-name', 'public.users');
    await old.click('#open-entity');
    await old.waitForFunction((n) => document.querySelectorAll('#rows tbody tr').length === n, users.length);
    assert.equal(await old.textContent('#entity-title'), 'public.users');
    const shown = await old.$$eval('#rows tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.deepEqual(shown, users.map((u) => meta.columns.map((c) => cell(u[c.name]) ?? '')));
    await old.fill('#entity-name', 'nope');
    await old.click('#open-entity');
    await old.waitForFunction(() => window.admin.error?.code === 'model_not_found');
    assert.match(await old.textContent('#error'), /model_not_found: Model not found: \.nope/);
  } finally {
    await old.close();
    await listless.stop();
    broker.stop();
  }
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});

test('a PostgreSQL schema the page has never seen: listed, shown as stored, edited, live, charted', async () => {
  pg = await startPostgres('lab');
  pg.psql(`
    CREATE SCHEMA lab;
    CREATE TABLE lab.measurements (id bigserial PRIMARY KEY, label text NOT NULL, amount numeric(12,3) NOT NULL,
      ok boolean NOT NULL DEFAULT true, taken_at timestamptz NOT NULL, extra jsonb, note text);
    INSERT INTO lab.measurements (label, amount, ok, taken_at, extra, note) VALUES
      ('a', 1.5, true, '2025-03-01T10:00:00Z', '{"k": 1}', NULL),
      ('b', 2.25, false, '2025-03-01T10:05:00Z', NULL, 'second'),
      ('c', 0.75, true, '2025-03-01T10:10:00Z', '[1, 2]', NULL),
      ('d', 3.125, true, '2025-03-01T10:15:00Z', NULL, NULL);
    CREATE TABLE lab.notes_without_key (msg text);`);
  pgServer = await startSpecServer(['--database', pg.url]);
  const pgRows = () => pg.psql('SELECT row_to_json(m)::text FROM lab.measurements m ORDER BY id').map(([j]) => JSON.parse(j));
  const pgPage = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const errors = [];
  pgPage.on('pageerror', (e) => errors.push(e.message));
  page = pgPage; // the helpers above use `page`
  await page.goto(`${web.url}?broker=${encodeURIComponent(pgServer.wsUrl)}`);
  await page.waitForFunction(() => window.admin?.state === 'connected' && window.admin.table, null, { timeout: 60_000 });
  assert.deepEqual(await page.$$eval('#entity-list button', (bs) => bs.map((b) => b.dataset.entity)),
    ['lab.measurements', 'lab.notes_without_key']);
  assert.equal(await page.textContent('#entity-title'), 'lab.measurements', 'the first entity opens');
  const kinds = await page.$$eval('#columns-table tr', (trs) => trs.slice(1).map((tr) => `${tr.children[0].textContent}:${tr.children[2].textContent}`));
  assert.deepEqual(kinds, ['id:integer', 'label:text', 'amount:number', 'ok:boolean', 'taken_at:timestamp', 'extra:json', 'note:text']);
  await waitIds([1, 2, 3, 4]);
  assert.deepEqual(await domRows(), await asShown(pgRows()));

  // Edit row 2 through the form: a number, a boolean, a moment, JSON and a NULL.
  await page.click('#rows tr[data-key="2"]');
  await page.waitForFunction(() => document.getElementById('form-title').textContent.endsWith('id = 2'));
  assert.equal(await page.$eval('#row-form [name=ok]', (s) => s.tagName), 'SELECT');
  assert.equal(await page.getAttribute('#row-form [name=taken_at]', 'type'), 'datetime-local');
  assert.equal(await page.$eval('#row-form [name=extra]', (s) => s.tagName), 'TEXTAREA');
  await page.fill('#row-form [name=amount]', '9.875');
  await page.selectOption('#row-form [name=ok]', 'true');
  await page.fill('#row-form [name=taken_at]', '2025-03-02T08:30:00.000');
  await page.fill('#row-form [name=extra]', '{"edited": true, "n": [1, 2]}'); // was NULL: typing clears the null box
  await page.check('#row-form [name="note.null"]');
  await page.click('#save');
  await page.waitForFunction(() => document.getElementById('result').textContent === 'Updated lab.measurements 2');
  const instant = await page.evaluate(() => new Date('2025-03-02T08:30:00.000').toISOString());
  const stored = pg.psql(
    "SELECT amount::text, ok::text, extract(epoch FROM taken_at)::text, extra::text, coalesce(note, '<null>') FROM lab.measurements WHERE id = 2");
  const [[amount, ok, takenAt, extra, note]] = stored;
  assert.deepEqual([amount, ok, Number(takenAt) * 1000, JSON.parse(extra), note],
    ['9.875', 'true', Date.parse(instant), { edited: true, n: [1, 2] }, '<null>']);
  await page.waitForFunction(() => document.querySelector('#rows tr[data-key="2"] td:nth-child(3)')?.textContent === '9.875');
  assert.deepEqual(await domRows(), await asShown(pgRows()));

  // A row inserted by psql appears live.
  pg.psql("INSERT INTO lab.measurements (label, amount, taken_at) VALUES ('e', 5.5, '2025-03-01T10:20:00Z')");
  await page.waitForSelector('#rows tr[data-key="5"][data-flashed]');
  assert.deepEqual(await domRows(), await asShown(pgRows()));

  // The chart: amount over taken_at, one line.
  assert.deepEqual([await page.$eval('#chart-y', (s) => s.value), await page.$eval('#chart-x', (s) => s.value),
    await page.$eval('#chart-by', (s) => s.value)], ['amount', 'taken_at', '']);
  const rows = pgRows();
  await page.waitForFunction((n) => Number(document.getElementById('chart')?.dataset.points) === n, rows.length);
  const drawn = await page.$$eval('#chart circle', (cs) => cs.map((c) => ({
    t: Date.parse(c.dataset.t), v: Number(c.dataset.v), x: Number(c.getAttribute('cx')), y: Number(c.getAttribute('cy')) })));
  const expected = rows.map((r) => ({ t: Date.parse(r.taken_at), v: Number(r.amount) })).sort((a, b) => a.t - b.t);
  assert.deepEqual(drawn.map(({ t, v }) => ({ t, v })).sort((a, b) => a.t - b.t), expected);
  const left = drawn.find((p) => p.t === expected[0].t), right = drawn.find((p) => p.t === expected.at(-1).t);
  assert.ok(left.x < right.x, 'earliest left, latest right');
  const hi = drawn.reduce((a, b) => (b.v > a.v ? b : a)), lo = drawn.reduce((a, b) => (b.v < a.v ? b : a));
  assert.equal(hi.v, 9.875);
  assert.ok(hi.y < lo.y, 'the largest amount is drawn highest');
  await page.screenshot({ path: join(artifacts, 'admin-postgres.png'), fullPage: true });

  // The table without a primary key is read, not followed, and has no form.
  await openEntity('lab.notes_without_key');
  assert.match(await page.textContent('#form'), /no primary key/);
  assert.deepEqual(errors, [], 'no uncaught page errors');
});
