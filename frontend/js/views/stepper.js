// View 7: the tape of a small network; walk the backward pass one node at a time
// (or push a tangent forward), with δ as a coloured strip and the equation in numbers.
import { fmt, num } from '../format.js';

const SVG = 'http://www.w3.org/2000/svg';

function flat(v) { return Array.isArray(v) ? v.flat(Infinity) : [v]; }

// short names for operations too long for their box (the full name is in the tooltip)
const SHORT = { softmax_cross_entropy: 'softmax CE', cross_entropy: 'CE' };
const CHAR_PX = 6.6; // DejaVu Sans at 11 px: the widest lower-case letters, about

/** A box's label as lines: the whole name when it fits in `width` px, else its short
 *  name on one line or two, else cut with an ellipsis (the tooltip has the full name). */
export function fitLabel(text, width) {
  const room = Math.max(Math.floor((width - 6) / CHAR_PX), 2);
  if (text.length <= room) return [text];
  const short = SHORT[text];
  if (short && short.length <= room) return [short];
  if (short && short.split(' ').every((w) => w.length <= room)) return short.split(' ');
  return [`${text.slice(0, room - 1)}…`];
}

// forward mode differentiates Σ ŷ with respect to the input: a tangent needs no targets,
// so its tape ends in sum where the backward pass ends in the loss
const FORWARD_END = (loss) => `sum: forward mode pushes the tangent to Σ ŷ, the outputs `
  + `summed (it needs no targets), where the backward pass starts from the loss ${loss}`;

// what JAX's equations for a node compute, in the tape's terms (read with the lines)
const HINTS = {
  'backward:dense': 'reduce_sum: ∂b = Σ δ over the batch; dot_general: ∂W = δᵀ a (the '
    + 'layer’s input, saved) and ∂a = δ W, the cotangent the previous node gets (the first '
    + 'dense node has none: the input x is not differentiated); transpose: JAX’s layout.',
  'backward:activation': 'mul: the cotangent times σ′(z), σ′ from values the forward pass '
    + 'saved (select_n for a kink: where the unit passes, or not).',
  'backward:mse': 'the loss’s derivative ∂L/∂ŷ = 2(ŷ − y)/N, (ŷ − y) saved by the forward pass.',
  'backward:softmax_cross_entropy': 'the loss’s derivative ∂L/∂ŷ = (softmax(ŷ) − onehot(y))/N, '
    + 'through log_softmax and take_along_axis.',
  'forward:dense': 'dot_general: the tangent through the layer, W ṫ.',
  'forward:activation': 'mul: σ′(z) ⊙ ṫ, σ′ from values the primal pass computed.',
  'forward:sum': 'reduce_sum: Σ ŷ, the outputs summed (forward mode needs no targets).',
};

function colour(x, scale) {
  // diverging blue (negative) ↔ orange (positive), colour-blind safe
  const t = Math.max(-1, Math.min(1, num(x) / (scale || 1)));
  if (!Number.isFinite(t)) return '#D55E00';
  const a = Math.abs(t);
  return t < 0 ? `rgba(0,114,178,${0.12 + 0.78 * a})` : `rgba(230,159,0,${0.12 + 0.78 * a})`;
}

/** Before the first step: a line per node, its equations' primitives in order. */
function overview(equations, name) {
  const nodes = new Map();
  for (const e of equations) {
    const key = name(e);
    if (!nodes.has(key)) nodes.set(key, []);
    nodes.get(key).push(e.primitive);
  }
  return [...nodes].map(([key, prims]) => `${key}: ${prims.length} `
    + `equation${prims.length === 1 ? '' : 's'}, ${prims.join(', ')}`);
}

/** What the stepper's network is, against the Lab's. */
export function stepperNote(data, lab) {
  const dense = data.graph.nodes.filter((n) => n.op === 'dense');
  const width = dense.length ? dense[0].shape[dense[0].shape.length - 1] : 0;
  const left = [lab.residual ? 'skip connections' : '', lab.norm && lab.norm !== 'none'
    ? lab.norm : ''].filter(Boolean);
  return `This tape: ${dense.length - 1} hidden layer${dense.length === 2 ? '' : 's'} of `
    + `${width} units with the Lab’s activation, init and loss (depth and width at most 3, `
    + 'so that every number can be read'
    + `${left.length ? `; without the Lab’s ${left.join(' and ')}` : ''}). Nodes are named `
    + 'op#k, k their place on the tape, whose first entries are W1, b1, …';
}

