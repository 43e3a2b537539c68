// Numbers from the server: finite numbers, or "NaN" / "Infinity" / "-Infinity".
const NONFINITE = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/** A value as a JS number (NaN/±Infinity restored). */
export function num(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v in NONFINITE) return NONFINITE[v];
  return v == null ? NaN : Number(v);
}

/** For plotting: finite numbers, or null (a visible gap, never a fake value). */
export function plottable(v) {
  const x = num(v);
  return Number.isFinite(x) ? x : null;
}

/** 'NaN', '+Inf' or '−Inf' for a non-finite value; null for a finite one or none. */
export function nonfiniteLabel(v) {
  if (v == null) return null;
  const x = num(v);
  if (Number.isFinite(x)) return null;
  if (Number.isNaN(x)) return 'NaN';
  return x > 0 ? '+Inf' : '−Inf';
}

export function isNonFinite(v) {
  return !Number.isFinite(num(v));
}

/** Short, fixed-width-ish rendering, with ∞ and NaN spelled out. */
export function fmt(v, digits = 3) {
  const x = num(v);
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+∞';
  if (x === -Infinity) return '−∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(digits - 1);
  const shown = x.toPrecision(digits);
  // toPrecision(3) writes 1120 as "1.12e+3": below 10⁴ a plain number reads better
  return shown.includes('e') ? String(Number(shown)) : shown;
}

/** A duration given in seconds, as a person reads it: "0.42 ms", "4.14 ms", "812 ms",
 *  then "1.12 s" (never "1.12e+3 ms"), "12.3 s", "2 min 5 s", "1 h 3 min"; ∞ and NaN
 *  spelled out. The one place the front end turns a time into text. */
export function duration(seconds) {
  const s = num(seconds);
  if (!Number.isFinite(s)) return fmt(s);
  const round = (v) => String(Number(v.toPrecision(3)));
  const a = Math.abs(s);
  if (a === 0) return '0 s';
  if (a < 0.9995) return `${round(s * 1e3)} ms`;
  if (a < 59.95) return `${round(s)} s`;
  const sign = s < 0 ? '−' : '';
  const whole = Math.round(a);
  if (whole < 3600) return `${sign}${Math.floor(whole / 60)} min ${whole % 60} s`;
  const minutes = Math.round(a / 60);
  return `${sign}${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Where the runs of an experiment were executed, in words ({backend, workers,
 *  address} from the server's `execution`). */
export function executedWhere(execution) {
  const e = execution || {};
  if (e.backend === 'in-process') return "in the server's own process";
  if (e.backend === 'pool') {
    const n = e.workers;
    return n ? `on a pool of ${n} worker process${n === 1 ? '' : 'es'}` : 'on a process pool';
  }
  if (e.backend === 'ray') return e.address ? `on the Ray cluster at ${e.address}` : 'on Ray';
  return e.backend ? `on ${e.backend}` : 'somewhere the server did not name';
}

/** First layer whose δ or ∇W norm is not finite, or null (a null value is one the
 *  layer does not have, e.g. a watched module without weights: not an overflow). */
export function firstOverflow(step) { // where the backward pass (from the output) met it
  for (const layer of [...step.layers].reverse()) {
    if ([layer.delta_norm, layer.grad_w_norm].some((v) => v != null && isNonFinite(v))) {
      return layer.index;
    }
  }
  return null;
}

// Okabe–Ito, safe for the common colour-vision deficiencies
export const COLORS = {
  blue: '#0072B2', orange: '#E69F00', green: '#009E73', vermillion: '#D55E00',
  sky: '#56B4E9', purple: '#CC79A7', yellow: '#F0E442', black: '#000000',
};

/** Index of the first JSON syntax error in text, or null (JSON.parse here names none). */
export function jsonErrorAt(t) {
  let i = 0;
  const fail = () => { throw i; };
  const ws = () => { while (i < t.length && ' \t\n\r'.includes(t[i])) i += 1; };
  const word = (w) => { if (t.startsWith(w, i)) i += w.length; else fail(); };
  const str = () => {
    i += 1;
    while (i < t.length && t[i] !== '"') {
      if (t.charCodeAt(i) < 32) fail();
      i += t[i] === '\\' ? 2 : 1;
    }
    if (i >= t.length) fail();
    i += 1;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(t.slice(i, i + 400));
    if (!m || !m[0]) fail();
    i += m[0].length;
  };
  const value = () => {
    ws();
    const c = t[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i += 1;
      ws();
      if (t[i] === close) { i += 1; return; }
      for (;;) {
        if (c === '{') {
          ws();
          if (t[i] !== '"') fail();
          str();
          ws();
          if (t[i] !== ':') fail();
          i += 1;
        }
        value();
        ws();
        if (t[i] === ',') { i += 1; continue; }
        if (t[i] === close) { i += 1; return; }
        fail();
      }
    }
    if (c === '"') str();
    else if (c === 't') word('true');
    else if (c === 'f') word('false');
    else if (c === 'n') word('null');
    else number();
  };
  try {
    value();
    ws();
    if (i < t.length) fail();
    return null;
  } catch (e) {
    if (typeof e === 'number') return e;
    throw e;
  }
}
