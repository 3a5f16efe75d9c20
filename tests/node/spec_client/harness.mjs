// Shared by the SpecClient tests and benchmarks: starts mqttspec-server
// (embedded broker, SQLite file) and gives a second, independent MQTTSpec
// client written by hand on MQTT.js.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import mqtt from 'mqtt';
import { root, pkgDir, startStatic } from '../mqtt_client/harness.mjs';

/** The server binary: `cargo build`'s debug one unless SPEC_SERVER_PROFILE=release. */
export const binary = join(process.env.CARGO_TARGET_DIR || join(root, 'target'), process.env.SPEC_SERVER_PROFILE ?? 'debug', 'mqttspec-server');

/** Collects what a starting mqttspec-server `proc` prints: `line` resolves with its
 * "mqttspec-server ready" line (rejects if it exits first or takes over 60 s); `log()` is
 * all it printed so far. */
export function readyLine(proc) {
  let log = '';
  const line = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in 60 s:\n${log}`)), 60_000);
    const onData = (chunk) => {
      log += chunk;
      const ready = log.split('\n').find((l) => l.includes('mqttspec-server ready'));
      if (ready) { clearTimeout(timer); resolve(ready); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
  return { line, log: () => log };
}

/** mqttspec-server --demo on fixed ports (so a restart keeps the URL) and a SQLite file. */
export function startServer({ dbFile, mqttPort, wsPort, extra = [] }) {
  const proc = spawn(binary, [
    '--demo', '--database', `sqlite:${dbFile}`,
    '--mqtt-listen', `127.0.0.1:${mqttPort}`, '--ws-listen', `127.0.0.1:${wsPort}`, ...extra,
  ], { env: { ...process.env, RUST_LOG: 'info,rmqtt=error' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const { line, log } = readyLine(proc);
  return {
    ready: line.then(() => {}),
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    log,
    kill() { proc.kill('SIGKILL'); return new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r))); },
  };
}

/** The second client: MQTT.js in Node, speaking MQTTSpec JSON by hand. */
export async function rawClient(wsUrl, clientId) {
  const client = await mqtt.connectAsync(wsUrl, { clientId, reconnectPeriod: 0 });
  const waiting = new Map();
  client.on('message', (_topic, payload) => {
    const m = JSON.parse(payload.toString());
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  await client.subscribeAsync(`spec/${clientId}/response`, { qos: 1 });
  let n = 0;
  return {
    request(message) {
      const id = `${clientId}-${++n}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response to ${JSON.stringify(message)}`)), 20_000);
        waiting.set(id, (m) => { clearTimeout(timer); resolve(m); });
        client.publish(`spec/${clientId}/request`, JSON.stringify({ id, type: 'request', ...message }), { qos: 1 });
      });
    },
    end: () => client.endAsync(),
  };
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>spec client test</title>
<script src="/mqtt.min.js"></script>
<script type="module">
  window.spec = await import('/pkg/mqttspec_wasm.js');
  await window.spec.default();
  window.ready = true;
</script>`;

/** Static server for SpecClient pages: `/` a page with the full package
 * (`window.spec`) and MQTT.js (`window.mqtt`), `/pkg/*` client-wasm/pkg. */
export function startSpecStatic() {
  return startStatic(pkgDir, PAGE);
}

/** Ids of `public.users` in the order and limit of `options`, read through `client` (a rawClient). */
export async function userIds(client, options) {
  const r = await client.request({ operation: 'read', schema: 'public', entity: 'users', options });
  if (!r.success) throw new Error(`read failed: ${JSON.stringify(r)}`);
  return r.data.map((row) => row.id);
}

/** Creates an active user named `name` through `client` (a rawClient); resolves with its id. */
export async function createUser(client, name) {
  const r = await client.request({ operation: 'create', schema: 'public', entity: 'users',
    data: { name, email: `${name}@example.com`, status: 'active' } });
  if (!r.success) throw new Error(`create failed: ${JSON.stringify(r)}`);
  return r.data.id;
}

const DIST_TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

/** Static server for a built app (a Vite `dist/`): `/` is index.html. */
export async function serveDir(dir) {
  const server = createServer((req, res) => {
    const path = normalize(new URL(req.url, 'http://x').pathname);
    const file = join(dir, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dir) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': DIST_TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, stop: () => new Promise((r) => server.close(r)) };
}

/** Stops what a test file started (each part optional): the MQTT.js writer, the
 * browser, the static servers, mqttspec-server; then removes the file's temp dir. */
export async function stopAll({ writer, browser, webs = [], server, dir }) {
  await writer?.end();
  await browser?.close();
  for (const web of webs) await web?.stop();
  await server?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
