// Shared by the MqttClient node tests and bench/mqtt_client.sh: builds the
// npm package if needed, starts mosquitto (TCP + websockets) on free
// loopback ports, serves the package and MQTT.js's browser bundle from a
// tiny static server, and opens a headless Chromium page with both loaded
// (`window.MqttClient` = ours, `window.mqtt` = MQTT.js).
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as netServer, connect as tcpConnect } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync, cpSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';

export const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '../../..'));
export const pkgDir = join(root, 'client-wasm/pkg');
/** The MQTT-only entry point of the package (`mqttspec-wasm/mqtt`). */
export const mqttDir = join(pkgDir, 'mqtt');
/** Newest modification time of the files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** The package exists and is newer than the sources it is built from. */
const built = () => {
  const wasm = join(mqttDir, 'mqttspec_mqtt_bg.wasm');
  if (!existsSync(wasm) || statSync(wasm).size === 0) return false;
  const sources = Math.max(
    newest(join(root, 'client-wasm/src')),
    newest(join(root, 'crates/mqtt-session/src')),
    newest(join(root, 'crates/mqttspec-client/src')),
    newest(join(root, 'crates/mqttspec-proto/src')),
    newest(join(root, 'client-wasm/js')),
    statSync(join(root, 'client-wasm/Cargo.toml')).mtimeMs,
    statSync(join(root, 'scripts/build-pkg.sh')).mtimeMs,
  );
  return statSync(wasm).mtimeMs >= sources;
};

/**
 * Build client-wasm/pkg unless it is up to date (MQTT_CLIENT_REBUILD=1 forces it),
 * then snapshot its MQTT-only entry point into a private directory, so a
 * concurrent rebuild of the package cannot change files under a running test.
 */
