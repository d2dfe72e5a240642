// One job (#/jobs/<id>): its state, who requested, approved or rejected it and why, the
// plan preview, the steps with each node's status, and the live log. The approve, reject,
// cancel and rollback buttons follow the job's "can" (computed by the server for this user;
// the server decides again on every request). Live from the "job" and "job_log" events;
// after a resync or a reconnect the job and the missed log lines are fetched again.
import * as api from '../api.js';
import { el, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { subscribe, onStatus } from '../events.js';
import { timeEl, duration } from '../format.js';
import { loading, errorBox, okBox, badge, confirmDialog } from '../ui.js';
import { stateBadge, stepStateBadge, typeText, strategyText, jobLink, FINISHED } from '../jobs_ui.js';
import { planPreview } from '../plan.js';
import { jobLog } from '../joblog.js';

const REFETCH_MS = 1500; // at most one job refetch this often while log lines flow

function who(name, at) {
  if (!name) return el('span', { class: 'muted' }, '-');
  return [el('strong', null, name), at ? [' · ', timeEl(at)] : null];
}

function pair(label, value, key) {
  return [el('dt', null, label), el('dd', { dataset: { field: key } }, value)];
}

function prechecksFailed(job) {
  return (job.prechecks || []).some((p) => !p.ok && p.blocking !== false);
}

function stateBanner(job) {
  const s = job.state;
  const r = job.result || {};
  let kind = 'info';
  let text;
  if (s === 'awaiting_approval') {
    kind = 'warn';
    text = t('job.banner.awaiting_approval', { user: job.requested_by || '-' });
  } else if (s === 'failed' && prechecksFailed(job) && !(job.steps || []).some((x) => x.started_at)) {
    kind = 'bad';
    text = t('job.banner.prechecks_failed');
  } else if (s === 'failed') {
    kind = 'bad';
    text = t('job.banner.failed');
  } else if (s === 'succeeded' && job.type === 'diagnose') {
    // read-only: no gate ran; what matters is what it found
    const n = Array.isArray(r.findings) ? r.findings.length : 0;
    kind = n ? 'warn' : 'ok';
    text = n ? t('job.banner.diagnosed', { n }) : t('job.banner.diagnosed_none');
  } else if (s === 'succeeded') {
    kind = 'ok';
    text = t('job.banner.succeeded');
  } else if (s === 'rejected') {
    kind = 'muted';
    text = t('job.banner.rejected', { user: job.rejected_by || '-' });
  } else if (['queued', 'running', 'cancelled', 'rolled_back', 'interrupted'].includes(s)) {
    kind = s === 'interrupted' ? 'bad' : s === 'rolled_back' ? 'warn' : s === 'cancelled' ? 'muted' : 'info';
    text = t('job.banner.' + s);
  } else {
    return null;
  }
  return el('div', { class: ['job-banner', 'job-banner-' + kind], role: 'status', dataset: { state: s } },
    el('strong', null, text),
    r.error ? el('p', { class: 'job-error' }, t('job.error'), ' ', el('span', { class: 'mono' }, r.error)) : null,
    s === 'rejected' && job.decision_comment
      ? el('p', null, t('job.comment'), ' ', el('q', { class: 'decision-comment' }, job.decision_comment)) : null);
}

function details(job) {
  const r = job.result || {};
  const o = job.options || {};
  const opts = [];
  if (o.fix_trap) opts.push(badge(t('job.opt_fix_trap'), 'warn'));
  if (o.node_gone) opts.push(badge(t('job.opt_node_gone'), 'bad'));
  const started = job.started_at ? Date.parse(job.started_at) : NaN;
  const ended = job.ended_at ? Date.parse(job.ended_at) : NaN;
  return el('section', { class: 'card job-details', 'aria-label': t('job.details') },
    el('dl', { class: 'job-meta' },
      pair(t('job.type'), typeText(job.type), 'type'),
      pair(t('job.node'), job.node ? el('code', null, job.node) : '-', 'node'),
      pair(t('job.strategy'), strategyText(job.strategy), 'strategy'),
      job.target_job ? pair(t('job.target_job'), jobLink(job.target_job), 'target_job') : null,
      pair(t('job.reason'), job.reason || el('span', { class: 'muted' }, '-'), 'reason'),
      pair(t('job.requested'), who(job.requested_by, job.requested_at), 'requested'),
      job.approved_by ? pair(t('job.approved'), who(job.approved_by, job.approved_at), 'approved') : null,
      job.rejected_by ? pair(t('job.rejected'), who(job.rejected_by, job.rejected_at), 'rejected') : null,
      job.decision_comment ? pair(t('job.comment'), el('q', { class: 'decision-comment' }, job.decision_comment), 'comment') : null,
      job.cancelled_by ? pair(t('job.cancelled'), who(job.cancelled_by), 'cancelled') : null,
      pair(t('job.started'), job.started_at ? timeEl(job.started_at) : el('span', { class: 'muted' }, '-'), 'started'),
      pair(t('job.ended'), job.ended_at ? timeEl(job.ended_at) : el('span', { class: 'muted' }, '-'), 'ended'),
      !Number.isNaN(started) ? pair(t('job.duration'), duration((Number.isNaN(ended) ? Date.now() : ended) - started), 'duration') : null,
      opts.length ? pair(t('job.options'), el('span', { class: 'tags' }, opts), 'options') : null,
      typeof r.leaderless_s === 'number' ? pair(t('job.leaderless'), t('job.leaderless_s', { n: r.leaderless_s }), 'leaderless') : null,
      r.gate ? pair(t('job.gate'), gateReport(r.gate), 'gate') : null));
}

// The last gate's report as a sentence (what it found, how long it took), the raw report
// folded under it for whoever wants every field.
function gateReport(g) {
  const s = ((g.elapsed_ms || 0) / 1000).toFixed(1);
  const text = g.passed
    ? t('job.gate_passed', { s, servers: g.servers, leader: g.leader || '-', rounds: g.rounds })
    : t('job.gate_failed', { s, reason: g.reason || '-' });
  return el('div', { class: 'gate-report' },
    el('span', { class: g.passed ? 'gate-ok' : 'gate-bad' }, text),
    el('details', { class: 'gate-raw' }, el('summary', null, t('job.gate_raw')),
      el('pre', { class: 'gate-json' }, JSON.stringify(g, null, 2))));
}

// Each node's status summed up from its steps.
function nodeStatus(steps) {
  if (steps.some((s) => s.state === 'failed')) return 'failed';
  if (steps.some((s) => s.state === 'running')) return 'running';
  if (steps.every((s) => s.state === 'succeeded' || s.state === 'skipped')) return 'succeeded';
  if (steps.some((s) => s.state === 'rolled_back')) return 'rolled_back';
  if (steps.some((s) => s.state === 'cancelled')) return 'cancelled';
  return 'pending';
}

function stepsSection(job) {
  const steps = job.steps || [];
  if (!steps.length) return null;
  const byNode = new Map();
  for (const s of steps) {
    const n = s.node || t('plan.local');
    if (!byNode.has(n)) byNode.set(n, []);
    byNode.get(n).push(s);
  }
  const done = (list) => list.filter((s) => s.state === 'succeeded' || s.state === 'skipped').length;
  return el('section', { class: 'card job-steps', 'aria-labelledby': 'steps-h' },
    el('h2', { id: 'steps-h' }, t('job.steps')),
    el('ul', { class: 'node-status' }, Array.from(byNode, ([n, list]) =>
      el('li', { class: 'node-status-item', dataset: { node: n, state: nodeStatus(list) } },
        el('code', null, n), ' ', stepStateBadge(nodeStatus(list)), ' ',
        el('span', { class: 'muted' }, t('job.steps_done', { done: done(list), n: list.length }))))),
    el('div', { class: 'table-wrap' }, el('table', { class: 'table steps-table' },
      el('caption', { class: 'sr-only' }, t('job.steps')),
      el('thead', null, el('tr', null, ['seq', 'node', 'step', 'state', 'exit', 'started', 'ended'].map((k) =>
        el('th', { scope: 'col' }, t('job.col_' + k))))),
      el('tbody', null, steps.map((s) => el('tr', { class: 'step', dataset: { seq: s.seq, node: s.node || '', state: s.state } },
        el('td', null, String(s.seq ?? '')),
        el('td', { class: 'nowrap' }, s.node ? el('code', null, s.node) : el('span', { class: 'muted' }, t('plan.local'))),
        el('td', { class: 'step-what' }, el('div', null, s.title || ''),
          s.command ? el('code', { class: 'step-command' }, s.command) : null),
        el('td', null, stepStateBadge(s.state)),
        el('td', { class: ['exit', typeof s.exit_status === 'number' && s.exit_status !== 0 ? 'exit-bad' : ''] },
          s.exit_status === null || s.exit_status === undefined ? '-' : String(s.exit_status)),
        el('td', { class: 'nowrap' }, s.started_at ? timeEl(s.started_at) : '-'),
        el('td', { class: 'nowrap' }, s.ended_at ? timeEl(s.ended_at) : '-')))))));
}

// The finding codes of server/procedures_diag.c with a translated title; the message (the
// server's, in English) says the details.
const FINDINGS = ['backslash_trap', 'compose_broken', 'compose_invalid', 'compose_missing', 'consul_not_running',
  'extra_arguments', 'no_single_leader', 'node_name_conflict', 'not_in_raft', 'raft_unavailable'];

// What a diagnose job found, each with its explanation and, where there is one, the fix.
function findingsSection(job) {
  const f = (job.result || {}).findings;
  if (!Array.isArray(f) || job.type !== 'diagnose') return null;
  return el('section', { class: 'card job-findings', 'aria-labelledby': 'findings-h' },
    el('h2', { id: 'findings-h' }, t('job.findings')),
    f.length ? el('ul', { class: 'findings' }, f.map((x) =>
      el('li', { class: 'finding', dataset: { code: x.code || '' } },
        el('strong', { class: 'finding-title' }, FINDINGS.includes(x.code) ? t('finding.' + x.code) : x.code || ''), ' ',
        el('code', { class: 'muted' }, x.code || ''), el('div', { class: 'finding-message' }, x.message || ''),
        x.fix ? el('div', null, el('span', { class: 'muted' }, t('job.finding_fix')),
          el('pre', { class: 'finding-fix' }, x.fix)) : null)))
      : el('p', { class: 'muted' }, t('job.findings_none')));
}

function commentField(required, label) {
  const id = uid('comment');
  const area = el('textarea', { id, name: 'comment', rows: '3', required, maxlength: '1000' });
  return { area, node: el('div', { class: 'field' }, el('label', { for: id }, label), area) };
}

export function render(root, params) {
  const id = params.path;
  const base = '/api/jobs/' + encodeURIComponent(id);
  const ac = new AbortController();
  const offs = [];
  let job = null;
  let disposed = false;
  let planKey = null;
  let planOpen = null; // the person's choice once they toggle it
  let refetchTimer = null;
  let lastRefetch = 0;

  const title = el('h1', null, t('job.title', { id }));
  const stateSlot = el('span', { class: 'job-head-state' });
  const actions = el('div', { class: 'actions job-actions', role: 'group', 'aria-label': t('job.actions') });
  const bannerSlot = el('div');
  const notice = el('div', { 'aria-live': 'polite' });
  let noticeState = null; // the job's state when the notice's confirmation was shown
  // Shows the confirmation of a decision or a cancel until the job moves on (see draw).
  function confirmed(key) {
    replace(notice, okBox(t(key, { id: job.id })));
    noticeState = job.state;
  }
  const detailSlot = el('div', null, loading());
  const planWrap = el('details', { class: 'plan-wrap' }, el('summary', null, el('h2', { id: 'plan-h' }, t('plan.title'))));
  const planSlot = el('div');
  planWrap.append(planSlot);
  planWrap.hidden = true;
  const stepsSlot = el('div');
  const findingsSlot = el('div');
  const log = jobLog(id, ac.signal);
  log.node.hidden = true;

  replace(root,
    el('p', { class: 'back-link' }, el('a', { href: '#/jobs' }, t('job.back'))),
    el('div', { class: 'page-head' }, el('div', { class: 'job-head' }, title, stateSlot), actions),
    bannerSlot, notice, detailSlot, findingsSlot, planWrap, stepsSlot, log.node);

  let autoSet = null; // what draw() last set, so its own toggle is not taken for the person's
  planWrap.addEventListener('toggle', () => {
    if (planWrap.open === autoSet) {
      autoSet = null;
      return;
    }
    if (job) planOpen = planWrap.open;
  });

  function drawActions() {
    const c = (job && job.can) || {};
    replace(actions,
      c.approve ? el('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'approve' } }, t('job.approve')) : null,
      c.reject ? el('button', { type: 'button', class: 'btn btn-danger', dataset: { action: 'reject' } }, t('job.reject')) : null,
      c.cancel ? el('button', { type: 'button', class: 'btn btn-danger', dataset: { action: 'cancel' } }, t('job.cancel')) : null,
      c.rollback ? el('button', { type: 'button', class: 'btn', dataset: { action: 'rollback' } }, t('job.rollback')) : null);
  }

  function draw() {
    // A confirmation ("approved job #1") belongs to the state it was given in: once the job
    // has moved on, the state banner says what matters and the notice goes.
    if (noticeState !== null && job.state !== noticeState) {
      replace(notice);
      noticeState = null;
    }
    replace(stateSlot, stateBadge(job.state));
    title.textContent = t('job.title_full', { id: job.id, type: typeText(job.type), node: job.node || '-' });
    document.title = title.textContent + ' · Consulate';
    drawActions();
    replace(bannerSlot, stateBanner(job));
    replace(detailSlot, details(job));
    const key = JSON.stringify([job.plan || null, job.prechecks || null]);
    if (key !== planKey && (job.plan || job.prechecks)) {
      planKey = key;
      replace(planSlot, planPreview(job, 'plan-h'));
    }
    planWrap.hidden = planKey === null;
    // Open while the plan is what matters (before the run, or when prechecks stopped it).
    const started = (job.steps || []).some((s) => s.started_at) || job.state === 'running';
    const want = planOpen ?? !started;
    if (planWrap.open !== want) {
      autoSet = want;
      planWrap.open = want;
    }
    replace(stepsSlot, stepsSection(job));
    replace(findingsSlot, findingsSection(job));
  }

  let loadSeq = 0;
  async function load() {
    const seq = ++loadSeq;
    try {
      const j = await api.get(base, null, { signal: ac.signal });
      if (disposed || seq !== loadSeq) return; // a newer answer is on its way
      const firstTime = !job;
      job = j;
      draw();
      if (firstTime) {
        log.node.hidden = false;
        log.start(j.log_lines || 0);
      }
    } catch (err) {
      if (disposed || err.code === 'aborted' || seq !== loadSeq) return;
      if (!job) replace(detailSlot, errorBox(err));
      else replace(notice, errorBox(err));
    }
  }

  // A refetch soon, at most one per REFETCH_MS (steps change while the log flows).
  function refetchSoon(delay) {
    if (refetchTimer || disposed) return;
    const wait = Math.max(delay ?? 0, lastRefetch + REFETCH_MS - Date.now(), 0);
    refetchTimer = setTimeout(() => {
      refetchTimer = null;
      lastRefetch = Date.now();
      load();
    }, wait);
  }

  offs.push(subscribe('job', (j) => {
    if (!job || String(j.id) !== String(id)) return;
    const changed = j.state !== job.state;
    // The event has no plan, steps or prechecks: keep ours. Its "can" is not for this
    // user: hide the buttons until the refetch says again.
    job = { ...job, ...j, plan: job.plan, steps: job.steps, prechecks: job.prechecks, can: changed ? {} : job.can };
    draw();
    refetchSoon(changed ? 0 : undefined);
  }));
  offs.push(subscribe('job_log', (e) => {
    if (String(e.job) !== String(id)) return;
    log.push(e);
    if (job && !FINISHED.has(job.state)) refetchSoon();
  }));
  offs.push(subscribe('resync', () => {
    load();
    log.resync();
  }));
  let wasLive = true;
  offs.push(onStatus((s) => {
    if (s === 'live' && !wasLive && job) {
      load();
      log.resync();
    }
    wasLive = s === 'live';
  }));

  async function act(action) {
    const summary = el('p', null, t('job.dialog_summary', { id: job.id, type: typeText(job.type), node: job.node || '-',
      user: job.requested_by || '-' }));
    let ok = false;
    if (action === 'approve') {
      const c = commentField(false, t('job.comment_optional'));
      ok = await confirmDialog({
        title: t('job.approve_title', { id: job.id }),
        body: [summary, job.reason ? el('p', null, t('job.reason'), ': ', el('q', null, job.reason)) : null,
          el('p', null, t('job.approve_body')), c.node],
        confirmLabel: t('job.approve'),
        onConfirm: () => api.post(base + '/approve', { comment: c.area.value.trim() || undefined }),
      });
      if (ok) confirmed('job.approved_done');
    } else if (action === 'reject') {
      const c = commentField(true, t('job.comment_required'));
      ok = await confirmDialog({
        title: t('job.reject_title', { id: job.id }),
        body: [summary, c.node],
        confirmLabel: t('job.reject'),
        danger: true,
        onConfirm: () => api.post(base + '/reject', { comment: c.area.value.trim() }),
      });
      if (ok) confirmed('job.rejected_done');
    } else if (action === 'cancel') {
      ok = await confirmDialog({
        title: t('job.cancel_title', { id: job.id }),
        body: [summary, el('p', null, t('job.cancel_body'))],
        confirmLabel: t('job.cancel'),
        danger: true,
        onConfirm: () => api.post(base + '/cancel', {}),
      });
      if (ok) confirmed('job.cancel_done');
    } else if (action === 'rollback') {
      const c = commentField(true, t('job.rollback_reason'));
      let created = null;
      ok = await confirmDialog({
        title: t('job.rollback_title', { id: job.id }),
        body: [summary, el('p', null, t('job.rollback_body', { id: job.id })), c.node],
        confirmLabel: t('job.rollback'),
        onConfirm: async () => {
          created = await api.post('/api/jobs', { type: 'rollback', job: job.id, reason: c.area.value.trim() });
        },
      });
      if (ok && created && !disposed) {
        const nid = created.id ?? (created.job && created.job.id);
        if (nid !== undefined) location.hash = '#/jobs/' + encodeURIComponent(nid);
        return;
      }
    }
    if (ok && !disposed) load();
  }

  actions.addEventListener('click', (e) => {
    const b = e.target instanceof Element ? e.target.closest('button[data-action]') : null;
    if (b && job) act(b.dataset.action);
  });

  load();
  return () => {
    disposed = true;
    ac.abort();
    clearTimeout(refetchTimer);
    log.dispose();
    offs.forEach((f) => f());
  };
}
