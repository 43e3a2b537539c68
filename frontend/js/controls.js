// Every RunConfig field as a labelled control, built from /api/schema/config.
const GROUPS = [
  ['Network', ['depth', 'width', 'activation', 'init', 'sigma_w', 'sigma_b', 'residual',
    'residual_scale', 'norm']],
  ['Data and loss', ['dataset', 'input_dim', 'loss']],
  ['Training', ['optimizer', 'lr', 'batch_size', 'microbatches', 'clip', 'delta_clip',
    'checkpoint', 'checkpoint_every', 'steps', 'seed']],
  ['Engine', ['engine', 'device', 'dtype']],
];
const LABELS = {
  sigma_w: 'σ_w', sigma_b: 'σ_b', residual_scale: 'residual scale α', lr: 'learning rate',
  batch_size: 'batch size', input_dim: 'input size', clip: 'clip global norm',
  delta_clip: 'cap each δ(l) element', checkpoint_every: 'checkpoint every k layers',
  per_example: 'per-example gradients',
  every: 'record every k steps', hist_bins: 'histogram bins', delta_samples: 'δ samples',
  jacobian_every: 'Jacobian every k steps', jacobian_topk: 'top-k singular values',
};
const LOG_SCALE = new Set(['depth', 'width', 'lr', 'batch_size', 'steps', 'input_dim', 'clip',
  'delta_clip', 'checkpoint_every',
  'every', 'jacobian_every', 'microbatches', 'hist_bins', 'delta_samples', 'jacobian_topk']);
const NUMBER_ONLY = new Set(['seed']); // 2³¹ values: a slider position means nothing
const RESIDUAL_SCALES = ['1/sqrt(depth)', 0.1, 0.25, 0.5, 1, 2];
// slider ranges for fine control; the number field beside each slider takes any value
// the schema allows (presets and links use them too)
const UI_MAX = { sigma_w: 5, sigma_b: 2 };
// log sliders step through round numbers, ten a decade (≈ ×10^(1/10) each):
// one arrow press turns lr 0.01 into 0.0125, width 250 into 300
const MANTISSAS = [1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8];

/** The dtypes an engine runs on this server (from /api/info). */
export function allowedDtypes(info, engine, all = ['float32', 'float64']) {
  const listed = info && info.dtypes && info.dtypes[engine];
  return listed || all.filter((d) => d === 'float32' || d === 'float64');
}

function resolve(schema, prop) {
  if (prop.$ref) return schema.$defs[prop.$ref.split('/').pop()];
  return prop;
}

/** Bounds of a number field from its JSON schema (anyOf with null: nullable). */
export function numberSpec(prop) {
  const options = prop.anyOf || [prop];
  const n = options.find((o) => o.type === 'number' || o.type === 'integer') || prop;
  return {
    integer: n.type === 'integer',
    min: n.minimum ?? n.exclusiveMinimum ?? 0,
    max: n.maximum ?? n.exclusiveMaximum ?? 100,
    minExclusive: n.minimum === undefined && n.exclusiveMinimum !== undefined,
    maxExclusive: n.maximum === undefined && n.exclusiveMaximum !== undefined,
    nullable: options.some((o) => o.type === 'null'),
  };
}

/** The number a person typed, as they write it: a decimal comma (0,5) in a field of
 * decimals, thousands grouped by commas, spaces or underscores (100,000) in a field
 * of whole numbers; NaN for anything else. */
export function parseNumber(text, integer) {
  let t = String(text).trim().replace(/\u2212/g, '-');  // a typographic minus
  if (integer && /^[-+]?\d{1,3}([,_ \u00a0\u202f]\d{3})+$/.test(t)) t = t.replace(/[,_ \u00a0\u202f]/g, '');
  else if (!integer && /^[-+]?\d*,\d+([eE][-+]?\d+)?$/.test(t)) t = t.replace(',', '.');
  return t === '' ? NaN : Number(t);
}

/** A typed value checked against the schema: {value} or {error} in words. */
export function checkNumber(text, spec) {
  const t = String(text).trim();
  if (t === '') return { error: 'enter a number' };
  const v = parseNumber(t, spec.integer);
  if (v === Infinity || v === -Infinity) return { error: `“${t}” is beyond any float` };
  if (spec.integer && Number.isNaN(v) && Number.isFinite(parseNumber(t, false))) {
    return { error: 'must be a whole number' }; // 1,25 in a field of whole numbers
  }
  if (!Number.isFinite(v)) {
    const hint = !spec.integer && t.includes(',') ? ' (write decimals as 0.5 or 0,5)' : '';
    return { error: `“${t}” is not a number${hint}` };
  }
  if (spec.integer && !Number.isInteger(v)) return { error: 'must be a whole number' };
  if (spec.minExclusive ? v <= spec.min : v < spec.min) {
    return { error: `must be ${spec.minExclusive ? 'greater than' : 'at least'} ${spec.min}` };
  }
  if (spec.maxExclusive ? v >= spec.max : v > spec.max) {
    return { error: `must be ${spec.maxExclusive ? 'less than' : 'at most'} ${spec.max}` };
  }
  return { value: v };
}

