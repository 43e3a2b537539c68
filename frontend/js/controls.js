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
  'every', 'jacobian_every']);
const RESIDUAL_SCALES = ['1/sqrt(depth)', 0.1, 0.25, 0.5, 1, 2];
// slider ranges for fine control; larger values (allowed by the schema) come from
// presets and links, and the value shown stays exact
const UI_MAX = { sigma_w: 5, sigma_b: 2 };
const SLIDER_STEPS = 200;

function resolve(schema, prop) {
  if (prop.$ref) return schema.$defs[prop.$ref.split('/').pop()];
  return prop;
}

function numberSpec(prop) {
  const options = prop.anyOf || [prop];
  const n = options.find((o) => o.type === 'number' || o.type === 'integer') || prop;
  return {
    integer: n.type === 'integer',
    min: n.minimum ?? n.exclusiveMinimum ?? 0,
    max: n.maximum ?? n.exclusiveMaximum ?? 100,
    nullable: options.some((o) => o.type === 'null'),
  };
}

/** Slider position <-> value, logarithmic for fields spanning decades. */
function scaler(key, spec) {
  const lo = spec.min > 0 ? spec.min : (spec.integer ? 1 : 1e-4);
  if (LOG_SCALE.has(key) && spec.max / Math.max(lo, 1e-12) > 50) {
    const a = Math.log(lo);
    const b = Math.log(spec.max);
    return {
      toValue: (p) => {
        const v = Math.exp(a + (b - a) * (p / SLIDER_STEPS));
        return spec.integer ? Math.round(v) : Number(v.toPrecision(3));
      },
      toPos: (v) => Math.round(((Math.log(Math.max(v, lo)) - a) / (b - a)) * SLIDER_STEPS),
    };
  }
  const step = spec.integer ? 1 : (spec.max - spec.min) / SLIDER_STEPS;
  return {
    toValue: (p) => (spec.integer ? Math.round(spec.min + p * step)
      : Number((spec.min + p * step).toPrecision(4))),
    toPos: (v) => Math.round((v - spec.min) / step),
    steps: spec.integer ? spec.max - spec.min : SLIDER_STEPS,
  };
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
        const value = sub ? (config.record || {})[sub] : config[head];
        control.set(value);
      }
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
    return {
      element: wrap,
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
  if (UI_MAX[key] !== undefined) spec.max = Math.min(spec.max, UI_MAX[key]);
  const scale = scaler(key, spec);
  const out = document.createElement('output');
  out.htmlFor = id;
  wrap.appendChild(out);
  const range = document.createElement('input');
  range.type = 'range';
  range.id = id;
  range.min = '0';
  range.max = String(scale.steps || SLIDER_STEPS);
  range.step = '1';
  let enabled = null;
  if (spec.nullable) {
    enabled = document.createElement('input');
    enabled.type = 'checkbox';
    enabled.setAttribute('aria-label', `enable ${key}`);
    label.prepend(enabled);
    enabled.addEventListener('change', () => {
      range.disabled = !enabled.checked;
      onChange(path, enabled.checked ? scale.toValue(Number(range.value)) : null);
    });
  }
  wrap.appendChild(range);
  const show = (v) => { out.textContent = v == null ? 'off' : String(v); };
  range.addEventListener('input', () => {
    const v = scale.toValue(Number(range.value));
    show(v);
    onChange(path, v, { dragging: true });
  });
  return {
    element: wrap,
    set: (v) => {
      if (enabled) {
        enabled.checked = v != null;
        range.disabled = v == null;
      }
      if (v != null) range.value = String(scale.toPos(v));
      show(v);
    },
  };
}