export class StepperView {
  constructor(els) {
    this.els = els; // {svg, strip, eq, pos, toggle (the mode button), jaxprTitle, jaxprEqns}
    this.data = null;
    this.pos = -1;
    this.mode = 'backward';
  }

  /** `lab`: the Lab's config, of which the walk is a small stand-in (said in the note). */
  load(data, lab = null) {
    this.data = data;
    this.note = lab ? stepperNote(data, lab) : '';
    this.pos = -1;
    this.mode = 'backward';
    this.render();
  }

  get sequence() {
    if (!this.data) return [];
    return this.mode === 'backward' ? this.data.steps : this.data.forward;
  }

  next() { if (this.pos < this.sequence.length - 1) { this.pos += 1; this.render(); } }

  back() { if (this.pos > -1) { this.pos -= 1; this.render(); } }

  reset(mode = 'backward') { this.mode = mode; this.pos = -1; this.render(); }

  /** The graph node a step of the sequence lights: backward steps name the graph's
   *  own nodes; forward mode runs on its own tape (dense#1 … sum#8), whose operations
   *  are the graph's operations in the same order. */
  nodeOf(step) {
    if (this.mode === 'backward') return step.index;
    const ops = this.data.graph.nodes.filter((n) => n.op !== 'input');
    const k = this.data.forward.indexOf(step);
    return ops[k] ? ops[k].id : null;
  }

  /** The graph's node drawn for a forward step, its label and the weights feeding it:
   *  the equation names what is lit. */
  graphNode(id) { return this.data.graph.nodes.find((n) => n.id === id); }

  feeding(id) {
    return this.data.graph.edges.filter((e) => e.target === id)
      .map((e) => this.graphNode(e.source)).filter((n) => n && n.op === 'input')
      .map((n) => n.label);
  }

  lossName() {
    const last = this.data.graph.nodes[this.data.graph.nodes.length - 1];
    return last ? last.op : 'loss';
  }

  render() {
    const { svg, strip, eq, pos, toggle } = this.els;
    if (!this.data) return;
    if (toggle) { // the button says what it will do
      toggle.textContent = this.mode === 'forward' ? 'Backward mode ◁' : 'Forward mode ▷';
      toggle.title = this.mode === 'forward' ? 'Walk the backward pass from the loss'
        : 'Push a tangent from the input forward, one node at a time';
    }
    const seq = this.sequence;
    const current = this.pos >= 0 ? seq[this.pos] : null;
    const visited = new Set(seq.slice(0, Math.max(this.pos, 0)).map((s) => this.nodeOf(s)));
    this.drawGraph(svg, current ? this.nodeOf(current) : null, visited);
    this.renderJaxpr(current);
    pos.textContent = `${this.mode} mode: ${this.pos + 1} / ${seq.length} nodes`;
    if (this.els.next) this.els.next.disabled = this.pos >= seq.length - 1;
    if (this.els.back) this.els.back.disabled = this.pos < 0;
    if (this.els.note) this.els.note.textContent = this.note || '';
    strip.replaceChildren();
    eq.removeAttribute('data-delta');
    if (!current) {
      eq.textContent = this.mode === 'backward'
        ? 'Press “Next node” to pull the cotangent back from the loss, one tape node at a time.'
        : 'Forward mode pushes a tangent ẋ = e₀ from the input towards the output. '
          + `Its tape ends in ${FORWARD_END(this.lossName())}.`;
      return;
    }
    if (this.mode === 'forward') {
      const values = flat(current.tangent_out);
      this.fillStrip(strip, values);
      const node = this.graphNode(this.nodeOf(current));
      const weights = node ? this.feeding(node.id) : [];
      const name = current.op === 'sum' ? 'sum' : (node ? node.label : current.label);
      eq.textContent = `${name}${weights.length ? ` (${weights.join(', ')})` : ''}:  `
        + `ṫ_out = J_${current.op} · ṫ_in\n`
        + `ṫ_out = [${values.map((v) => fmt(v)).join(', ')}]`
        + (current.op === 'sum' ? `\n${FORWARD_END(this.lossName())}` : '');
      return;
    }
    const rec = this.data.recurrences.find((r) => r.activation_node === current.index);
    const outs = current.cotangents_out;
    if (rec) {
      const l = rec.layer;
      const delta = flat(rec.delta[0]);
      this.fillStrip(strip, delta);
      eq.dataset.delta = JSON.stringify(delta);
      eq.dataset.layer = String(l);
      const wtd = flat(current.cotangent_in[0]);
      const sp = flat(rec.sigma_prime[0]);
      eq.textContent = `δ(${l}) = (W(${l + 1})ᵀ δ(${l + 1})) ⊙ σ′(z(${l}))   [example 0]\n`
        + `W(${l + 1})ᵀ δ(${l + 1}) = [${wtd.map((v) => fmt(v, 4)).join(', ')}]\n`
        + `σ′(z(${l}))        = [${sp.map((v) => fmt(v, 4)).join(', ')}]\n`
        + `δ(${l})            = [${delta.map((v) => fmt(v, 4)).join(', ')}]`;
      return;
    }
    const first = outs.length ? flat(outs[0].value) : [];
    this.fillStrip(strip, first);
    eq.textContent = `${current.label} (${current.op}): cotangent in ḡ = `
      + `[${flat(current.cotangent_in).slice(0, 8).map((v) => fmt(v, 4)).join(', ')}`
      + `${flat(current.cotangent_in).length > 8 ? ', …' : ''}]\n`
      + outs.map((o) => `  → ${o.label}: [${flat(o.value).slice(0, 8).map((v) => fmt(v, 4))
        .join(', ')}${flat(o.value).length > 8 ? ', …' : ''}]`).join('\n');
  }