/** The values a slider steps through: round numbers (log) or a round step (linear). */
function sliderValues(key, spec, uiMax) {
  const out = [];
  const lo = spec.min > 0 ? spec.min : (spec.integer ? 1 : 1e-4);
  if (LOG_SCALE.has(key) && uiMax / lo > 50) {
    if (spec.min === 0 && !spec.minExclusive) out.push(0);
    for (let e = Math.floor(Math.log10(lo)); 10 ** e <= uiMax; e += 1) {
      for (const m of MANTISSAS) {
        let v = Number((m * 10 ** e).toPrecision(3));
        if (spec.integer) v = Math.round(v);
        if (v < lo || v > uiMax || (spec.minExclusive && v <= spec.min)) continue;
        if (out[out.length - 1] !== v) out.push(v);
      }
    }
    if (out[out.length - 1] !== uiMax) out.push(uiMax);
    return { values: out, log: true };
  }
  const span = uiMax - spec.min;
  const step = spec.integer ? 1 : 10 ** Math.floor(Math.log10(span / 100));
  for (let i = 0; spec.min + i * step <= uiMax + 1e-12; i += 1) {
    out.push(Number((spec.min + i * step).toPrecision(12)));
  }
  return { values: out, log: false };
}

/** The slider position nearest to a value (by ratio on log sliders). */
function nearest(values, v, log) {
  let best = 0;
  let bestD = Infinity;
  values.forEach((x, i) => {
    const d = log && x > 0 && v > 0 ? Math.abs(Math.log(x / v)) : Math.abs(x - v);
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}

export function buildControls(container, schema, info, onChange) {
  container.replaceChildren();
  const inputs = {};
  const props = schema.properties;
  const recordSchema = resolve(schema, props.record);
  const groups = GROUPS.concat([['Recording', Object.keys(recordSchema.properties)
    .map((k) => `record.${k}`)]]);
  for (const [title, keys] of groups) {
    const fieldset = document.createElement('fieldset');
    const legend = document.createElement('legend');
    legend.textContent = title;
    fieldset.appendChild(legend);
    for (const path of keys) {
      const [head, sub] = path.split('.');
      const prop = sub ? recordSchema.properties[sub] : props[head];
      if (!prop) continue;
      const control = makeControl(path, sub || head, prop, info, onChange);
      inputs[path] = control;
      fieldset.appendChild(control.element);
    }
    container.appendChild(fieldset);
  }
  return {
    set(config) {
      for (const [path, control] of Object.entries(inputs)) {
        const [head, sub] = path.split('.');
        control.set(sub ? (config.record || {})[sub] : config[head]);
      }
      this.update(config);
    },
    /** What depends on other fields (the dtypes an engine runs, whose input size). */
    update(config) {
      for (const control of Object.values(inputs)) if (control.update) control.update(config);
    },
  };
}

function makeControl(path, key, prop, info, onChange) {
  const wrap = document.createElement('div');
  wrap.className = 'control';
  const id = `ctl-${path.replace('.', '-')}`;
  const label = document.createElement('label');
  label.htmlFor = id;
  label.textContent = LABELS[key] || key.replace(/_/g, ' ');
  if (prop.description) label.title = prop.description;
  wrap.appendChild(label);

  if (prop.type === 'boolean') {
    wrap.classList.add('toggle');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.id = id;
    wrap.prepend(box);
    box.addEventListener('change', () => onChange(path, box.checked));
    return { element: wrap, set: (v) => { box.checked = Boolean(v); } };
  }
  if (prop.enum || key === 'residual_scale') {
    let options = prop.enum || RESIDUAL_SCALES;
    if (key === 'device' && info) options = options.filter((o) => o === 'auto' || info.devices.includes(o));
    if (key === 'engine' && info) options = options.filter((o) => info.engines.includes(o));
    // TF32 is a mode of NVIDIA GPUs' matmuls: offered where the server has one
    if (key === 'dtype' && info) options = options.filter((o) => o !== 'tf32' || info.devices.includes('cuda'));
    const all = options;
    const select = document.createElement('select');
    select.id = id;
    for (const o of options) {
      const opt = document.createElement('option');
      opt.value = String(o);
      opt.textContent = String(o);
      select.appendChild(opt);
    }
    wrap.appendChild(select);
    select.addEventListener('change', () => {
      const raw = select.value;
      onChange(path, key === 'residual_scale' && raw !== '1/sqrt(depth)' ? Number(raw) : raw);
    });
    // dtype: only what the chosen engine runs here (NumPy has no bfloat16)
    const update = key !== 'dtype' ? null : (config) => {
      const allowed = allowedDtypes(info, config.engine, all);
      for (const o of [...select.options]) { o.disabled = !allowed.includes(o.value); o.hidden = o.disabled; }
    };
    return {
      element: wrap,
      update,
      set: (v) => {
        const s = String(v);
        if (![...select.options].some((o) => o.value === s)) {
          const opt = document.createElement('option');
          opt.value = s;
          opt.textContent = s;
          select.appendChild(opt);
        }
        select.value = s;
      },
    };
  }
  const spec = numberSpec(prop);
  const field = document.createElement('input');
  // text, not type=number: a number field hides what was typed when the browser's
  // locale cannot read it ("0,5" in an English one reads as empty)
  field.type = 'text';
  field.inputMode = spec.integer ? 'numeric' : 'decimal';
  field.autocomplete = 'off';
  field.spellcheck = false;
  field.className = 'exact';
  field.setAttribute('aria-label', `${label.textContent} (exact value)`);
  const message = document.createElement('span');
  message.className = 'field-error';
  message.setAttribute('role', 'alert');
  wrap.appendChild(field);
  let enabled = null;
  let range = null;
  let slider = null;
  if (NUMBER_ONLY.has(key)) field.id = id;
  else {
    field.id = `${id}-num`;
    slider = sliderValues(key, spec, Math.min(spec.max, UI_MAX[key] ?? spec.max));
    range = document.createElement('input');
    range.type = 'range';
    range.id = id;
    range.min = '0';
    range.max = String(slider.values.length - 1);
    range.step = '1';
    wrap.appendChild(range);
  }
  wrap.appendChild(message);
  if (spec.nullable) {
    enabled = document.createElement('input');
    enabled.type = 'checkbox';
    enabled.setAttribute('aria-label', `enable ${key}`);
    label.prepend(enabled);
    enabled.addEventListener('change', () => {
      field.disabled = !enabled.checked;
      if (range) range.disabled = !enabled.checked;
      const v = range ? slider.values[Number(range.value)] : parseNumber(field.value, spec.integer);
      show(enabled.checked ? v : null);
      onChange(path, enabled.checked ? v : null);
    });
  }
  const show = (v) => {
    field.value = v == null ? '' : String(v);
    field.placeholder = v == null ? 'off' : '';
    field.removeAttribute('aria-invalid');
    message.textContent = '';
    if (range) {
      if (v != null) range.value = String(nearest(slider.values, v, slider.log));
      range.setAttribute('aria-valuetext', v == null ? 'off' : String(v));
    }
  };
  if (range) {
    range.addEventListener('input', () => {
      const v = slider.values[Number(range.value)];
      show(v);
      onChange(path, v, { dragging: true });
    });
  }
  const commit = () => {
    const checked = checkNumber(field.value, spec);
    if (checked.error) {
      field.setAttribute('aria-invalid', 'true');
      message.textContent = `${label.textContent}: ${checked.error}`;
      return;
    }
    show(checked.value);
    onChange(path, checked.value);
  };
  field.addEventListener('change', commit);
  field.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') commit();
    else if (spec.integer && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
      const v = parseNumber(field.value, true);  // a whole number steps by one
      if (!Number.isInteger(v)) return;
      ev.preventDefault();
      field.value = String(Math.min(spec.max, Math.max(spec.min, v + (ev.key === 'ArrowUp' ? 1 : -1))));
      commit();
    }
  });
  // the input size is the gaussian data set's: the others bring their own inputs
  const note = key !== 'input_dim' ? null : document.createElement('span');
  if (note) { note.className = 'field-note'; wrap.appendChild(note); }
  const update = !note ? null : (config) => {
    const own = config.dataset !== 'gaussian';
    field.disabled = own;
    if (range) range.disabled = own;
    note.textContent = own ? `${config.dataset} brings its own inputs `
      + `(${(info.input_features || {})[config.dataset] ?? '?'} features); this is gaussian’s` : '';
  };
  return {
    element: wrap,
    update,
    set: (v) => {
      if (enabled) {
        enabled.checked = v != null;
        field.disabled = v == null;
        if (range) range.disabled = v == null;
      }
      show(v);
    },
  };
}
