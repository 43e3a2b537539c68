// Runs compared: the config side by side (differing fields first, marked), gradient-flow
// profiles at the last step and loss curves overlaid (or one plot per run, drawn by the
// Lab's own views), and a ‖δ(l)‖ heatmap per run.
import { fmt, num, plottable } from '../../format.js';
import { layout, react, wholeAxis } from '../../views/common.js';
import { FlowView } from '../../views/flow.js';
import { HeatmapView } from '../../views/heatmap.js';
import { LossView, logTicks } from '../../views/loss.js';
import { RUN_COLORS, h, runLabel } from './dom.js';

/** A config value exactly as stored (0.01 stays 0.01); null as a dash. */
function show(v) {
  return v === null || v === undefined ? '—' : String(v);
}

/** A stored run's series as the Lab views' steps: {step, loss, accuracy, layers}. */
function asSteps(series) {
  return series.step.map((step, i) => ({ step, loss: series.loss[i],
    accuracy: series.accuracy[i],
    layers: series.delta_norm[i].map((d, index) => ({ index, delta_norm: d })) }));
}

function lastAsStep(last) {
  return { step: last.step, layers: last.index.map((index, i) => ({ index, kind: last.kind[i],
    delta_norm: last.delta_norm[i], grad_w_norm: last.grad_w_norm[i] })) };
}

export class CompareView {
  constructor(root, host, { onClose }) {
    this.host = host;
    this.mode = 'overlaid';
    this.title = h('h2', { id: 'compare-title', tabindex: '-1' });
    this.modeButtons = ['overlaid', 'side by side'].map((m) => h('button', {
      type: 'button', 'data-mode': m, 'aria-pressed': String(m === this.mode),
      onclick: () => { this.mode = m; this.render(); } }, m));
    this.report = h('button', { id: 'compare-report', type: 'button',
      onclick: () => this.downloadReport() }, 'HTML report');
    this.table = h('table', { class: 'compare-config hide-same', id: 'compare-config' });
    this.sameToggle = h('button', { type: 'button', id: 'compare-same', 'aria-pressed': 'false',
      onclick: () => {
        const hidden = this.table.classList.toggle('hide-same');
        this.sameToggle.setAttribute('aria-pressed', String(!hidden));
        this.sameToggle.textContent = this.sameLabel(hidden);
      } });
    this.flow = h('div', { class: 'compare-plots', id: 'compare-flow' });
    this.loss = h('div', { class: 'compare-plots', id: 'compare-loss' });
    this.heatmaps = h('div', { class: 'compare-plots side', id: 'compare-heatmaps' });
    this.root = h('section', { class: 'compare', id: 'runs-compare-view', hidden: true },
      h('div', { class: 'runs-bar' }, this.title,
        h('div', { role: 'group', 'aria-label': 'Curves' }, this.modeButtons),
        this.report, h('button', { type: 'button', onclick: onClose }, 'Close')),
      h('div', { class: 'runs-bar' }, h('h3', { text: 'Config' }), this.sameToggle), this.table,
      h('h3', {}, 'Gradient flow at the last step ', h('small', { text: '‖δ(l)‖ per layer' })),
      this.flow,
      h('h3', { text: 'Loss' }), this.loss,
      h('h3', {}, 'Flow over time ', h('small', { text: 'log₁₀ ‖δ(l)‖, layer × step' })),
      this.heatmaps);
    root.append(this.root);
    this.data = null;
  }

  hide() { this.root.hidden = true; this.ids = null; }

  async load(ids) {
    this.ids = ids;
    this.root.hidden = false;
    this.title.textContent = `Comparing ${ids.length} runs…`;
    try {
      const data = await this.host.transport.get('/api/runs/compare', { ids: ids.join(',') });
      if (this.ids !== ids) return; // another comparison was asked for meanwhile
      this.data = data;
      this.render();
    } catch (e) {
      this.title.textContent = `Could not compare: ${e.message}`;
      this.data = null;
      for (const el of [this.table, this.flow, this.loss, this.heatmaps]) el.replaceChildren();
    }
  }

  render() {
    const data = this.data;
    if (!data || this.root.hidden) return;
    for (const b of this.modeButtons) b.setAttribute('aria-pressed', String(b.dataset.mode === this.mode));
    const differing = data.fields.filter((f) => f.differs).length;
    this.title.textContent = `Comparing ${data.runs.length} runs — ${differing} config `
      + `field${differing === 1 ? '' : 's'} differ${differing === 1 ? 's' : ''}`;
    this.renderTable(data);
    if (this.mode === 'overlaid') this.overlaid(data); else this.sideBySide(data);
    this.heatmaps.replaceChildren();
    data.runs.forEach((run) => {
      const el = h('div', { class: 'plot', 'data-run': run.id });
      this.heatmaps.append(h('figure', {}, h('figcaption', { text: runLabel(run) }), el));
      new HeatmapView(el).render({ steps: asSteps(run.series) });
    });
  }

  sameLabel(hidden) {
    const same = this.data ? this.data.fields.filter((f) => !f.differs).length : 0;
    return hidden ? `show the ${same} fields that are the same` : 'hide the fields that are the same';
  }

