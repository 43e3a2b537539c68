// Wiring: store <-> controls <-> transport <-> views. Views only render.
import { allowedDtypes, buildControls } from './controls.js';
import { firstOverflow, fmt, jsonErrorAt, num } from './format.js';
import { Pages } from './pages.js';
import { PRESETS, STORIES, matchingPreset, presetConfig } from './presets.js';
import { changed, fromHash, pushStep, resetRun, shownStep, state, subscribe, toHash }
  from './store.js';
import { Transport } from './transport.js';
import { ActivationsView } from './views/activations.js';
import { FlowView, spreadKey, spreadQuery } from './views/flow.js';
import { HeatmapView } from './views/heatmap.js';
import { LossView } from './views/loss.js';
import { ModesView } from './views/modes.js';
import { PhaseView } from './views/phase.js';
import { SpectrumView } from './views/spectrum.js';
import { StepperView } from './views/stepper.js';

const $ = (id) => document.getElementById(id);
let transport;
let controls;
let paused = false; // the Lab's runs wait for Play or Step (a new run too: see startRun)
let restartedBy = null; // 'Reset' or 'Step': what began the paused run shown (said so)
let importSeq = 0; // the newest import: an older one that ends later reports nothing

function defaultsFrom(schema) {
  const out = {};
  for (const [k, p] of Object.entries(schema.properties)) {
    if (k === 'record') {
      const rec = schema.$defs.RecordConfig.properties;
      out.record = Object.fromEntries(Object.entries(rec).map(([rk, rp]) => [rk, rp.default]));
    } else out[k] = p.default ?? null;
  }
  return out;
}

// --- messages from the server ---------------------------------------------------
function onMessage(msg) {
  switch (msg.type) {
    case 'run':
      state.runId = msg.id;
      state.theory = msg.theory; // null here: a 'theory' frame follows the first step
      state.environment = msg.environment;
      state.status = 'running';
      changed('run', 'status');
      break;
    case 'theory':
      if (msg.run !== state.runId) return;
      state.theory = msg.theory;
      changed('run');
      break;
    case 'step': {
      if (msg.run !== state.runId) return; // a frame of a run we already replaced
      pushStep(msg);
      const layer = msg.overflow ? msg.overflow.layer : firstOverflow(msg);
      if (layer != null && !state.overflow) {
        state.overflow = { step: msg.step, layer };
        changed('overflow');
      }
      break;
    }
    case 'done':
      if (msg.id && msg.id !== state.runId) return; // the end of a run we replaced
      state.status = 'done';
      changed('status');
      fillIn(msg.id);
      break;
    case 'stopped':
      if (state.source !== 'live') return; // an import replaced the live run
      if (msg.id && msg.id !== state.runId) return; // the end of a run we replaced
      state.status = 'stopped';
      state.stoppedKept = msg.kept !== false;
      changed('status');
      break;
    case 'error':
      if (state.source !== 'live') return; // e.g. a 'stop' that arrived after the run ended
      if (msg.code === 'busy') return; // a full server: the transport says why and retries
      if (msg.code === 'no_run') return; // a control that raced the run's end: the run stays
      state.status = 'error';
      state.error = msg.message || msg.code || 'the server could not run this configuration';
      changed('status');
      if (msg.field) {
        const el = document.getElementById(`ctl-${msg.field.replace('.', '-')}`);
        if (el) el.setAttribute('aria-invalid', 'true');
      }
      break;
    default:
      break;
  }
}

/** Frames were coalesced while the run streamed: once it is done, fetch the whole
 *  record so every view (and a later export/import) shows every recorded step. */
async function fillIn(runId) {
  try {
    const record = await transport.get(`/api/runs/${runId}/export`);
    if (state.runId !== runId || state.source !== 'live') return;
    state.steps = [];
    for (const s of record.steps) pushStep(s);
    changed('steps');
  } catch (e) { console.warn('fill-in', e.message); }
}

