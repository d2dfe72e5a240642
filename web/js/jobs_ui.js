// Labels and badges shared by the jobs list, the job page and the wizard: job states,
// types, strategies and step states, translated, with a fallback to the raw value for a
// value this page does not know yet.
import { el } from './dom.js';
import { t, has } from './i18n.js';
import { badge } from './ui.js';

export const JOB_STATES = ['awaiting_approval', 'queued', 'running', 'succeeded', 'failed', 'cancelled',
  'rolled_back', 'rejected', 'interrupted'];
export const JOB_TYPES = ['node-add', 'node-remove', 'rollback', 'diagnose'];
// A job in one of these states changes no more.
export const FINISHED = new Set(['succeeded', 'failed', 'cancelled', 'rolled_back', 'rejected', 'interrupted']);

const STATE_KIND = {
  awaiting_approval: 'warn', queued: 'info', running: 'info', succeeded: 'ok', failed: 'bad',
  cancelled: 'muted', rolled_back: 'warn', rejected: 'muted', interrupted: 'bad',
  pending: 'muted', skipped: 'muted',
};

function label(prefix, value) {
  const v = String(value ?? '');
  return has(prefix + v) ? t(prefix + v) : v;
}

export function stateText(s) {
  return label('job.state.', s);
}

export function typeText(type) {
  return label('job.type.', type);
}

export function strategyText(s) {
  return s ? label('job.strategy.', s) : '-';
}

export function stateBadge(s) {
  const b = badge(stateText(s), STATE_KIND[s] || 'muted');
  b.classList.add('job-state');
  b.dataset.state = String(s ?? '');
  return b;
}

export function stepStateBadge(s) {
  const b = badge(label('job.step_state.', s), STATE_KIND[s] || 'muted');
  b.classList.add('step-state');
  b.dataset.state = String(s ?? '');
  return b;
}

// A link to a job page: "#12".
export function jobLink(id) {
  return el('a', { href: '#/jobs/' + encodeURIComponent(id), class: 'job-link' }, '#' + id);
}
