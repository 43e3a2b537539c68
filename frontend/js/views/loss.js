// View 4: loss (log scale) and accuracy over steps.
import { COLORS, num, plottable } from '../format.js';
import { layout, react, stepAxis, throttled } from './common.js';

/** Log-axis ticks at 1, 2, 5 × 10^k inside the data's range, each labelled with its
 *  full value (Plotly's own minor ticks read "4, 3, 2": a loss of 4, not 0.4). */
export function logTicks(values) {
  const finite = values.filter((v) => v != null && v > 0);
  if (!finite.length) return { exponentformat: 'power' };
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  if (hi === lo) { // one value (one step, one layer): a decade around it, labelled 1-2-5
    const c = Math.log10(lo);
    const ticks = [];
    for (let e = Math.floor(c) - 1; e <= Math.ceil(c) + 1; e += 1) {
      for (const m of [1, 2, 5]) {
        const v = Number((m * 10 ** e).toPrecision(3));
        if (Math.abs(Math.log10(v) - c) <= 0.5) ticks.push(v);
      }
    }
    return { range: [c - 0.5, c + 0.5], autorange: false, tickmode: 'array', tickvals: ticks,
      ticktext: ticks.map(tickLabel) };
  }
  const decades = Math.log10(hi / lo);
  const ladder = [[1], [1, 2, 5], [1, 1.5, 2, 3, 5, 7], [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9],
    [1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2, 2.2, 2.5, 2.8, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7,
      7.5, 8, 8.5, 9, 9.5]];
  const start = decades > 3 ? 0 : decades > 1 ? 1 : 2;
  const within = (mantissas, slack) => {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e += 1) {
      for (const m of mantissas) {
        const v = Number((m * 10 ** e).toPrecision(3));
        if (v >= lo / slack && v <= hi * slack) out.push(v);
      }
    }
    return out;
  };
  // finer mantissas while fewer than two ticks fall inside the data (a loss between 5.5
  // and 7.5 had one label, "7")
  let level = start;
  while (level < ladder.length - 1 && within(ladder[level], 1).length < 2) level += 1;
  // narrower still (6.6 to 6.7): Plotly's own ticks, plain numbers at that zoom
  if (within(ladder[level], 1).length < 2) return { exponentformat: 'power' };
  let ticks = within(ladder[level], 1.5);
  // many decades (a loss that overflowed spans 40): every k-th power of ten, ≤ 8 labels
  const every = Math.ceil(ticks.length / 8);
  if (level === 0 && every > 1) {
    ticks = ticks.filter((v) => Math.round(Math.log10(v)) % every === 0);
  }
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
    // a loss that overflowed: × at the top of the axis, where the line breaks off
    const finite = data[0].y.filter((v) => v != null && v > 0);
    const bad = steps.filter((s) => s.loss != null && !Number.isFinite(num(s.loss)));
    if (bad.length) {
      const top = finite.length ? Math.max(...finite) * 3 : 1;
      data.push({ x: bad.map((s) => s.step), y: bad.map(() => top), name: 'loss NaN/∞',
        mode: 'markers', marker: { color: COLORS.vermillion, symbol: 'x', size: 9 },
        customdata: bad.map((s) => String(s.loss)),
        hovertemplate: 'step %{x}: loss %{customdata}<extra></extra>' });
    }
    if (this.title) this.title.textContent = accuracy ? 'Loss and accuracy' : 'Loss';
    react(this.el, data, layout({
      showlegend: accuracy || bad.length > 0,
      margin: { l: 56, r: accuracy ? 56 : 16, t: 8, b: 40 },
      xaxis: { title: { text: 'step' }, ...stepAxis(steps) },
      yaxis: { type: 'log', title: { text: 'loss' },
        ...(finite.length ? logTicks(finite) : { range: [-1, 1], showticklabels: false }) },
      // round ticks of its own (an overlaying axis syncs to the loss ticks by default,
      // labelling 0.811, 0.537, 0.151)
      ...(accuracy ? { yaxis2: { overlaying: 'y', side: 'right', range: [0, 1],
        tickmode: 'linear', tick0: 0, dtick: 0.25, showgrid: false,
        title: { text: 'accuracy' } } } : {}),
    }));
  }
}
