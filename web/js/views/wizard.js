// The new change wizard (#/jobs/new, operator+): add or remove a server, the node, the
// strategy and options, the reason; then POST /api/jobs and on to the job's page, where the
// plan preview (prechecks, steps, compose diffs) waits for an approver.
// #/jobs/new?type=node-add&node=NAME preselects.
import * as api from '../api.js';
import { el, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { approvalIsRequired, currentUser } from '../session.js';
import { loading, errorBox, badge, empty } from '../ui.js';
import { typeText, strategyText } from '../jobs_ui.js';
import { hostPort } from '../format.js';

const STEPS = ['change', 'node', 'strategy', 'review'];
const PLAN_TIMEOUT_MS = 180000; // the dry run reads every node's files over SSH

function isServer(n) {
  return n.server_state === 'server' || !!(n.consul && n.consul.server);
}

// Nodes that can become a server: spare or removed ones, and unknown ones the live
// cluster does not list as a server.
function addCandidates(nodes) {
  return nodes.filter((n) => n.server_state === 'spare' || n.server_state === 'removed' ||
    (n.server_state === 'unknown' && !(n.consul && n.consul.server)));
}

function removeCandidates(nodes) {
  return nodes.filter(isServer);
}

function alive(n) {
  return !!(n.consul && n.consul.member && n.consul.serf_status === 'alive');
}

// A radio button or checkbox with its label and, described by it, a longer explanation.
function choice(type, name, value, checked, title, text) {
  const id = uid('wz-' + name);
  const input = el('input', { type, id, name, value, checked, 'aria-describedby': id + '-d' });
  return { input, node: el('div', { class: 'choice' }, input,
    el('div', { class: 'choice-body' }, el('label', { for: id }, title), el('p', { class: 'choice-text', id: id + '-d' }, text))) };
}

function radio(name, value, checked, title, text) {
  return choice('radio', name, value, checked, title, text).node;
}

function checkbox(name, title, text) {
  return choice('checkbox', name, 'yes', false, title, text);
}

function nodeFacts(n) {
  const hk = n.host_key || {};
  const c = n.consul;
  return el('dl', { class: 'job-meta node-facts' },
    el('dt', null, t('nodes.col_address')), el('dd', null, el('code', null, n.ssh_port && n.ssh_port !== 22 ? hostPort(n.address, n.ssh_port) : n.address)),
    el('dt', null, t('nodes.col_host_key')), el('dd', null, hk.pinned
      ? [badge(t('nodes.pinned'), 'ok'), ' ', el('code', { class: 'fingerprint' }, hk.fingerprint || '')]
      : badge(t('nodes.not_pinned'), 'bad')),
    el('dt', null, t('nodes.col_server_state')), el('dd', null, t('nodes.state.' + n.server_state)),
    el('dt', null, t('nodes.col_consul')), el('dd', null, c
      ? [c.server ? t('nodes.consul_server') : c.member ? t('nodes.consul_client') : t('nodes.consul_absent'),
        c.serf_status ? [' · ', t('serf.' + c.serf_status)] : null]
      : el('span', { class: 'muted' }, t('nodes.consul_unknown'))));
}

export function render(root, params) {
  const ac = new AbortController();
  let disposed = false;
  let nodes = [];
  let step = 0;
  const q = params.query || new URLSearchParams();

  const intro = el('p', { class: 'muted wizard-intro' }, t(approvalIsRequired() ? 'wizard.intro' : 'wizard.intro_no_approval'));
  const progress = el('ol', { class: 'wizard-progress' }, STEPS.map((s, i) =>
    el('li', { dataset: { step: s } }, el('span', { class: 'wizard-no' }, String(i + 1)), t('wizard.step_' + s))));

  // Step 1: add or remove.
  const fsChange = el('fieldset', { class: 'wizard-step', dataset: { step: 'change' } },
    el('legend', null, t('wizard.what')),
    radio('type', 'node-add', q.get('type') !== 'node-remove', typeText('node-add'), t('wizard.add_text')),
    radio('type', 'node-remove', q.get('type') === 'node-remove', typeText('node-remove'), t('wizard.remove_text')));

  // Step 2: the node.
  const nodeSelId = uid('wz-node');
  const nodeSel = el('select', { id: nodeSelId, name: 'node', required: true });
  const nodeHint = el('p', { class: 'hint', id: nodeSelId + '-hint' });
  const facts = el('div', { class: 'node-facts-slot' });
  const gone = checkbox('node_gone', t('wizard.gone_title'), t('wizard.gone_text'));
  const goneBox = el('div', { class: 'gone-box alert alert-conflict' }, el('p', { class: 'gone-why' }), gone.node);
  const fsNode = el('fieldset', { class: 'wizard-step', dataset: { step: 'node' } },
    el('legend', null, t('wizard.which_node')),
    el('div', { class: 'field' }, el('label', { for: nodeSelId }, t('wizard.node')), nodeSel, nodeHint),
    facts, goneBox);
  nodeSel.setAttribute('aria-describedby', nodeSelId + '-hint');

  // Step 3: strategy and options.
  const fullWarn = el('div', { class: 'alert alert-error full-restart-warning', role: 'note' },
    el('strong', null, t('wizard.full_warning_title')), ' ', t('wizard.full_warning'));
  const fixTrap = checkbox('fix_trap', t('wizard.fix_trap_title'), t('wizard.fix_trap_text'));
  const fsStrategy = el('fieldset', { class: 'wizard-step', dataset: { step: 'strategy' } },
    el('legend', null, t('wizard.how')),
    radio('strategy', 'rolling', true, strategyText('rolling'), t('wizard.rolling_text')),
    radio('strategy', 'full-restart', false, strategyText('full-restart'), t('wizard.full_text')),
    fullWarn,
    el('h3', null, t('wizard.options')),
    fixTrap.node);

  // Step 4: reason and review.
  const reasonId = uid('wz-reason');
  const reason = el('textarea', { id: reasonId, name: 'reason', rows: '3', required: true, maxlength: '1000',
    'aria-describedby': reasonId + '-hint' });
  const review = el('div', { class: 'review' });
  const fsReview = el('fieldset', { class: 'wizard-step', dataset: { step: 'review' } },
    el('legend', null, t('wizard.why')),
    el('div', { class: 'field' }, el('label', { for: reasonId }, t('wizard.reason')), reason,
      el('p', { class: 'hint', id: reasonId + '-hint' }, t('wizard.reason_hint'))),
    el('h3', null, t('wizard.review')),
    review,
    el('p', { class: 'muted' }, t(approvalIsRequired() ? 'wizard.next_approval' : 'wizard.next_no_approval')));

  const status = el('div', { 'aria-live': 'polite', class: 'wizard-status' });
  const backBtn = el('button', { type: 'button', class: 'btn', id: 'wz-back' }, t('wizard.back'));
  const nextBtn = el('button', { type: 'submit', class: 'btn btn-primary', id: 'wz-next' }, t('wizard.next'));
  const fieldsets = [fsChange, fsNode, fsStrategy, fsReview];
  const form = el('form', { class: 'card wizard', novalidate: true }, fieldsets, status,
    el('div', { class: 'actions wizard-nav' }, backBtn, nextBtn));
  const body = el('div', null, loading());

  replace(root,
    el('p', { class: 'back-link' }, el('a', { href: '#/jobs' }, t('job.back'))),
    el('h1', null, t('wizard.title')), intro, body);

  const value = (name) => {
    const c = form.querySelector(`input[name="${name}"]:checked`);
    return c ? c.value : null;
  };
  const selected = () => nodes.find((n) => n.name === nodeSel.value) || null;

  function fillNodes() {
    const type = value('type');
    const list = type === 'node-remove' ? removeCandidates(nodes) : addCandidates(nodes);
    const keep = nodeSel.value || q.get('node') || '';
    replace(nodeSel, el('option', { value: '' }, t('wizard.pick_node')),
      list.map((n) => el('option', { value: n.name },
        `${n.name} — ${n.address}` + (n.host_key && n.host_key.pinned ? '' : ' ' + t('wizard.key_not_pinned')))));
    nodeSel.value = list.some((n) => n.name === keep) ? keep : '';
    nodeHint.textContent = list.length ? t(type === 'node-remove' ? 'wizard.remove_hint' : 'wizard.add_hint')
      : t(type === 'node-remove' ? 'wizard.no_servers' : 'wizard.no_spares');
    showNode();
  }

  function showNode() {
    const n = selected();
    const removing = value('type') === 'node-remove';
    replace(facts, n ? nodeFacts(n) : null);
    if (n && !(n.host_key && n.host_key.pinned)) {
      facts.append(el('p', { class: 'alert alert-conflict', role: 'note' }, t('wizard.unpinned', { node: n.name })));
    }
    // A server that is down can only be removed as gone for good (force-leave).
    const down = !!(n && removing && !alive(n));
    goneBox.hidden = !down;
    gone.input.required = down && n.consul !== null;
    if (!down) gone.input.checked = false;
    if (down) {
      goneBox.querySelector('.gone-why').textContent = n.consul === null ? t('wizard.gone_unknown', { node: n.name })
        : t('wizard.gone_down', { node: n.name, status: n.consul.serf_status ? t('serf.' + n.consul.serf_status) : '-' });
    }
  }

  function fullRestart() {
    fullWarn.hidden = value('strategy') !== 'full-restart';
  }

  function drawReview() {
    const n = selected();
    const row = (k, v) => [el('dt', null, k), el('dd', null, v)];
    replace(review, el('dl', { class: 'job-meta review-list' },
      row(t('job.type'), typeText(value('type'))),
      row(t('job.node'), n ? el('code', null, n.name) : '-'),
      row(t('job.strategy'), strategyText(value('strategy'))),
      row(t('job.options'), [
        fixTrap.input.checked ? badge(t('job.opt_fix_trap'), 'warn') : null,
        gone.input.checked ? badge(t('job.opt_node_gone'), 'bad') : null,
        !fixTrap.input.checked && !gone.input.checked ? t('wizard.no_options') : null]),
      row(t('job.requested'), (currentUser() || {}).name || '-')));
  }

  // Shows step i; focus moves into it unless this is the first drawing of the page.
  function show(i, focus = true) {
    step = i;
    fieldsets.forEach((f, k) => {
      f.hidden = k !== i;
    });
    progress.querySelectorAll('li').forEach((li, k) => {
      li.classList.toggle('done', k < i);
      if (k === i) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    });
    backBtn.hidden = i === 0;
    nextBtn.textContent = i === STEPS.length - 1 ? t('wizard.submit') : t('wizard.next');
    if (i === STEPS.length - 1) drawReview();
    replace(status);
    const first = fieldsets[i].querySelector('input:checked, select, textarea, input');
    if (first && focus) first.focus();
  }

  // The current step's own checks; returns an error text or null.
  function check() {
    if (step === 1) {
      if (!selected()) return t('wizard.err_node');
      if (gone.input.required && !gone.input.checked) return t('wizard.err_gone');
    }
    if (step === 3 && !reason.value.trim()) return t('wizard.err_reason');
    return null;
  }

  async function submit() {
    const n = selected();
    const options = { fix_trap: fixTrap.input.checked, node_gone: gone.input.checked };
    nextBtn.disabled = true;
    backBtn.disabled = true;
    replace(status, loading(t('wizard.planning')));
    try {
      const job = await api.post('/api/jobs', {
        type: value('type'), node: n.name, strategy: value('strategy'), reason: reason.value.trim(), options,
      }, { signal: ac.signal, timeout: PLAN_TIMEOUT_MS });
      if (disposed) return;
      const id = job && (job.id ?? (job.job && job.job.id));
      location.hash = '#/jobs/' + encodeURIComponent(id);
    } catch (err) {
      if (disposed || err.code === 'aborted') return;
      replace(status, errorBox(err)); // everything typed stays
      nextBtn.disabled = false;
      backBtn.disabled = false;
    }
  }

  form.addEventListener('change', (e) => {
    if (e.target.name === 'type') fillNodes();
    if (e.target === nodeSel) showNode();
    if (e.target.name === 'strategy') fullRestart();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const bad = check();
    if (bad) {
      replace(status, errorBox({ message: bad }));
      const target = step === 1 ? (selected() ? gone.input : nodeSel) : reason;
      target.focus();
      return;
    }
    if (step < STEPS.length - 1) show(step + 1);
    else submit();
  });
  backBtn.addEventListener('click', () => {
    if (step > 0) show(step - 1);
  });

  api.get('/api/nodes', null, { signal: ac.signal }).then((r) => {
    if (disposed) return;
    nodes = (r.nodes || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    if (!nodes.length) {
      replace(body, empty(t('wizard.no_nodes')), el('p', { class: 'center-text' }, el('a', { href: '#/nodes' }, t('wizard.to_nodes'))));
      return;
    }
    replace(body, progress, form);
    fillNodes();
    fullRestart();
    // A preselected node goes straight to the strategy.
    show(q.get('node') && selected() ? 2 : 0, false);
  }).catch((err) => {
    if (!disposed && err.code !== 'aborted') replace(body, errorBox(err));
  });

  return () => {
    disposed = true;
    ac.abort();
  };
}
