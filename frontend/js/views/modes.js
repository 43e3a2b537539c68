// View 8: the full Jacobian by forward mode (n passes) and reverse mode (m passes).
import { COLORS, duration, fmt } from '../format.js';
import { layout, react } from './common.js';

export class ModesView {
  constructor(el) {
    this.el = el;
    // the caption is text beside the plot, not an axis title: it wraps instead of being cut
    this.caption = document.createElement('p');
    this.caption.className = 'note';
    this.caption.id = `${el.id}-caption`;
    el.after(this.caption);
  }

  render(result) {
    if (!result) return;
    const modes = ['forward (JVPs)', 'reverse (VJPs)'];
    const seconds = [result.forward_seconds, result.reverse_seconds];
    const passes = [result.forward_passes, result.reverse_passes];
    // the axis in the unit the slower bar reads in: ms below a second, s above
    const inSeconds = Math.max(...seconds) >= 1;
    const y = seconds.map((s) => (inSeconds ? s : s * 1e3));
    react(this.el, [{ x: modes, y, type: 'bar', name: 'measured time',
      marker: { color: [COLORS.sky, COLORS.orange] },
      text: passes.map((p, i) => `${p} passes, ${duration(seconds[i])}`), textposition: 'auto',
      hovertemplate: '%{x}: %{text}<extra></extra>' }],
    layout({
      showlegend: false,
      margin: { l: 56, r: 16, t: 8, b: 28 }, // no axis title below: the caption says it
      yaxis: { title: { text: `time for the full Jacobian (${inSeconds ? 's' : 'ms'})` } },
    }));
    this.caption.textContent = `n = ${result.n_inputs} inputs, m = ${result.n_outputs} outputs: `
      + `forward mode needs n passes, reverse mode m. Measured time ratio `
      + `${fmt(result.measured_ratio)}, predicted n/m = ${fmt(result.predicted_ratio)}.`;
  }
}
