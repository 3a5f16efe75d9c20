// The package as an app developer gets it: `npm pack` of client-wasm/pkg is
// installed into three Vite apps (tests/vite-apps/react, /svelte and /vue), each
// built with `vite build` and run in headless Chromium against
// mqttspec-server --demo. React: SpecProvider + useLiveQuery + useSpec under
// StrictMode, a write from the page and one from another client show up, and
// `shared: true` gives two tabs one broker connection that survives closing
// one of them. Svelte: a liveStore used as a Svelte store (`$users`). Vue: a
// liveStore in a shallowRef.
// Needs `cargo build --bin mqttspec-server`, network for the apps' first `npm ci`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, ensurePackage, freePort, pkgDir, startRelay, launchBrowser } from './mqtt_client/harness.mjs';
import { binary, createUser as createUserBy, rawClient, serveDir, startServer, stopAll, userIds } from './spec_client/harness.mjs';

const APPS = ['react', 'svelte', 'vue'];
const QUERY = { sort: [{ column: 'id', direction: 'desc' }], limit: 5 };

let dir, server, tcpPort, browser, writer, tarball;
const web = {};

/** `npm pack` the built package; returns the tarball's path. */
function pack(into) {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', into, pkgDir], { encoding: 'utf8' });
  return join(into, JSON.parse(out)[0].filename);
}

/** Install the app's locked dependencies (once), then the tarball, then `vite build`. */
function buildApp(name, tarball) {
  const cwd = join(root, 'tests/vite-apps', name);
  const npm = (...args) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, stdio: 'inherit' });
  if (!existsSync(join(cwd, 'node_modules/vite'))) npm('ci');
  npm('install', '--no-save', tarball);
  npm('run', 'build');
  return join(cwd, 'dist');
}

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run cargo build --bin mqttspec-server first`);
  ensurePackage();
  dir = mkdtempSync(join(tmpdir(), 'framework-apps-'));
  tarball = pack(dir);
  for (const app of APPS) web[app] = await serveDir(buildApp(app, tarball));
  tcpPort = await freePort();
  server = startServer({ dbFile: join(dir, 'demo.db'), mqttPort: tcpPort, wsPort: await freePort() });
  await server.ready;
  browser = await launchBrowser();
  writer = await rawClient(server.wsUrl, 'apps-writer');
});

after(() => stopAll({ writer, browser, webs: Object.values(web), server, dir }));

test('the tarball is publishable: metadata, licenses, changelog, every entry with its types', () => {
  const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').map((f) => f.replace(/^package\//, ''));
  for (const file of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE-MIT', 'LICENSE-APACHE',
    'mqttspec_wasm.js', 'mqttspec_wasm.d.ts', 'mqttspec_wasm_bg.wasm', 'mqtt/mqttspec_mqtt.js', 'mqtt/mqttspec_mqtt.d.ts',
    'live.js', 'live.d.ts', 'react.js', 'react.d.ts', 'shared-worker.js', 'shared-client.js', 'stable-key.js', 'widgets.js']) {
    assert.ok(listing.includes(file), `${file} is missing from the tarball`);
  }
  const meta = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
  assert.equal(meta.license, 'MIT OR Apache-2.0');
  assert.match(meta.repository.url, /^git\+https:\/\//);
  assert.ok(meta.homepage && meta.engines?.node, 'homepage and engines');
  assert.equal(meta.peerDependenciesMeta.react.optional, true, 'React is needed only by mqttspec-wasm/react');
  for (const [entry, target] of Object.entries(meta.exports)) {
    const files = typeof target === 'string' ? [target] : Object.values(target);
    for (const f of files) assert.ok(listing.includes(f.replace(/^\.\//, '')), `export ${entry} points at missing ${f}`);
  }
});

test('TypeScript (strict, ES2022 libs, no skipLibCheck) type-checks an app using every entry', () => {
  // tests/vite-apps/react/src/typed.tsx: its @ts-expect-error lines fail the check if a type were `any`.
  execFileSync('npx', ['tsc', '-p', '.'], { cwd: join(root, 'tests/vite-apps/react'), stdio: 'inherit' });
});

/** Ids of the newest five users (as the pages' data-id text), read by the independent client. */
const newestIds = async () => (await userIds(writer, QUERY)).map(String);
const createUser = (name) => createUserBy(writer, name);

async function open(context, app, params) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${web[app].url}?${new URLSearchParams(params)}`);
  return { page, errors };
}

/** Wait until the page shows `status` and exactly the rows `ids`, in order. */
function shows(page, status, ids) {
  return page.waitForFunction(({ status, ids }) => {
    const shown = [...document.querySelectorAll('#rows li')].map((li) => li.dataset.id);
    return document.getElementById('status')?.textContent === status && JSON.stringify(shown) === JSON.stringify(ids);
  }, { status, ids }, { timeout: 30_000 });
}

test('React (Vite build, StrictMode): useLiveQuery shows live rows; writes from the page and from elsewhere appear', async () => {
  const context = await browser.newContext();
  try {
    const { page, errors } = await open(context, 'react', { broker: server.wsUrl });
    await shows(page, 'live', await newestIds());
    await page.fill('#name', 'from-react');
    await page.click('#add');
    // The form clears once create() resolved: the row is in the database from then on.
    await page.waitForFunction(() => document.getElementById('name').value === '', null, { timeout: 30_000 });
    const afterPage = await newestIds();
    await shows(page, 'live', afterPage);
    assert.match(await page.textContent('#rows li'), /from-react$/);
    await createUser('from-node-for-react');
    await shows(page, 'live', await newestIds());
    assert.equal(await page.textContent('#error'), '');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('React: an entity the server does not know gives status error with its code', async () => {
  const context = await browser.newContext();
  try {
    const { page } = await open(context, 'react', { broker: server.wsUrl, entity: 'public.missing' });
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'error', null, { timeout: 30_000 });
    assert.match(await page.textContent('#error'), /^model_not_found: /);
  } finally {
    await context.close();
  }
});

test('React with shared: true: two tabs, one broker connection; closing one keeps the other live', async () => {
  const relay = await startRelay(tcpPort);
  const context = await browser.newContext();
  try {
    const params = { broker: relay.url, shared: '1', client: 'react-shared' };
    const a = await open(context, 'react', params);
    const b = await open(context, 'react', params);
    const ids = await newestIds();
    await Promise.all([shows(a.page, 'live', ids), shows(b.page, 'live', ids)]);
    assert.equal(relay.connections, 1, 'the tabs share one connection (the bundled SharedWorker runs)');
    await a.page.close();
    await createUser('after-react-tab-closed');
    await shows(b.page, 'live', await newestIds());
    assert.equal(relay.connections, 1);
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await context.close();
    await relay.stop();
  }
});

// Svelte: the store as `$users`; Vue: the store in a shallowRef.
for (const [app, how] of [['svelte', 'a liveStore is a Svelte store'], ['vue', 'a liveStore in a shallowRef']]) {
  test(`${app} (Vite build): ${how}`, async () => {
    const context = await browser.newContext();
    try {
      const { page, errors } = await open(context, app, { broker: server.wsUrl });
      await shows(page, 'live', await newestIds());
      await createUser(`from-node-for-${app}`);
      await shows(page, 'live', await newestIds());
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}
