// View 6: χ₁ over (σ_w², σ_b²) with the critical line and the current config; click to set.
import { COLORS, fmt, num } from '../format.js';
import { layout, react } from './common.js';

export class PhaseView {
  constructor(el, onPick) {
    this.el = el;
    this.onPick = onPick;
    this.bound = false;
    this.where = document.createElement('p'); // where the star is when it is off the grid
    this.where.className = 'note';
    this.where.id = 'phase-where';
    this.where.hidden = true;
    el.after(this.where);
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
    const xr = [a.sigma_w2[0], a.sigma_w2[a.sigma_w2.length - 1]];
    const yr = [a.sigma_b2[0], a.sigma_b2[a.sigma_b2.length - 1]];
    if (state.theory) {
      const w2 = num(state.theory.sigma_w2);
      const b2 = num(state.theory.sigma_b2);
      // a network outside the drawn grid sits on its edge, and the legend says so (a star
      // off the plot with a legend entry reads as "the star is missing")
      const clamp = (v, [lo, hi]) => Math.min(Math.max(v, lo), hi);
      const outside = w2 < xr[0] || w2 > xr[1] || b2 < yr[0] || b2 > yr[1];
      this.where.hidden = !outside;
      this.where.textContent = outside ? `This network (σ_w² = ${fmt(w2)}, σ_b² = ${fmt(b2)}) `
        + 'lies outside the diagram: its star sits on the nearest edge.' : '';
      data.push({ x: [clamp(w2, xr)], y: [clamp(b2, yr)], cliponaxis: false,
        mode: 'markers', name: 'this network', // a longer name wraps the legend over the plot
        marker: { color: COLORS.yellow, size: 14, symbol: 'star',
          line: { color: '#000', width: 1.5 } },
        hovertemplate: `σ_w²=${fmt(w2)} σ_b²=${fmt(b2)}<extra>this network</extra>` });
    }
    react(this.el, data, layout({
      xaxis: { title: { text: 'σ_w²' }, range: xr },
      yaxis: { title: { text: 'σ_b²' }, range: yr },
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