function startRun(kind = 'update') {
  document.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  state.source = 'live';
  state.runId = null;
  state.error = null;
  state.importError = null;
  resetRun();
  // a paused Lab stays paused: the new run is built, its first step (the network at
  // initialization) is shown, and it waits there for Play or Step
  transport.send({ type: kind, config: state.config, paused });
  if (paused) transport.send({ type: 'step' });
  state.status = 'starting';
  changed('status');
}

/** The preset menu names the preset whose experiment the controls hold, or "custom". */
function showPreset() {
  const name = matchingPreset(state.config, state.defaults);
  $('preset').value = name;
  const story = $('preset-story');
  story.hidden = !STORIES[name];
  story.textContent = STORIES[name] ? `${name.split(' (')[0]}: ${STORIES[name]}` : '';
}

const RESTARTED = { Reset: ' (Reset: back to initialization)',
  Step: ' (Step began a new run: the last one had finished)' };

/** The status line: what the run is doing now, in words. */
function statusText(st) {
  if (st.importing) return `importing ${st.importing}…`;
  if (st.importError) return `import failed: ${st.importError}`;
  if (st.status === 'error') return `error: ${st.error}`;
  const live = ['running', 'starting'].includes(st.status);
  if (live && !st.latest && !paused && st.source === 'live') { // nothing to show yet
    const jit = st.config.engine === 'jax' ? ' and compiling its step (JAX compiles the first'
      + ' step once: a few seconds)' : '';
    return `starting: building the network${jit}…`;
  }
  if (st.status === 'stopped' && st.source === 'live') {
    return st.stoppedKept && st.latest ? `stopped at step ${st.latest.step}: the Runs page keeps it`
      : 'stopped before its first step: nothing kept';
  }
  if (!paused || !live) return st.status;
  const at = st.latest ? `paused at step ${st.latest.step}` : 'paused';
  return `${at}${RESTARTED[restartedBy] || ''} — Play resumes, Step takes one step`;
}

/** The progress label: steps done of the steps asked for; a run that ended early
 *  (an overflow, Stop) says where it stopped. */
function progressText(st, done, total) {
  if (st.source === 'import') return st.origin || 'imported';
  const ended = ['done', 'stopped', 'error'].includes(st.status);
  // a count, as the bar's: its last step is step done − 1 on the plots' axes
  if (ended && st.latest && done < total) return `stopped after ${done} of ${total} steps`;
  return `${done}/${total}`;
}

// --- the status line in the top bar: the Lab's own, or the page's -------------------
let labStatus = ''; // the Lab's latest status text
let connIsLab = true; // the status line shows the Lab's status (no page wrote its own)

/** The Lab's status; on another page it is labelled as the Lab's, with its progress,
 *  and it never replaces a status the page wrote itself. */
function showLabStatus(text = labStatus) {
  labStatus = text;
  const conn = $('conn');
  const show = (line) => { if (conn.textContent !== line) conn.textContent = line; };
  if (labVisible) {
    connIsLab = true;
    show(text);
  } else if (connIsLab && labStarted) {
    const live = ['running', 'starting'].includes(state.status) && state.source === 'live';
    const total = Math.max(num(state.config.steps), 1);
    const done = state.latest ? Math.min(state.latest.step + 1, total) : 0;
    show(`Lab: ${text}${live && !paused && state.latest ? ` ${done}/${total}` : ''}`);
  }
}

let updateTimer = null;
function configChanged(path, value) {
  const [head, sub] = path.split('.');
  if (sub) state.config.record = { ...state.config.record, [sub]: value };
  else state.config[head] = value;
  showPreset(); // the preset's name while the controls still tell its story
  restartedBy = null;
  if (head === 'engine') {
    const allowed = allowedDtypes(state.info, value);
    if (!allowed.includes(state.config.dtype)) state.config.dtype = allowed[0];
    controls.set(state.config);
  } else if (head === 'dataset') controls.update(state.config); // input size: whose it is
  history.replaceState(null, '', `#${toHash(state.config, state.ui)}`);
  clearTimeout(updateTimer);
  updateTimer = setTimeout(() => startRun('update'), 30); // at once, coalescing a drag
  refreshSide();
}