  /** A step's name as both columns write it: the graph's node it lights (forward mode
   *  runs on a tape of its own, dense#1 …, whose operations are the graph's in order). */
  nameOf(step) {
    if (this.mode === 'backward') return step.label;
    if (step.op === 'sum') return 'sum';
    const node = this.graphNode(this.nodeOf(step));
    return node ? node.label : step.label;
  }

  /** Beside the tape: the equations of JAX's trace of the same pass that carry the lit
   *  node's scope (all of them before the first step), each on its own line. */
  renderJaxpr(current) {
    const { jaxprTitle: title, jaxprEqns: box } = this.els;
    if (!title || !box) return;
    const jx = this.data.jaxpr;
    box.replaceChildren();
    if (!jx) {
      title.textContent = 'jax is not installed on this server: there is no jaxpr to show.';
      return;
    }
    const backward = this.mode === 'backward';
    const all = backward ? jx.backward : jx.forward;
    const name = (e) => {
      const step = this.sequence.find((s) => s.index === e.node);
      return step ? this.nameOf(step) : e.scope;
    };
    let shown = all;
    if (!current) {
      title.textContent = (backward
        ? 'jax.vjp’s backward pass: the equations on the cotangent’s path'
        : 'jax.jvp’s forward mode: the equations on the tangent’s path')
        + `, ${all.length} for the tape’s ${this.sequence.length} nodes (${jx.dtype}, `
        + `jax ${jx.jax}), node by node; step through to read each node’s. In them, a `
        + 'name no line assigns is a value saved by the forward pass.';
    } else {
      shown = all.filter((e) => e.node === current.index);
      const hint = HINTS[`${this.mode}:${current.op}`]
        || (backward ? HINTS['backward:activation'] : HINTS['forward:activation']);
      title.textContent = shown.length
        ? `${this.nameOf(current)}: ${shown.length} of the ${all.length} equations, scope `
          + `${shown[0].scope}. ${current.op === 'sum' ? HINTS['forward:sum'] : hint}`
        : `${this.nameOf(current)}: no equation of JAX’s ${all.length} carries this node’s `
          + 'scope (JAX needs none for it here).';
    }
    const lines = current ? shown.map((e) => e.text) : overview(all, name);
    for (const text of lines) {
      const line = document.createElement('div');
      line.className = 'eqn';
      line.textContent = text;
      box.appendChild(line);
    }
  }

