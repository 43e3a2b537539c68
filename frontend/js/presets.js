// Presets that tell the classic stories of gradient flow.
export const PRESETS = {
  'vanishing (sigmoid, depth 30, Xavier)': { activation: 'sigmoid', depth: 30, init: 'xavier_normal',
    sigma_w: 1, sigma_b: 0, residual: false, norm: 'none' },
  'exploding (tanh, σ_w = 20, depth 300)': { activation: 'tanh', depth: 300, init: 'normal',
    sigma_w: 20, sigma_b: 0, residual: false, norm: 'none', dtype: 'float32', clip: null },
  'dead ReLUs (large learning rate)': { activation: 'relu', depth: 20, init: 'he_normal',
    sigma_w: 1, lr: 2, optimizer: 'sgd', residual: false, norm: 'none' },
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
