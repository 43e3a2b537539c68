// The Watch page's gradient flow and module × step heatmap. A watched model's values
// can be NaN or ±Inf anywhere; both plots show such a value as a marker that says
// which it is, at a place the legend explains (never a gap, never a made-up norm).
import { COLORS, num, plottable } from '../../format.js';
import { layout, react, stepAxis, throttled } from '../../views/common.js';
import { logTicks } from '../../views/loss.js';

/** 'NaN', '+Inf' or '−Inf' for a non-finite value; null for a finite one or none. */
export function nonfiniteLabel(v) {
  if (v == null) return null;
  const x = num(v);
  if (Number.isFinite(x)) return null;
  if (Number.isNaN(x)) return 'NaN';
  return x > 0 ? '+Inf' : '−Inf';
}

const SERIES = [['delta_norm', '‖δ‖'], ['grad_w_norm', '‖∇W‖']];

export class WatchFlow {
  constructor(el) { this.el = el; }

  render(step) {
    const layers = step.layers;
    const x = layers.map((l) => l.index);
    const names = layers.map((l) => l.name ?? String(l.index));
    const withW = layers.filter((l) => l.grad_w_norm != null); // weightless modules have none
    const delta = layers.map((l) => plottable(l.delta_norm));
    const gradW = withW.map((l) => plottable(l.grad_w_norm));
    const data = [
      { x, y: delta, text: names, name: '‖δ‖ = ‖∂L/∂output‖', mode: 'lines+markers',
        connectgaps: false, line: { color: COLORS.blue, width: 2 }, marker: { size: 4 },
        hovertemplate: '%{text}: ‖δ‖ %{y:.3g}<extra></extra>' },
      { x: withW.map((l) => l.index), y: gradW, text: withW.map((l) => l.name),
        name: '‖∇W‖', mode: 'lines+markers', connectgaps: false,
        line: { color: COLORS.orange, width: 2 }, marker: { size: 4, symbol: 'square' },
        hovertemplate: '%{text}: ‖∇W‖ %{y:.3g}<extra></extra>' },
    ];
    // non-finite values on a second axis fixed to 0..1: markers along the top edge,
    // labelled with what they are, one legend entry that says where they sit
    const bad = [];
    for (const l of layers) {
      const what = SERIES.map(([k, sym]) => [sym, nonfiniteLabel(l[k])]).filter(([, w]) => w);
      if (what.length) bad.push({ l, what });
    }
    if (bad.length) {
      data.push({ x: bad.map((b) => b.l.index), y: bad.map(() => 1), yaxis: 'y2',
        name: 'non-finite (NaN / ±Inf), at the top edge', mode: 'markers+text',
        text: bad.map((b) => [...new Set(b.what.map(([, w]) => w))].join('/')),
        textposition: 'bottom center', textfont: { color: COLORS.vermillion, size: 10 },
        customdata: bad.map((b) => `${b.l.name}: ${b.what.map(([s, w]) => `${s} ${w}`).join(', ')}`),
        hovertemplate: '%{customdata}<extra></extra>', cliponaxis: false,
        marker: { color: COLORS.vermillion, symbol: 'x', size: 10 } });
    }
    const finite = delta.concat(gradW).filter((v) => v != null && v > 0);
    const annotations = [];
    if (!finite.length) {
      annotations.push({ text: `every norm of step ${step.step} is non-finite`, xref: 'paper',
        yref: 'paper', x: 0.5, y: 0.5, showarrow: false,
        font: { size: 13, color: COLORS.vermillion } });
    }
    react(this.el, data, layout({
      annotations,
      margin: { l: 56, r: 16, t: 24, b: 40 },
      xaxis: { title: { text: 'module (forward order)' }, zeroline: false, tickvals: x,
        ticktext: names, tickangle: -45, automargin: true },
      yaxis: finite.length ? { type: 'log', title: { text: 'norm' }, ...logTicks(finite) }
        : { type: 'log', title: { text: 'norm' }, range: [-1, 1], showticklabels: false },
      yaxis2: { overlaying: 'y', range: [0, 1], fixedrange: true, visible: false },
    }));
  }
}

export class WatchHeatmap {
  constructor(el) {
    this.el = el;
    this.draw = throttled((steps) => this._draw(steps), 250);
  }

  render(steps) { if (steps.length) this.draw(steps); }

  _draw(steps) {
    const last = steps[steps.length - 1].layers;
    const names = last.map((l) => l.name ?? String(l.index));
    const rows = [...names.keys()];
    const xs = steps.map((s) => s.step);
    const z = [];
    const bad = { x: [], y: [], text: [], hover: [] };
    rows.forEach((r) => {
      z.push(steps.map((s) => {
        const layer = s.layers[r];
        const v = layer ? num(layer.delta_norm) : NaN;
        const label = layer && nonfiniteLabel(layer.delta_norm);
        if (label) {
          bad.x.push(s.step); bad.y.push(r); bad.text.push(label);
          bad.hover.push(`${names[r]}, step ${s.step}: ‖δ‖ ${label}`);
        }
        return Number.isFinite(v) && v > 0 ? Math.log10(v) : null;
      }));
    });
    const data = [{ type: 'heatmap', z, x: xs, y: rows, colorscale: 'Cividis',
      hoverongaps: false, customdata: z.map((row, r) => row.map(() => names[r])),
      hovertemplate: '%{customdata}, step %{x}: log₁₀‖δ‖ %{z:.3f}<extra></extra>',
      colorbar: { title: { text: 'log₁₀‖δ‖' }, thickness: 12 } }];
    if (bad.x.length) {
      // the cells themselves in vermillion (outside Cividis' blue–yellow), each named
      const marked = z.map((row) => row.map(() => null));
      bad.x.forEach((_, k) => { marked[bad.y[k]][xs.indexOf(bad.x[k])] = 1; });
      data.push({ type: 'heatmap', x: xs, y: rows, z: marked,
        colorscale: [[0, COLORS.vermillion], [1, COLORS.vermillion]], showscale: false,
        hoverinfo: 'skip' });
      data.push({ type: 'scatter', x: bad.x, y: bad.y, mode: 'text', text: bad.text,
        textfont: { color: '#fff', size: 10 }, customdata: bad.hover,
        hovertemplate: '%{customdata}<extra></extra>', name: 'non-finite ‖δ‖ (NaN / ±Inf)',
        showlegend: true });
    }
    react(this.el, data, layout({
      showlegend: bad.x.length > 0,
      xaxis: { title: { text: 'step' }, zeroline: false, showgrid: false, ...stepAxis(steps) },
      yaxis: { tickvals: rows, ticktext: names, autorange: 'reversed', automargin: true,
        zeroline: false, showgrid: false },
    }));
  }
}
