// What the Watch page shows, computed from records (no DOM, no Plotly).
import { num } from '../../format.js';

/** Parent modules worth a group: every proper prefix of a name ("blocks",
 *  "blocks.1") that holds at least two modules, in first-seen order. */
export function groupsOf(names) {
  const counts = new Map();
  for (const name of names) {
    const parts = name.split('.');
    for (let i = 1; i < parts.length; i += 1) {
      const prefix = parts.slice(0, i).join('.');
      counts.set(prefix, (counts.get(prefix) || 0) + 1);
    }
  }
  return [...counts].filter(([, n]) => n >= 2).map(([p]) => p);
}

export function inGroup(name, group) {
  return !group || name === group || name.startsWith(`${group}.`);
}

/** "step 12, module blocks.1.fc (backward, delta)" or '' when all stayed finite. */
export function nonfiniteText(found) {
  if (!found) return '';
  const where = found.module ? `module ${found.module}` : 'the loss';
  return `step ${found.step}, ${where} (${found.in}, ${found.what})`;
}

const COLUMNS = ['delta_norm', 'grad_w_norm', 'grad_b_norm', 'update_ratio', 'a_mean', 'a_std',
  'dead_frac', 'saturated_frac'];

/** One row per module: name, kind, then the values (null: the module has none). */
export function valueRows(layers) {
  return layers.map((l) => [{ text: l.name }, { text: l.kind },
    ...COLUMNS.map((k) => ({ value: l[k], bad: l[k] != null && !Number.isFinite(num(l[k])) }))]);
}
