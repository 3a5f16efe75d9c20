// For the admin page's tests: mqttspec-server on OS-assigned ports (the
// ports are read from its ready line), a throwaway PostgreSQL cluster
// (initdb as user postgres, like tests/src/postgres.rs), and a static server
// for web/ with a private copy of client-wasm/pkg under /pkg/, and a
// stand-in for a server without the entity list.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, pkgDir, root } from '../mqtt_client/harness.mjs';
import { binary, readyLine, serveDir } from '../spec_client/harness.mjs';

/** Kill `proc`'s process group when this process exits. */
function reap(proc) {
  const kill = () => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', kill);
  return kill;
}

/** `mqttspec-server` with `args` on OS-assigned ports; resolves once ready. */
export async function startSpecServer(args) {
  const proc = spawn(binary, ['--mqtt-listen', '127.0.0.1:0', '--ws-listen', '127.0.0.1:0', ...args],
    { env: { ...process.env, RUST_LOG: 'info,rmqtt=error' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const kill = reap(proc);
  const started = readyLine(proc);
  const line = await started.line;
  // eslint-disable-next-line no-control-regex
  const plain = line.replace(/\x1b\[[0-9;]*m/g, '');
  const port = (name) => Number(new RegExp(`${name}=Some\\([\\d.]+:(\\d+)\\)`).exec(plain)?.[1]);
  return {
    wsUrl: `ws://127.0.0.1:${port('ws')}/mqtt`,
    mqttUrl: `mqtt://127.0.0.1:${port('mqtt')}`,
    log: started.log,
    stop() { kill(); return new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r))); },
  };
}

/** Newest `/usr/lib/postgresql/<version>/bin` (or `PG_BIN`). */
function pgBin() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const versions = readdirSync('/usr/lib/postgresql').map(Number).filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
  if (!versions.length) throw new Error('PostgreSQL server binaries not found: install the Debian package postgresql or set PG_BIN');
  return `/usr/lib/postgresql/${Math.max(...versions)}/bin`;
}

/** A PostgreSQL cluster in a temp dir with database `database`; `psql(sql)` runs SQL, `stop()` removes it. */
export async function startPostgres(database) {
  const bin = pgBin();
  const dir = mkdtempSync(join(tmpdir(), 'admin-pg-'));
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const asPostgres = (tool, args) => execFileSync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { stdio: 'pipe' });
  const data = join(dir, 'data');
  asPostgres('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off -c full_page_writes=off`;
  asPostgres('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  const stop = () => {
    try { asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']); } catch { /* not running */ }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  asPostgres('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', database]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    /** Run `sql`; the rows as arrays of text (`psql -At`, fields split on a unit separator). */
    psql(sql) {
      const out = execFileSync(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database,
        '-v', 'ON_ERROR_STOP=1', '-At', '-F', '\x1f', '-c', sql], { encoding: 'utf8' });
      return out.split('\n').filter((l) => l !== '').map((l) => l.split('\x1f'));
    },
    stop,
  };
}

/** `web/` over HTTP with a copy of the built package at /pkg/ (a rebuild cannot change it under the test). */
export async function serveAdmin() {
  const site = mkdtempSync(join(tmpdir(), 'admin-site-'));
  cpSync(join(root, 'web'), site, { recursive: true });
  cpSync(pkgDir, join(site, 'pkg'), { recursive: true });
  const server = await serveDir(site);
  return { url: server.url, stop: async () => { await server.stop(); rmSync(site, { recursive: true, force: true }); } };
}

/**
 * A stand-in for a server without the entity list (ResolveSpec's MQTTSpec,
 * or mqttspec-server before it): MQTT.js on `brokerUrl` answering requests
 * of every client the way the reference does: a `meta` of an unknown
 * entity, `*` included, is `model_not_found`; `meta`, `read`, `subscribe`
 * and `unsubscribe` of the one entity `meta` describes work on `rows`.
 */
export async function startListlessServer(brokerUrl, meta, rows) {
  const mqtt = (await import('mqtt')).default;
  const client = await mqtt.connectAsync(brokerUrl, { clientId: 'listless-server', reconnectPeriod: 0 });
  const known = (m) => [meta.table, `${meta.schema}.${meta.table}`].includes(m.schema ? `${m.schema}.${m.entity}` : m.entity);
  const answer = (m) => {
    if (m.type === 'subscription' && m.operation === 'unsubscribe') return { data: { unsubscribed: true, subscription_id: m.subscription_id } };
    if (!known(m)) return { error: { code: 'model_not_found', message: `Model not found: ${m.schema ?? ''}.${m.entity}` } };
    if (m.operation === 'meta') return { data: meta };
    if (m.operation === 'read') return { data: rows, metadata: { total: rows.length, count: rows.length } };
    if (m.operation === 'subscribe') return { data: { subscription_id: `sub-${m.id}`, schema: meta.schema, entity: meta.table } };
    return { error: { code: 'invalid_operation', message: `Unknown operation: ${m.operation}` } };
  };
  client.on('message', (topic, payload) => {
    const m = JSON.parse(payload.toString());
    const reply = answer(m);
    client.publish(topic.replace(/\/request$/, '/response'),
      JSON.stringify({ id: m.id, type: 'response', success: !reply.error, ...reply, timestamp: new Date().toISOString() }), { qos: 1 });
  });
  await client.subscribeAsync('spec/+/request', { qos: 1 });
  return { stop: () => client.endAsync() };
}
