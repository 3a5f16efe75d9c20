// The entity's rows as a live table: a liveQuery with the builder's
// filters, a sort (click a header), and pages. A live query has no offset,
// so page p of size n follows the first (p + 1) * n rows and shows the last
// n of them: a row created or deleted before the page shifts it, as a fresh
// read would. Changed rows flash. An entity without a primary key cannot be
// followed row by row: it is read (not live) and can be reloaded. The
// count of all matches ("of N") is read again after every change of the
// entity (a subscription beside the live query: most changes fall outside
// the page and never reach the view).
import { h, text } from './dom.js';
import { primaryKey } from './columns.js';

/**
 * @param {HTMLElement} element replaced by the table and its pager
 * @param {object} spec a connected SpecClient
 * @param {object} meta `{schema, table, columns}`
 * @param {object} handlers `onPick(row)` (a row clicked), `onError(error)`
 */
export function mountLiveTable(element, spec, meta, { onPick, onError }) {
  const entity = `${meta.schema}.${meta.table}`;
  const key = primaryKey(meta)?.name ?? null;
  const state = { filters: [], sort: key ? [{ column: key, direction: 'asc' }] : [], pageSize: 25, page: 0 };
  let live = null;
  let changes = null; // the subscription that keeps the count current
  let shown = [];
  let total = null;
  let generation = 0;
  const trs = new Map();

  const head = h('thead');
  const body = h('tbody');
  const caption = h('caption');
  const table = h('table', { className: 'rows', id: 'rows' }, head, body, caption);
  const prev = h('button', { type: 'button', className: 'ghost', id: 'prev-page', onclick: () => setPage(state.page - 1) }, '‹ prev');
  const next = h('button', { type: 'button', className: 'ghost', id: 'next-page', onclick: () => setPage(state.page + 1) }, 'next ›');
  const size = h('select', { id: 'page-size', onchange: () => setQuery({ pageSize: Number(size.value), page: 0 }) },
    [10, 25, 50, 100].map((n) => h('option', { value: n, selected: n === state.pageSize }, `${n} / page`)));
  const pageInfo = h('span', { className: 'hint', id: 'page-info' });
  const reload = key ? null : h('button', { type: 'button', className: 'ghost', onclick: () => start() }, 'reload');
  element.replaceChildren(h('div', { className: 'table-wrap' }, table),
    h('div', { className: 'pager' }, prev, pageInfo, next, size, reload));

  function renderHead() {
    const sort = state.sort[0];
    head.replaceChildren(h('tr', {}, meta.columns.map((c) => {
      const th = h('th', { scope: 'col', title: `${c.type}${c.is_nullable ? ', nullable' : ''}`, onclick: () => {
        const direction = sort?.column === c.name && sort.direction !== 'desc' ? 'desc' : 'asc';
        setQuery({ sort: [{ column: c.name, direction }], page: 0 });
      } }, c.name);
      if (sort?.column === c.name) th.setAttribute('aria-sort', sort.direction === 'desc' ? 'descending' : 'ascending');
      return th;
    })));
  }

  function render(rows, changed = new Set()) {
    shown = rows.slice(state.page * state.pageSize, (state.page + 1) * state.pageSize);
    const seen = new Set();
    shown.forEach((row, index) => {
      const id = key ? text(row[key]) : String(index);
      seen.add(id);
      let tr = trs.get(id);
      if (!tr) {
        tr = h('tr', { dataset: { key: id }, onclick: () => onPick?.(shown.find((r) => !key || text(r[key]) === id)) });
        trs.set(id, tr);
      }
      const cells = meta.columns.map((c) => [text(row[c.name]), row[c.name] === null || row[c.name] === undefined]);
      if (tr.childElementCount !== cells.length || cells.some(([t], i) => tr.children[i].textContent !== t)) {
        tr.replaceChildren(...cells.map(([t, isNull]) => h('td', { className: isNull ? 'null' : '' }, t)));
      }
      if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
      if (changed.has(id)) {
        tr.classList.remove('flash');
        void tr.offsetWidth; // restart the animation
        tr.classList.add('flash');
        tr.dataset.flashed = String(Number(tr.dataset.flashed ?? 0) + 1);
      }
    });
    for (const [id, tr] of trs) if (!seen.has(id)) { tr.remove(); trs.delete(id); }
    renderPager();
  }

  function renderPager() {
    const first = state.page * state.pageSize;
    const count = shown.length;
    const of = total === null ? '' : ` of ${total}`;
    pageInfo.textContent = count ? `rows ${first + 1}–${first + count}${of}` : `no rows${of}`;
    caption.textContent = key ? `${entity} · live` : `${entity} · no primary key: read, not live`;
    prev.disabled = state.page === 0;
    next.disabled = total === null ? count < state.pageSize : first + count >= total;
  }

  /** Count every match (metadata.total of a one-row read). */
  let counting = null;
  function count() {
    if (counting) { counting.again = true; return; }
    const mine = generation;
    counting = { again: false };
    spec.read(entity, { options: { filters: state.filters, limit: 1, columns: [key ?? meta.columns[0].name] } })
      .then(({ metadata }) => { if (mine === generation) { total = metadata?.total ?? null; renderPager(); } })
      .catch(onError)
      .finally(() => { const again = counting.again; counting = null; if (again) count(); });
  }

  async function start() {
    const mine = ++generation;
    const previous = [live, changes];
    live = changes = null;
    trs.clear();
    body.replaceChildren();
    renderHead();
    total = null;
    const limit = (state.page + 1) * state.pageSize;
    try {
      if (key) {
        let first = true;
        const query = await spec.liveQuery(entity, { filters: state.filters, sort: state.sort, limit, key, onError },
          (rows, change) => {
            if (mine !== generation) return;
            const changed = first ? new Set() : new Set([...change.added, ...change.updated].map((r) => text(r[key])));
            first = false;
            render(rows, changed);
          });
        if (mine !== generation) return stop(query);
        live = query; // from here a newer start() stops it
        render(query.rows());
        const counted = await spec.subscribe(entity, { filters: state.filters, onError }, () => { if (mine === generation) count(); });
        if (mine !== generation) return stop(null, counted);
        changes = counted;
      } else {
        const { data } = await spec.read(entity, { options: { filters: state.filters, sort: state.sort, limit } });
        if (mine === generation) render(data);
      }
      count();
    } catch (e) {
      onError(e);
    } finally {
      await stop(...previous);
    }
  }

  /** End a live query and a subscription (either may be null). */
  async function stop(query, subscription) {
    await Promise.all([query?.close(), subscription?.unsubscribe()].map((p) => p?.catch(() => {})));
  }

  function setPage(page) {
    setQuery({ page: Math.max(0, page) });
  }

  /** Change filters, sort, pageSize or page; the table follows the new query. */
  function setQuery(partial) {
    Object.assign(state, partial);
    return start();
  }

  return {
    setQuery,
    /** The rows on the page now. */
    rows: () => shown,
    close: () => { generation++; return stop(live, changes); },
    ready: start(),
  };
}
