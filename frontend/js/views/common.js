// Shared plotting defaults; views render with Plotly.react (diffing, no re-plot).
export const CONFIG = { displaylogo: false, responsive: true,
  modeBarButtonsToRemove: ['lasso2d', 'select2d'] };

export function layout(extra = {}) {
  return {
    margin: { l: 56, r: 16, t: 8, b: 40 },
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: 'rgba(0,0,0,0)',
    font: { family: 'DejaVu Sans, sans-serif', size: 12 },
    legend: { orientation: 'h', y: 1.12, x: 0 },
    uirevision: 'keep', // user zoom survives updates
    ...extra,
  };
}

export function react(el, data, lay) {
  return window.Plotly.react(el, data, lay, CONFIG);
}

/** Render at most every `ms` milliseconds; the last request always lands. */
export function throttled(fn, ms) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const now = performance.now();
    clearTimeout(timer);
    if (now - last >= ms) {
      last = now;
      fn(...args);
    } else {
      timer = setTimeout(() => { last = performance.now(); fn(...args); }, ms - (now - last));
    }
  };
}

/** Steps as ticks: whole numbers only (a run of one step has no step −0.5). */
export function stepAxis(steps) { return wholeAxis(steps.map((s) => s.step)); }

/** An axis of whole numbers (steps, layers): a tick at each when they are few, so
 *  Plotly never labels layer 1.5. */
export function wholeAxis(xs) {
  const span = xs.length ? Math.max(...xs) - Math.min(...xs) : 0;
  // every attribute said each time: an axis that once had a fixed range (one step)
  // must widen again as the run goes on, whatever a redraw keeps from the last layout
  if (span >= 8) return { autorange: true, tickmode: 'auto', tick0: null, dtick: null };
  // one step: Plotly would span −1..1 around it; half a step either side shows only it
  const one = span === 0 ? { autorange: false, range: [xs[0] - 0.5, xs[0] + 0.5] }
    : { autorange: true };
  return { tickmode: 'linear', tick0: 0, dtick: 1, ...one };
}
