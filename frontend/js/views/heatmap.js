// View 2: layer × step heatmap of log10 ‖δ(l)‖ (non-finite cells stay empty).
import { num } from '../format.js';
import { layout, react, stepAxis, throttled, wholeAxis } from './common.js';

export class HeatmapView {
  constructor(el) {
    this.el = el;
    this.draw = throttled((steps) => this._draw(steps), 250);
  }

  render(state) { if (state.steps.length) this.draw(state.steps); }

  _draw(steps) {
    const depth = steps[steps.length - 1].layers.length;
    const z = [];
    for (let l = 0; l < depth; l += 1) {
      z.push(steps.map((s) => {
        const v = s.layers[l] ? num(s.layers[l].delta_norm) : NaN;
        return Number.isFinite(v) && v > 0 ? Math.log10(v) : null;
      }));
    }
    const last = steps[steps.length - 1].layers;
    const names = last.some((l) => l.name) ? last.map((l) => l.name) : null; // watched modules
    const rows = [...Array(depth).keys()];
    react(this.el, [{ type: 'heatmap', z, x: steps.map((s) => s.step),
      y: rows, colorscale: 'Cividis', hoverongaps: false,
      colorbar: { title: { text: 'log₁₀‖δ‖' }, thickness: 12 } }],
    layout({ xaxis: { title: { text: 'step' }, ...stepAxis(steps) },
      yaxis: names ? { tickvals: rows, ticktext: names, autorange: 'reversed', automargin: true }
        : { title: { text: 'layer' }, ...wholeAxis(rows) } }));
  }
}
