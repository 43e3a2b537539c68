// View 2: layer × step heatmap of log10 ‖δ(l)‖. A value the log cannot place is a cell
// of its own colour that says what it is: NaN or ±Inf in vermillion (named in the cell
// when the cells are wide enough to read), an exact 0 in grey; never a blank.
import { COLORS, nonfiniteLabel, num } from '../format.js';
import { layout, react, stepAxis, throttled, wholeAxis } from './common.js';

const ZERO = '#bbbbbb';
const LABELLED_STEPS = 40; // at most this many steps: each non-finite cell is named

/** One colour for the cells of `where` (a z of 1 there, null elsewhere). */
function cells(xs, rows, where, color, name) {
  return { type: 'heatmap', x: xs, y: rows, z: where, colorscale: [[0, color], [1, color]],
    showscale: false, hoverinfo: 'skip', name };
}

export class HeatmapView {
  constructor(el) {
    this.el = el;
    this.draw = throttled((steps) => this._draw(steps), 250);
  }

  /** state: {steps}, each with its layers (the Lab's, the Watch page's, a stored run's). */
  render(state) { if (state.steps.length) this.draw(state.steps); }

  _draw(steps) {
    const last = steps[steps.length - 1].layers;
    const names = last.some((l) => l.name) ? last.map((l) => l.name ?? String(l.index)) : null;
    const label = (r) => (names ? names[r] : `layer ${r}`);
    const rows = [...last.keys()];
    const xs = steps.map((s) => s.step);
    const z = [];
    const bad = { x: [], y: [], text: [], hover: [] };
    let marked = null; // made only when a cell needs it: a depth-500 run redraws often
    let zeros = null;
    const blank = () => rows.map(() => xs.map(() => null));
    rows.forEach((r) => {
      z.push(steps.map((s, k) => {
        const layer = s.layers[r];
        const v = layer ? num(layer.delta_norm) : NaN;
        if (Number.isFinite(v) && v > 0) return Math.log10(v);
        const what = layer && nonfiniteLabel(layer.delta_norm);
        if (what) {
          (marked ??= blank())[r][k] = 1;
          bad.x.push(s.step); bad.y.push(r); bad.text.push(what);
          bad.hover.push(`${label(r)}, step ${s.step}: ‖δ‖ ${what}`);
        } else if (v === 0) {
          (zeros ??= blank())[r][k] = 1;
        }
        return null;
      }));
    });
    const anyZero = zeros !== null;
    const data = [{ type: 'heatmap', z, x: xs, y: rows, colorscale: 'Cividis',
      hoverongaps: false, colorbar: { title: { text: 'log₁₀‖δ‖' }, thickness: 12 },
      ...(names ? { customdata: z.map((row, r) => row.map(() => names[r])),
        hovertemplate: '%{customdata}, step %{x}: log₁₀‖δ‖ %{z:.3f}<extra></extra>' }
        : { hovertemplate: 'layer %{y}, step %{x}: log₁₀‖δ‖ %{z:.3f}<extra></extra>' }) }];
    if (bad.x.length) {
      // the cells themselves in vermillion (outside Cividis' blue–yellow), each named
      data.push(cells(xs, rows, marked, COLORS.vermillion, 'non-finite cells'));
      const named = steps.length <= LABELLED_STEPS;
      data.push({ type: 'scatter', x: bad.x, y: bad.y, mode: named ? 'text' : 'markers',
        text: bad.text, textfont: { color: '#fff', size: 10 }, customdata: bad.hover,
        marker: { color: COLORS.vermillion, symbol: 'square', size: 8, opacity: named ? 1 : 0 },
        hovertemplate: '%{customdata}<extra></extra>', name: 'non-finite ‖δ‖ (NaN / ±Inf)',
        showlegend: true });
    }
    if (anyZero) { // δ exactly 0 (dead units, an underflow): grey, and said in the legend
      data.push(cells(xs, rows, zeros, ZERO, '‖δ‖ = 0'));
      data.push({ type: 'scatter', x: [null], y: [null], mode: 'markers', name: '‖δ‖ = 0 exactly',
        marker: { color: ZERO, symbol: 'square', size: 10 }, hoverinfo: 'skip' });
    }
    react(this.el, data, layout({
      showlegend: bad.x.length > 0 || anyZero,
      xaxis: { title: { text: 'step' }, zeroline: false, showgrid: false, ...stepAxis(steps) },
      yaxis: names ? { tickvals: rows, ticktext: names, autorange: 'reversed', automargin: true,
        zeroline: false, showgrid: false }
        : { title: { text: 'layer' }, zeroline: false, showgrid: false, ...wholeAxis(rows) },
    }));
  }
}
