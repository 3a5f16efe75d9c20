// The local system, on loopback: mqttspec-server --demo (embedded broker,
// SQLite), the edge worker on workerd (wrangler dev), a `ttf` forwarder that
// exposes the broker's WebSocket listener (/mqtt) and the dashboard (/)
// through the tunnel, the demo sensor publisher, and the dashboard itself,
// served so that it connects through the tunnel URL.
//
// `node scripts/demo.mjs` (what `make demo` runs after building) prints the
// URLs and `Dashboard: <url>` once everything is up; Ctrl-C stops it all.
// The end-to-end test imports `startDemo` to drive the same system.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const bin = (name) => join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'debug', name);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json' };

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = netServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

/** Spawn `cmd` in its own process group; resolves once a line contains `ready`. */
function start(name, cmd, args, { ready, env = {}, echo = false, timeoutMs = 300_000 } = {}) {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const proc = {
    name, child,
    output: () => output,
    kill() { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ } },
    exited: new Promise((r) => child.once('exit', r)),
  };
  proc.ready = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} not ready in ${timeoutMs / 1000} s:\n${output}`)), timeoutMs);
    const onData = (chunk) => {
      output += chunk;
      if (echo) for (const line of String(chunk).split('\n').filter(Boolean)) console.log(`[${name}] ${line}`);
      const line = output.split('\n').find((l) => l.includes(ready));
      if (line) { clearTimeout(timer); ok(line); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`${name} exited (${code}) before it was ready:\n${output}`)); });
  });
  proc.ready.catch(() => {});
  return proc;
}

/** Static files of `dir` over HTTP on `port`. */
function serve(dir, port) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const file = join(dir, path.endsWith('/') ? `${path}index.html` : path);
    if (!file.startsWith(dir) || !existsSync(file)) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(port, '127.0.0.1', () => ok(server)));
}

/**
 * Start the whole system. Options: `workerPort` (default: a free one),
 * `echo` (print the processes' output). Returns the URLs and handles; call
 * `stop()` to end everything.
 */
export async function startDemo({ workerPort, echo = false } = {}) {
  for (const name of ['mqttspec-server', 'ttf']) {
    if (!existsSync(bin(name))) throw new Error(`${bin(name)} is missing: run cargo build --bins first`);
  }
  if (!existsSync(join(root, 'client-wasm/pkg/mqttspec_wasm.js'))) throw new Error('client-wasm/pkg is missing: run make pkg first');
  const dir = mkdtempSync(join(tmpdir(), 'mqttspec-demo-'));
  const site = join(dir, 'site');
  cpSync(join(root, 'web'), site, { recursive: true });
  cpSync(join(root, 'client-wasm/pkg'), join(site, 'pkg'), { recursive: true });
  const ports = { mqtt: await freePort(), ws: await freePort(), web: await freePort(), worker: workerPort ?? await freePort(), inspector: await freePort() };
  const procs = [];
  let web;
  const stop = async () => {
    for (const p of procs.reverse()) p.kill();
    await new Promise((r) => (web ? web.close(r) : r()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const server = start('server', bin('mqttspec-server'), ['--demo', '--database', `sqlite:${join(dir, 'demo.db')}`,
      '--mqtt-listen', `127.0.0.1:${ports.mqtt}`, '--ws-listen', `127.0.0.1:${ports.ws}`],
    { ready: 'mqttspec-server ready', env: { RUST_LOG: 'info,rmqtt=error' }, echo });
    procs.push(server);
    web = await serve(site, ports.web);
    const wrangler = start('worker', join(root, 'node_modules/.bin/wrangler'), ['dev', '--ip', '127.0.0.1', '--port', String(ports.worker),
      '--inspector-port', String(ports.inspector), '--persist-to', join(dir, 'wrangler'),
      '--show-interactive-dev-session=false'], { ready: 'Ready on', env: { WRANGLER_SEND_METRICS: 'false', CI: 'true' }, echo });
    procs.push(wrangler);
    await Promise.all([server.ready, wrangler.ready]);

    let forwarder = null;
    // A requested name keeps the tunnel URL when `ttf` restarts.
    const name = `demo${randomBytes(4).toString('hex')}`;
    /** (Re)start `ttf`; resolves to the subdomain URL of the tunnel. */
    const startForwarder = async () => {
      const args = ['--endpoint', `ws://127.0.0.1:${ports.worker}/_tunnel`, '--name', name,
        '--route', `/mqtt=ws://127.0.0.1:${ports.ws}`, '--route', `/=http://127.0.0.1:${ports.web}`];
      const p = start('ttf', bin('ttf'), args, { ready: '(Subdomain URL)', echo });
      procs.push(p);
      const line = await p.ready;
      forwarder = p;
      return line.split(/\s+/).find((w) => /^https?:\/\//.test(w));
    };
    const subdomainUrl = await startForwarder();
    const publisher = start('publisher', process.execPath, [join(root, 'scripts/demo-publisher.mjs'), `mqtt://127.0.0.1:${ports.mqtt}`],
      { ready: 'publisher: writing', echo });
    procs.push(publisher);
    await publisher.ready;
    return {
      dashboard: `${subdomainUrl.replace(/\/$/, '')}/`,
      pathUrl: `http://127.0.0.1:${ports.worker}/${name}/`,
      brokerUrl: `ws://127.0.0.1:${ports.ws}/mqtt`,
      mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`,
      workerUrl: `http://127.0.0.1:${ports.worker}`,
      killForwarder: async () => { forwarder.kill(); await forwarder.exited; },
      startForwarder,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const echo = process.env.DEMO_VERBOSE === '1';
  console.log('demo: starting mqttspec-server, wrangler dev (workerd), ttf and the sensor publisher…');
  const demo = await startDemo({ workerPort: Number(process.env.DEMO_WORKER_PORT ?? 8787), echo }).catch((e) => {
    console.error(`demo: ${e.message}`);
    process.exit(1);
  });
  console.log(`demo: worker (workerd)     ${demo.workerUrl}`);
  console.log(`demo: tunnel, path form    ${demo.pathUrl}`);
  console.log(`demo: broker (direct)      ${demo.brokerUrl}  ${demo.mqttUrl}`);
  console.log('demo: Ctrl-C stops everything');
  console.log(`Dashboard: ${demo.dashboard}`);
  const quit = async () => { await demo.stop(); console.log('demo: stopped'); process.exit(0); };
  process.on('SIGINT', quit);
  process.on('SIGTERM', quit);
}
