// The Cost page: what a training step costs, a view per question (compiled vs eager;
// more views join VIEWS). Each view: mount(el, host) -> { show(params), hide() }.
import { mountCompiled } from './compiled.js';

const VIEWS = [
  { name: 'compiled', title: 'Compiled vs eager',
    subtitle: 'the JAX training step of the Lab’s network under XLA, and op by op',
    mount: mountCompiled },
];

export function mount(root, host) {
  root.classList.add('cost');
  const grid = document.createElement('section');
  grid.className = 'views cost-views';
  root.append(grid);
  const views = VIEWS.map((v) => {
    const article = document.createElement('article');
    article.className = 'view wide';
    article.id = `view-${v.name}`;
    const h2 = document.createElement('h2');
    h2.textContent = `${v.title} `;
    const small = document.createElement('small');
    small.textContent = v.subtitle;
    h2.append(small);
    article.append(h2);
    grid.append(article);
    return v.mount(article, host);
  });
  return {
    show(params) { for (const v of views) v.show(params); },
    hide() { for (const v of views) v.hide(); },
  };
}