// --- theory side panels that depend on the config (phase, stepper, modes) ------------
let sideTimer = null;
let sideRequest = 0;
function refreshSide() {
  clearTimeout(sideTimer);
  sideTimer = setTimeout(() => {
    const c = state.config;
    const mine = ++sideRequest; // answers to an older config are dropped
    // three independent requests: no panel waits behind another
    transport.get('/api/phase', { activation: c.activation, depth: c.depth, grid: 24 })
      .then((phase) => { if (mine === sideRequest) { state.phase = phase; changed('phase'); } })
      .catch((e) => console.warn('phase', e.message));
    const small = { depth: Math.min(c.depth, 3), width: Math.min(c.width, 3),
      activation: c.activation, init: c.init, sigma_w: c.sigma_w, sigma_b: c.sigma_b,
      seed: c.seed, loss: c.loss };
    if (c.source !== 'watched') { // a Lab config: the seed ensemble's spread at init
      const key = spreadKey(c);
      const keep = (spread) => {
        if (mine === sideRequest) { state.spread = { ...spread, key }; changed('spread'); }
      };
      transport.get('/api/theory/spread', spreadQuery(c)).then(keep).catch((e) => {
        console.warn('spread', e.message);
        keep({ error: e.message });
      });
    }
    transport.post('/api/tape/inspect', small)
      .then((walk) => { if (mine === sideRequest) stepper.load(walk, c); })
      .catch((e) => console.warn('tape', e.message));
    transport.post('/api/tape/jacobian-modes', { depth: Math.min(c.depth, 50),
      width: Math.min(c.width, 256), input_dim: Math.min(c.input_dim, 256),
      activation: c.activation, init: c.init, sigma_w: c.sigma_w, sigma_b: c.sigma_b })
      .then((result) => { if (mine === sideRequest) modes.render(result); })
      .catch((e) => console.warn('modes', e.message));
  }, 250);
}

// --- views ------------------------------------------------------------------------
const flow = new FlowView($('plot-flow'));
const heatmap = new HeatmapView($('plot-heatmap'));
const loss = new LossView($('plot-loss'), $('loss-title'));
const activations = new ActivationsView($('plot-activations'));
const spectrum = new SpectrumView($('plot-spectrum'), (k) => {
  state.config.record = { ...state.config.record, jacobian_every: k };
  controls.set(state.config);
  configChanged('record.jacobian_every', k);
});
const phaseView = new PhaseView($('plot-phase'), (w2, b2) => {
  const was = state.config.init;
  $('phase-note').textContent = `set σ_w² = ${fmt(w2)}, σ_b² = ${fmt(b2)}`
    + (was !== 'normal' ? ` and init ${was} → normal (σ_w² is the variance of N(0, σ_w²/fan_in))`
      : '');
  state.config.init = 'normal';
  state.config.sigma_w = Number(Math.sqrt(Math.max(w2, 0)).toPrecision(4));
  state.config.sigma_b = Number(Math.sqrt(Math.max(b2, 0)).toPrecision(4));
  controls.set(state.config);
  configChanged('sigma_b', state.config.sigma_b);
});
const modes = new ModesView($('plot-modes'));
const stepper = new StepperView({ svg: $('stepper-graph'), strip: $('stepper-strip'),
  eq: $('stepper-eq'), pos: $('stepper-pos'), toggle: $('stepper-forward'),
  jaxprTitle: $('stepper-jaxpr-title'), jaxprEqns: $('stepper-jaxpr-eqns'),
  next: $('stepper-next'), back: $('stepper-back'), note: $('stepper-note') });

