// Bundler compatibility: the Vite app in tests/vite-app installs the built
// package (`npm install` of ../../client-wasm/pkg), `vite build` bundles it,
// and the built app runs in headless Chromium against mqttspec-server,
// rendering a live query.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, ensurePackage, freePort, launchBrowser } from './mqtt_client/harness.mjs';
import { binary, serveDir, startServer } from './spec_client/harness.mjs';

const app = join(root, 'tests/vite-app');

let dir, server, web, browser;

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run cargo build --bins first`);
  ensurePackage();
  const npm = (...args) => execFileSync('npm', args, { cwd: app, stdio: 'inherit' });
  if (!existsSync(join(app, 'node_modules/vite'))) npm('ci', '--no-audit', '--no-fund', '--loglevel=error');
  npm('run', 'build');
  dir = mkdtempSync(join(tmpdir(), 'spec-vite-'));
  server = startServer({ dbFile: join(dir, 'demo.db'), mqttPort: await freePort(), wsPort: await freePort() });
  await server.ready;
  web = await serveDir(join(app, 'dist'));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await web?.stop();
  await server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the Vite-built app loads the package and shows live rows', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const url = `${web.url}?broker=${encodeURIComponent(server.wsUrl)}`;
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('state').textContent !== 'loading', null, { timeout: 30_000 });
  const state = await page.textContent('#state');
  assert.equal(state, 'live (MqttClient export: function)', `page said: ${state}`);
  await page.waitForFunction(() => document.querySelectorAll('#rows li').length === 5, null, { timeout: 10_000 });
  const first = await page.textContent('#rows li');
  assert.match(first, /^1 \S/);
  assert.deepEqual(errors, []);
});
