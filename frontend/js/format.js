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
  return a >= 1e4 || a < 1e-3 ? x.toExponential(digits - 1) : x.toPrecision(digits);
}

/** First layer whose δ or ∇W norm is not finite, or null (a null value is one the
 *  layer does not have, e.g. a watched module without weights: not an overflow). */
export function firstOverflow(step) {
  for (const layer of step.layers) {
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