const RUN_PLOTS = ['plot-flow', 'plot-heatmap', 'plot-loss', 'plot-activations', 'plot-spectrum'];
let labVisible = true;
function render(st, parts) {
  if (!labVisible) { // a panel that is not on screen does no work; the status line does
    if (parts.has('status') || parts.has('steps')) showLabStatus(statusText(st));
    return;
  }
  const step = shownStep();
  if (parts.has('spread') && !parts.has('steps') && !parts.has('run') && !parts.has('scrub')) {
    flow.render(st, step);
  }
  if (parts.has('steps') || parts.has('run') || parts.has('scrub')) {
    flow.render(st, step);
    const shownLayer = st.ui.layer ?? Math.max(0, (step ? step.layers.length : 2) - 2);
    activations.render(st, step, shownLayer);
    const layerInput = $('act-layer');
    if (document.activeElement !== layerInput) layerInput.value = String(shownLayer);
    if (step) layerInput.max = String(step.layers.length - 1);
    spectrum.render(st, step);
    heatmap.render(st);
    loss.render(st);
    const scrub = $('scrub');
    scrub.max = String(Math.max(st.steps.length - 1, 0));
    if (st.shownIndex == null) scrub.value = scrub.max;
    $('scrub-out').textContent = step ? String(step.step) : '—';
  }
  // the bar follows the steps, and its label the status too (a run that ends early)
  if (parts.has('steps') || parts.has('run') || parts.has('status')) {
    const total = Math.max(num(st.config.steps), 1);
    const done = st.latest ? Math.min(st.latest.step + 1, total) : 0;
    const pct = st.source === 'import' ? 100 : Math.round((100 * done) / total);
    $('progress').firstElementChild.style.width = `${pct}%`;
    $('progress').setAttribute('aria-valuenow', String(pct));
    $('progress').lastElementChild.textContent = progressText(st, done, total);
  }
  if (parts.has('phase') || parts.has('run')) phaseView.render(st);
  if (parts.has('overflow') || parts.has('run') || parts.has('steps')) {
    const badge = $('badge');
    badge.hidden = !st.overflow;
    if (st.overflow) {
      badge.textContent = `gradients overflowed at step ${st.overflow.step}, first at layer `
        + `${st.overflow.layer} on the backward pass's way from the output`;
    }
  }
  if (parts.has('status') || parts.has('steps')) {
    showLabStatus(statusText(st));
    const running = st.source === 'live' && ['running', 'starting'].includes(st.status);
    $('step').title = running ? 'Take one step (and pause)'
      : 'Start a new run and take its first step';
    $('stop').disabled = !running; // nothing runs: nothing to stop
    markPrevious(st);
  }
  if (parts.has('status')) {
    // the plots no longer show this configuration's run: say so, and clear them
    document.querySelector('.views').classList.toggle('stale', st.status === 'error');
    $('stale-note').hidden = st.status !== 'error';
    if (st.status === 'error') {
      for (const id of RUN_PLOTS) window.Plotly.purge($(id));
      $('stale-note').textContent = `Nothing to show: ${st.error}. The plots are cleared `
        + 'until a run with valid settings starts.';
    }
  }
}

/** Until a new run's first step arrives (a JAX compile can take seconds), the plots
 *  still show the previous run: say so, and dim them (not for the few ms of a drag). */
let previousTimer = null;
function markPrevious(st) {
  clearTimeout(previousTimer);
  const waiting = st.source === 'live' && !st.latest && st.status !== 'error';
  const apply = (on) => {
    const drawn = RUN_PLOTS.some((id) => ($(id).data || []).length);
    const note = $('previous-note');
    note.hidden = !(on && drawn);
    document.querySelector('.views').classList.toggle('previous', on && drawn);
  };
  if (!waiting) apply(false);
  else previousTimer = setTimeout(() => apply(!state.latest && state.source === 'live'), 400);
}

