// Shared pieces of the tunnel's node tests: free ports, `wrangler dev`
// with the repo's worker, the real `ttf` forwarder, a scripted forwarder
// speaking the wire protocol by hand, a mosquitto broker (TCP + websockets
// listeners) and waiting for a port.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import WebSocket from 'ws';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Wait until `port` accepts connections (or give up after `ms`). */
export async function waitForPort(port, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Spawn `cmd` in its own process group; resolves once `ready` matches its output. */
function startProcess(cmd, args, ready, what, opts = {}) {
  const proc = spawn(cmd, args, { cwd: root, detached: true, ...opts });
  let output = '';
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready in 300 s:\n${output}`)), 300_000);
    const onData = (d) => {
      output += d;
      const m = output.match(ready);
      if (m) { clearTimeout(timer); resolve(m); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited ${code}:\n${output}`)); });
    proc.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${what} (${cmd}): ${e.message}`)); });
  });
  return { proc, done, output: () => output };
}

/** Kill a process group started here. */
export function kill(proc) {
  if (proc) { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }
}

/** `wrangler dev` on a free port; returns `{ proc, base }` (base = http://127.0.0.1:PORT). */
export async function startWrangler(vars = {}) {
  const port = await freePort();
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'tunnel-node-'));
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort()),
    '--persist-to', state, '--show-interactive-dev-session=false'];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const w = startProcess(path.join(root, 'node_modules/.bin/wrangler'), args, /Ready on/, 'wrangler dev',
    { env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' } });
  await w.done;
  return { proc: w.proc, base: `http://127.0.0.1:${port}`, port };
}

/** The `ttf` binary built by `cargo build -p forwarder`. */
export function ttfPath() {
  const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  return path.join(target, 'debug', 'ttf');
}

/** Start `ttf` against `base` with extra `args`; returns `{ proc, id, url }` (url = path form). */
/** Resume tokens of named tunnels (TTF_STATE_DIR): one directory per test process. */
const ttfState = fs.mkdtempSync(path.join(os.tmpdir(), 'ttf-state-'));

export async function startTtf(base, args) {
  const t = startProcess(ttfPath(), ['-e', `${base.replace('http', 'ws')}/_tunnel`, ...args],
    /Tunnel ([a-z0-9]{12}) established/, 'ttf', { env: { ...process.env, TTF_STATE_DIR: ttfState } });
  const m = await t.done;
  return { proc: t.proc, id: m[1], url: `${base}/${m[1]}`, output: t.output };
}

/** mosquitto with a TCP and a websockets listener on free ports. */
export async function startMosquitto() {
  const tcp = await freePort();
  const ws = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunnel-mosq-'));
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, `per_listener_settings false\nallow_anonymous true\nlistener ${tcp} 127.0.0.1\nlistener ${ws} 127.0.0.1\nprotocol websockets\n`);
  const proc = spawn('mosquitto', ['-c', conf], { detached: true, stdio: 'ignore' });
  await waitForPort(tcp);
  await waitForPort(ws);
  return { proc, tcp, ws };
}

/**
 * A scripted forwarder (raw `ws`, no `ttf`): connects to `base`'s control
 * socket, sends `ready` (with `version` when given) and queues what the
 * edge sends: JSON text frames as objects, binary frames as `{ binary }`.
 * v1 (no version) asserts every frame is text.
 */
export async function scriptedForwarder(base, { version } = {}) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/_tunnel`);
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    if (version === undefined) assert.equal(isBinary, false, 'v1 frames are text');
    const msg = isBinary ? { binary: data } : JSON.parse(data.toString());
    const w = waiters.shift();
    if (w) w(msg); else queue.push(msg);
  });
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  const next = (ms = 15_000) => queue.length
    ? Promise.resolve(queue.shift())
    : new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no message from the edge')), ms);
      waiters.push((m) => { clearTimeout(t); resolve(m); });
    });
  const send = (obj) => ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  send(version === undefined ? { type: 'ready' } : { type: 'ready', version });
  const established = await next();
  return { ws, next, send, established };
}
