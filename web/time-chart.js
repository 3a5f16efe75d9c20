// A live chart of one numeric column over one time column of an entity,
// optionally one line per value of a third column (e.g. device_id): it
// follows the newest `limit` rows matching the table's filters (a
// liveQuery sorted by the time column) and draws them as SVG, x by time, y
// by value. Every point is a <circle> carrying its data (data-t, data-v,
// data-series), so what is drawn can be checked against the database.
import { h, options, text } from './dom.js';
import { isNumeric, isTemporal, primaryKey } from './columns.js';

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2f6fed', '#12a150', '#d98a00', '#b03ad0', '#d0343a', '#0f9fb5'];
const svgEl = (tag, attrs) => {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};

/** A numeric column that is not the key (a key is no measurement). */
const isMeasure = (c) => isNumeric(c) && !c.is_primary;

/** Can `meta` be charted: a numeric column besides the key, and a time column? */
export function chartable(meta) {
  return meta.columns.some(isMeasure) && meta.columns.some(isTemporal);
}

/**
 * @param {HTMLElement} element replaced by the chart and its column pickers
 * @param {object} spec a connected SpecClient
 * @param {object} meta `{schema, table, columns}` (`chartable`)
 * @param {object} opts `onError(error)`, `limit` (points, default 200)
 */
export function mountTimeChart(element, spec, meta, { onError, limit = 200 }) {
  const entity = `${meta.schema}.${meta.table}`;
  const key = primaryKey(meta)?.name;
  const numeric = meta.columns.filter(isMeasure).map((c) => c.name);
  const temporal = meta.columns.filter(isTemporal).map((c) => c.name);
  const groups = meta.columns.filter((c) => !c.is_primary && !isNumeric(c) && !isTemporal(c)).map((c) => c.name);
  const pick = (id, values, selected) => h('select', { id, onchange: () => start() }, options(values, selected));
  const yPick = pick('chart-y', numeric);
  const xPick = pick('chart-x', temporal);
  const byPick = pick('chart-by', [['', '(one line)'], ...groups], groups.find((g) => /(^|_)(id|device|name|kind|type)$/.test(g)) ?? '');
  const svg = svgEl('svg', { id: 'chart', viewBox: '0 0 600 240', role: 'img' });
  const legend = h('div', { className: 'legend', id: 'chart-legend' });
  element.replaceChildren(
    h('div', { className: 'inline' }, h('label', {}, 'value ', yPick), h('label', {}, 'over ', xPick), h('label', {}, 'lines by ', byPick)),
    svg, legend);

  let filters = [];
  let live = null;
  let generation = 0;
  let drawn = [];
  let frame = 0;

  function draw(rows) {
    const [y, x, by] = [yPick.value, xPick.value, byPick.value];
    const points = rows
      .map((r) => ({ series: by ? text(r[by]) : y, t: Date.parse(r[x]), time: r[x], v: Number(r[y]) }))
      .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v))
      .sort((a, b) => a.t - b.t);
    const width = Math.max(300, Math.round(svg.clientWidth || 600));
    const height = 240;
    const pad = { left: 44, right: 10, top: 10, bottom: 22 };
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const ts = points.map((p) => p.t), vs = points.map((p) => p.v);
    const [t0, t1] = [Math.min(...ts), Math.max(...ts)];
    const [v0, v1] = [Math.min(...vs), Math.max(...vs)];
    const sx = (t) => pad.left + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (width - pad.left - pad.right);
    const sy = (v) => pad.top + (v1 > v0 ? 1 - (v - v0) / (v1 - v0) : 0.5) * (height - pad.top - pad.bottom);
    const nodes = [];
    if (points.length) {
      for (let k = 0; k <= 4; k++) {
        const v = v0 + ((v1 - v0) * k) / 4;
        nodes.push(svgEl('line', { class: 'grid', x1: pad.left, x2: width - pad.right, y1: sy(v), y2: sy(v) }));
        nodes.push(Object.assign(svgEl('text', { class: 'axis', x: 2, y: sy(v) + 3 }), { textContent: fmt(v) }));
      }
      for (const [t, anchor] of [[t0, 'start'], [t1, 'end']]) {
        const label = new Date(t).toISOString().replace('T', ' ').slice(0, 19);
        nodes.push(Object.assign(svgEl('text', { class: 'axis', x: sx(t), y: height - 6, 'text-anchor': anchor }), { textContent: label }));
      }
    }
    const names = [...new Set(points.map((p) => p.series))].sort();
    drawn = [];
    names.forEach((name, n) => {
      const color = COLORS[n % COLORS.length];
      const mine = points.filter((p) => p.series === name);
      nodes.push(svgEl('polyline', { points: mine.map((p) => `${sx(p.t).toFixed(1)},${sy(p.v).toFixed(1)}`).join(' '), stroke: color, 'data-series': name }));
      for (const p of mine) {
        const point = { series: name, time: p.time, value: p.v, x: sx(p.t), y: sy(p.v) };
        drawn.push(point);
        nodes.push(svgEl('circle', { cx: point.x.toFixed(1), cy: point.y.toFixed(1), r: 2.5, fill: color,
          'data-series': name, 'data-t': p.time, 'data-v': p.v }));
      }
    });
    svg.replaceChildren(...nodes);
    legend.replaceChildren(...names.map((name, n) => h('span', {},
      Object.assign(h('i'), { style: `background:${COLORS[n % COLORS.length]}` }),
      `${name}: ${fmt(points.filter((p) => p.series === name).at(-1).v)}`)));
    svg.dataset.points = String(drawn.length);
  }
  const fmt = (v) => (Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2));
  const schedule = (rows) => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => draw(rows));
  };

  async function start() {
    const mine = ++generation;
    const previous = live;
    live = null;
    const query = { filters, sort: [{ column: xPick.value, direction: 'desc' }], limit };
    try {
      if (key) {
        const q = await spec.liveQuery(entity, { ...query, key, onError }, (rows) => { if (mine === generation) schedule(rows); });
        if (mine !== generation) { await q.close(); return; }
        live = q;
        schedule(q.rows());
      } else {
        const { data } = await spec.read(entity, { options: query });
        if (mine === generation) schedule(data);
      }
    } catch (e) {
      onError(e);
    } finally {
      await previous?.close().catch(() => {});
    }
  }

  return {
    /** Follow the rows matching `next` filters (the table's). */
    setFilters(next) { filters = next; return start(); },
    /** What is drawn now: `{series, time, value, x, y}` per point. */
    points: () => drawn,
    close: () => { generation++; cancelAnimationFrame(frame); return live?.close() ?? Promise.resolve(); },
    ready: start(),
  };
}
