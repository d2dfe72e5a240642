// Jobs (#/jobs): the queue (running, queued and awaiting approval, live) and the history
// with filters (state, type, node) and keyset paging like the audit page. #/jobs?node=NAME
// opens the history filtered to one node.
import * as api from '../api.js';
import { el, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { subscribe } from '../events.js';
import { can } from '../session.js';
import { timeEl } from '../format.js';
import { loading, errorBox, empty } from '../ui.js';
import { keysetPager, bindFilters } from '../paging.js';
import { JOB_STATES, JOB_TYPES, stateBadge, stateText, typeText, strategyText, jobLink } from '../jobs_ui.js';

const PAGE = 50;
const ACTIVE = ['running', 'queued', 'awaiting_approval'];
const filters = { state: '', type: '', node: '' };

function field(label, input) {
  return el('div', { class: 'field' }, el('label', { for: input.id }, label), input);
}

// The cells of a job's row, each with its column's name for narrow screens (.stack-table).
function cells(j) {
  const c = (tag, col, attrs, ...content) => el(tag, { ...attrs, dataset: { label: t('jobs.col_' + col) } }, ...content);
  return [
    c('th', 'id', { scope: 'row' }, jobLink(j.id)),
    c('td', 'type', null, typeText(j.type)),
    c('td', 'node', { class: 'nowrap' }, j.node ? el('code', null, j.node) : '-'),
    c('td', 'strategy', null, strategyText(j.strategy)),
    c('td', 'state', null, stateBadge(j.state)),
    c('td', 'requested', null, j.requested_by || '-', el('br'), el('span', { class: 'muted small' }, timeEl(j.requested_at))),
    c('td', 'decided', null, j.approved_by || j.rejected_by || el('span', { class: 'muted' }, '-')),
    c('td', 'ended', { class: 'nowrap' }, j.ended_at ? timeEl(j.ended_at) : el('span', { class: 'muted' }, '-')),
    c('td', 'reason', { class: 'job-reason' }, j.reason || ''),
  ];
}

function row(j) {
  return el('tr', { class: 'job-row', dataset: { id: j.id, state: j.state } }, cells(j));
}

function table(caption, body) {
  return el('div', { class: 'table-wrap' }, el('table', { class: 'table jobs-table stack-table' },
    el('caption', { class: 'sr-only' }, caption),
    el('thead', null, el('tr', null, ['id', 'type', 'node', 'strategy', 'state', 'requested', 'decided', 'ended', 'reason']
      .map((k) => el('th', { scope: 'col' }, t('jobs.col_' + k))))),
    body));
}

export function render(root, params) {
  const ac = new AbortController();
  let disposed = false;
  let queueTimer = null;
  const offs = [];
  const q = params.query || new URLSearchParams();
  for (const k of Object.keys(filters)) if (q.has(k)) filters[k] = q.get(k);

  const inputs = {
    state: el('select', { id: uid('jf-state'), name: 'state' }, el('option', { value: '' }, t('jobs.any')),
      JOB_STATES.map((s) => el('option', { value: s }, stateText(s)))),
    type: el('select', { id: uid('jf-type'), name: 'type' }, el('option', { value: '' }, t('jobs.any')),
      JOB_TYPES.map((s) => el('option', { value: s }, typeText(s)))),
    node: el('input', { id: uid('jf-node'), name: 'node', type: 'text', spellcheck: 'false', autocomplete: 'off',
      list: 'jf-nodes', value: filters.node }),
  };
  inputs.state.value = filters.state;
  inputs.type.value = filters.type;
  const nodeList = el('datalist', { id: 'jf-nodes' });

  const form = el('form', { class: 'filters card', role: 'search', 'aria-label': t('jobs.filters') },
    field(t('jobs.state'), inputs.state),
    field(t('jobs.type'), inputs.type),
    field(t('jobs.node'), inputs.node), nodeList,
    el('div', { class: 'field field-actions' },
      el('button', { type: 'submit', class: 'btn btn-primary' }, t('audit.apply')),
      el('button', { type: 'reset', class: 'btn' }, t('common.clear_filters'))));

  const queueSlot = el('div', null, loading());
  const tbody = el('tbody');
  const status = el('div', { 'aria-live': 'polite' });
  const moreBtn = el('button', { type: 'button', class: 'btn', hidden: true }, t('audit.load_more'));

  replace(root,
    el('div', { class: 'page-head' }, el('h1', null, t('nav.jobs')),
      el('div', { class: 'actions' }, can('operator')
        ? el('a', { class: 'btn btn-primary', href: '#/jobs/new', id: 'new-change' }, t('jobs.new_change')) : null)),
    el('section', { class: 'card jobs-queue', 'aria-labelledby': 'queue-h' },
      el('h2', { id: 'queue-h' }, t('jobs.queue')), queueSlot),
    el('h2', null, t('jobs.history')),
    form,
    el('div', { class: 'card jobs-history' }, table(t('jobs.history_caption'), tbody)),
    status,
    el('div', { class: 'actions center' }, moreBtn));

  async function loadQueue() {
    try {
      const lists = await Promise.all(ACTIVE.map((s) => api.get('/api/jobs', { state: s, limit: 100 }, { signal: ac.signal })));
      if (disposed) return;
      const jobs = lists.flatMap((r) => r.jobs || []);
      replace(queueSlot, jobs.length
        ? table(t('jobs.queue'), el('tbody', null, jobs.map(row)))
        : empty(t('jobs.queue_empty')));
    } catch (err) {
      if (!disposed && err.code !== 'aborted') replace(queueSlot, errorBox(err));
    }
  }

  function query() {
    return { state: filters.state, type: filters.type, node: filters.node.trim() };
  }

  function matches(j) {
    const f = query();
    return (!f.state || j.state === f.state) && (!f.type || j.type === f.type) && (!f.node || j.node === f.node);
  }

  const pager = keysetPager({
    path: '/api/jobs', key: 'jobs', query, rows: row, tbody, status, moreBtn, limit: PAGE,
    countText: (n) => t('jobs.count', { n }), noneText: t('jobs.none'), signal: ac.signal,
    gone: () => disposed,
  });
  bindFilters(form, inputs, filters, () => pager.load(true));

  // A job changed: its history row follows, a new one that matches the filters comes on
  // top, and the queue is fetched again (once per burst).
  offs.push(subscribe('job', (j) => {
    if (!j || j.id === undefined) return;
    const old = tbody.querySelector(`tr[data-id="${CSS.escape(String(j.id))}"]`);
    if (old) {
      old.dataset.state = j.state;
      replace(old, cells(j));
    } else if (matches(j)) {
      const top = tbody.firstElementChild;
      if (!top || Number(top.dataset.id) < Number(j.id)) {
        tbody.prepend(row(j));
        pager.added(1);
      }
    }
    clearTimeout(queueTimer);
    queueTimer = setTimeout(loadQueue, 300);
  }));

  api.get('/api/nodes', null, { signal: ac.signal }).then((r) => {
    if (!disposed) replace(nodeList, (r.nodes || []).map((n) => el('option', { value: n.name })));
  }).catch(() => { /* the filter still takes a typed name */ });
  loadQueue();
  pager.load(true);
  return () => {
    disposed = true;
    ac.abort();
    clearTimeout(queueTimer);
    offs.forEach((f) => f());
  };
}
