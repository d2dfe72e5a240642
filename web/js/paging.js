// Newest-first lists with filters and keyset paging (the audit log, the jobs): the first
// page, then "Load more" asking for what comes before the answer's next_before_id, with a
// count or an empty text under the table.
import * as api from './api.js';
import { el, replace } from './dom.js';
import { loading, errorBox, empty } from './ui.js';

// path: the API list; key: the answer's array ("entries", "jobs"); query(): the filters;
// rows(item): the <tr> (or several) for one item; tbody, status, moreBtn: where they go;
// countText(n), noneText: what the status says; limit; signal; gone(): true once the page
// has left. Returns { load(reset), added(n) } (added: rows put in by the caller).
export function keysetPager({ path, key, query, rows, tbody, status, moreBtn, countText, noneText, limit, signal, gone }) {
  let nextBefore = null;
  let count = 0;

  function say() {
    replace(status, count ? el('p', { class: 'muted' }, countText(count)) : empty(noneText));
  }

  async function load(reset) {
    if (reset) {
      replace(tbody);
      count = 0;
      nextBefore = null;
    }
    moreBtn.hidden = true;
    replace(status, loading());
    try {
      const res = await api.get(path, { ...query(), limit, before_id: reset ? '' : nextBefore }, { signal });
      if (gone()) return;
      const items = res[key] || [];
      for (const it of items) {
        const r = rows(it);
        tbody.append(...(Array.isArray(r) ? r : [r]));
      }
      count += items.length;
      nextBefore = res.next_before_id ?? null;
      moreBtn.hidden = nextBefore === null;
      say();
    } catch (err) {
      if (err.code === 'aborted' || gone()) return;
      replace(status, errorBox(err));
      moreBtn.hidden = nextBefore === null;
    }
  }

  moreBtn.addEventListener('click', () => load(false));
  return {
    load,
    added(n) {
      count += n;
      say();
    },
  };
}

// Wires a filter form: submitting copies the inputs into filters, resetting clears both;
// either then calls changed().
export function bindFilters(form, inputs, filters, changed) {
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    for (const k of Object.keys(filters)) filters[k] = inputs[k].value;
    changed();
  });
  form.addEventListener('reset', () => {
    // After the browser's own reset, which would restore the initial values.
    setTimeout(() => {
      for (const k of Object.keys(filters)) {
        filters[k] = '';
        inputs[k].value = '';
      }
      changed();
    });
  });
}
