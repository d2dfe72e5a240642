// The plan preview of a job: summary, warnings, every precheck with its result, the steps
// in order with the node each runs on and its exact command, and the unified diff of every
// compose file the job writes. What the approver reads before approving.
import { el } from './dom.js';
import { t } from './i18n.js';
import { badge, empty } from './ui.js';
import { diffView } from './diff.js';

function prechecks(list) {
  if (!list || !list.length) return empty(t('plan.no_prechecks'));
  const failed = list.filter((p) => !p.ok && p.blocking !== false).length;
  const warned = list.filter((p) => !p.ok && p.blocking === false).length;
  const total = list.length;
  return [
    el('p', { class: ['prechecks-summary', failed ? 'bad-text' : warned ? 'warn-text' : 'ok-text'] },
      failed ? t('plan.prechecks_failed', { n: failed, total })
        : warned ? t('plan.prechecks_warned', { n: warned, total }) : t('plan.prechecks_ok', { total })),
    el('div', { class: 'table-wrap' }, el('table', { class: 'table prechecks-table' },
      el('caption', { class: 'sr-only' }, t('plan.prechecks')),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col' }, t('plan.col_check')),
        el('th', { scope: 'col' }, t('plan.col_node')),
        el('th', { scope: 'col' }, t('plan.col_result')),
        el('th', { scope: 'col' }, t('plan.col_message')))),
      el('tbody', null, list.map((p) => el('tr', {
        class: ['precheck', p.ok ? 'precheck-ok' : 'precheck-failed'],
        dataset: { name: p.name, ok: String(!!p.ok) },
      },
      el('th', { scope: 'row' }, el('code', null, p.name)),
      el('td', { class: 'nowrap' }, p.node ? el('code', null, p.node) : el('span', { class: 'muted' }, '-')),
      el('td', { class: 'nowrap' }, p.ok ? badge(t('plan.ok'), 'ok')
        : badge(p.blocking === false ? t('plan.warning') : t('plan.failed'), p.blocking === false ? 'warn' : 'bad')),
      el('td', { class: 'precheck-message' }, p.message || '')))))),
  ];
}

function steps(list) {
  if (!list || !list.length) return empty(t('plan.no_steps'));
  const nodes = [];
  for (const s of list) if (s.node && !nodes.includes(s.node)) nodes.push(s.node);
  return [
    el('p', { class: 'muted' }, t('plan.steps_on', { n: list.length, nodes: nodes.join(', ') || '-' })),
    el('ol', { class: 'plan-steps' }, list.map((s, i) => el('li', { class: 'plan-step', dataset: { node: s.node || '' } },
      el('div', { class: 'plan-step-head' },
        el('span', { class: 'step-no' }, String(i + 1) + '.'),
        s.node ? el('span', { class: 'tag node-tag' }, s.node) : el('span', { class: 'tag node-tag' }, t('plan.local')),
        el('span', { class: 'plan-step-title' }, s.title || '')),
      s.command ? el('pre', { class: 'command' }, el('code', null, s.command))
        // a step on a node without a command is a file written over SFTP
        : s.node ? el('p', { class: 'muted step-how' }, t('plan.sftp_write')) : null))),
  ];
}

function diffs(list) {
  if (!list || !list.length) return empty(t('plan.no_diffs'));
  return list.map((d) => el('div', { class: 'plan-diff', dataset: { node: d.node || '', path: d.path || '' } },
    el('h4', null, el('span', { class: 'tag node-tag' }, d.node || '-'), ' ', el('code', null, d.path || '')),
    diffView(d.diff, t('plan.diff_of', { node: d.node || '-', path: d.path || '' }))));
}

// Returns the plan preview section for a job object; headingId names the element that
// titles it (the page draws the "Plan preview" heading).
export function planPreview(job, headingId) {
  const plan = job.plan || {};
  const warnings = plan.warnings || [];
  return el('section', { class: 'card plan', 'aria-labelledby': headingId || null },
    plan.summary ? el('p', { class: 'plan-summary' }, plan.summary) : null,
    warnings.length ? el('ul', { class: 'plan-warnings' }, warnings.map((w) =>
      el('li', { class: 'plan-warning', role: 'note' }, el('strong', null, t('plan.warning')), ' ', w))) : null,
    el('h3', null, t('plan.prechecks')),
    prechecks(job.prechecks),
    el('h3', null, t('plan.steps')),
    steps(plan.steps),
    el('h3', null, t('plan.diffs')),
    diffs(plan.diffs));
}
