// The one store: config, run state and history. Views read it; only main.js writes.
const listeners = new Set();
const MAX_HISTORY = 600; // steps kept for the over-time views (downsampled beyond)

export const state = {
  schema: null,
  info: null,
  defaults: {},
  config: {},
  runId: null,
  source: 'live', // 'live' or 'import'
  theory: null,
  environment: null,
  status: 'idle',
  steps: [], // full step records (bounded), newest last
  latest: null,
  shownIndex: null, // scrub position into steps (null: follow the latest)
  overflow: null, // {step, layer}
  phase: null,
  spread: null, // the seed ensemble's spread at init (GET /api/theory/spread)
  ui: { layer: null },
  page: 'lab', // the page shown (js/pages.js)
  pageParams: {}, // the shown page's part of the URL hash: {key: string}
};

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

let scheduled = false;
const dirty = new Set();

/** Mark parts of the state changed; listeners run once per animation frame. */
export function changed(...parts) {
  parts.forEach((p) => dirty.add(p));
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    const parts = new Set(dirty);
    dirty.clear();
    for (const fn of listeners) fn(state, parts);
  });
}

export function resetRun() {
  state.steps = [];
  state.latest = null;
  state.shownIndex = null;
  state.overflow = null;
  state.theory = null;
  changed('run', 'steps');
}

/** Keep a bounded history: when full, drop every other old step (even thinning). */
export function pushStep(step) {
  state.steps.push(step);
  if (state.steps.length > MAX_HISTORY) {
    const keep = state.steps.slice(-MAX_HISTORY / 2);
    const old = state.steps.slice(0, -MAX_HISTORY / 2).filter((_, i) => i % 2 === 0);
    state.steps = old.concat(keep);
  }
  state.latest = step;
  changed('steps');
}

export function shownStep() {
  if (state.shownIndex == null || state.shownIndex >= state.steps.length) return state.latest;
  return state.steps[state.shownIndex];
}

// --- the URL hash holds the whole experiment: a copied link opens the same one ---
export function toHash(config, ui) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(config)) {
    if (key === 'record') {
      for (const [k, v] of Object.entries(value || {})) {
        if (state.defaults.record && state.defaults.record[k] === v) continue;
        params.set(`record.${k}`, String(v));
      }
    } else if (state.defaults[key] !== value) {
      params.set(key, value === null ? 'none' : String(value));
    }
  }
  if (ui && ui.layer != null) params.set('ui.layer', String(ui.layer));
  if (state.page && state.page !== 'lab') {
    params.set('page', state.page);
    for (const [k, v] of Object.entries(state.pageParams || {})) {
      params.set(`${state.page}.${k}`, String(v));
    }
  }
  return params.toString();
}

export function fromHash(hash, defaults) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const config = structuredClone(defaults);
  const ui = {};
  const page = params.get('page') || 'lab';
  const pageParams = {};
  for (const [key, raw] of params) {
    if (key === 'page') continue;
    if (key.startsWith('ui.')) {
      ui[key.slice(3)] = Number(raw);
      continue;
    }
    if (key.startsWith(`${page}.`)) { // the shown page's own state
      pageParams[key.slice(page.length + 1)] = raw;
      continue;
    }
    if (key.includes('.') && !key.startsWith('record.')) continue; // another page's
    const [head, sub] = key.split('.');
    const target = sub ? (config.record = config.record || {}) : config;
    const name = sub || head;
    const base = sub ? (defaults.record || {})[name] : defaults[name];
    target[name] = parseValue(raw, base);
  }
  return { config, ui, page, pageParams };
}

function parseValue(raw, base) {
  if (raw === 'none') return null;
  if (typeof base === 'boolean') return raw === 'true';
  if (raw === '1/sqrt(depth)') return raw;
  if (typeof base === 'number' || base === null) {
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }
  return raw;
}
