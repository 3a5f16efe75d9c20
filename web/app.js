// The dashboard: a SpecClient connection (through the tunnel when the page
// is served by it), a live users table with filter and sort controls, a form
// to create/update/delete users, and a chart of sensor readings fed by a
// subscription. `window.dashboard` exposes the state for end-to-end tests.
import init, { SpecClient } from './pkg/mqttspec_wasm.js';
import { mountLiveTable } from './pkg/widgets.js';
import { LineChart } from './chart.js';

const $ = (id) => document.getElementById(id);
const dashboard = (window.dashboard = { state: 'idle', spec: null, table: null, readings: 0 });

/** ws(s)://<this host><this page's folder>mqtt: the broker route of the tunnel. */
function defaultBrokerUrl() {
  const explicit = new URL(location.href).searchParams.get('broker');
  if (explicit) return explicit;
  const url = new URL('mqtt', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  return url.href;
}

/** The tunnel URL of this page in the other form (subdomain <-> path), if it is a tunnel URL. */
function otherTunnelForm() {
  const id = /^[a-z0-9]{12}$/;
  const [first, ...rest] = location.hostname.split('.');
  if (id.test(first) && rest.length) {
    return { label: 'Path form', url: `${location.protocol}//${location.host.slice(first.length + 1)}/${first}/` };
  }
  const segment = location.pathname.split('/')[1] ?? '';
  if (id.test(segment)) {
    // An IP address has no subdomains; locally `<id>.localhost` resolves to loopback.
    const host = /^[\d.]+$|^\[/.test(location.hostname) ? `localhost${location.port ? `:${location.port}` : ''}` : location.host;
    return { label: 'Subdomain form', url: `${location.protocol}//${segment}.${host}/` };
  }
  return null;
}

function setState(state, text) {
  dashboard.state = state;
  const el = $('state');
  el.dataset.state = state;
  el.textContent = text ?? state;
}

let countdown = null;
function showCountdown(ms) {
  clearInterval(countdown);
  const el = $('countdown');
  if (!ms) { el.hidden = true; return; }
  const until = Date.now() + ms;
  const tick = () => {
    const left = Math.max(0, until - Date.now());
    el.hidden = false;
    el.textContent = left > 0 ? `Reconnecting in ${(left / 1000).toFixed(1)} s…` : 'Reconnecting…';
    if (!left) clearInterval(countdown);
  };
  tick();
  countdown = setInterval(tick, 100);
}

async function connect(url, clientId, token) {
  await dashboard.spec?.end();
  setState('connecting', 'connecting…');
  const spec = await SpecClient.connect(url, {
    clientId, token: token || undefined, reconnectPeriod: 1000, maxReconnectDelay: 8000, timeoutMs: 15000,
  });
  dashboard.spec = spec;
  spec.on('connect', () => { setState('connected', `connected as ${spec.clientId}`); showCountdown(0); });
  spec.on('offline', () => setState('offline', 'offline'));
  spec.on('close', (info) => { if (info?.reconnectInMs) { setState('reconnecting', 'reconnecting'); showCountdown(info.reconnectInMs); } });
  spec.on('reconnect', () => setState('reconnecting', 'reconnecting…'));
  spec.on('error', (e) => console.warn('mqttspec:', e.code, e.message));
  setState('connected', `connected as ${spec.clientId}`);
  await Promise.all([startTable(spec), startChart(spec)]);
}

function tableQuery() {
  const status = $('filter-status').value;
  const [column, direction] = $('sort').value.split(':');
  return {
    filters: status ? [{ column: 'status', operator: 'eq', value: status }] : [],
    sort: [{ column, direction }],
    limit: Math.max(1, Math.min(500, Number($('limit').value) || 25)),
  };
}

async function startTable(spec) {
  await dashboard.table?.close();
  dashboard.table = await mountLiveTable($('users-table'), spec, 'public.users', {
    ...tableQuery(),
    columns: ['id', 'name', 'email', 'status', 'created_at'],
    format: (column, value) => (column === 'created_at' && value ? String(value).replace('T', ' ').slice(0, 19) : value ?? ''),
  });
}

async function startChart(spec) {
  const chart = new LineChart($('chart'), $('legend'));
  dashboard.chart = chart;
  // History: the last ten minutes (not the old seed rows), newest 120.
  const since = new Date(Date.now() - 10 * 60_000).toISOString();
  const { data } = await spec.read('public.sensor_readings', { options: {
    filters: [{ column: 'ts', operator: 'gte', value: since }],
    sort: [{ column: 'id', direction: 'desc' }], limit: 120 } });
  for (const r of data.reverse()) chart.push(r.device_id, Number(r.value));
  await spec.subscribe('public.sensor_readings', {}, (n) => {
    if (n.operation !== 'create') return;
    chart.push(n.data.device_id, Number(n.data.value));
    dashboard.readings += 1;
    $('sensor-count').textContent = `${dashboard.readings} new reading${dashboard.readings === 1 ? '' : 's'} since connect`;
  });
}

function wireForms() {
  $('url').value = defaultBrokerUrl();
  $('client-id').value = `dash-${Math.random().toString(16).slice(2, 10)}`;
  $('page-url').href = $('page-url').textContent = location.href.split('?')[0];
  const other = otherTunnelForm();
  $('other-form-label').textContent = other?.label ?? 'Other form';
  $('other-url').href = $('other-url').textContent = other?.url ?? '(not served through the tunnel)';
  $('broker-url').textContent = $('url').value;
  $('connect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('broker-url').textContent = $('url').value;
    connect($('url').value, $('client-id').value, $('token').value).catch(fail);
  });
  $('filter-form').addEventListener('change', () => dashboard.table?.setQuery(tableQuery()).catch(fail));
  $('users-table').addEventListener('click', (e) => {
    const key = e.target.closest('tr')?.dataset.key;
    const row = dashboard.table?.rows().find((r) => String(r.id) === key);
    if (!row) return;
    $('row-id').value = row.id;
    $('row-name').value = row.name ?? '';
    $('row-email').value = row.email ?? '';
    $('row-status').value = row.status ?? 'active';
  });
  $('row-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = $('row-id').value;
    const data = { name: $('row-name').value, email: $('row-email').value || null, status: $('row-status').value };
    await report(id ? dashboard.spec.update('public.users', Number(id), data) : dashboard.spec.create('public.users', data),
      (r) => `${id ? 'Updated' : 'Created'} user ${r.data.id}`);
  });
  $('delete').addEventListener('click', async () => {
    const id = $('row-id').value;
    if (!id) { $('row-result').textContent = 'Pick a row (click it) or type an id to delete.'; return; }
    await report(dashboard.spec.delete('public.users', Number(id)), () => `Deleted user ${id}`);
    $('row-form').reset();
  });
}

async function report(promise, ok) {
  try {
    $('row-result').textContent = ok(await promise);
  } catch (e) {
    $('row-result').textContent = `${e.code ?? 'error'}: ${e.message}`;
  }
}

function fail(e) {
  setState('error', `${e.code ?? 'error'}: ${e.message}`);
  console.error(e);
}

await init();
wireForms();
connect($('url').value, $('client-id').value, '').catch(fail);
