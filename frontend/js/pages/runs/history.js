// The history: stored runs newest first, filtered and paged; rename, delete, open, pick.
import { fmt } from '../../format.js';
import { describe, h, when } from './dom.js';

const PAGE = 25;
// where stored runs come from (an experiment's result is kept on the Experiments page,
// by config hash, not as runs here)
const SOURCES = ['live', 'headless', 'imported', 'watched'];

export class HistoryView {
  constructor(root, host, { onCompare, onFilter }) {
    this.host = host;
    this.onCompare = onCompare;
    this.onFilter = onFilter;
    this.selected = new Set();
    this.pages = []; // `before` of each page shown so far (null: the newest)
    this.filters = { source: '', name: '' };
    this.source = h('select', { id: 'runs-source', 'aria-label': 'Source',
      onchange: () => this.filtered() },
    h('option', { value: '', text: 'all sources' }),
    SOURCES.map((s) => h('option', { value: s, text: s })));
    this.name = h('input', { id: 'runs-name', type: 'search', placeholder: 'name contains…',
      'aria-label': 'Filter by name' });
    let typing;
    this.name.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.filtered(), 250);
    });
    this.compareButton = h('button', { id: 'runs-compare', type: 'button', disabled: true,
      onclick: () => this.onCompare([...this.selected]) }, 'Compare selected');
    this.newer = h('button', { id: 'runs-newer', type: 'button', onclick: () => this.back() },
      '◀ Newer');
    this.older = h('button', { id: 'runs-older', type: 'button', onclick: () => this.forward() },
      'Older ▶');
    this.count = h('span', { id: 'runs-count', class: 'runs-count', 'aria-live': 'polite' });
    this.body = h('tbody', { id: 'runs-rows' });
    root.append(
      h('p', { class: 'runs-rule', id: 'runs-rule', text: 'Kept here: every run that '
        + 'finished, and any run you paused, stopped, exported or named; a run replaced '
        + 'mid-way by a new setting (a slider drag, a preset) is not kept.' }),
      h('div', { class: 'runs-bar', role: 'group', 'aria-label': 'Filter the runs' },
        this.source, this.name,
        h('button', { type: 'button', onclick: () => this.load(this.before()) }, 'Refresh'),
        this.compareButton, this.newer, this.older, this.count),
      h('table', { class: 'runs-table', id: 'runs-table' },
        h('thead', {}, h('tr', {}, ['', 'name', 'source', 'status', 'created', 'steps',
          'network', 'final loss', 'first NaN/∞', ''].map((t) => h('th', { scope: 'col', text: t })))),
        this.body));
  }

  setFilters({ source = '', name = '' }) {
    this.filters = { source, name };
    this.source.value = source;
    if (document.activeElement !== this.name) this.name.value = name;
  }

  setSelected(ids) {
    this.selected = new Set(ids);
    this.updateButton();
  }

  filtered() {
    this.filters = { source: this.source.value, name: this.name.value.trim() };
    this.onFilter(this.filters);
    this.pages = [];
    this.load(null);
  }

  before() { return this.pages.length ? this.pages[this.pages.length - 1] : null; }

  back() { this.pages.pop(); this.load(this.before(), false); }

  forward() { if (this.next) this.load(this.next); }

  async load(before, push = true) {
    const params = { limit: PAGE };
    if (this.filters.source) params.source = this.filters.source;
    if (this.filters.name) params.name = this.filters.name;
    if (before) params.before = before;
    let list;
    try {
      list = await this.host.transport.get('/api/runs', params);
    } catch (e) {
      this.host.status(`could not list the runs: ${e.message}`);
      return;
    }
    if (push && before && this.before() !== before) this.pages.push(before);
    this.next = list.next;
    this.newer.disabled = !this.pages.length;
    this.older.disabled = !list.next;
    const first = this.pages.length * PAGE;
    this.count.textContent = list.total
      ? `runs ${first + 1}–${first + list.runs.length} of ${list.total}`
      : (this.source.value || this.name.value.trim() ? 'no stored run matches these filters'
        : 'no stored runs');
    this.body.replaceChildren(...list.runs.map((run) => this.row(run)));
  }

  row(run) {
    const s = run.summary || {};
    const bad = s.first_nonfinite;
    const pick = h('input', { type: 'checkbox', 'aria-label': `select ${run.name || run.id}`,
      checked: this.selected.has(run.id) });
    pick.addEventListener('change', () => {
      if (pick.checked) this.selected.add(run.id); else this.selected.delete(run.id);
      this.updateButton();
    });
    const name = h('input', { class: 'run-name', value: run.name || '', placeholder: run.id,
      'aria-label': `name of ${run.id}`, maxlength: 200, title: run.note || null });
    name.addEventListener('change', () => this.rename(run, name));
    const del = h('button', { type: 'button', class: 'run-delete' }, 'Delete');
    del.addEventListener('click', () => this.remove(run, del));
    return h('tr', { 'data-run': run.id, class: `status-${run.status}` },
      h('td', {}, pick),
      h('td', {}, name),
      h('td', { text: run.source }),
      h('td', { text: run.status, title: run.error || '' }),
      h('td', { text: when(run.created) }),
      h('td', { class: 'num', text: String(run.steps) }),
      h('td', { text: describe(run.config) }),
      h('td', { class: 'num', text: s.final_loss === undefined ? '—' : fmt(s.final_loss, 4) }),
      h('td', { class: bad ? 'overflowed' : '', text: bad ? `step ${bad.step}, layer ${bad.layer}` : '—' }),
      h('td', {}, h('div', { class: 'actions' }, // a flex row inside the cell: the cell stays one
        h('button', { type: 'button', class: 'run-open', onclick: () => this.open(run) }, 'Open'),
        h('a', { class: 'button run-export', href: `/api/runs/${encodeURIComponent(run.id)}/export`,
          download: `backproplab-${run.id}.json` }, 'Export'),
        run.steps ? h('a', { class: 'button run-report',
          href: `/api/runs/${encodeURIComponent(run.id)}/report`,
          download: `backproplab-${run.id}.html` }, 'Report') : null,
        del)));
  }

  updateButton() {
    const n = this.selected.size;
    this.compareButton.disabled = n < 2;
    this.compareButton.textContent = n ? `Compare selected (${n})` : 'Compare selected';
  }

  async rename(run, input) {
    try {
      const updated = await this.host.transport.json(`/api/runs/${encodeURIComponent(run.id)}`, {
        method: 'PATCH', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: input.value.trim() || null }) });
      run.name = updated.name;
      this.host.status(updated.name ? `renamed to “${updated.name}”` : 'name cleared');
    } catch (e) {
      this.host.status(`rename failed: ${e.message}`);
    }
  }

  async remove(run, button) {
    if (button.dataset.armed !== 'yes') { // a second click confirms; no modal dialog
      button.dataset.armed = 'yes';
      button.textContent = 'Confirm delete';
      setTimeout(() => { button.dataset.armed = ''; button.textContent = 'Delete'; }, 4000);
      return;
    }
    const response = await fetch(`/api/runs/${encodeURIComponent(run.id)}`, { method: 'DELETE' });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      this.host.status(`delete failed: ${body.detail || response.statusText}`);
      return;
    }
    this.selected.delete(run.id);
    this.updateButton();
    this.host.status(`deleted ${run.name || run.id}`);
    this.load(this.before(), false);
  }

  async open(run) {
    if (run.source === 'watched') { // followed on the Watch page by its id, as it is stored
      await this.host.go('watch', { run: run.id });
      this.host.status(`opened ${run.name || run.id} on the Watch page`);
      return;
    }
    this.host.status(`loading ${run.name || run.id}…`);
    try {
      const record = await this.host.transport.get(`/api/runs/${encodeURIComponent(run.id)}/export`);
      await this.host.openRecord(record, `stored ${run.source} run`);
    } catch (e) {
      this.host.status(`could not open the run: ${e.message}`);
    }
  }
}
