// Memory and compute: GET /api/memory for the Lab's network. Peak bytes saved for the
// backward pass against depth (log-log) per checkpointing strategy, on the tape's
// meter (solid), torch autograd's (dashed) and JAX's (dotted: the residuals jax.vjp
// keeps), the fitted slopes, this network's point; a table of slopes and
// recomputation; microbatches (same gradient, less memory). Fetches only while
// shown, in its own request: it does not wait for the compiled view.
import { COLORS, duration, fmt, num, plottable } from '../../format.js';
import { layout, react } from '../../views/common.js';
import { logTicks } from '../../views/loss.js';
import { cell, configQuery, measuredView } from './measured.js';

const SKIP = new Set(['record']);
const STRATEGIES = [
  ['none', 'no checkpointing', COLORS.vermillion],
  ['sqrt', '√L segments', COLORS.blue],
  ['every', 'a segment every k layers', COLORS.green],
];

// the meters besides the tape's: key in the report, label, line dash, marker
const METERS = [
  ['torch', 'torch', 'dash', 'square-open'],
  ['jax', 'JAX', 'dot', 'diamond-open'],
];

export function memoryQuery(config) {
  return configQuery(config, SKIP);
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
    for (const [key, meter, dash, symbol] of METERS) {
      if (!s[key]) continue;
      data.push({ x: report.depths, y: s[key].peak_bytes.map(plottable), mode: 'lines+markers',
        name: `${label(name, report)} (${meter}): slope ${fmt(s[key].slope)}`,
        line: { color, width: 2, dash }, marker: { size: 5, symbol },
        hovertemplate: `${name}, ${meter}: depth %{x}, %{y:.3s}B<extra></extra>` });
    }
  }
  // this network's own point on each meter: a filled star on the tape's, an open star
  // on the others' (torch, JAX), as their curves' markers are open
  const c = report.current;
  for (const [key, meter, symbol] of [['', 'tape', 'star'], ['torch_', 'torch', 'star-square-open'],
    ['jax_', 'JAX', 'star-diamond-open']]) {
    const peak = c[`${key}peak_bytes`];
    if (peak == null) continue;
    data.push({ x: [c.depth], y: [plottable(peak)], mode: 'markers',
      name: `this network (${meter})`, marker: { symbol, size: 14, color: COLORS.black },
      hovertemplate: `this network, ${meter}: depth %{x}, ${c.strategy}, %{y:.3s}B<extra></extra>` });
  }
  react(plot, data, layout({ margin: { l: 72, r: 16, t: 8, b: 48 },
    legend: { orientation: 'v', x: 1.02, y: 1 },
    xaxis: { type: 'log', title: { text: 'depth L (hidden layers, log scale)' },
      ...logTicks(data.flatMap((t) => t.x || [])) },
    yaxis: { type: 'log', title: { text: 'peak bytes saved for backward (log)' },
      exponentformat: 'SI' } }));
}

function renderStrategies(table, report) {
  table.replaceChildren();
  const meters = METERS.filter(([key]) => report.engines.includes(key));
  const head = document.createElement('tr');
  const deepest = report.depths[report.depths.length - 1];
  for (const t of ['strategy', 'slope (tape)', ...meters.map(([, m]) => `slope (${m})`),
    `peak at L = ${deepest}`, ...meters.map(([, m]) => `peak (${m})`),
    `recomputed forward at L = ${deepest}`, ...meters.map(([, m]) => `recomputed (${m})`),
    `step time at L = ${deepest}`]) {
    head.append(cell('th', t));
  }
  table.append(head);
  const last = report.depths.length - 1;
  for (const [name] of STRATEGIES) {
    const s = report.strategies[name];
    const tr = document.createElement('tr');
    tr.dataset.strategy = name;
    tr.append(cell('th', label(name, report)));
    const cells = [['slope', fmt(s.slope)]];
    for (const [key] of meters) cells.push([`${key}-slope`, s[key] ? fmt(s[key].slope) : '—']);
    cells.push(['peak', bytes(s.peak_bytes[last])]);
    for (const [key] of meters) {
      cells.push([`${key}-peak`, s[key] ? bytes(s[key].peak_bytes[last]) : '—']);
    }
    cells.push(['extra', `${fmt(s.extra_forward[last])} × a forward pass`]);
    for (const [key] of meters) {
      cells.push([`${key}-extra`, s[key] ? `${fmt(s[key].extra_forward[last])} ×` : '—']);
    }
    cells.push(['time', duration(s.time_s[last])]);
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
  const meters = METERS.filter(([key]) => report.engines.includes(key));
  const head = document.createElement('tr');
  for (const t of ['microbatches k', 'peak saved (tape)', 'gradient vs full batch (tape)',
    ...meters.flatMap(([, m]) => [`peak saved (${m})`, `gradient vs full batch (${m})`])]) {
    head.append(cell('th', t));
  }
  table.append(head);
  for (const row of report.microbatches) {
    const tr = document.createElement('tr');
    tr.dataset.k = row.k;
    tr.append(cell('th', String(row.k)));
    const cells = [['peak', bytes(row.peak_bytes)], ['diff', fmt(row.max_rel_diff)]];
    for (const [key] of meters) {
      cells.push([`${key}-peak`, bytes(row[`${key}_peak_bytes`])],
        [`${key}-diff`, fmt(row[`${key}_max_rel_diff`])]);
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
    + 'activations alive at once.' + why(report);
}

// why the meters and the fixed segment length differ: the numbers are the report's
function why(report) {
  const s = report.strategies;
  const last = report.depths.length - 1;
  let text = ` With a segment every ${report.every} layers the bytes grow as `
    + `L^${fmt(s.every.slope, 2)} here: L/${report.every} segment boundaries plus one `
    + `segment's ${report.every} layers, linear in L only once L is many times `
    + `${report.every}, so over these depths the fixed segment flattens the fit.`;
  if (s.none.torch) {
    const ratio = num(s.none.torch.peak_bytes[last]) / num(s.none.peak_bytes[last]);
    text += ` torch keeps ${fmt(ratio, 2)} × the tape's bytes without checkpointing: its `
      + 'autograd saves what each backward formula reads (a layer\'s input, which is the '
      + 'previous layer\'s output, saved once), where the tape keeps every node\'s output '
      + '(both z and φ(z)).';
  }
  return text;
}

function meters(report) {
  const names = [];
  if (report.engines.includes('torch')) names.push(`torch (${report.torch_meter})`);
  if (report.engines.includes('jax')) names.push(`JAX (${report.jax_meter})`);
  return names.length ? `tape meter and ${names.join(' and ')}` : 'tape meter';
}

export function mountMemory(article, host) {
  const status = cell('p', '', 'memory-status');
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
  article.append(status, plot, strategies, micro, summary, capped);
  return measuredView(article, host, {
    path: '/api/memory',
    query: memoryQuery,
    waiting: 'measuring the backward pass at each depth on every meter… (seconds; '
      + 'on its own, not after the compiled view)',
    status,
    render(got) {
      capped.textContent = got.capped || '';
      renderStrategies(strategies, got);
      renderMicro(micro, got);
      summary.textContent = sentence(got);
      return `measured at width ${got.width}, batch ${got.batch_size}, ${got.dtype}; `
        + meters(got);
    },
    draw: (got) => renderPlot(plot, got),
  });
}
