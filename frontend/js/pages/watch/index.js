// Watch: your own models. Lists the runs training scripts push with
// backproplab.watch(model, server=...), live and finished, and follows one in the
// Lab's views with module names on the axes. Polls only while shown.
import { fmt } from '../../format.js';
import { LossView } from '../../views/loss.js';
import { groupsOf, inGroup, nonfiniteText, valueRows } from './model.js';
import { HeatmapView } from '../../views/heatmap.js';
import { WatchFlow } from './plots.js';

// a script's run is listed within a second of its first pushed step
const LIST_MS = 1000;
const FOLLOW_MS = 500;
const MAX_STEPS = 600;

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const TEMPLATE = `
<section class="watch-side" aria-label="Watched runs">
  <h2>Watched runs</h2>
  <table class="watch-runs" id="watch-runs">
    <thead><tr><th>run</th><th>status</th><th>steps</th><th>first non-finite</th></tr></thead>
    <tbody></tbody>
  </table>
  <p class="watch-empty" id="watch-empty">No watched run yet. In your training script:</p>
  <pre class="watch-snippet">import backproplab
with backproplab.watch(model, server="ORIGIN") as w:
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward(); opt.step()
        w.step(loss)
        opt.zero_grad()</pre>
  <label class="button" for="watch-file">Open a run file…</label>
  <input id="watch-file" type="file" accept="application/json,.json,.jsonl" hidden>
</section>
<section class="watch-main" aria-label="Followed run">
  <div class="watch-head">
    <h2 id="watch-title">no run followed yet</h2>
    <span id="watch-status" class="watch-status"></span>
    <div id="watch-badge" class="badge" role="status" aria-live="polite" hidden></div>
    <label id="watch-group-label" hidden>Modules <select id="watch-group"
      aria-label="Modules shown"></select></label>
  </div>
  <div class="views watch-views">
    <article class="view wide"><h2>Gradient flow <small>‖δ‖ = ‖∂L/∂output‖ and ‖∇W‖ per
      module, forward order</small></h2><div class="plot watch-flow" id="watch-flow"></div></article>
    <article class="view"><h2>Flow over time <small>log₁₀ ‖δ‖, module × step</small></h2>
      <div class="watch-scroll"><div class="plot" id="watch-heatmap"></div></div></article>
    <article class="view"><h2>Loss</h2><div class="plot" id="watch-loss"></div></article>
    <article class="view wide"><h2>Step <span id="watch-step">—</span> <small>per module</small></h2>
      <div class="watch-scroll"><table class="watch-values" id="watch-values">
        <thead><tr><th>module</th><th>kind</th><th>‖δ‖</th><th>‖∇W‖</th><th>‖∇b‖</th>
          <th>‖ΔW‖/‖W‖</th><th>mean a</th><th>std a</th><th>dead</th><th>saturated</th></tr></thead>
        <tbody></tbody></table></div></article>
  </div>
</section>`;

