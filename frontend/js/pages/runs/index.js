// The Runs page: every stored run (history), and runs compared side by side.
// URL: page=runs&runs.compare=ID,ID&runs.source=live&runs.name=text
import { CompareView } from './compare.js';
import { HistoryView } from './history.js';

export function mount(root, host) {
  let params = {};
  const setParams = (changes) => {
    params = { ...params, ...changes };
    host.setParams(params);
  };
  const history = new HistoryView(root, host, {
    onCompare: (ids) => { // drawn below the list: brought into view, focus on its title
      setParams({ compare: ids.join(',') });
      const bring = () => compare.root.scrollIntoView({ block: 'start' });
      compare.load(ids).then(bring); // again once drawn: the page is taller then
      bring();
      compare.title.focus({ preventScroll: true });
    },
    onFilter: ({ source, name }) => setParams({ source, name }),
  });
  const compare = new CompareView(root, host, {
    onClose: () => { setParams({ compare: undefined }); compare.hide(); },
  });
  return {
    show(next) {
      params = { ...next };
      history.setFilters({ source: params.source || '', name: params.name || '' });
      const ids = (params.compare || '').split(',').filter(Boolean);
      history.setSelected(ids);
      history.pages = []; // shown again: from the newest runs
      history.load(null);
      if (ids.length >= 2) compare.load(ids); else compare.hide();
    },
    hide() {}, // the page keeps no timer or socket: hidden, it does nothing
  };
}