  fillStrip(strip, values) {
    const scale = Math.max(...values.map((v) => Math.abs(num(v))).filter(Number.isFinite), 1e-12);
    for (const v of values.slice(0, 64)) {
      const span = document.createElement('span');
      span.textContent = fmt(v, 3);
      span.dataset.value = String(v);
      span.style.background = colour(v, scale);
      strip.appendChild(span);
    }
  }

  drawGraph(svg, currentIndex, visited) {
    const { nodes, edges } = this.data.graph;
    const ops = nodes.filter((n) => n.op !== 'input');
    // forward mode draws its own tape's operations (it ends in sum, not the loss)
    const shownOp = new Map();
    if (this.mode === 'forward') {
      ops.forEach((n, k) => { if (this.data.forward[k]) shownOp.set(n.id, this.data.forward[k]); });
    }
    const inputs = nodes.filter((n) => n.op === 'input');
    const width = svg.clientWidth || 900;
    const pos = new Map();
    const colW = width / (ops.length + 1);
    ops.forEach((n, i) => pos.set(n.id, { x: colW * (i + 1), y: 110 }));
    const firstUse = new Map();
    for (const e of edges) if (!firstUse.has(e.source)) firstUse.set(e.source, e.target);
    const slots = new Map();
    for (const n of inputs) {
      const t = pos.get(firstUse.get(n.id)) || { x: 40 };
      const k = slots.get(t.x) || 0;
      slots.set(t.x, k + 1);
      pos.set(n.id, { x: t.x + (k - 0.5) * colW * 0.5, y: 30 }); // W left, b right
    }
    // boxes never overlap: operations sit colW apart, a layer's W and b colW/2 apart
    const opWidth = Math.min(68, colW - 8);
    const inputWidth = Math.min(68, colW * 0.5 - 6);
    svg.replaceChildren();
    const defs = document.createElementNS(SVG, 'defs');
    defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
      + 'markerHeight="6" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#9aa0a6"/></marker>';
    svg.appendChild(defs);
    for (const e of edges) {
      const a = pos.get(e.source);
      const b = pos.get(e.target);
      const line = document.createElementNS(SVG, 'line');
      const [from, to] = this.mode === 'backward' ? [b, a] : [a, b];
      line.setAttribute('x1', from.x); line.setAttribute('y1', from.y);
      line.setAttribute('x2', to.x); line.setAttribute('y2', to.y);
      svg.appendChild(line);
    }
    for (const n of nodes) {
      const p = pos.get(n.id);
      const g = document.createElementNS(SVG, 'g');
      const cls = ['node', n.op === 'input' ? 'input' : 'op'];
      if (n.id === currentIndex) cls.push('current');
      else if (visited.has(n.id)) cls.push('done');
      g.setAttribute('class', cls.join(' '));
      g.dataset.node = String(n.id);
      const rect = document.createElementNS(SVG, 'rect');
      const w = n.op === 'input' ? inputWidth : opWidth;
      rect.setAttribute('x', p.x - w / 2); rect.setAttribute('y', p.y - 14);
      rect.setAttribute('width', w); rect.setAttribute('height', 28);
      const text = document.createElementNS(SVG, 'text');
      text.setAttribute('x', p.x); text.setAttribute('y', p.y);
      const fwd = shownOp.get(n.id);
      const shown = n.op === 'input' ? n.label : (fwd ? fwd.op : n.op);
      const lines = fitLabel(shown, w);
      if (lines.length === 1) text.textContent = lines[0];
      else { // two lines, centred on the box's middle
        lines.forEach((line, i) => {
          const span = document.createElementNS(SVG, 'tspan');
          span.setAttribute('x', p.x);
          span.setAttribute('dy', i === 0 ? '-0.55em' : '1.1em');
          span.textContent = line;
          text.appendChild(span);
        });
      }
      const title = document.createElementNS(SVG, 'title');
      title.textContent = fwd && fwd.op !== n.op ? `${fwd.op} (forward mode; the backward `
        + `pass ends in ${n.label})` : `${n.label} ${JSON.stringify(n.shape)}`;
      g.append(rect, text, title);
      svg.appendChild(g);
    }
  }
}
