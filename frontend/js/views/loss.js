// View 4: loss (log scale) and accuracy over steps.
import { COLORS, plottable } from '../format.js';
import { layout, react, stepAxis, throttled } from './common.js';

/** Log-axis ticks at 1, 2, 5 × 10^k inside the data's range, each labelled with its
 *  full value (Plotly's own minor ticks read "4, 3, 2": a loss of 4, not 0.4). */
export function logTicks(values) {
  const finite = values.filter((v) => v != null && v > 0);
  if (!finite.length) return { exponentformat: 'power' };
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const decades = Math.log10(hi / lo);
  const mantissas = decades > 3 ? [1] : decades > 1 ? [1, 2, 5] : [1, 1.5, 2, 3, 5, 7];
  const ticks = [];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e += 1) {
    for (const m of mantissas) {
      const v = m * 10 ** e;
      if (v >= lo / 1.5 && v <= hi * 1.5) ticks.push(Number(v.toPrecision(3)));
    }
  }
  if (ticks.length < 2) return { exponentformat: 'power' };
  return { tickvals: ticks, ticktext: ticks.map(tickLabel), tickmode: 'array' };
}

/** A tick's value as short as it reads: 0.01, 0.15, 100, 2000; 1e+5 and 2e-5 beyond. */
function tickLabel(v) {
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential() : String(v);
}

export class LossView {
  /** title: the panel's heading, which names what the plot draws (or null). */
  constructor(el, title = null) {
    this.el = el;
    this.title = title;
    this.draw = throttled((steps) => this._draw(steps), 100);
  }

  render(state) { if (state.steps.length) this.draw(state.steps); }

  _draw(steps) {
    const x = steps.map((s) => s.step);
    // markers too: a run that diverges after a few steps still shows its finite losses
    const data = [{ x, y: steps.map((s) => plottable(s.loss)), name: 'loss',
      mode: steps.length < 50 ? 'lines+markers' : 'lines', marker: { size: 5 },
      connectgaps: false, line: { color: COLORS.blue } }];
    const accuracy = steps.some((s) => s.accuracy != null); // a classification loss
    if (accuracy) {
      data.push({ x, y: steps.map((s) => plottable(s.accuracy)), name: 'accuracy', yaxis: 'y2',
        mode: 'lines', line: { color: COLORS.green, dash: 'dot' } });
    }
    if (this.title) this.title.textContent = accuracy ? 'Loss and accuracy' : 'Loss';
    react(this.el, data, layout({
      showlegend: accuracy,
      margin: { l: 56, r: accuracy ? 56 : 16, t: 8, b: 40 },
      xaxis: { title: { text: 'step' }, ...stepAxis(steps) },
      yaxis: { type: 'log', title: { text: 'loss' }, ...logTicks(data[0].y) },
      // round ticks of its own (an overlaying axis syncs to the loss ticks by default,
      // labelling 0.811, 0.537, 0.151)
      ...(accuracy ? { yaxis2: { overlaying: 'y', side: 'right', range: [0, 1],
        tickmode: 'linear', tick0: 0, dtick: 0.25, showgrid: false,
        title: { text: 'accuracy' } } } : {}),
    }));
  }
}
