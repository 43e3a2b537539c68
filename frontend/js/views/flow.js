// View 1: ‖δ(l)‖ and ‖∇W(l)‖ against layer (log scale), theory overlaid.
import { COLORS, num, plottable } from '../format.js';
import { layout, react } from './common.js';

export class FlowView {
  constructor(el) { this.el = el; }

  render(state, step) {
    if (!step) return;
    const layers = step.layers;
    const x = layers.map((l) => l.index);
    const delta = layers.map((l) => plottable(l.delta_norm));
    const withW = layers.filter((l) => l.grad_w_norm != null); // all but weightless modules
    const gradW = withW.map((l) => plottable(l.grad_w_norm));
    const finite = delta.concat(gradW).filter((v) => v != null && v > 0);
    const top = finite.length ? Math.max(...finite) : 1;
    // null: a value the layer does not have (a watched module without weights)
    const bad = layers.filter((l) => [l.delta_norm, l.grad_w_norm]
      .some((v) => v != null && !Number.isFinite(num(v))));
    const names = layers.some((l) => l.name) ? layers.map((l) => l.name ?? String(l.index))
      : null; // a watched model's layers are named modules
    const data = [
      { x, y: delta, text: names, name: '‖δ(l)‖ measured', mode: 'lines+markers', connectgaps: false,
        line: { color: COLORS.blue, width: 2 }, marker: { size: 4 } },
      { x: withW.map((l) => l.index), y: gradW, text: names && withW.map((l) => l.name),
        name: '‖∇W(l)‖ measured', mode: 'lines+markers', connectgaps: false,
        line: { color: COLORS.orange, width: 2 }, marker: { size: 4, symbol: 'square' } },
    ];
    const theory = state.theory;
    const hidden = layers.filter((l) => l.kind !== 'output');
    if (theory && theory.delta_norm2_profile && hidden.length === theory.delta_norm2_profile.length) {
      const anchor = num(hidden[hidden.length - 1].delta_norm);
      if (Number.isFinite(anchor) && anchor > 0) {
        data.push({ x: hidden.map((l) => l.index),
          y: theory.delta_norm2_profile.map((p) => plottable(Math.sqrt(num(p)) * anchor)),
          name: '‖δ(l)‖ mean-field theory', mode: 'lines', connectgaps: false,
          line: { color: COLORS.blue, dash: 'dash', width: 2 } });
      }
    }
    if (bad.length) {
      data.push({ x: bad.map((l) => l.index), y: bad.map(() => top * 10),
        name: 'overflow (NaN/∞)', mode: 'markers', hovertemplate: 'layer %{x}: not finite<extra></extra>',
        marker: { color: COLORS.vermillion, symbol: 'x', size: 10 } });
    }
    react(this.el, data, layout({
      xaxis: names ? { title: { text: 'module (forward order)' }, zeroline: false, tickvals: x,
        ticktext: names, tickangle: -45, automargin: true }
        : { title: { text: 'layer (input side → output)' }, zeroline: false },
      yaxis: { type: 'log', title: { text: 'norm' }, exponentformat: 'power' },
    }));
  }
}