export function mount(root, host) {
  root.classList.add('watch');
  root.innerHTML = TEMPLATE; // static markup; every value is set with textContent
  const $ = (id) => root.querySelector(`#${id}`);
  const snippet = root.querySelector('.watch-snippet');
  snippet.textContent = snippet.textContent.replace('ORIGIN', location.origin);
  const flow = new WatchFlow($('watch-flow'));
  const heatmap = new HeatmapView($('watch-heatmap'));
  const loss = new LossView($('watch-loss'));
  const page = { visible: false, runId: null, run: null, config: null, steps: [], group: '',
    listTimer: null, followTimer: null, file: null };

  async function refreshList() {
    clearTimeout(page.listTimer); // one chain of refreshes, however often shown
    try {
      const { runs } = await host.transport.get('/api/watch/runs');
      renderList(runs);
      if (!page.file && runs.length && wantsNewer(runs)) follow(runs[0].id);
    } catch (e) { host.status(`watched runs: ${e.message}`); }
    if (page.visible) page.listTimer = setTimeout(refreshList, LIST_MS);
  }

  /** Follow the newest run when nothing is followed, or when a script started a new
   *  live run while the followed one has finished. */
  function wantsNewer(runs) {
    if (!page.runId) return true;
    if (page.chosen) return false; // a run the user picked stays followed
    const newest = runs[0];
    if (newest.id === page.runId || newest.status !== 'live') return false;
    const current = runs.find((r) => r.id === page.runId);
    return !current || current.status !== 'live';
  }

  function renderList(runs) {
    const body = $('watch-runs').tBodies[0];
    body.replaceChildren();
    $('watch-empty').hidden = runs.length > 0;
    idle();
    for (const r of runs) {
      const row = el('tr', { 'data-run': r.id, tabindex: '0' });
      if (r.id === page.runId) row.setAttribute('aria-selected', 'true');
      row.append(el('td', {}, r.name), el('td', { class: `status-${r.status}` }, r.status),
        el('td', {}, String(r.steps)), el('td', {}, nonfiniteText(r.first_nonfinite) || '—'));
      row.addEventListener('click', () => follow(r.id, true));
      row.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') follow(r.id, true); });
      body.append(row);
    }
  }

  /** No run followed, none opened from a file: the plots say so, not "loading…". */
  function idle() {
    const none = !page.runId && !page.file;
    root.querySelector('.watch-views').classList.toggle('idle', none);
    $('watch-group-label').hidden = none; // nothing to group before a run is shown
  }

  function follow(runId, chosen = false) {
    clearTimeout(page.followTimer);
    Object.assign(page, { runId, chosen, file: null, run: null, config: null, steps: [] });
    idle();
    host.setParams({ run: runId, group: page.group });
    for (const row of $('watch-runs').tBodies[0].rows) {
      if (row.dataset.run === runId) row.setAttribute('aria-selected', 'true');
      else row.removeAttribute('aria-selected');
    }
    poll();
  }

  async function poll() {
    const runId = page.runId;
    if (!runId || !page.visible) return;
    const after = page.steps.length ? page.steps[page.steps.length - 1].step : -1;
    try {
      const found = await host.transport.get(`/api/watch/runs/${runId}`,
        { after, limit: MAX_STEPS });
      if (page.runId !== runId) return;
      page.run = found.run;
      page.config = found.config;
      page.steps = page.steps.concat(found.steps).slice(-MAX_STEPS);
      if (found.steps.length || !page.drawn) draw();
      else drawHead();
      if (found.run.status === 'finished' && !found.steps.length) return; // nothing more
    } catch (e) {
      host.status(`watched run ${runId}: ${e.message}`);
    }
    if (page.visible && page.runId === runId) page.followTimer = setTimeout(poll, FOLLOW_MS);
  }

  function showFile(record) {
    clearTimeout(page.followTimer);
    Object.assign(page, { runId: null, file: record, config: record.config,
      steps: record.steps.slice(-MAX_STEPS),
      run: { name: record.config.name, status: 'file', first_nonfinite: record.first_nonfinite } });
    idle();
    draw();
  }

  function drawHead() {
    const run = page.run;
    $('watch-title').textContent = run ? run.name : 'no run followed yet';
    $('watch-status').textContent = run ? `${run.status} · ${page.config.modules.length} modules · `
      + `${page.config.parameters.toLocaleString('en')} parameters` : '';
    const text = run && nonfiniteText(run.first_nonfinite);
    $('watch-badge').hidden = !text;
    if (text) $('watch-badge').textContent = `first non-finite: ${text}`;
  }

  function drawGroups() {
    const select = $('watch-group');
    const names = page.config.modules.map((m) => m.name);
    const wanted = ['', ...groupsOf(names)];
    const have = [...select.options].map((o) => o.value);
    if (JSON.stringify(have) !== JSON.stringify(wanted)) {
      select.replaceChildren(...wanted.map((g) => new Option(g ? `${g}.*` : `all ${names.length}`, g)));
    }
    if (!wanted.includes(page.group)) page.group = '';
    select.value = page.group;
  }

  function draw() {
    page.drawn = true;
    drawHead();
    if (!page.config || !page.steps.length) return;
    drawGroups();
    const steps = page.steps.map((s) => ({ ...s,
      layers: s.layers.filter((l) => inGroup(l.name, page.group)) }));
    const latest = steps[steps.length - 1];
    flow.render(latest);
    const rows = latest.layers.length;
    $('watch-heatmap').style.height = `${Math.max(300, 18 * rows + 90)}px`;
    heatmap.render({ steps });
    loss.render({ steps });
    $('watch-step').textContent = String(latest.step);
    const body = $('watch-values').tBodies[0];
    body.replaceChildren(...valueRows(latest.layers).map((cells) => {
      const tr = el('tr');
      cells.forEach((c, i) => tr.append(el(i < 2 ? 'th' : 'td',
        c.bad ? { class: 'nonfinite' } : {},
        i < 2 ? c.text : (c.value == null ? '—' : fmt(c.value)))));
      return tr;
    }));
  }

  $('watch-group').addEventListener('change', (ev) => {
    page.group = ev.target.value;
    host.setParams({ run: page.runId, group: page.group });
    draw();
  });
  $('watch-file').addEventListener('change', async (ev) => {
    const file = ev.target.files[0];
    ev.target.value = '';
    if (!file) return;
    try {
      const record = await host.transport.post('/api/runs/import', await file.text());
      if (record.config.source !== 'watched') return host.openRecord(record);
      showFile(record);
    } catch (e) { host.status(`import failed: ${e.message}`); }
  });

  return {
    show(params = {}) {
      page.visible = true;
      page.group = params.group || page.group;
      const handed = host.state.watchedImport;
      if (handed) { // a watched record imported on the Lab page
        host.state.watchedImport = null;
        showFile(handed);
      } else if (params.run && params.run !== page.runId) follow(params.run, true);
      else poll();
      refreshList();
    },
    hide() {
      page.visible = false;
      clearTimeout(page.listTimer);
      clearTimeout(page.followTimer);
    },
  };
}