  renderTable(data) {
    this.sameToggle.textContent = this.sameLabel(this.table.classList.contains('hide-same'));
    const head = h('tr', {}, h('th', { scope: 'col', text: 'field' }),
      data.runs.map((run, i) => h('th', { scope: 'col', class: `run-${i}` },
        h('span', { class: 'swatch', 'data-color': i }), runLabel(run))));
    const rows = data.fields.map((f) => h('tr', { class: f.differs ? 'differs' : 'same',
      'data-field': f.field },
    h('th', { scope: 'row' }, f.field, f.differs ? h('span', { class: 'differs-mark',
      text: ' ≠' }) : null),
    f.values.map((v) => h('td', { text: show(v) }))));
    const figures = [['steps', (r) => String(r.steps)], ['status', (r) => r.status],
      ['final loss', (r) => (r.summary.final_loss === undefined ? '—'
        : fmt(r.summary.final_loss, 4))],
      ['first NaN/∞', (r) => (r.summary.first_nonfinite
        ? `step ${r.summary.first_nonfinite.step}, layer ${r.summary.first_nonfinite.layer}` : '—')]]
      .map(([label, get]) => h('tr', { class: 'figure' }, h('th', { scope: 'row', text: label }),
        data.runs.map((r) => h('td', { text: get(r) }))));
    this.table.replaceChildren(h('thead', {}, head), h('tbody', {}, figures, rows));
    // the swatches take the run's colour (CSSOM: allowed by the page's CSP)
    this.table.querySelectorAll('.swatch').forEach((el) => {
      el.style.background = RUN_COLORS[Number(el.dataset.color) % RUN_COLORS.length];
    });
  }

  overlaid(data) {
    const flow = h('div', { class: 'plot wide', id: 'compare-flow-plot' });
    const loss = h('div', { class: 'plot wide', id: 'compare-loss-plot' });
    this.flow.classList.remove('side');
    this.loss.classList.remove('side');
    this.flow.replaceChildren(flow);
    this.loss.replaceChildren(loss);
    const flowTraces = [];
    data.runs.forEach((run, i) => {
      if (!run.last) return;
      const color = RUN_COLORS[i % RUN_COLORS.length];
      flowTraces.push({ x: run.last.index, y: run.last.delta_norm.map(plottable),
        name: `${runLabel(run)} ‖δ(l)‖ (step ${run.last.step})`, mode: 'lines+markers',
        connectgaps: false, line: { color, width: 2 }, marker: { size: 4 } });
      const bad = run.last.index.filter((_, j) => !Number.isFinite(num(run.last.delta_norm[j])));
      if (bad.length) {
        flowTraces.push({ x: bad, y: bad.map(() => 1), name: `${runLabel(run)} NaN/∞`,
          mode: 'markers', marker: { color, symbol: 'x', size: 10 },
          hovertemplate: 'layer %{x}: not finite<extra></extra>' });
      }
    });
    react(flow, flowTraces, layout({
      xaxis: { title: { text: 'layer (input side → output)' }, zeroline: false,
        ...wholeAxis(flowTraces.flatMap((t) => t.x)) },
      yaxis: { type: 'log', title: { text: '‖δ(l)‖' },
        ...logTicks(flowTraces.filter((t) => t.mode !== 'markers').flatMap((t) => t.y)) } }));
    const lossTraces = data.runs.map((run, i) => ({ x: run.series.step,
      y: run.series.loss.map(plottable), name: runLabel(run), mode: 'lines',
      connectgaps: false, line: { color: RUN_COLORS[i % RUN_COLORS.length] } }));
    react(loss, lossTraces, layout({
      xaxis: { title: { text: 'step' }, ...wholeAxis(lossTraces.flatMap((t) => t.x)) },
      // ticks labelled with their values (Plotly's minor ticks read "5, 2": a loss of 5?)
      yaxis: { type: 'log', title: { text: 'loss' }, ...logTicks(lossTraces.flatMap((t) => t.y)) },
    }));
  }

  sideBySide(data) {
    this.flow.replaceChildren();
    this.loss.replaceChildren();
    this.flow.classList.add('side'); // laid out before drawing: each plot takes its cell
    this.loss.classList.add('side');
    for (const run of data.runs) {
      const flow = h('div', { class: 'plot', 'data-run': run.id });
      const loss = h('div', { class: 'plot', 'data-run': run.id });
      this.flow.append(h('figure', {}, h('figcaption', { text: runLabel(run) }), flow));
      this.loss.append(h('figure', {}, h('figcaption', { text: runLabel(run) }), loss));
      if (run.last) new FlowView(flow).render({ theory: null }, lastAsStep(run.last));
      new LossView(loss).render({ steps: asSteps(run.series) });
    }
  }

  async downloadReport() {
    if (!this.ids) return;
    try {
      await this.host.transport.download(
        `/api/runs/compare/report?ids=${encodeURIComponent(this.ids.join(','))}`, undefined,
        'backproplab-compare.html');
    } catch (e) {
      this.host.status(e.message);
    }
  }
}
