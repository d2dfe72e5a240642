// Health checks: counts, client-side filters, failing first. Live from "health".
import * as api from '../api.js';
import { el, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { subscribe, publish, lastEvent } from '../events.js';
import { loading, errorBox, badge, empty } from '../ui.js';

const ORDER = { critical: 0, warning: 1, maintenance: 2, passing: 3 };
const KIND = { critical: 'bad', warning: 'warn', maintenance: 'muted', passing: 'ok' };
const STATUSES = ['critical', 'warning', 'maintenance', 'passing'];

// Filters survive navigation within the session.
const filters = { node: '', service: '', status: '' };

function checkCard(c) {
  return el('li', { class: ['check', 'check-' + c.status], dataset: { node: c.node, status: c.status } },
    el('div', { class: 'check-head' },
      badge(t('check.' + c.status), KIND[c.status] || 'muted'),
      el('strong', { class: 'check-name' }, c.name || c.check_id),
      el('span', { class: 'muted' }, ' · ', t('health.node'), ' ', el('code', null, c.node || '-')),
      c.service_name ? el('span', { class: 'muted' }, ' · ', t('health.service'), ' ',
        el('code', null, c.service_name), c.service_id && c.service_id !== c.service_name
          ? ` (${c.service_id})` : '') : null,
      c.type ? el('span', { class: 'muted' }, ' · ', c.type) : null),
    (c.service_tags && c.service_tags.length)
      ? el('div', { class: 'tags' }, c.service_tags.map((tag) => el('span', { class: 'tag' }, tag))) : null,
    c.notes ? el('p', { class: 'check-notes' }, c.notes) : null,
    c.output ? el('pre', { class: 'check-output' }, c.output) : el('p', { class: 'muted' }, t('health.no_output')),
    el('p', { class: 'check-id muted' }, t('health.check_id'), ' ', el('code', null, c.check_id || '')));
}

export function render(root) {
  let data = null;
  const counts = el('div', { class: 'stats' });
  const list = el('div', { class: 'checks' }, loading());
  const nodeId = uid('hf-node');
  const svcId = uid('hf-svc');
  const stId = uid('hf-status');
  const nodeSel = el('select', { id: nodeId, name: 'node' });
  const svcInput = el('input', { id: svcId, name: 'service', type: 'search', value: filters.service,
    placeholder: t('health.service_placeholder') });
  const stSel = el('select', { id: stId, name: 'status' },
    el('option', { value: '' }, t('health.all_statuses')),
    el('option', { value: 'failing' }, t('health.failing_only')),
    STATUSES.map((s) => el('option', { value: s }, t('check.' + s))));
  stSel.value = filters.status;
  const form = el('form', { class: 'filters card', role: 'search' },
    el('div', { class: 'field' }, el('label', { for: nodeId }, t('health.node')), nodeSel),
    el('div', { class: 'field' }, el('label', { for: svcId }, t('health.service')), svcInput),
    el('div', { class: 'field' }, el('label', { for: stId }, t('health.status')), stSel),
    el('div', { class: 'field field-actions' },
      el('button', { type: 'reset', class: 'btn' }, t('common.clear_filters'))));
  const summary = el('p', { class: 'muted', 'aria-live': 'polite' });

  replace(root, el('h1', null, t('nav.health')), counts, form, summary, list);

  function fillNodes() {
    const nodes = Array.from(new Set((data.checks || []).map((c) => c.node).filter(Boolean))).sort();
    if (filters.node && !nodes.includes(filters.node)) nodes.unshift(filters.node);
    replace(nodeSel, el('option', { value: '' }, t('health.all_nodes')),
      nodes.map((n) => el('option', { value: n }, n)));
    nodeSel.value = filters.node;
  }

  function draw() {
    if (!data) return;
    const c = data.counts || {};
    replace(counts, STATUSES.map((s) => el('div', { class: ['stat', c[s] && s !== 'passing' ? 'stat-' + KIND[s] : s === 'passing' ? 'stat-ok' : ''] },
      el('div', { class: 'stat-label' }, t('check.' + s)),
      el('div', { class: 'stat-value' }, String(c[s] ?? 0)))));
    const svc = filters.service.trim().toLowerCase();
    const shown = (data.checks || []).filter((ch) => {
      if (filters.node && ch.node !== filters.node) return false;
      if (filters.status === 'failing' && !(ch.status === 'critical' || ch.status === 'warning')) return false;
      if (filters.status && filters.status !== 'failing' && ch.status !== filters.status) return false;
      if (svc && !(`${ch.service_name || ''} ${ch.service_id || ''}`.toLowerCase().includes(svc))) return false;
      return true;
    }).sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9));
    summary.textContent = t('health.showing', { n: shown.length, total: (data.checks || []).length });
    if (!shown.length) {
      replace(list, empty((data.checks || []).length ? t('health.no_match') : t('health.no_checks')));
    } else {
      replace(list, el('ul', { class: 'check-list' }, shown.map(checkCard)));
    }
  }

  form.addEventListener('input', () => {
    filters.node = nodeSel.value;
    filters.service = svcInput.value;
    filters.status = stSel.value;
    draw();
  });
  form.addEventListener('change', () => form.dispatchEvent(new Event('input')));
  form.addEventListener('submit', (e) => e.preventDefault());
  form.addEventListener('reset', () => {
    setTimeout(() => {
      filters.node = '';
      filters.service = '';
      filters.status = '';
      nodeSel.value = '';
      draw();
    });
  });

  const show = (d) => {
    data = d;
    fillNodes();
    draw();
  };
  const cached = lastEvent('health');
  if (cached) show(cached);
  const unsub = subscribe('health', show);
  const ac = new AbortController();
  api.get('/api/health', null, { signal: ac.signal }).then((d) => publish('health', d)).catch((err) => {
    if (err.code === 'aborted') return;
    if (!data) replace(list, errorBox(err));
  });
  return () => {
    ac.abort();
    unsub();
  };
}
