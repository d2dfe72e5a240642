// Audit log: filters, newest first, expandable detail, keyset paging, export, verify.
import * as api from '../api.js';
import { el, replace, on, uid } from '../dom.js';
import { t, has } from '../i18n.js';
import { timeEl } from '../format.js';
import { loading, errorBox, badge } from '../ui.js';
import { keysetPager, bindFilters } from '../paging.js';

const PAGE = 100;
const filters = { actor: '', action: '', outcome: '', since: '', until: '', q: '' };

// datetime-local value (local time) → RFC3339 UTC, or '' when empty/invalid.
function toRfc3339(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function query() {
  return {
    actor: filters.actor.trim(),
    action: filters.action.trim(),
    outcome: filters.outcome,
    since: toRfc3339(filters.since),
    until: toRfc3339(filters.until),
    q: filters.q.trim(),
  };
}

function outcomeBadge(o) {
  return badge(has('outcome.' + o) ? t('outcome.' + o) : o, o === 'ok' ? 'ok' : o === 'denied' || o === 'pending' ? 'warn' : 'bad');
}

function field(label, input) {
  return el('div', { class: 'field' }, el('label', { for: input.id }, label), input);
}

export function render(root) {
  const ac = new AbortController();
  let disposed = false;
  const offs = [];

  const inputs = {
    actor: el('input', { id: uid('af-actor'), name: 'actor', type: 'text', value: filters.actor, spellcheck: 'false' }),
    action: el('input', { id: uid('af-action'), name: 'action', type: 'text', value: filters.action,
      spellcheck: 'false', placeholder: 'consul.kv.' }),
    outcome: el('select', { id: uid('af-outcome'), name: 'outcome' },
      el('option', { value: '' }, t('audit.any_outcome')),
      ['ok', 'denied', 'error', 'pending'].map((o) => el('option', { value: o }, t('outcome.' + o)))),
    since: el('input', { id: uid('af-since'), name: 'since', type: 'datetime-local', step: '1', value: filters.since }),
    until: el('input', { id: uid('af-until'), name: 'until', type: 'datetime-local', step: '1', value: filters.until }),
    q: el('input', { id: uid('af-q'), name: 'q', type: 'search', value: filters.q }),
  };
  inputs.outcome.value = filters.outcome;

  const csvLink = el('a', { class: 'btn', download: '' }, t('audit.export_csv'));
  const jsonlLink = el('a', { class: 'btn', download: '' }, t('audit.export_jsonl'));
  const verifyBtn = el('button', { type: 'button', class: 'btn', id: 'verify-chain' }, t('audit.verify'));
  const verifyOut = el('div', { class: 'verify-result', 'aria-live': 'polite' });

  const form = el('form', { class: 'filters card', role: 'search', 'aria-label': t('audit.filters') },
    field(t('audit.actor'), inputs.actor),
    field(t('audit.action_prefix'), inputs.action),
    field(t('audit.outcome'), inputs.outcome),
    field(t('audit.since'), inputs.since),
    field(t('audit.until'), inputs.until),
    field(t('audit.text'), inputs.q),
    el('div', { class: 'field field-actions' },
      el('button', { type: 'submit', class: 'btn btn-primary' }, t('audit.apply')),
      el('button', { type: 'reset', class: 'btn' }, t('common.clear_filters'))));

  const tbody = el('tbody');
  const table = el('table', { class: 'table audit-table' },
    el('caption', { class: 'sr-only' }, t('audit.caption')),
    el('thead', null, el('tr', null,
      ['time', 'actor', 'role', 'ip', 'action', 'target', 'outcome', 'detail'].map((k) =>
        el('th', { scope: 'col' }, t('audit.col_' + k))))),
    tbody);
  const status = el('div', { 'aria-live': 'polite' });
  const moreBtn = el('button', { type: 'button', class: 'btn', hidden: true }, t('audit.load_more'));

  replace(root,
    el('div', { class: 'page-head' }, el('h1', null, t('nav.audit')),
      el('div', { class: 'actions' }, csvLink, jsonlLink, verifyBtn)),
    verifyOut,
    form,
    el('div', { class: 'table-wrap card' }, table),
    status,
    el('div', { class: 'actions center' }, moreBtn));

  function updateExportLinks() {
    const q = query();
    csvLink.href = api.urlWithQuery('/api/audit/export', { format: 'csv', ...q });
    jsonlLink.href = api.urlWithQuery('/api/audit/export', { format: 'jsonl', ...q });
  }

  function row(e) {
    const detailId = 'audit-detail-' + e.id;
    const main = el('tr', { class: 'audit-row', dataset: { id: e.id } },
      el('td', { class: 'nowrap' }, timeEl(e.time)),
      el('td', null, e.actor || el('span', { class: 'muted' }, '-')),
      el('td', null, e.role ? t('role.' + e.role) : '-'),
      el('td', null, el('code', null, e.ip || '')),
      el('td', null, el('code', null, e.action)),
      el('td', { class: 'target' }, e.target || ''),
      el('td', null, outcomeBadge(e.outcome)),
      el('td', null, el('button', {
        type: 'button', class: 'btn btn-small detail-toggle', 'aria-expanded': 'false',
        'aria-controls': detailId, dataset: { id: e.id },
      }, t('audit.show'))));
    const detail = el('tr', { class: 'audit-detail', id: detailId, hidden: true },
      el('td', { colspan: '8' },
        el('dl', { class: 'meta' },
          el('dt', null, t('audit.id')), el('dd', null, String(e.id)),
          el('dt', null, t('audit.hash')), el('dd', null, el('code', { class: 'hash' }, e.hash || ''))),
        el('pre', { class: 'detail-json' }, JSON.stringify(e.detail ?? {}, null, 2))));
    return [main, detail];
  }

  const pager = keysetPager({
    path: '/api/audit', key: 'entries', query, rows: row, tbody, status, moreBtn, limit: PAGE,
    countText: (n) => t('audit.count', { n }), noneText: t('audit.none'), signal: ac.signal,
    gone: () => disposed,
  });
  bindFilters(form, inputs, filters, () => {
    updateExportLinks();
    pager.load(true);
  });
  offs.push(on(tbody, 'click', 'button.detail-toggle', (e, b) => {
    const d = document.getElementById(b.getAttribute('aria-controls'));
    const open = b.getAttribute('aria-expanded') !== 'true';
    b.setAttribute('aria-expanded', String(open));
    b.textContent = open ? t('audit.hide') : t('audit.show');
    if (d) d.hidden = !open;
  }));
  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    replace(verifyOut, loading(t('audit.verifying')));
    try {
      const r = await api.get('/api/audit/verify', null, { signal: ac.signal, timeout: 120000 });
      if (disposed) return;
      replace(verifyOut, r.ok
        ? el('div', { class: 'banner banner-ok', role: 'status', dataset: { ok: 'true' } },
          el('strong', null, t('audit.verify_ok')), ' ', t('audit.verify_checked', { n: r.checked }))
        : el('div', { class: 'banner banner-bad', role: 'alert', dataset: { ok: 'false' } },
          el('strong', null, r.first_bad_id
            ? t('audit.verify_bad', { id: r.first_bad_id }) : t('audit.verify_failed')), ' ',
          t('audit.verify_checked', { n: r.checked }), ' ', t('audit.verify_bad_hint'),
          // the server's findings (chain, MACs, anchor), each with its stable code
          el('ul', { class: 'verify-problems' }, ...(r.problems || []).map((p) =>
            el('li', { dataset: { code: p.code } }, p.message)))));
    } catch (err) {
      if (!disposed && err.code !== 'aborted') replace(verifyOut, errorBox(err));
    } finally {
      verifyBtn.disabled = false;
    }
  });

  updateExportLinks();
  pager.load(true);
  return () => {
    disposed = true;
    ac.abort();
    offs.forEach((f) => f());
  };
}
