// The live admin: connect, list the entities the server offers (`meta` of
// "*", or a name typed by the user on servers without the list), and for
// the entity picked: its columns, a filter builder, a live table with sort
// and pages, a live chart of a numeric column over a time column, and a
// create / edit / delete form generated from `meta`. Errors of the server
// are shown with their code. `window.admin` exposes the state for tests.
import init from './pkg/mqttspec_wasm.js';
import { connect, defaultBrokerUrl, otherTunnelForm } from './connection.js';
import { describeEntity, entityName, listEntities } from './entities.js';
import { mountFilters } from './filters.js';
import { mountLiveTable } from './live-table.js';
import { chartable, mountTimeChart } from './time-chart.js';
import { mountRowForm } from './row-form.js';
import { h } from './dom.js';
import { kindOf } from './columns.js';

const $ = (id) => document.getElementById(id);
const admin = (window.admin = { state: 'idle', spec: null, entities: null, meta: null, table: null, chart: null, form: null, error: null });

function setState(state, text) {
  admin.state = state;
  $('state').dataset.state = state;
  $('state').textContent = text ?? state;
}

/** Show a failure (a SpecError's code and message, or an input error) above the view. */
function showError(e) {
  admin.error = { code: e?.code ?? 'error', message: e?.message ?? String(e) };
  const box = $('error');
  box.hidden = false;
  box.dataset.code = admin.error.code;
  box.replaceChildren(h('strong', {}, admin.error.code), `: ${admin.error.message}`,
    h('button', { type: 'button', className: 'ghost', onclick: clearError, title: 'dismiss' }, '×'));
  if (!(e?.code)) console.error(e);
}

function clearError() {
  admin.error = null;
  $('error').hidden = true;
}

function showResult(message) {
  clearError();
  $('result').textContent = message;
}

async function start(settings) {
  await closeEntity();
  await admin.spec?.end();
  admin.spec = await connect(settings, setState);
  try {
    admin.entities = await listEntities(admin.spec);
  } catch (e) {
    admin.entities = null; // e.g. unauthorized: a typed name may still be allowed
    showError(e);
  }
  renderEntityList();
  // The entity named by ?entity= or #schema.entity, else the first listed.
  const wanted = new URL(location.href).searchParams.get('entity') ?? decodeURIComponent(location.hash.slice(1));
  const listed = admin.entities?.find((m) => entityName(m) === wanted);
  if (listed) await openEntity(listed);
  else if (wanted) await openByName(wanted);
  else if (admin.entities?.length) await openEntity(admin.entities[0]);
}

function renderEntityList() {
  const list = admin.entities ?? [];
  $('entity-list').replaceChildren(...list.map((meta) => h('li', {},
    h('button', { type: 'button', className: 'entity', dataset: { entity: entityName(meta) }, onclick: () => openEntity(meta).catch(showError) },
      entityName(meta), h('small', {}, ` ${meta.columns.length} columns`)))));
  $('entity-hint').textContent = admin.entities
    ? `${list.length} entit${list.length === 1 ? 'y' : 'ies'} on this server.`
    : 'This server does not list its entities: type a name to open one.';
  $('entity-hint').dataset.listed = String(Boolean(admin.entities));
}

async function openByName(name) {
  try {
    await openEntity(await describeEntity(admin.spec, name));
  } catch (e) {
    showError(e);
  }
}

async function closeEntity() {
  await Promise.all([admin.table?.close(), admin.chart?.close()]);
  admin.table = admin.chart = admin.form = admin.meta = null;
}

async function openEntity(meta) {
  await closeEntity();
  clearError();
  $('result').textContent = '';
  admin.meta = meta;
  const name = entityName(meta);
  history.replaceState(null, '', `#${name}`);
  for (const b of document.querySelectorAll('#entity-list button')) b.classList.toggle('active', b.dataset.entity === name);
  $('entity-view').hidden = false;
  $('entity-title').textContent = name;
  $('columns-table').replaceChildren(
    h('tr', {}, ['column', 'type', 'kind', 'nullable', 'key'].map((t) => h('th', {}, t))),
    ...meta.columns.map((c) => h('tr', {}, h('td', {}, c.name), h('td', {}, c.type), h('td', {}, kindOf(c)),
      h('td', {}, c.is_nullable ? 'yes' : ''), h('td', {}, c.is_primary ? 'primary' : c.is_unique ? 'unique' : c.has_index ? 'index' : ''))));
  const spec = admin.spec;
  admin.form = mountRowForm($('form'), spec, meta, { onError: showError, onDone: showResult });
  admin.table = mountLiveTable($('table'), spec, meta, { onError: showError, onPick: (row) => admin.form.edit(row) });
  mountFilters($('filters'), meta, (read) => {
    let filters;
    try { filters = read(); } catch (e) { showError(e); return; }
    clearError();
    admin.table.setQuery({ filters, page: 0 });
    admin.chart?.setFilters(filters);
  });
  $('chart-card').hidden = !chartable(meta);
  if (chartable(meta)) admin.chart = mountTimeChart($('chart-box'), spec, meta, { onError: showError });
  await Promise.all([admin.table.ready, admin.chart?.ready]);
}

function wire() {
  $('url').value = defaultBrokerUrl();
  $('client-id').value = `admin-${Math.random().toString(16).slice(2, 10)}`;
  $('page-url').href = $('page-url').textContent = location.href.split(/[?#]/)[0];
  const other = otherTunnelForm();
  $('other-form-label').textContent = other?.label ?? 'Other form';
  $('other-url').href = $('other-url').textContent = other?.url ?? '(not served through the tunnel)';
  $('broker-url').textContent = $('url').value;
  const settings = () => ({ url: $('url').value, clientId: $('client-id').value, token: $('token').value });
  $('connect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('broker-url').textContent = $('url').value;
    start(settings()).catch(failed);
  });
  $('entity-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!admin.spec) return showError({ code: 'not_connected', message: 'connect first' });
    openByName($('entity-name').value);
  });
  return settings;
}

function failed(e) {
  setState('error', `${e.code ?? 'error'}: ${e.message}`);
  showError(e);
}

await init();
const settings = wire();
start(settings()).catch(failed);
