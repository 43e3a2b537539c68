// View 3: per-layer saturated/dead fractions and a(l) std; the histogram of one layer.
import { COLORS, num, plottable } from '../format.js';
import { layout, react, wholeAxis } from './common.js';

/** The right axis' top: the largest finite std a(l), with headroom. */
export function stdTop(layers) {
  const finite = layers.map((l) => num(l.a_std)).filter(Number.isFinite);
  const top = finite.length ? Math.max(...finite) : 1;
  return top > 0 ? top * 1.08 : 1;
}

export class ActivationsView {
  constructor(el) { this.el = el; }

  render(state, step, layerIndex) {
    if (!step) return;
    const layers = step.layers;
    const x = layers.map((l) => l.index);
    const chosen = layers[Math.min(Math.max(layerIndex ?? 0, 0), layers.length - 1)];
    const h = chosen.a_hist;
    const lo = num(h.lo);
    const hi = num(h.hi);
    const width = (hi - lo) / h.counts.length || 1;
    const centers = h.counts.map((_, i) => lo + (i + 0.5) * width);
    react(this.el, [
      { x, y: layers.map((l) => plottable(l.saturated_frac)), name: 'saturated (φ′ < 5% max)',
        mode: 'lines', line: { color: COLORS.vermillion } },
      { x, y: layers.map((l) => plottable(l.dead_frac)), name: 'dead units', mode: 'lines',
        line: { color: COLORS.black, dash: 'dot' } },
      { x, y: layers.map((l) => plottable(l.a_std)), name: 'std a(l)', mode: 'lines',
        yaxis: 'y3', line: { color: COLORS.sky } },
      { x: centers, y: h.counts, type: 'bar', name: `a(${chosen.index}) histogram`,
        xaxis: 'x2', yaxis: 'y2', marker: { color: COLORS.green }, width },
    ], layout({
      grid: { rows: 1, columns: 2, pattern: 'independent' },
      margin: { l: 56, r: 16, t: 8, b: 40 },
      legend: { orientation: 'h', y: -0.25, x: 0 },
      xaxis: { domain: [0, 0.5], title: { text: 'layer' }, ...wholeAxis(x) },
      yaxis: { range: [0, 1.02], title: { text: 'fraction of units' } },
      // std a(l) is not a fraction: its own labelled axis and range, on the right
      // round ticks of its own, not synced to the fraction axis' grid (0.529, 0.423, …)
      yaxis3: { overlaying: 'y', side: 'right', anchor: 'x', showgrid: false,
        tickmode: 'auto', nticks: 6,
        rangemode: 'tozero', range: [0, stdTop(layers)], title: { text: 'std a(l)',
          font: { color: COLORS.sky } }, tickfont: { color: COLORS.sky } },
      xaxis2: { domain: [0.76, 1], anchor: 'y2', title: { text: `a(${chosen.index})` } },
      yaxis2: { anchor: 'x2', title: { text: 'count' } },
    }));
  }
}
