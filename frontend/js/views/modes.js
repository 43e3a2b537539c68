// View 8: the full Jacobian by forward mode (n passes) and reverse mode (m passes).
import { COLORS, fmt } from '../format.js';
import { layout, react } from './common.js';

export class ModesView {
  constructor(el) { this.el = el; }

  render(result) {
    if (!result) return;
    const modes = ['forward (JVPs)', 'reverse (VJPs)'];
    const ms = [result.forward_seconds * 1e3, result.reverse_seconds * 1e3];
    const passes = [result.forward_passes, result.reverse_passes];
    react(this.el, [{ x: modes, y: ms, type: 'bar', name: 'measured ms',
      marker: { color: [COLORS.sky, COLORS.orange] },
      text: passes.map((p, i) => `${p} passes, ${fmt(ms[i])} ms`), textposition: 'auto',
      hovertemplate: '%{x}: %{text}<extra></extra>' }],
    layout({
      showlegend: false,
      yaxis: { title: { text: 'time for the full Jacobian (ms)' } },
      xaxis: { title: { text: `n = ${result.n_inputs} inputs, m = ${result.n_outputs} outputs: `
        + `time ratio ${fmt(result.measured_ratio)} (predicted n/m = ${fmt(result.predicted_ratio)})` } },
    }));
  }
}
