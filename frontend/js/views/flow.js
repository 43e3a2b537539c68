// View 1: ‖δ(l)‖ and ‖∇W(l)‖ against layer (log scale), theory overlaid.
import { COLORS, fmt, num, plottable } from '../format.js';
import { layout, react } from './common.js';
import { logTicks } from './loss.js';

/** e^{σ/2}, σ² = 5 k / n: one sd of ln ‖δ‖ after k layers of width n (ReLU). */
export function reluBand(k, n) { return Math.exp(0.5 * Math.sqrt((5 * k) / n)); }

// what the seed ensemble does not depend on (the training, the engine): a change of these
// keeps the band on screen
const NOT_AT_INIT = ['lr', 'steps', 'optimizer', 'clip', 'microbatches', 'checkpoint',
  'checkpoint_every', 'engine', 'device'];

/** GET /api/theory/spread's query for a Lab config: its fields but the nested record. */
export function spreadQuery(config) {
  return Object.fromEntries(Object.entries(config)
    .filter(([k, v]) => k !== 'record' && v !== null && v !== undefined));
}

/** Which ensemble a config needs: two configs with the same key share one band. */
export function spreadKey(config) {
  return JSON.stringify(Object.entries(spreadQuery(config))
    .filter(([k]) => !NOT_AT_INIT.includes(k)));
}

/** The seed ensemble's band (GET /api/theory/spread): the 10th and 90th percentiles over
 *  the networks of ‖δ(l)‖/‖δ(L)‖ at initialization, drawn through the measured ‖δ(L)‖
 *  (L the last hidden layer, where the mean-field line is anchored too). */
export function seedBand(spread, anchor) {
  const r = spread.ln_ratio_to_last;
  return { top: r.q90.map((v) => plottable(anchor * Math.exp(num(v)))),
    bottom: r.q10.map((v) => plottable(anchor * Math.exp(num(v)))),
    median: r.q50.map((v) => plottable(anchor * Math.exp(num(v)))) };
}