// --- import / export ----------------------------------------------------------------
async function importText(text, name = 'the file') {
  const mine = ++importSeq; // a later import's outcome is never overwritten by this one's
  state.importError = null;
  state.importing = name;
  changed('status');
  $('progress').lastElementChild.textContent = 'importing…';
  let record;
  try {
    JSON.parse(text);
  } catch (e) {
    // a run's JSON lines (a watched model's .jsonl): the server reads and checks each line
    if (!looksLikeJsonLines(text)) {
      return importFailed(`${name} is not a JSON file: ${jsonProblem(text, e)}`, mine);
    }
  }
  try {
    record = await transport.post('/api/runs/import', text);
  } catch (e) {
    return importFailed(`${name} is not a backproplab run record: ${recordProblem(e)}`, mine);
  }
  if (mine !== importSeq) return undefined; // a later import replaced this one
  state.importing = null;
  if (record.config && record.config.source === 'watched') { // a model of your own
    state.watchedImport = record;
    return pageHost.go('watch', {});
  }
  showRecord(record);
  return undefined;
}

function looksLikeJsonLines(text) {
  const lines = text.split('\n').filter((l) => l.trim());
  if (lines.length < 2) return false;
  try { JSON.parse(lines[0]); return true; } catch { return false; }
}

/** The import's failure is the status until the next run or import (unless a later
 *  import began meanwhile: its outcome is the one to show). */
function importFailed(message, mine) {
  if (mine !== importSeq) return;
  state.importing = null;
  state.importError = message;
  changed('status');
  $('progress').lastElementChild.textContent = 'import failed';
}

/** "line 3: Unexpected token ','": the reason from JSON.parse, the line from our own
 *  scan (this Chromium's message names no position). */
