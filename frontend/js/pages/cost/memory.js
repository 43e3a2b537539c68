// Memory and compute: GET /api/memory for the Lab's network. Peak bytes saved for the
// backward pass against depth (log-log) per checkpointing strategy, on the tape's
// meter (solid) and torch autograd's (dashed), the fitted slopes, this network's
// point; a table of slopes and recomputation; microbatches (same gradient, less
// memory). Fetches only while shown.
import { COLORS, duration, fmt, num, plottable } from '../../format.js';
import { layout, react } from '../../views/common.js';

const SKIP = new Set(['record']);
const STRATEGIES = [
  ['none', 'no checkpointing', COLORS.vermillion],
  ['sqrt', '√L segments', COLORS.blue],
  ['every', 'a segment every k layers', COLORS.green],
];

export function memoryQuery(config) {
  const out = {};
  for (const [k, v] of Object.entries(config || {})) {
    if (!SKIP.has(k) && v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

function cell(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

export function bytes(n) {
  const x = num(n);
  if (!Number.isFinite(x)) return fmt(x);
  for (const [unit, size] of [['GB', 1e9], ['MB', 1e6], ['kB', 1e3]]) {
    if (Math.abs(x) >= size) return `${fmt(x / size)} ${unit}`;
  }
  return `${x} bytes`;
}

function label(name, report) {
  return name === 'every' ? `a segment every ${report.every} layers`
    : STRATEGIES.find((s) => s[0] === name)[1];
}

function renderPlot(plot, report) {
  const data = [];
  for (const [name, , color] of STRATEGIES) {
    const s = report.strategies[name];
    data.push({ x: report.depths, y: s.peak_bytes.map(plottable), mode: 'lines+markers',
      name: `${label(name, report)} (tape): slope ${fmt(s.slope)}`,
      line: { color, width: 2 }, marker: { size: 5 },
      hovertemplate: `${name}, tape: depth %{x}, %{y:.3s}B<extra></extra>` });
    if (s.torch) {
      data.push({ x: report.depths, y: s.torch.peak_bytes.map(plottable), mode: 'lines+markers',
        name: `${label(name, report)} (torch): slope ${fmt(s.torch.slope)}`,
        line: { color, width: 2, dash: 'dash' }, marker: { size: 5, symbol: 'square-open' },
        hovertemplate: `${name}, torch: depth %{x}, %{y:.3s}B<extra></extra>` });
    }
  }
  const c = report.current;
  data.push({ x: [c.depth], y: [c.peak_bytes], mode: 'markers', name: 'this network (tape)',
    marker: { symbol: 'star', size: 14, color: COLORS.black },
    hovertemplate: `this network: depth %{x}, ${c.strategy}, %{y:.3s}B<extra></extra>` });
  react(plot, data, layout({ margin: { l: 72, r: 16, t: 8, b: 48 },
    legend: { orientation: 'v', x: 1.02, y: 1 },
    xaxis: { type: 'log', title: { text: 'depth L (hidden layers, log scale)' } },
    yaxis: { type: 'log', title: { text: 'peak bytes saved for backward (log)' },
      exponentformat: 'SI' } }));
}

function renderStrategies(table, report) {
  table.replaceChildren();
  const torch = report.engines.includes('torch');
  const head = document.createElement('tr');
  const deepest = report.depths[report.depths.length - 1];
  for (const t of ['strategy', 'slope (tape)', torch ? 'slope (torch)' : null,
    `peak at L = ${deepest}`, `recomputed forward at L = ${deepest}`,
    `step time at L = ${deepest}`]) {
    if (t) head.append(cell('th', t));
  }
  table.append(head);
  const last = report.depths.length - 1;
  for (const [name] of STRATEGIES) {
    const s = report.strategies[name];
    const tr = document.createElement('tr');
    tr.dataset.strategy = name;
    tr.append(cell('th', label(name, report)));
    const cells = [['slope', fmt(s.slope)]];
    if (torch) cells.push(['torch-slope', s.torch ? fmt(s.torch.slope) : '—']);
    cells.push(['peak', bytes(s.peak_bytes[last])],
      ['extra', `${fmt(s.extra_forward[last])} × a forward pass`],
      ['time', duration(s.time_s[last])]);
    for (const [key, text] of cells) {
      const td = cell('td', text, 'num');
      td.dataset.key = key;
      tr.append(td);
    }
    table.append(tr);
  }
}

function renderMicro(table, report) {
  table.replaceChildren();
  const torch = report.engines.includes('torch');
  const head = document.createElement('tr');
  for (const t of ['microbatches k', 'peak saved (tape)', 'gradient vs full batch (tape)',
    torch ? 'peak saved (torch)' : null, torch ? 'gradient vs full batch (torch)' : null]) {
    if (t) head.append(cell('th', t));
  }
  table.append(head);
  for (const row of report.microbatches) {
    const tr = document.createElement('tr');
    tr.dataset.k = row.k;
    tr.append(cell('th', String(row.k)));
    const cells = [['peak', bytes(row.peak_bytes)], ['diff', fmt(row.max_rel_diff)]];
    if (torch) {
      cells.push(['torch-peak', bytes(row.torch_peak_bytes)],
        ['torch-diff', fmt(row.torch_max_rel_diff)]);
    }
    for (const [key, text] of cells) {
      const td = cell('td', text, 'num');
      td.dataset.key = key;
      tr.append(td);
    }
    table.append(tr);
  }
}

function sentence(report) {
  const s = report.strategies;
  const last = report.depths.length - 1;
  const worst = Math.max(...report.microbatches.map((r) => num(r.max_rel_diff)));
  return `Saved activations grow as L^${fmt(s.none.slope, 2)} without checkpointing and as `
    + `L^${fmt(s.sqrt.slope, 2)} with √L segments, which recompute `
    + `${fmt(s.sqrt.extra_forward[last], 2)} of a forward pass; k microbatches give the `
    + `full-batch gradient (largest relative difference ${fmt(worst, 2)}) with 1/k of the `
    + 'activations alive at once.';
}

export function mountMemory(article, host) {
  const status = cell('p', '', 'memory-status');
  status.setAttribute('role', 'status');
  status.setAttribute('aria-live', 'polite');
  const plot = document.createElement('div');
  plot.className = 'plot cost-plot memory-plot';
  plot.id = 'plot-memory';
  const strategies = document.createElement('table');
  strategies.className = 'cost-table';
  strategies.id = 'memory-strategies';
  strategies.setAttribute('aria-label', 'Checkpointing strategies measured');
  const micro = document.createElement('table');
  micro.className = 'cost-table';
  micro.id = 'memory-microbatches';
  micro.setAttribute('aria-label', 'Microbatches: memory and gradient');
  const summary = cell('p', '', 'memory-summary');
  summary.id = 'memory-summary';
  const capped = cell('p', '', 'memory-status');
  const button = cell('button', 'Measure again');
  button.type = 'button';
  article.append(status, plot, strategies, micro, summary, capped, button);
  let visible = false;
  let shownKey = null;
  let pending = null;
  let report = null;

  async function measure(force = false) {
    const params = memoryQuery(host.state.config);
    const key = JSON.stringify(params);
    if (!force && key === shownKey) return;
    shownKey = key;
    pending = key;
    status.classList.remove('error');
    status.textContent = 'measuring the backward pass at each depth… (a few seconds)';
    article.setAttribute('aria-busy', 'true');
    try {
      const got = await host.transport.get('/api/memory', params);
      if (pending !== key) return;
      report = got;
      article.dataset.ready = 'true';
      status.textContent = `measured at width ${got.width}, batch ${got.batch_size}, `
        + `${got.dtype}; tape meter${got.engines.includes('torch')
          ? ` and torch (${got.torch_meter})` : ''}`;
      capped.textContent = got.capped || '';
      renderStrategies(strategies, got);
      renderMicro(micro, got);
      summary.textContent = sentence(got);
      if (visible) renderPlot(plot, got);
    } catch (e) {
      if (pending !== key) return;
      shownKey = null;
      status.textContent = `could not measure this network: ${e.message}`;
      status.classList.add('error');
    } finally {
      if (pending === key) article.removeAttribute('aria-busy');
    }
  }

  button.addEventListener('click', () => measure(true));
  return {
    show() {
      visible = true;
      if (report) renderPlot(plot, report);
      measure();
    },
    hide() { visible = false; },
  };
}
