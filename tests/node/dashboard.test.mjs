// The whole system end to end, as a user meets it: the live admin (web/)
// opened through the tunnel (wrangler dev on workerd + ttf), talking MQTT over
// the tunnel's WebSocket passthrough to mqttspec-server's embedded broker.
// A second client (MQTT.js in Node, over TCP) creates a row and it must show
// up in the live table; the sensor chart must advance with the publisher's
// readings; killing and restarting the forwarder must leave a page that
// reconnects by itself. (The admin itself: admin.test.mjs.)
// Screenshot: tests/artifacts/dashboard.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { root, ensurePackage, launchBrowser } from './mqtt_client/harness.mjs';
import { rawClient } from './spec_client/harness.mjs';
import { startDemo } from '../../scripts/demo.mjs';

const artifacts = join(root, 'tests/artifacts');
let demo, browser, page, writer;
const pageErrors = [];

before(async () => {
  ensurePackage();
  demo = await startDemo();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  writer = await rawClient(demo.mqttUrl, 'e2e-writer');
});

after(async () => {
  await writer?.end();
  await browser?.close();
  await demo?.stop();
});

/** Points drawn by the chart now. */
const points = () => page.evaluate(() => Number(document.getElementById('chart')?.dataset.points ?? 0));
/** Open an entity from the list; resolves once its table is there. */
async function open(name) {
  await page.click(`#entity-list button[data-entity="${name}"]`);
  await page.waitForFunction((n) => window.admin.table && document.querySelector('#rows caption')?.textContent.startsWith(n), name);
}

test('the admin loads through the tunnel, lists the demo entities and shows the seeded rows', async () => {
  await page.goto(demo.dashboard);
  await page.waitForFunction(() => window.admin?.state === 'connected' && window.admin.table, null, { timeout: 60_000 });
  const listed = await page.$$eval('#entity-list button', (bs) => bs.map((b) => b.dataset.entity));
  assert.deepEqual(listed, ['public.sensor_readings', 'public.users']);
  await open('public.users');
  await page.waitForFunction(() => window.admin.table.rows().length >= 5);
  const broker = await page.inputValue('#url');
  assert.ok(broker.startsWith('ws://') && broker.includes(new URL(demo.dashboard).host), `broker URL goes through the tunnel: ${broker}`);
  const names = await page.$$eval('#rows tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
  assert.ok(names.includes('John Doe') && names.includes('Carol White'), names.join(', '));
});

test('a row created by another client appears in the live table within 1 s', async () => {
  const created = await writer.request({ operation: 'create', schema: 'public', entity: 'users',
    data: { name: 'Tunnel Tess', email: 'tess@example.com', status: 'active' } });
  assert.equal(created.success, true, JSON.stringify(created));
  const t0 = Date.now();
  await page.waitForSelector(`#rows tr[data-key="${created.data.id}"]`, { timeout: 1_000 });
  const ms = Date.now() - t0;
  console.log(`# row appeared in the table ${ms} ms after the create was answered`);
});

test('the sensor chart advances', async () => {
  await open('public.sensor_readings');
  await page.selectOption('#chart-by', 'device_id');
  // The chart follows the newest 200 readings: once full, new points replace old ones.
  const newest = () => page.evaluate(() => window.admin.chart.points().map((p) => p.time).sort().at(-1));
  await page.waitForFunction(() => window.admin.chart.points().length > 0, null, { timeout: 15_000 });
  const before = await newest();
  await page.waitForFunction((t) => window.admin.chart.points().some((p) => p.time > t), before, { timeout: 15_000 });
  assert.ok(await points() > 0);
  const lines = await page.$$eval('#chart polyline', (ls) => ls.length);
  assert.ok(lines >= 3, `one line per device (${lines})`);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
});

test('the page reconnects by itself after the forwarder is killed and restarted', async () => {
  await demo.killForwarder();
  await page.waitForFunction(() => window.admin.state !== 'connected', null, { timeout: 30_000 });
  const url = await demo.startForwarder();
  assert.equal(`${url.replace(/\/$/, '')}/`, demo.dashboard, 'the restarted forwarder got the same tunnel URL');
  await page.waitForFunction(() => window.admin.state === 'connected', null, { timeout: 60_000 });
  const newest = await page.evaluate(() => window.admin.chart.points().map((p) => p.time).sort().at(-1));
  await page.waitForFunction((t) => window.admin.chart.points().some((p) => p.time > t), newest, { timeout: 15_000 });
  await open('public.users');
  const created = await writer.request({ operation: 'create', schema: 'public', entity: 'users',
    data: { name: 'After Restart', email: 'after@example.com', status: 'active' } });
  await page.waitForSelector(`#rows tr[data-key="${created.data.id}"]`, { timeout: 15_000 });
  await page.screenshot({ path: join(artifacts, 'dashboard-after-reconnect.png'), fullPage: true });
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});
