// Presets that tell the classic stories of gradient flow.
export const PRESETS = {
  'vanishing (sigmoid, depth 30, Xavier)': { activation: 'sigmoid', depth: 30, init: 'xavier_normal',
    sigma_w: 1, sigma_b: 0, residual: false, norm: 'none' },
  // χ₁ ≈ 2.1 a layer: ‖δ‖ grows ×1.45 a layer towards the input, past float32's 3e38
  // about 60 layers before the input; the 240 layers before that show the geometric
  // growth. σ_w = 3.5 keeps tanh out of its flat tails, where φ′ underflows to 0 in
  // float32 (at σ_w = 20, δ vanished at small widths instead). The width is part of the
  // story: at width 16 finite-width fluctuations slow the growth below overflow.
  // at initialization: ‖δ‖ grows geometrically towards the input, then overflows (one
  // step: the update that follows would turn every weight NaN and hide the growth)
  'exploding (tanh, σ_w = 3.5, depth 300)': { activation: 'tanh', depth: 300, width: 128,
    init: 'normal', sigma_w: 3.5, sigma_b: 0, residual: false, norm: 'none', dtype: 'float32',
    clip: null, steps: 1 },
  // a learning rate of 2 kills units; clipping the step keeps the loss finite, so the
  // dead fraction can be watched growing instead of the run diverging to NaN
  'dead ReLUs (large learning rate)': { activation: 'relu', depth: 20, init: 'he_normal',
    sigma_w: 1, lr: 2, clip: 1, optimizer: 'sgd', residual: false, norm: 'none' },
  'He + ReLU (χ₁ = 1)': { activation: 'relu', depth: 50, init: 'he_normal', sigma_w: 1,
    sigma_b: 0, residual: false, norm: 'none' },
  'critical tanh (χ₁ = 1 line)': { activation: 'tanh', depth: 50, init: 'normal',
    sigma_w: 1.327, sigma_b: 0.2236, residual: false, norm: 'none' },
  'residual rescue (sigmoid, α = 1/√L)': { activation: 'sigmoid', depth: 30,
    init: 'xavier_normal', residual: true, residual_scale: '1/sqrt(depth)', norm: 'none' },
  'orthogonal isometry (tanh, σ_w = 1)': { activation: 'tanh', depth: 50, init: 'orthogonal',
    sigma_w: 1, sigma_b: 0, residual: false, norm: 'none',
    record: { jacobian_every: 10 } },
  // chaotic tanh: ‖g‖ is in the thousands; clip 1 scales every step down to norm 1 (the
  // flow view shows ‖∇W(l)‖ before and after, and the clip factor, far below 1)
  'gradient clipping (tanh σ_w = 3, clip 1)': { activation: 'tanh', depth: 30, init: 'normal',
    sigma_w: 3, sigma_b: 0, clip: 1, delta_clip: null, lr: 0.5, residual: false,
    norm: 'none' },
};

/** What each preset is meant to show, and where to look (shown while the controls
 *  hold the preset's settings). */
export const STORIES = {
  'vanishing (sigmoid, depth 30, Xavier)': 'Gradient flow: ‖δ(l)‖ falls layer by layer '
    + 'towards the input (σ′ ≤ 1/4 each layer), so the first layers hardly learn.',
  'exploding (tanh, σ_w = 3.5, depth 300)': 'One step, at initialization: ‖δ(l)‖ grows about '
    + '×1.45 a layer towards the input, on the dashed theory line, until it overflows '
    + 'float32 (× markers) about 60 layers before the input.',
  'dead ReLUs (large learning rate)': 'Activations: a learning rate of 2 pushes units to '
    + 'where ReLU is 0 for every input; the dead fraction grows (clipping keeps the loss '
    + 'finite so it can be watched).',
  'He + ReLU (χ₁ = 1)': 'Gradient flow: χ₁ = 1 keeps ‖δ(l)‖ about level across 50 layers; '
    + 'at width 128 it drifts around the mean-field line by finite-width chance.',
  'critical tanh (χ₁ = 1 line)': 'On the χ₁ = 1 line of the phase diagram: ‖δ(l)‖ neither '
    + 'grows nor shrinks with depth.',
  'residual rescue (sigmoid, α = 1/√L)': 'The vanishing network with skip connections '
    + 'scaled 1/√L: ‖δ(l)‖ now reaches the input.',
  'orthogonal isometry (tanh, σ_w = 1)': 'Jacobian spectrum: orthogonal weights keep the '
    + 'squared singular values near 1 (dynamical isometry).',
  'gradient clipping (tanh σ_w = 3, clip 1)': 'Chaotic tanh: ‖g‖ before clipping is in the '
    + 'thousands (the note at the lower right of Gradient flow) and the clip factor far below 1. Clipping '
    + 'bounds every step, so the loss stays finite where the same run unclipped diverges '
    + 'to NaN; it does not make the network learn: the loss swings, the flow is still chaotic.',
};

/** A preset's whole config: the defaults with the preset's fields over them. */
export function presetConfig(defaults, preset) {
  return { ...structuredClone(defaults), ...structuredClone(preset),
    record: { ...(defaults.record || {}), ...(preset.record || {}) } };
}

/** The name of the preset whose experiment this config is, or '' (custom). What is
 *  recorded (the `record` fields: how often, the Jacobian's spectrum) is not part of the
 *  experiment: turning on the spectrum keeps the preset's name. */
export function matchingPreset(config, defaults) {
  const same = (a, b) => a === b || (a == null && b == null)
    || (typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) <= 1e-12 * Math.abs(b));
  for (const [name, preset] of Object.entries(PRESETS)) {
    const full = presetConfig(defaults, preset);
    const keys = Object.keys(defaults).filter((k) => k !== 'record');
    if (keys.every((k) => same(config[k] === undefined ? defaults[k] : config[k], full[k]))) {
      return name;
    }
  }
  return '';
}
