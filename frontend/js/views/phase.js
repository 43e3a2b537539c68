// View 6: χ₁ over (σ_w², σ_b²) with the critical line and the current config; click to set.
import { COLORS, num } from '../format.js';
import { layout, react } from './common.js';

export class PhaseView {
  constructor(el, onPick) {
    this.el = el;
    this.onPick = onPick;
    this.bound = false;
  }

  render(state) {
    const phase = state.phase;
    if (!phase) return;
    const a = phase.analytic;
    const z = a.chi1.map((row) => row.map((v) => {
      const x = num(v);
      return Number.isFinite(x) && x > 0 ? Math.log10(x) : null;
    }));
    const line = a.critical_line.filter((p) => Number.isFinite(num(p.sigma_w2)));
    const data = [
      { type: 'heatmap', x: a.sigma_w2, y: a.sigma_b2, z, zmid: 0, colorscale: 'RdBu',
        reversescale: true, colorbar: { title: { text: 'log₁₀ χ₁' }, thickness: 12 },
        hovertemplate: 'σ_w²=%{x:.2f} σ_b²=%{y:.2f}<br>log₁₀χ₁=%{z:.2f}<extra></extra>' },
      { x: line.map((p) => num(p.sigma_w2)), y: line.map((p) => num(p.sigma_b2)),
        mode: 'lines', name: 'χ₁ = 1 (order ↔ chaos)', line: { color: COLORS.black, width: 3 } },
    ];
    if (state.theory) {
      data.push({ x: [num(state.theory.sigma_w2)], y: [num(state.theory.sigma_b2)],
        mode: 'markers', name: 'this network', marker: { color: COLORS.yellow, size: 14,
          symbol: 'star', line: { color: '#000', width: 1.5 } } });
    }
    react(this.el, data, layout({
      xaxis: { title: { text: 'σ_w²' }, range: [a.sigma_w2[0], a.sigma_w2[a.sigma_w2.length - 1]] },
      yaxis: { title: { text: 'σ_b²' }, range: [a.sigma_b2[0], a.sigma_b2[a.sigma_b2.length - 1]] },
    })).then(() => {
      if (this.bound) return;
      this.bound = true;
      this.el.on('plotly_click', (event) => {
        const p = event.points && event.points[0];
        if (p) this.onPick(Number(p.x), Number(p.y));
      });
    });
  }
}
