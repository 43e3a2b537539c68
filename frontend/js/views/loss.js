// View 4: loss (log scale) and accuracy over steps.
import { COLORS, plottable } from '../format.js';
import { layout, react, throttled } from './common.js';

export class LossView {
  constructor(el) {
    this.el = el;
    this.draw = throttled((steps) => this._draw(steps), 100);
  }

  render(state) { if (state.steps.length) this.draw(state.steps); }

  _draw(steps) {
    const x = steps.map((s) => s.step);
    const data = [{ x, y: steps.map((s) => plottable(s.loss)), name: 'loss', mode: 'lines',
      connectgaps: false, line: { color: COLORS.blue } }];
    if (steps.some((s) => s.accuracy != null)) {
      data.push({ x, y: steps.map((s) => plottable(s.accuracy)), name: 'accuracy', yaxis: 'y2',
        mode: 'lines', line: { color: COLORS.green, dash: 'dot' } });
    }
    react(this.el, data, layout({
      xaxis: { title: { text: 'step' } },
      yaxis: { type: 'log', title: { text: 'loss' }, exponentformat: 'power' },
      yaxis2: { overlaying: 'y', side: 'right', range: [0, 1], title: { text: 'accuracy' } },
    }));
  }
}