function seedTraces(spread, xs, anchor) {
  const band = seedBand(spread, anchor);
  const n = spread.seeds.length;
  const custom = band.top.map((_, i) => [fmt(band.bottom[i]),
    fmt(band.median[i]), fmt(band.top[i])]);
  return [
    { x: xs, y: band.top, mode: 'lines', line: { width: 0, color: COLORS.green },
      hoverinfo: 'skip', showlegend: false, name: 'seed spread top' },
    { x: xs, y: band.bottom, mode: 'lines', line: { width: 0, color: COLORS.green },
      fill: 'tonexty', fillcolor: 'rgba(0,158,115,0.16)', customdata: custom,
      name: `spread of ${n} seeds at init (10–90%)`,
      hovertemplate: `layer %{x}: ${n} seeds at init, 10% %{customdata[0]}, median `
        + '%{customdata[1]}, 90% %{customdata[2]}<extra></extra>' },
  ];
}

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
    // global-norm clipping scales every gradient by one factor: the norms before and after
    const factor = num(step.clip_factor);
    const clipped = Number.isFinite(factor) && factor < 1;
    if (clipped) {
      data.push({ x, y: layers.map((l) => plottable(num(l.grad_w_norm) * factor)),
        name: `‖∇W(l)‖ after clipping (× ${fmt(factor)})`, mode: 'lines+markers',
        connectgaps: false, line: { color: COLORS.orange, width: 2, dash: 'dot' },
        marker: { size: 4, symbol: 'square-open' } });
    }
    // per-example ‖∇W_i(l)‖: median with the quartiles (bars) and the extremes (hover)
    const perExample = layers.filter((l) => l.per_example);
    if (perExample.length) {
      const pe = perExample.map((l) => l.per_example);
      data.push({ x: perExample.map((l) => l.index), y: pe.map((p) => plottable(p.median)),
        name: 'per-example ‖∇W_i(l)‖ (median, quartiles)', mode: 'markers',
        marker: { color: COLORS.purple, size: 6, symbol: 'diamond' },
        error_y: { type: 'data', symmetric: false, color: COLORS.purple,
          array: pe.map((p) => num(p.q75) - num(p.median)),
          arrayminus: pe.map((p) => num(p.median) - num(p.q25)) },
        customdata: pe.map((p) => [fmt(p.min), fmt(p.max), fmt(p.mean_error)]),
        hovertemplate: 'layer %{x}: median %{y:.3g}, min %{customdata[0]}, max '
          + '%{customdata[1]}; mean vs batch ∇W: %{customdata[2]}<extra></extra>' });
    }
    const notes = [];
    if (perExample.length) {
      const worst = Math.max(...perExample.map((l) => num(l.per_example.mean_error)));
      notes.push(`mean of per-example ∇W = batch ∇W (max rel. diff ${fmt(worst)})`);
    }
    if (step.grad_norm != null) {
      const clipping = state.config && state.config.clip != null;
      notes.push(clipping ? `global ‖g‖ before clipping ${fmt(step.grad_norm)}`
        + (step.clip_factor != null ? `, clip factor ${fmt(step.clip_factor)}` : '')
        : `global ‖g‖ = ${fmt(step.grad_norm)} (no clipping)`);
    }
    const deltaClip = state.config && state.config.delta_clip;
    if (deltaClip) notes.push(`δ(l) capped at ±${fmt(deltaClip)} per element`);
    const theory = state.theory;
    const hidden = layers.filter((l) => l.kind !== 'output');
    // the spread a finite width makes expected, measured: an ensemble of seeds of this
    // network at initialization (a measurement, so drawn with or without the theory)
    const spread = state.spread && state.config && state.spread.key === spreadKey(state.config)
      ? state.spread : null; // an answer for another network is not drawn
    const lastHidden = hidden.length ? num(hidden[hidden.length - 1].delta_norm) : NaN;
    // the error's first clause on the plot (the whole sentence is in the console)
    if (spread && spread.error) notes.push(`seed spread not shown: ${spread.error.split(/[:;]/)[0]}`);
    else if (spread && spread.layers && spread.layers.length === hidden.length
        && Number.isFinite(lastHidden) && lastHidden > 0) {
      data.push(...seedTraces(spread, hidden.map((l) => l.index), lastHidden));
    }
    if (theory && theory.delta_norm2_profile && hidden.length === theory.delta_norm2_profile.length) {
      const anchor = num(hidden[hidden.length - 1].delta_norm);
      if (Number.isFinite(anchor) && anchor > 0) {
        const line = theory.delta_norm2_profile.map((p) => Math.sqrt(num(p)) * anchor);
        const xs = hidden.map((l) => l.index);
        const act = state.config && state.config.activation;
        if (act === 'relu' || act === 'leaky_relu') {
          // the spread a finite width makes expected: Var ln‖δ‖² ≈ 5 Σ 1/n over the layers
          // between l and the last (Hanin & Nica 2019; theory/finite_width.py)
          const n = num(state.config.width);
          const band = xs.map((_, i) => reluBand(hidden.length - 1 - i, n));
          data.push({ x: xs, y: line.map((v, i) => plottable(v * band[i])), mode: 'lines',
            line: { width: 0 }, hoverinfo: 'skip', showlegend: false, name: 'spread top' });
          data.push({ x: xs, y: line.map((v, i) => plottable(v / band[i])), mode: 'lines',
            line: { width: 0 }, fill: 'tonexty', fillcolor: 'rgba(0,114,178,0.12)',
            name: 'finite-width law, one input (±1 sd, Hanin & Nica)', hoverinfo: 'skip' });
        }
        data.push({ x: xs, y: line.map(plottable),
          name: '‖δ(l)‖ mean-field theory (at init)', mode: 'lines', connectgaps: false,
          line: { color: COLORS.blue, dash: 'dash', width: 2 } });
      }
    }
    const drawn = data.flatMap((t) => t.y).filter((v) => v != null && v > 0);
    if (bad.length) {
      data.push({ x: bad.map((l) => l.index), y: bad.map(() => top * 10),
        name: 'overflow (NaN/∞)', mode: 'markers', hovertemplate: 'layer %{x}: not finite<extra></extra>',
        marker: { color: COLORS.vermillion, symbol: 'x', size: 10 } });
      notes.push(finite.length ? `× NaN/∞ in ${layerList(bad, names)}, drawn above the rest`
        : 'every norm of this step is NaN/∞ (× marks the layers; the axis has no values)');
    }
    // a norm of exactly 0 has no place on a log axis: say so rather than leave a gap
    const zero = layers.filter((l) => num(l.delta_norm) === 0);
    if (zero.length) notes.push(`‖δ(l)‖ = 0 in ${layerList(zero, names)} (not drawn: log axis)`);
    if (step.step > 0 && (theory || spread)) {
      notes.push(`theory and seed spread: at initialization; this is step ${step.step}`);
    }
    react(this.el, data, layout({
      // one note a line, in the lower right corner: clear of the legend above the plot
      annotations: notes.length ? [{ text: notes.join(';<br>'), xref: 'paper', yref: 'paper',
        x: 1, y: 0, xanchor: 'right', yanchor: 'bottom', align: 'right', showarrow: false,
        bgcolor: 'rgba(255,255,255,0.8)',
        font: { size: 11, color: clipped ? COLORS.vermillion : '#444' } }] : [],
      xaxis: names ? { title: { text: 'module (forward order)' }, zeroline: false, tickvals: x,
        ticktext: names, tickangle: -45, automargin: true }
        : { title: { text: 'layer (input side → output)' }, zeroline: false },
      // labelled with their values (Plotly's minor ticks read "3, 2": a norm of 3?)
      yaxis: { type: 'log', title: { text: 'norm', standoff: 8 }, automargin: true,
        ...(drawn.length ? logTicks(drawn) : { range: [0, 2], showticklabels: false }) },
    }));
  }
}

/** "layers 3–7, 9" (or module names): which layers a note is about, in few words. */
function layerList(layers, names) {
  if (names) {
    const shown = layers.slice(0, 3).map((l) => l.name ?? String(l.index));
    return (layers.length > 3 ? `${shown.join(', ')} and ${layers.length - 3} more` : shown.join(', '));
  }
  const runs = [];
  for (const l of layers) {
    const last = runs[runs.length - 1];
    if (last && l.index === last[1] + 1) last[1] = l.index;
    else runs.push([l.index, l.index]);
  }
  const text = runs.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`));
  return `${layers.length === 1 ? 'layer' : 'layers'} ${text.slice(0, 4).join(', ')}`
    + (text.length > 4 ? ', …' : '');
}
