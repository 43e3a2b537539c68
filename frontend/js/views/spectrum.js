// View 5: squared singular values of the input-output Jacobian, with the prediction.
import { COLORS, num } from '../format.js';
import { layout, react } from './common.js';

export class SpectrumView {
  constructor(el) { this.el = el; }

  render(state, step) {
    const withSv = step && step.jacobian_sv ? step
      : [...state.steps].reverse().find((s) => s.jacobian_sv);
    if (!withSv) {
      react(this.el, [], layout({ annotations: [{ text: 'Set “Jacobian every k steps” > 0 to '
        + 'measure the spectrum', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5 }],
      xaxis: { visible: false }, yaxis: { visible: false } }));
      return;
    }
    const lam = withSv.jacobian_sv.map((s) => num(s) ** 2).filter((v) => Number.isFinite(v) && v > 0);
    const logs = lam.map((v) => Math.log10(v));
    const mean = lam.reduce((a, b) => a + b, 0) / Math.max(lam.length, 1);
    const shapes = [];
    const lines = [];
    const line = (x, color, dash, name) => {
      if (!Number.isFinite(x) || x <= 0) return;
      shapes.push({ type: 'line', xref: 'x', yref: 'paper', x0: Math.log10(x), x1: Math.log10(x),
        y0: 0, y1: 1, line: { color, dash, width: 2 } });
      lines.push(name);
    };
    line(mean, COLORS.blue, 'solid', 'measured mean');
    const jac = state.theory && state.theory.jacobian;
    if (jac) {
      const m = num(jac.mean);
      const sd = Math.sqrt(Math.max(num(jac.normalized_variance), 0)) * m;
      line(m, COLORS.orange, 'dash', 'predicted mean');
      line(m + sd, COLORS.orange, 'dot', 'predicted mean + sd');
      if (m - sd > 0) line(m - sd, COLORS.orange, 'dot', 'predicted mean − sd');
    }
    react(this.el, [{ x: logs, type: 'histogram', nbinsx: 40, name: 'λ = σ²',
      marker: { color: COLORS.sky } }], layout({
      shapes,
      xaxis: { title: { text: `log₁₀ λ  (step ${withSv.step}; lines: ${lines.join(', ')})` } },
      yaxis: { title: { text: 'count' } },
    }));
  }
}
