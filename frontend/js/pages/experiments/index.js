// Experiments: the classic papers reproduced. Pick one, run it (quick size by default)
// with a progress bar, see its figures beside the paper's numbers with PASS/FAIL, and
// download the HTML report. State in the URL: experiments.name, experiments.quick.
import { duration, executedWhere, fmt, num } from '../../format.js';
import { logTicks } from '../../views/loss.js';

const POLL_MS = 250;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

/** A number as the checks table shows it (4 significant digits, ∞/NaN spelled out). */
export function shown(v) {
  return fmt(num(v), 4);
}

export function mount(root, host) {
  root.classList.add('experiments');
  const list = el('nav', { class: 'exp-list', 'aria-label': 'Experiments' });
  const title = el('h2', { id: 'exp-title' });
  const paper = el('p', { class: 'exp-paper', id: 'exp-paper' });
  const summary = el('p', { class: 'exp-summary', id: 'exp-summary' });
  const quick = el('input', { type: 'checkbox', id: 'exp-quick' });
  quick.checked = true;
  const run = el('button', { type: 'button', id: 'exp-run', text: 'Run' });
  const cancel = el('button', { type: 'button', id: 'exp-cancel', text: 'Cancel' });
  cancel.hidden = true;
  const bar = el('progress', { id: 'exp-progress', max: '1', 'aria-label': 'Experiment progress' });
  bar.value = 0;
  const barText = el('span', { id: 'exp-progress-text', class: 'exp-progress-text',
    role: 'status', 'aria-live': 'polite' });
  const report = el('a', { id: 'exp-report', class: 'button', text: 'HTML report' });
  report.hidden = true;
  const error = el('p', { id: 'exp-error', class: 'exp-error', role: 'alert' });
  const verdict = el('p', { id: 'exp-verdict', class: 'exp-verdict' });
  const checks = el('table', { id: 'exp-checks', class: 'exp-checks' });
  const figures = el('div', { id: 'exp-figures', class: 'exp-figures' });
  const controls = el('div', { class: 'exp-controls' },
    el('label', { for: 'exp-quick' }, quick, ' Quick size'), run, cancel, bar, barText, report);
  root.append(list, el('section', { class: 'exp-main' }, title, paper, summary, controls,
    error, verdict, checks, figures));

  let experiments = [];
  let selected = null;
  let job = null; // the job shown: {id, status, ...}
  let timer = null;
  let visible = false;

  function select(name, push = true) {
    const found = experiments.find((e) => e.name === name) || experiments[0];
    if (!found) return;
    if (selected !== found.name) clearResult();
    selected = found.name;
    for (const b of list.querySelectorAll('button')) {
      b.setAttribute('aria-pressed', String(b.dataset.name === selected));
    }
    title.textContent = found.title;
    paper.textContent = found.paper;
    summary.textContent = `${found.summary} (${found.runs_quick} runs quick, ${found.runs_full} full)`;
    if (push) host.setParams({ name: selected, quick: quick.checked ? undefined : '0' });
  }

  function clearResult() {
    stopPolling();
    job = null;
    error.textContent = '';
    verdict.textContent = '';
    checks.replaceChildren();
    for (const div of figures.querySelectorAll('.exp-figure')) window.Plotly?.purge(div);
    figures.replaceChildren();
    report.hidden = true;
    bar.value = 0;
    barText.textContent = '';
    cancel.hidden = true;
    run.disabled = false;
  }

  function showProgress(status) {
    bar.max = Math.max(status.total, 1);
    bar.value = status.done;
    const what = status.cached ? ' (from the cache)' : status.current ? ` — ${status.current}` : '';
    barText.textContent = `${status.done} / ${status.total} runs · ${status.status}${what}`;
    const running = status.status === 'running' || status.status === 'queued';
    cancel.hidden = !running;
    run.disabled = running;
    // the top status line follows the job to its end (it said "started" ever after)
    const word = { done: 'finished', error: 'failed' }[status.status] || status.status;
    host.status(`experiment ${selected} ${word}: ${status.done} of ${status.total} runs done`);
  }

  function renderChecks(list_) {
    const head = el('thead', {}, el('tr', {}, ...['Check', 'Published', 'Measured', 'Tolerance',
      'Result'].map((t) => el('th', { scope: 'col', text: t }))));
    const body = el('tbody');
    for (const c of list_) {
      const pass = c.pass === true;
      const row = el('tr', { class: pass ? 'pass' : 'fail' },
        el('td', { class: 'name' }, el('span', { text: c.name }),
          el('small', { class: 'source', text: c.source || '' })),
        el('td', { class: 'published', text: shown(c.published) }),
        el('td', { class: 'measured', text: shown(c.measured) }),
        el('td', { class: 'tolerance', text: `${c.relation || '≈'} ±${shown(c.tolerance)}` }),
        el('td', { class: 'verdict', text: pass ? 'PASS' : 'FAIL' }));
      body.append(row);
    }
    checks.replaceChildren(el('caption', { text: 'Measured here against the paper' }), head, body);
  }

  /** Log axes get ticks labelled with their values; layers and steps are whole
   *  numbers: an axis titled by one, spanning few of them, gets a tick at each
   *  (Plotly's own would put one at layer 1.5). */
  function wholeTicks(fig) {
    const layout = { ...fig.layout };
    for (const [key, axis] of Object.entries(layout)) {
      if (!/^[xy]axis\d*$/.test(key) || !axis) continue;
      const letter = key[0];
      const values = () => fig.data.filter((t) => (t[`${letter}axis`] || letter)
        === `${letter}${key.slice(5)}`).flatMap((t) => t[letter] || []).map(Number)
        .filter((v) => Number.isFinite(v) && v > 0);
      if (axis.type === 'log') { // labelled with their values, not Plotly's "9, 1, 2"
        if (!axis.tickvals) layout[key] = { ...axis, ...logTicks(values()) };
        continue;
      }
      if (letter !== 'x') continue;
      const title = (axis.title && (axis.title.text ?? axis.title)) || '';
      if (!/\b(layer|step)s?\b/i.test(String(title)) || axis.type === 'log') continue;
      const name = `x${key.slice(5)}`;
      const xs = fig.data.filter((t) => (t.xaxis || 'x') === name)
        .flatMap((t) => t.x || []).map(Number).filter(Number.isFinite);
      if (!xs.length) continue;
      const span = Math.max(...xs) - Math.min(...xs);
      if (span < 12) layout[key] = { ...axis, tickmode: 'linear', tick0: 0, dtick: 1 };
      else if (!axis.dtick) layout[key] = { ...axis, tickformat: 'd' };
    }
    return layout;
  }

  function renderFigures(figs) {
    figures.replaceChildren();
    for (const fig of figs) {
      const div = el('div', { class: 'exp-figure' });
      figures.append(div);
      if (window.Plotly) {
        window.Plotly.newPlot(div, fig.data, { ...wholeTicks(fig), autosize: true },
          { responsive: true, displaylogo: false });
      } else div.textContent = 'plotly.js is not loaded: figures cannot be drawn';
    }
  }

  async function showResult(id) {
    const result = await host.transport.get(`/api/experiments/jobs/${id}/result`);
    if (!job || job.id !== id) return;
    const passed = result.checks.filter((c) => c.pass).length;
    verdict.textContent = `${passed} of ${result.checks.length} checks pass · `
      + `${result.runs.length} runs, ${executedWhere(result.execution)}, in `
      + `${duration(result.execution.seconds)}`;
    verdict.className = `exp-verdict ${result.passed ? 'pass' : 'fail'}`;
    renderChecks(result.checks);
    renderFigures(result.figures);
    report.href = `/api/experiments/jobs/${id}/report`;
    report.setAttribute('download', `${result.experiment}-${result.config_hash}.html`);
    report.hidden = false;
  }

  function stopPolling() {
    clearTimeout(timer);
    timer = null;
  }

  async function poll() {
    timer = null;
    if (!job || !visible) return;
    try {
      const status = await host.transport.get(`/api/experiments/jobs/${job.id}`);
      if (!job || status.id !== job.id) return;
      job = status;
      showProgress(status);
      if (status.status === 'done') await showResult(status.id);
      else if (status.status === 'error') error.textContent = `The experiment failed: ${status.error}`;
      else if (status.status === 'cancelled') error.textContent = 'Cancelled.';
      else timer = setTimeout(poll, POLL_MS);
    } catch (e) {
      error.textContent = `Lost track of the experiment: ${e.message}`;
    }
  }

  async function start() {
    clearResult();
    run.disabled = true;
    try {
      job = await host.transport.post(`/api/experiments/${selected}/jobs`,
        { quick: quick.checked });
      showProgress(job);
      poll();
    } catch (e) {
      run.disabled = false;
      error.textContent = `Could not start ${selected}: ${e.message}`;
    }
  }

  run.addEventListener('click', start);
  cancel.addEventListener('click', async () => {
    if (!job) return;
    try { await host.transport.json(`/api/experiments/jobs/${job.id}`, { method: 'DELETE' }); }
    catch (e) { error.textContent = `Could not cancel: ${e.message}`; }
  });
  quick.addEventListener('change', () => {
    clearResult();
    host.setParams({ name: selected, quick: quick.checked ? undefined : '0' });
  });

  const loaded = host.transport.get('/api/experiments').then((items) => {
    experiments = items;
    list.replaceChildren(...items.map((e) => {
      const b = el('button', { type: 'button', 'aria-pressed': 'false' },
        el('b', { text: e.name }), el('span', { text: e.title }));
      b.dataset.name = e.name;
      b.addEventListener('click', () => select(e.name));
      return b;
    }));
  }).catch((e) => { error.textContent = `Could not list the experiments: ${e.message}`; });

  return {
    async show(params = {}) {
      visible = true;
      await loaded;
      if (params.quick !== undefined) quick.checked = params.quick !== '0';
      select(params.name || selected, false);
      if (job && (job.status === 'running' || job.status === 'queued') && !timer) poll();
    },
    hide() {
      visible = false; // a hidden page does no work: polling resumes on show
      stopPolling();
    },
  };
}
