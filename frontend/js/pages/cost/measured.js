// One measure/show/hide cycle for a Cost view: GET a measurement of the Lab's network
// (once per network; again on "Measure again"), say what it is waiting for, show the
// result or what went wrong in words, draw plots only while shown. Each view has its
// own cycle: a slow measurement in one never holds up another.

export function cell(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

// the config fields of the network, as query parameters (`skip`: fields left out)
export function configQuery(config, skip) {
  const out = {};
  for (const [k, v] of Object.entries(config || {})) {
    if (!skip.has(k) && v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

// the network a measurement is of, as the status line names it
function network(params) {
  return `depth ${params.depth}, width ${params.width}, batch ${params.batch_size}`
    + (params.activation ? `, ${params.activation}` : '');
}

// options: path (GET), query(config) -> params, waiting (status text while measuring),
// status (the element that says it), render(report) -> status text (tables, text),
// draw(report) (plots: only while shown). Returns { show(), hide(), measure(force) }.
export function measuredView(article, host, { path, query, waiting, status, render, draw }) {
  status.setAttribute('role', 'status');
  status.setAttribute('aria-live', 'polite');
  const button = cell('button', 'Measure again');
  button.type = 'button';
  article.append(button);
  let visible = false;
  let shownKey = null;
  let pending = null;
  let report = null;

  async function measure(force = false) {
    const params = query(host.state.config);
    const key = JSON.stringify(params);
    if (!force && key === shownKey) return;
    shownKey = key;
    pending = key;
    status.classList.remove('error');
    // what is still on screen belongs to the network measured before: dimmed, and said
    const stale = report !== null;
    article.classList.toggle('stale', stale);
    status.textContent = stale ? `${waiting} — below, the previous network's results`
      : waiting;
    article.setAttribute('aria-busy', 'true');
    try {
      const got = await host.transport.get(path, params);
      if (pending !== key) return; // a newer network was asked for meanwhile
      report = got;
      article.dataset.ready = 'true';
      article.classList.remove('stale');
      status.textContent = `${network(params)}: ${render(got)}`;
      if (visible) draw(got);
    } catch (e) {
      if (pending !== key) return;
      shownKey = null;
      status.textContent = `could not measure this network: ${e.message}`;
      status.classList.add('error');
    } finally {
      if (pending === key) article.removeAttribute('aria-busy');
    }
  }

  button.addEventListener('click', () => measure(true));
  return {
    show() {
      visible = true;
      if (report) draw(report);
      measure();
    },
    hide() { visible = false; },
    measure,
  };
}
