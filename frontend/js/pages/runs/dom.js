// A small element builder: text goes in as textContent only, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** "2026-12-01 09:30" in the browser's time zone. */
export function when(seconds) {
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** depth × width activation, init with σ_w (and σ_b where not 0), the loss where not
 *  mse (+ residual, norm), then engine, dtype and learning rate: what a run was, in a
 *  few words (runs differing only in σ_w or dtype read apart). */
export function describe(config) {
  if (!config) return '';
  if (config.source === 'watched') { // a model of one's own (backproplab.watch)
    return `${config.model}: ${config.modules.length} modules, ${config.parameters} parameters`;
  }
  const scale = (v) => String(Number(Number(v).toPrecision(3)));
  const init = [config.init, config.sigma_w != null ? `σ_w ${scale(config.sigma_w)}` : '',
    config.sigma_b ? `σ_b ${scale(config.sigma_b)}` : ''].filter(Boolean).join(' ');
  const parts = [`${config.depth}×${config.width} ${config.activation}`, init];
  if (config.loss && config.loss !== 'mse') parts.push(config.loss);
  if (config.residual) parts.push('residual');
  if (config.norm && config.norm !== 'none') parts.push(config.norm);
  const engine = [config.engine, config.dtype].filter(Boolean).join(' ');
  if (engine) parts.push(engine);
  if (typeof config.lr === 'number') parts.push(`lr ${scale(config.lr)}`);
  return parts.join(', ');
}

export const RUN_COLORS = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#56B4E9', '#000000',
  '#CC79A7', '#F0E442'];

export function runLabel(run) { return run.name || run.id; }
