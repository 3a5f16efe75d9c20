// A small SVG line chart: one polyline per series, the last `window`
// points of each, y scaled to the visible values. No dependencies.

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2f6fed', '#12a150', '#d98a00', '#b03ad0', '#d0343a', '#0f9fb5'];

export class LineChart {
  constructor(svg, legend, { window = 40 } = {}) {
    this.svg = svg;
    this.legend = legend;
    this.window = window;
    this.series = new Map();
    this.frame = 0;
  }

  /** Add a point to series `name`. */
  push(name, value) {
    if (!Number.isFinite(value)) return;
    const points = this.series.get(name) ?? [];
    points.push(value);
    if (points.length > this.window) points.splice(0, points.length - this.window);
    this.series.set(name, points);
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  /** Number of points drawn now. */
  get size() {
    let n = 0;
    for (const points of this.series.values()) n += points.length;
    return n;
  }

  draw() {
    // Match the drawing to the element's size so text is not stretched.
    const width = Math.max(200, Math.round(this.svg.clientWidth || 600));
    const height = 220;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const pad = { left: 34, right: 8, top: 8, bottom: 16 };
    const all = [...this.series.values()].flat();
    const lo = Math.min(...all), hi = Math.max(...all);
    const span = hi - lo || 1;
    const x = (i) => pad.left + (i / Math.max(1, this.window - 1)) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - (v - lo) / span) * (height - pad.top - pad.bottom);
    const nodes = [];
    for (let k = 0; k <= 4; k++) {
      const v = lo + (span * k) / 4;
      const line = document.createElementNS(NS, 'line');
      Object.entries({ class: 'grid', x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }).forEach(([a, b]) => line.setAttribute(a, b));
      const label = document.createElementNS(NS, 'text');
      Object.entries({ class: 'axis', x: 2, y: y(v) + 3 }).forEach(([a, b]) => label.setAttribute(a, b));
      label.textContent = v.toFixed(1);
      nodes.push(line, label);
    }
    const names = [...this.series.keys()].sort();
    names.forEach((name, n) => {
      const points = this.series.get(name);
      const offset = this.window - points.length;
      const line = document.createElementNS(NS, 'polyline');
      line.setAttribute('points', points.map((v, i) => `${x(offset + i).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
      line.setAttribute('stroke', COLORS[n % COLORS.length]);
      line.dataset.series = name;
      nodes.push(line);
    });
    this.svg.replaceChildren(...nodes);
    this.legend.replaceChildren(...names.map((name, n) => {
      const item = document.createElement('span');
      const swatch = document.createElement('i');
      swatch.style.background = COLORS[n % COLORS.length];
      const last = this.series.get(name).at(-1);
      item.append(swatch, `${name}: ${last.toFixed(2)}`);
      return item;
    }));
  }
}
