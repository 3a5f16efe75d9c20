// Drop-in live widgets on top of SpecClient (shipped as `mqttspec-wasm/widgets`).
//
//   import init, { SpecClient } from 'mqttspec-wasm';
//   import { mountLiveTable } from 'mqttspec-wasm/widgets';
//   await init();
//   const spec = await SpecClient.connect('wss://example.com/mqtt', { clientId: 'page-1' });
//   mountLiveTable(document.getElementById('users'), spec, 'public.users', { limit: 20 });
//
// The table follows a liveQuery: rows enter, leave and move as the data
// changes, changed rows flash, and clicking a column header sorts by it.

const STYLE_ID = 'mqttspec-live-table-style';
const STYLE = `
.mqttspec-live-table { border-collapse: collapse; width: 100%; font: inherit; }
.mqttspec-live-table th, .mqttspec-live-table td { padding: .35rem .6rem; border-bottom: 1px solid #e3e6ea; text-align: left; white-space: nowrap; }
.mqttspec-live-table th { cursor: pointer; user-select: none; font-weight: 600; color: #334; }
.mqttspec-live-table th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: .7em; }
.mqttspec-live-table th[aria-sort="descending"]::after { content: " \\25BC"; font-size: .7em; }
.mqttspec-live-table tr.mqttspec-flash td { animation: mqttspec-flash 1.2s ease-out; }
@keyframes mqttspec-flash { from { background: #fff3b0; } to { background: transparent; } }
.mqttspec-live-table caption { caption-side: bottom; text-align: left; color: #667; font-size: .85em; padding-top: .4rem; }
`;

function injectStyle(doc) {
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = STYLE;
  doc.head.appendChild(style);
}

function text(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * Show a live query of `entity` as a table inside `element`.
 * @param {HTMLElement} element where the table goes (its content is replaced)
 * @param {import('mqttspec-wasm').SpecClient} client a connected SpecClient
 * @param {string} entity "schema.entity" or "entity"
 * @param {object} [options] liveQuery options (filters, sort, limit, key, schema) plus
 *   `columns` (names to show, default: the columns of the first row) and
 *   `format(column, value, row)` returning the cell text
 * @returns {Promise<{ setQuery(q: object): Promise<void>, rows(): object[], close(): Promise<void> }>}
 */
export async function mountLiveTable(element, client, entity, options = {}) {
  const doc = element.ownerDocument;
  injectStyle(doc);
  const { columns: wanted, format = (_c, v) => text(v), ...query } = options;
  const key = query.key ?? 'id';
  let current = { ...query };
  let live = null;
  let columns = wanted ?? null;
  const table = doc.createElement('table');
  table.className = 'mqttspec-live-table';
  const head = doc.createElement('thead');
  const body = doc.createElement('tbody');
  const caption = doc.createElement('caption');
  table.append(head, body, caption);
  element.replaceChildren(table);
  const rowsByKey = new Map();

  function renderHead() {
    const tr = doc.createElement('tr');
    const sort = current.sort?.[0];
    for (const column of columns) {
      const th = doc.createElement('th');
      th.textContent = column;
      th.scope = 'col';
      if (sort?.column === column) th.setAttribute('aria-sort', sort.direction === 'desc' ? 'descending' : 'ascending');
      th.addEventListener('click', () => {
        const direction = sort?.column === column && sort.direction !== 'desc' ? 'desc' : 'asc';
        setQuery({ ...current, sort: [{ column, direction }] });
      });
      tr.appendChild(th);
    }
    head.replaceChildren(tr);
  }

  function render(rows, change) {
    if (!columns) columns = rows.length ? Object.keys(rows[0]) : [key];
    if (!head.firstChild) renderHead();
    // Flash what changed, but not the whole table on its first load.
    const flash = rowsByKey.size === 0 ? new Set() : new Set([...change.added, ...change.updated].map((r) => text(r[key])));
    const seen = new Set();
    rows.forEach((row, index) => {
      const id = text(row[key]);
      seen.add(id);
      let tr = rowsByKey.get(id);
      if (!tr) {
        tr = doc.createElement('tr');
        tr.dataset.key = id;
        rowsByKey.set(id, tr);
      }
      const cells = columns.map((c) => format(c, row[c], row));
      if (tr.childElementCount !== cells.length || cells.some((t, i) => tr.children[i].textContent !== t)) {
        tr.replaceChildren(...cells.map((t) => Object.assign(doc.createElement('td'), { textContent: t })));
      }
      if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
      if (flash.has(id)) {
        tr.classList.remove('mqttspec-flash');
        void tr.offsetWidth; // restart the animation
        tr.classList.add('mqttspec-flash');
      }
    });
    for (const [id, tr] of rowsByKey) {
      if (!seen.has(id)) { tr.remove(); rowsByKey.delete(id); }
    }
    caption.textContent = `${rows.length} row${rows.length === 1 ? '' : 's'} · live`;
  }

  async function setQuery(next) {
    const previous = live;
    current = { ...next };
    rowsByKey.clear();
    body.replaceChildren();
    head.replaceChildren();
    live = await client.liveQuery(entity, current, render);
    await previous?.close();
  }

  await setQuery(current);
  return {
    setQuery,
    rows: () => live?.rows() ?? [],
    close: () => live?.close() ?? Promise.resolve(),
  };
}
