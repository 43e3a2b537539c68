// Compiled vs eager: GET /api/compile for the Lab's current network; a table of what
// XLA did (jaxpr equations, HLO before/after, fusions, bytes), step times as bars,
// and the server's one sentence on the backward pass. Fetches only while shown.
import { duration, fmt } from '../../format.js';
import { layout, react } from '../../views/common.js';
import { logTicks } from '../../views/loss.js';
import { cell, configQuery, measuredView } from './measured.js';

// the config fields that describe the network and its step (engine and device: the
// analysis always runs the JAX engine on the CPU)
const SKIP = new Set(['engine', 'device', 'record']);

const ROWS = [
  ['jaxpr_equations', 'jaxpr equations'],
  ['equations_executed', 'operations run op by op'],
  ['hlo_before', 'HLO instructions before optimization'],
  ['hlo_after', 'HLO operations after optimization'],
  ['fusions', 'fusions'],
  ['bytes_before', 'MB accessed before (cost model)', 1e-6],
  ['bytes_after', 'MB accessed after (cost model)', 1e-6],
  ['compile_s', 'compile time (s)'],
];

export function query(config) {
  return configQuery(config, SKIP);
}

function renderTable(table, report) {
  table.replaceChildren();
  const head = document.createElement('tr');
  head.append(cell('th', ''), cell('th', 'forward'), cell('th', 'training step'));
  table.append(head);
  for (const [key, label, scale] of ROWS) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    tr.append(cell('th', label));
    for (const part of ['forward', 'step']) {
      const v = report[part][key] * (scale || 1);
      tr.append(cell('td', Number.isInteger(v) ? String(v) : fmt(v), 'num'));
    }
    table.append(tr);
  }
}

function renderTimes(plot, report) {
  const bars = [['jitted (XLA)', report.jit_ms], ['op by op', report.op_by_op_ms],
    ['PyTorch eager', report.torch_ms]].filter(([, v]) => v != null);
  const longest = Math.max(...bars.map((b) => b[1]));
  react(plot, [{
    type: 'bar', orientation: 'h', y: bars.map((b) => b[0]), x: bars.map((b) => b[1]),
    text: bars.map((b) => duration(b[1] / 1e3)), textposition: 'outside', cliponaxis: false,
    marker: { color: ['#0072B2', '#D55E00', '#009E73'].slice(0, bars.length) },
    hovertemplate: '%{y}: %{x:.3g} ms<extra></extra>',
  }], layout({ margin: { l: 110, r: 16, t: 8, b: 40 }, showlegend: false,
    xaxis: { type: 'log', title: { text: 'ms per training step (log scale)' },
      ...logTicks(bars.map((b) => b[1])),
      range: [Math.log10(Math.min(...bars.map((b) => b[1]))) - 0.5, Math.log10(longest) + 0.6] },
    yaxis: { autorange: 'reversed' } }));
}

export function mountCompiled(article, host) {
  const status = cell('p', '', 'cost-status');
  const body = document.createElement('div');
  body.className = 'cost-body';
  const table = document.createElement('table');
  table.className = 'cost-table';
  table.setAttribute('aria-label', 'What XLA did to the step');
  const plot = document.createElement('div');
  plot.className = 'plot cost-plot';
  plot.id = 'plot-compiled';
  body.append(table, plot);
  const sentence = cell('p', '', 'cost-summary');
  article.append(status, body, sentence);
  return measuredView(article, host, {
    path: '/api/compile',
    query,
    waiting: 'compiling and timing the step… (a few seconds)',
    status,
    render(got) {
      renderTable(table, got);
      sentence.textContent = got.summary;
      return `JAX ${got.jax} on the ${got.device.toUpperCase()}, ${got.dtype}: `
        + `compiled in ${duration(got.compile_s)}`;
    },
    draw: (got) => renderTimes(plot, got),
  });
}