function jsonProblem(text, error) {
  const reason = error.message.replace(/^JSON\.parse: /, '').split(/, "|, \.\.\.| in JSON/)[0];
  const at = jsonErrorAt(text);
  if (at === null) return reason;
  return `line ${text.slice(0, at).split('\n').length}: ${reason}`;
}

/** One sentence from a 422: the first problem and how many more. */
function recordProblem(error) {
  const detail = error.body && error.body.detail;
  if (!Array.isArray(detail) || !detail.length) return error.message;
  const first = detail[0];
  const where = (first.loc || []).filter((p) => p !== 'body').join('.');
  const more = detail.length > 1 ? ` (and ${detail.length - 1} more problem`
    + `${detail.length > 2 ? 's' : ''})` : '';
  return `${where ? `${where}: ` : ''}${first.msg}${more}.`;
}

/** Show a finished record (imported, or opened from another page) in the Lab; `origin`
 *  says where it came from ("imported", "stored run"). */
function showRecord(record, origin = 'imported') {
  labStarted = true; // the record replaces the Lab's live run
  if (state.source === 'live' && ['running', 'starting'].includes(state.status)) {
    transport.send({ type: 'stop' });
  }
  state.source = 'import';
  state.origin = origin;
  state.imported = record;
  state.runId = null;
  state.config = record.config;
  controls.set(state.config);
  showPreset();
  history.replaceState(null, '', `#${toHash(state.config, state.ui)}`);
  state.theory = record.theory;
  state.steps = [];
  state.overflow = null;
  for (const s of record.steps) {
    pushStep(s);
    const layer = s.overflow ? s.overflow.layer : firstOverflow(s);
    if (layer != null && !state.overflow) state.overflow = { step: s.step, layer };
  }
  state.status = `${origin}: ${record.steps.length} steps`;
  restartedBy = null;
  changed('run', 'steps', 'status', 'overflow');
  refreshSide();
}

async function exportRun() {
  if (state.source === 'import' && state.imported) {
    const blob = new Blob([JSON.stringify(state.imported)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'backproplab-imported.json';
    a.click();
    return;
  }
  if (!state.runId || !state.steps.length) throw new Error(nothingYet('export'));
  await transport.download(`/api/runs/${state.runId}/export`, undefined,
    `backproplab-${state.runId}.json`);
}

/** Why Export / Report cannot run now, in words. */
function nothingYet(what) {
  if (state.status === 'error') return `nothing to ${what}: the run failed (${state.error})`;
  return `nothing to ${what} yet: the run has no recorded step (status: ${state.status})`;
}

async function downloadReport() {
  if (state.source === 'import' && state.imported) {
    await transport.download('/api/report', state.imported, 'backproplab-report.html');
  } else {
    if (!state.runId || !state.steps.length) throw new Error(nothingYet('report'));
    await transport.download(`/api/runs/${state.runId}/report`, undefined,
      `backproplab-${state.runId}.html`);
  }
}

// --- boot -------------------------------------------------------------------------
async function boot() {
  let opened = 0;
  transport = new Transport(onMessage, (s) => {
    if (!labStarted) $('conn').textContent = s; // opened on another page: the connection
    showLabStatus(s);
    // after a dropped connection (server restart, busy), pick the live run up again
    if (s === 'connected' && opened++ > 0 && state.source === 'live' && state.schema) {
      startRun('start');
    }
  });
  const [schema, info] = await Promise.all([transport.get('/api/schema/config'),
    transport.get('/api/info')]);
  state.schema = schema;
  state.info = info;
  state.defaults = defaultsFrom(schema);
  const { config, ui, page, pageParams } = fromHash(location.hash, state.defaults);
  state.config = config;
  state.ui = { layer: ui.layer ?? null };
  state.page = page;
  state.pageParams = pageParams;
  controls = buildControls($('controls'), schema, info, configChanged);
  controls.set(state.config);
  window.backproplab = { state, transport }; // for tests and the console

  const preset = $('preset');
  preset.append(new Option('custom', ''));
  for (const name of Object.keys(PRESETS)) preset.append(new Option(name, name));
  showPreset();
  preset.addEventListener('change', () => {
    const p = PRESETS[preset.value];
    if (!p) return;
    state.config = presetConfig(state.defaults, p);
    controls.set(state.config);
    configChanged('seed', state.config.seed);
  });

  const live = () => ['running', 'starting'].includes(state.status);
  $('play').addEventListener('click', () => {
    restartedBy = null;
    if (paused && live()) {
      transport.send({ type: 'resume' });
      paused = false;
      changed('status');
    } else if (!live()) {
      paused = false;
      startRun('start');
    }
  });
  $('pause').addEventListener('click', () => {
    if (!live()) return; // nothing runs: there is nothing to pause
    transport.send({ type: 'pause' });
    paused = true;
    changed('status');
  });
  $('step').addEventListener('click', () => {
    restartedBy = null;
    if (!live()) { // the last run ended: Step begins a new one, paused, and says so
      restartedBy = state.source === 'live' && state.latest ? 'Step' : null;
      state.source = 'live';
      state.error = null;
      state.importError = null;
      resetRun();
      transport.send({ type: 'start', config: state.config, paused: true });
      state.status = 'running';
    }
    paused = true;
    transport.send({ type: 'step' });
    changed('status');
  });
  $('stop').addEventListener('click', () => {
    if (!live()) return;
    restartedBy = null;
    paused = false;
    transport.send({ type: 'stop' }); // answered by 'stopped' (kept, or left nothing)
  });
  $('reset').addEventListener('click', () => {
    startRun('update'); // paused, the new run stays paused at step 0
    restartedBy = paused ? 'Reset' : null;
  });
  $('export').addEventListener('click', () => exportRun().catch((e) => {
    showLabStatus(e.message);
  }));
  $('report').addEventListener('click', () => downloadReport().catch((e) => {
    showLabStatus(e.message);
  }));
  $('import').addEventListener('click', () => $('import-file').click());
  $('import-file').addEventListener('change', async (ev) => {
    const file = ev.target.files[0];
    if (file) await importText(await file.text(), file.name);
    ev.target.value = '';
  });
  const drop = $('drop');
  window.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.hidden = false; });
  drop.addEventListener('dragleave', () => { drop.hidden = true; });
  window.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    drop.hidden = true;
    const file = ev.dataTransfer.files[0];
    if (file) await importText(await file.text(), file.name);
  });
  $('scrub').addEventListener('input', (ev) => {
    const i = Number(ev.target.value);
    state.shownIndex = i >= state.steps.length - 1 ? null : i;
    changed('scrub');
  });
  $('act-layer').addEventListener('input', (ev) => {
    // a layer the network has (99 in a 10-layer one shows the last, and says so)
    const top = Number(ev.target.max || Infinity);
    const asked = Math.max(0, Math.round(Number(ev.target.value) || 0));
    if (asked > top) ev.target.value = String(top);
    state.ui.layer = Math.min(asked, top);
    history.replaceState(null, '', `#${toHash(state.config, state.ui)}`);
    changed('scrub');
  });
  if (state.ui.layer != null) $('act-layer').value = String(state.ui.layer);
  $('stepper-next').addEventListener('click', () => stepper.next());
  $('stepper-back').addEventListener('click', () => stepper.back());
  $('stepper-reset').addEventListener('click', () => stepper.reset(stepper.mode));
  $('stepper-forward').addEventListener('click', () => { // switches mode: its label says which
    if (stepper.mode === 'forward') stepper.reset('backward');
    else { stepper.reset('forward'); stepper.next(); }
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.target.closest('input, select, textarea')) return;
    const button = ev.target.closest('button');
    if (ev.key === ' ' && !button) { ev.preventDefault(); $(paused ? 'play' : 'pause').click(); }
    // ← → walk the stepper while the Lab is shown (also right after its buttons)
    if ((!button || button.closest('.stepper-bar')) && $('page-lab').offsetParent !== null) {
      if (ev.key === 'ArrowRight') stepper.next();
      if (ev.key === 'ArrowLeft') stepper.back();
    }
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) changed('steps'); });
  window.addEventListener('hashchange', () => {
    const parsed = fromHash(location.hash, state.defaults);
    if (parsed.page !== state.page
        || JSON.stringify(parsed.pageParams) !== JSON.stringify(state.pageParams)) {
      state.page = parsed.page;
      state.pageParams = parsed.pageParams;
      pages.show(parsed.page, parsed.pageParams);
    }
    if (JSON.stringify(parsed.config) === JSON.stringify(state.config)) return;
    state.config = parsed.config;
    controls.set(state.config);
    showPreset();
    startRun('update');
    refreshSide();
  });
  subscribe(render);
  pages = new Pages($('pages'), $('page-host'), pageHost, (name, visible) => {
    if (name !== 'lab') { // another page: the Lab's status until this page writes its own
      if (visible) { connIsLab = true; showLabStatus(); }
      return;
    }
    $('page-lab').hidden = !visible;
    labVisible = visible;
    if (!visible) { connIsLab = true; showLabStatus(); return; } // "Lab: …" until the page's own

    changed('steps', 'run', 'phase', 'overflow', 'status');
    if (!labStarted) { // the Lab's live run starts when the Lab is first shown
      labStarted = true;
      startRun('start');
      refreshSide();
    }
  });
  await pages.show(state.page, state.pageParams);
}
let labStarted = false;

// --- pages: what a page other than the Lab may reach (see js/pages.js) --------------
let pages;
const pageHost = {
  get transport() { return transport; },
  state,
  setParams(params) {
    state.pageParams = Object.fromEntries(Object.entries(params)
      .filter(([, v]) => v !== undefined && v !== null && v !== ''));
    history.replaceState(null, '', `#${toHash(state.config, state.ui)}`);
  },
  go(name, params = {}) {
    state.page = name;
    state.pageParams = params;
    history.replaceState(null, '', `#${toHash(state.config, state.ui)}`);
    return pages.show(name, params);
  },
  openRecord(record, origin = 'imported') {
    if (record.config && record.config.source === 'watched') { // a model of your own
      state.watchedImport = record;
      return this.go('watch', {});
    }
    showRecord(record, origin);
    return this.go('lab');
  },
  status(text) { connIsLab = false; $('conn').textContent = text; },
};

boot().catch((e) => { $('conn').textContent = `failed to start: ${e.message}`; });
