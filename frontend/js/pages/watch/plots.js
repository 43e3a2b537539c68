// The Watch page's gradient flow (its heatmap is views/heatmap.js, as the Lab's). A watched model's values
// can be NaN or ±Inf anywhere; both plots show such a value as a marker that says
// which it is, at a place the legend explains (never a gap, never a made-up norm).
import { COLORS, nonfiniteLabel, plottable } from '../../format.js';
import { layout, react } from '../../views/common.js';
import { logTicks } from '../../views/loss.js';


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
