// View 5: squared singular values of the input-output Jacobian, with the prediction.
import { COLORS, fmt, num } from '../format.js';

/** The tallest bar of a 40-bin histogram of xs (the height the marker lines span). */
function histogramTop(xs) {
  if (!xs.length) return 1;
  const lo = Math.min(...xs);
  const span = Math.max(...xs) - lo || 1;
  const bins = new Array(40).fill(0);
  for (const x of xs) bins[Math.min(39, Math.floor(((x - lo) / span) * 40))] += 1;
  return Math.max(...bins);
}
import { layout, react } from './common.js';

export class SpectrumView {
  /** onEnable(): turn the measurement on (a button in the empty panel). */
  constructor(el, onEnable) {
    this.el = el;
    this.button = document.createElement('button');
    this.button.type = 'button';
    this.button.className = 'enable';
    this.button.id = 'spectrum-on';
    this.button.textContent = 'Measure the spectrum every 10 steps';
    this.button.addEventListener('click', () => onEnable(10));
    el.parentElement.insertBefore(this.button, el);
    // why the panel is empty, as text that wraps in the panel (a Plotly annotation is one
    // line, cut off at both ends of a narrow plot)
    this.note = document.createElement('p');
    this.note.className = 'note empty-note';
    this.note.id = 'spectrum-note';
    this.note.setAttribute('aria-live', 'polite');
    el.parentElement.insertBefore(this.note, el);
  }

  render(state, step) {
    const withSv = step && step.jacobian_sv ? step
      : [...state.steps].reverse().find((s) => s.jacobian_sv);
    const off = !(state.config.record && state.config.record.jacobian_every > 0);
    this.button.hidden = !off;
    this.note.hidden = Boolean(withSv);
    this.el.hidden = !withSv;
    if (!withSv) {
      this.note.textContent = off ? 'The spectrum is off: press the button above, or set '
        + '“Jacobian every k steps” under Recording.' : 'Waiting for the first Jacobian…';
      window.Plotly.purge(this.el);
      return;
    }
    const lam = withSv.jacobian_sv.map((s) => num(s) ** 2).filter((v) => Number.isFinite(v) && v > 0);
    const logs = lam.map((v) => Math.log10(v));
    const mean = lam.reduce((a, b) => a + b, 0) / Math.max(lam.length, 1);
    const counts = histogramTop(logs);
    const lines = [];
    const line = (x, color, dash, name) => {
      if (!Number.isFinite(x) || x <= 0) return;
      lines.push({ x: [Math.log10(x), Math.log10(x)], y: [0, counts], mode: 'lines', name,
        line: { color, dash, width: 2 }, hovertemplate: `${name}: λ = ${fmt(x)}<extra></extra>` });
    };
    line(mean, COLORS.blue, 'solid', 'measured mean λ');
    const jac = state.theory && state.theory.jacobian;
    if (jac) {
      const m = num(jac.mean);
      const sd = Math.sqrt(Math.max(num(jac.normalized_variance), 0)) * m;
      line(m, COLORS.orange, 'dash', 'predicted mean');
      line(m + sd, COLORS.orange, 'dot', 'predicted mean + sd');
      if (m - sd > 0) line(m - sd, COLORS.orange, 'dot', 'predicted mean − sd');
    }
    react(this.el, [{ x: logs, type: 'histogram', nbinsx: 40, name: `λ = σ² (step ${withSv.step})`,
      marker: { color: COLORS.sky } }, ...lines], layout({
      margin: { l: 56, r: 16, t: 30, b: 48 },
      legend: { orientation: 'h', y: 1.18, x: 0 },
      xaxis: { title: { text: 'log₁₀ λ', standoff: 4 } },
      yaxis: { title: { text: 'count' } },
    }));
  }
}
