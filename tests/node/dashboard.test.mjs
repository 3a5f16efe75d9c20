// The whole system end to end, as a user meets it: the dashboard opened
// through the tunnel (wrangler dev on workerd + ttf), talking MQTT over the
// tunnel's WebSocket passthrough to mqttspec-server's embedded broker.
// A second client (MQTT.js in Node, over TCP) creates a row and it must show
// up in the live table; the sensor chart must advance; killing and restarting
// the forwarder must leave a page that reconnects by itself.
// Screenshot: tests/artifacts/dashboard.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { root, ensurePackage } from './mqtt_client/harness.mjs';
import { rawClient } from './spec_client/harness.mjs';
import { startDemo } from '../../scripts/demo.mjs';

const artifacts = join(root, 'tests/artifacts');
let demo, browser, page, writer;
const pageErrors = [];

before(async () => {
  ensurePackage();
  demo = await startDemo();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  writer = await rawClient(demo.mqttUrl, 'e2e-writer');
});

after(async () => {
  await writer?.end();
  await browser?.close();
  await demo?.stop();
});

test('the dashboard loads through the tunnel and shows the seeded rows', async () => {
  await page.goto(demo.dashboard);
  await page.waitForFunction(() => window.dashboard?.state === 'connected' && window.dashboard.table?.rows().length >= 5,
    null, { timeout: 60_000 });
  const broker = await page.inputValue('#url');
  assert.ok(broker.startsWith('ws://') && broker.includes(new URL(demo.dashboard).host), `broker URL goes through the tunnel: ${broker}`);
  const names = await page.$$eval('#users-table tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
  assert.ok(names.includes('John Doe') && names.includes('Carol White'), names.join(', '));
});

test('a row created by another client appears in the live table within 1 s', async () => {
  const created = await writer.request({ operation: 'create', schema: 'public', entity: 'users',
    data: { name: 'Tunnel Tess', email: 'tess@example.com', status: 'active' } });
  assert.equal(created.success, true, JSON.stringify(created));
  const t0 = Date.now();
  await page.waitForFunction((id) => window.dashboard.table.rows().some((r) => r.id === id), created.data.id, { timeout: 1_000 });
  const ms = Date.now() - t0;
  console.log(`# row appeared in the widget ${ms} ms after the create was answered`);
  await page.waitForSelector(`#users-table tr[data-key="${created.data.id}"]`);
});

test('the sensor chart advances', async () => {
  const before = await page.evaluate(() => window.dashboard.readings);
  await page.waitForFunction((n) => window.dashboard.readings >= n + 3, before, { timeout: 15_000 });
  const lines = await page.$$eval('#chart polyline', (ls) => ls.length);
  assert.ok(lines >= 3, `one line per device (${lines})`);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
});

test('the page reconnects by itself after the forwarder is killed and restarted', async () => {
  await demo.killForwarder();
  await page.waitForFunction(() => window.dashboard.state !== 'connected', null, { timeout: 30_000 });
  const url = await demo.startForwarder();
  assert.equal(`${url.replace(/\/$/, '')}/`, demo.dashboard, 'the restarted forwarder got the same tunnel URL');
  await page.waitForFunction(() => window.dashboard.state === 'connected', null, { timeout: 60_000 });
  const readings = await page.evaluate(() => window.dashboard.readings);
  await page.waitForFunction((n) => window.dashboard.readings > n, readings, { timeout: 15_000 });
  const created = await writer.request({ operation: 'create', schema: 'public', entity: 'users',
    data: { name: 'After Restart', email: 'after@example.com', status: 'active' } });
  await page.waitForFunction((id) => window.dashboard.table.rows().some((r) => r.id === id), created.data.id, { timeout: 15_000 });
  await page.screenshot({ path: join(artifacts, 'dashboard-after-reconnect.png'), fullPage: true });
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});