export function ensurePackage() {
  if (process.env.MQTT_CLIENT_REBUILD === '1' || !built()) {
    execFileSync('bash', [join(root, 'scripts/build-pkg.sh')], { stdio: 'inherit', cwd: root });
  }
  const snapshot = mkdtempSync(join(tmpdir(), 'mqtt-client-pkg-'));
  cpSync(mqttDir, snapshot, { recursive: true });
  process.once('exit', () => rmSync(snapshot, { recursive: true, force: true }));
  return snapshot;
}

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, timeoutMs = 20000) {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** mosquitto with an anonymous TCP and websockets listener (`extra`: more config lines). */
export async function startMosquitto(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-client-'));
  const tcpPort = await freePort();
  const wsPort = await freePort();
  const user = execFileSync('id', ['-un']).toString().trim();
  writeFileSync(join(dir, 'mosquitto.conf'), [
    `user ${user}`,
    'allow_anonymous true',
    `listener ${tcpPort} 127.0.0.1`,
    `listener ${wsPort} 127.0.0.1`,
    'protocol websockets',
    ...extra,
    '',
  ].join('\n'));
  const proc = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  // Do not leave the broker behind if this process is interrupted.
  const kill = () => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', kill);
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { kill(); process.exit(130); });
  await waitForPort(tcpPort);
  await waitForPort(wsPort);
  return {
    tcpPort,
    wsUrl: `ws://127.0.0.1:${wsPort}`,
    tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
    log: () => log,
    stop() {
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* already gone */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>mqtt client test</title>
<script src="/mqtt.min.js"></script>
<script type="module">
  import init, { MqttClient } from '/pkg/mqttspec_mqtt.js';
  await init();
  window.MqttClient = MqttClient;
  window.ready = true;
</script>`;

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.ts': 'text/plain' };

/** Static server: `/` the test page (`page`, by default one with both MQTT
 * clients), `/pkg/*` the package (from `dir`), `/mqtt.min.js` MQTT.js. */
export async function startStatic(dir, page = PAGE) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    let file;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(page);
      return;
    } else if (path === '/mqtt.min.js') {
      file = join(root, 'node_modules/mqtt/dist/mqtt.min.js');
    } else if (path.startsWith('/pkg/') && !path.includes('..')) {
      file = join(dir, path.slice(5));
    }
    if (!file || !existsSync(file)) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}/`, stop: () => new Promise((r) => server.close(r)) };
}

/** Headless Chromium as the tests run it (`extraArgs` added to the usual flags). */
export function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', ...extraArgs],
  });
}

/** Headless Chromium with one page that has both clients loaded. */
export async function openPage(url) {
  const browser = await launchBrowser(['--js-flags=--expose-gc']);
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(url);
  await page.waitForFunction(() => window.ready === true && typeof window.mqtt === 'object', null, { timeout: 60000 });
  return { browser, page, errors };
}

/** Everything at once; `stop()` tears it down. */
export async function setup(brokerConfig = []) {
  const pkg = ensurePackage();
  const broker = await startMosquitto(brokerConfig);
  const web = await startStatic(pkg);
  const { browser, page, errors } = await openPage(web.url);
  return {
    broker, page, errors, pkg,
    async stop() {
      await browser.close();
      await web.stop();
      broker.stop();
    },
  };
}

/**
 * A WebSocket-to-TCP relay in front of a broker's TCP listener (for the
 * benchmarks and the tests that need to merge, count, record or cut traffic;
 * `refuse = true` turns new connections away). While holding (`holdFor(marker?)`) it keeps what the broker
 * sends; `release(bytes?)` waits until that many bytes are held (without
 * `bytes`: until the held bytes contain `marker`) and then sends it all in 64 KiB
 * WebSocket messages of many MQTT packets each (as MQTT over WebSocket
 * allows). The client then gets the whole stream as fast as the page can take
 * it, so a measurement shows the client's own per-message cost, not the
 * broker's or the browser's per-frame pace.
 */
export async function startRelay(tcpPort) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'mqtt' });
  await new Promise((r) => wss.once('listening', r));
  const relay = { hold: false, held: [], heldBytes: 0, ws: null, marker: null, seen: false, tail: Buffer.alloc(0),
    connections: 0, pings: 0, publishes: 0, refuse: false, recording: false, recorded: [] };
  wss.on('connection', (ws) => {
    if (relay.refuse) return ws.terminate();
    relay.ws = ws;
    relay.connections += 1;
    const sock = tcpConnect(tcpPort, '127.0.0.1');
    sock.on('data', (d) => {
      if (!relay.hold) return ws.send(d);
      relay.held.push(d);
      relay.heldBytes += d.length;
      if (relay.marker && !relay.seen) {
        const window = Buffer.concat([relay.tail, d]);
        relay.seen = window.includes(relay.marker);
        relay.tail = window.subarray(Math.max(0, window.length - relay.marker.length));
      }
    });
    sock.on('close', () => ws.close());
    sock.on('error', () => ws.close());
    ws.on('message', (d) => {
      // The client sends one MQTT packet per message: count its PINGREQs and PUBLISHes.
      if (d[0] === 0xc0) relay.pings += 1;
      if (d[0] >> 4 === 3) relay.publishes += 1;
      if (relay.recording) relay.recorded.push(Buffer.from(d));
      sock.write(d);
    });
    // end(), not destroy(): what the client sent before closing (PUBACKs, DISCONNECT)
    // still reaches the broker, as through any proxy (destroy() dropped unflushed
    // writes under load, and the broker then resent an acknowledged message).
    ws.on('close', () => sock.end());
  });
  relay.url = `ws://127.0.0.1:${wss.address().port}`;
  /** Hold what arrives from now on; `marker` (optional) is what `release` will wait for. */
  relay.holdFor = (marker = null) => {
    Object.assign(relay, { hold: true, marker: marker && Buffer.from(marker), seen: false, tail: Buffer.alloc(0) });
  };
  relay.release = async (bytes) => {
    const deadline = Date.now() + 60000;
    const done = () => (bytes === undefined ? relay.seen : relay.heldBytes >= bytes);
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const all = Buffer.concat(relay.held);
    Object.assign(relay, { held: [], heldBytes: 0, hold: false, marker: null });
    for (let i = 0; i < all.length; i += 65536) relay.ws.send(all.subarray(i, i + 65536));
  };
  /** Stop holding and drop what was held (it never reaches the client). */
  relay.discard = () => Object.assign(relay, { held: [], heldBytes: 0, hold: false, marker: null });
  /** Close the client's connection, as a network failure would (no DISCONNECT reaches the broker). */
  relay.cut = () => relay.ws?.terminate();
  relay.stop = () => new Promise((r) => { for (const ws of wss.clients) ws.terminate(); wss.close(r); });
  return relay;
}
