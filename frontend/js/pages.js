// The app grows by pages, not by panels down one page (DESIGN.md): Lab, then one folder
// per page under js/pages/<name>/. A page module exports
//   mount(root, host) -> { show(params), hide() }
// It is imported the first time the page is opened; a hidden page does no work.
// `params` is the page's part of the URL hash (keys written `<page>.<key>`), so a view
// of any page can be shared by its link. `host` is all a page may reach:
//   host.transport            REST and the live socket (js/transport.js)
//   host.state                the one store (read only: pages keep their own state)
//   host.setParams(obj)       replace this page's part of the URL hash
//   host.go(name, params)     open another page
//   host.openRecord(record)   show a stored or imported run record in the Lab (a watched
//                             model's on the Watch page)
//   host.status(text)         the status line in the top bar
export const PAGES = [
  { name: 'lab', title: 'Lab' },
  { name: 'cost', title: 'Cost', module: './pages/cost/index.js' },
  { name: 'runs', title: 'Runs', module: './pages/runs/index.js' },
  { name: 'watch', title: 'Watch', module: './pages/watch/index.js' },
  { name: 'experiments', title: 'Experiments', module: './pages/experiments/index.js' },
];

export function pageNamed(name) {
  return PAGES.find((p) => p.name === name) || PAGES[0];
}

/** Switches pages; each page's root is a <main data-page=name> element. */
export class Pages {
  constructor(nav, container, host, onShow) {
    this.nav = nav;
    this.container = container;
    this.host = host;
    this.onShow = onShow; // (name, visible) for the Lab, which main.js drives itself
    this.current = null;
    this.mounted = new Map(); // name -> {show, hide}
    for (const p of PAGES) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = p.title;
      button.dataset.page = p.name;
      button.addEventListener('click', () => host.go(p.name, {}));
      nav.append(button);
    }
  }

  root(name) {
    let el = this.container.querySelector(`main[data-page="${name}"]`);
    if (!el) {
      el = document.createElement('main');
      el.dataset.page = name;
      el.className = 'page';
      el.id = `page-${name}`;
      el.hidden = true;
      this.container.append(el);
    }
    return el;
  }

  async show(name, params = {}) {
    const page = pageNamed(name);
    if (this.current === null) { // the first page shown: every other one starts hidden
      for (const other of PAGES) {
        if (other.name === page.name) continue;
        this.root(other.name).hidden = true;
        this.onShow(other.name, false);
      }
    }
    if (this.current && this.current !== page.name) {
      this.root(this.current).hidden = true;
      this.mounted.get(this.current)?.hide();
      this.onShow(this.current, false);
    } else if (!this.current && page.name !== 'lab') { // opened on another page: no Lab
      this.root('lab').hidden = true;
      this.onShow('lab', false);
    }
    this.current = page.name;
    for (const b of this.nav.querySelectorAll('button')) {
      if (b.dataset.page === page.name) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    document.body.dataset.page = page.name;
    const root = this.root(page.name);
    root.hidden = false;
    this.onShow(page.name, true);
    if (!page.module) return;
    if (!this.mounted.has(page.name)) {
      const module = await import(page.module);
      this.mounted.set(page.name, module.mount(root, this.host));
    }
    if (this.current === page.name) this.mounted.get(page.name).show(params);
  }
}
