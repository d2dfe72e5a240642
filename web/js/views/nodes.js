// Nodes (#/nodes): the SSH inventory with each node's host-key state and fingerprint, what
// consulate knows of its server state, and its live Consul membership. Admins add, edit,
// delete, import and trust host keys (web/js/node_dialogs.js); operators start a change
// for a node from here, or a diagnose job (read-only, no approval). The Consul columns follow the cluster as it changes.
import * as api from '../api.js';
import { el, replace, on } from '../dom.js';
import { t } from '../i18n.js';
import { subscribe } from '../events.js';
import { can } from '../session.js';
import { timeEl } from '../format.js';
import { loading, errorBox, okBox, badge, empty } from '../ui.js';
import { nodeForm, hostKeyDialog, importDialog, deleteDialog, importResult } from '../node_dialogs.js';

const RELOAD_MS = 5000; // at most one reload this often while the cluster changes
const STATE_KIND = { server: 'ok', spare: 'info', removed: 'muted', unknown: 'warn' };
const SERF_KIND = { alive: 'ok', failed: 'bad', left: 'muted', leaving: 'warn' };

function hostKeyCell(n) {
  const k = n.host_key || {};
  if (!k.pinned) return [badge(t('nodes.not_pinned'), 'bad'), el('p', { class: 'hint' }, t('nodes.not_pinned_hint'))];
  return [
    badge(t('nodes.pinned'), 'ok'), ' ', el('span', { class: 'muted' }, String(k.type || '')),
    el('div', null, el('code', { class: 'fingerprint' }, k.fingerprint || '')),
    k.pinned_by ? el('div', { class: 'muted small' }, t('nodes.pinned_by', { user: k.pinned_by }), ' ',
      k.pinned_at ? timeEl(k.pinned_at) : null) : null,
  ];
}

function consulCell(n) {
  const c = n.consul;
  if (!c) return el('span', { class: 'muted' }, t('nodes.consul_unknown'));
  const out = [];
  if (!c.member) out.push(badge(t('nodes.consul_absent'), 'muted'));
  else if (c.server) {
    out.push(badge(c.leader ? t('cluster.role_leader') : c.voter ? t('nodes.consul_voter') : t('cluster.role_nonvoter'),
      c.leader ? 'leader' : c.voter ? 'ok' : 'warn'));
    if (!c.in_raft) out.push(' ', badge(t('nodes.not_in_raft'), 'bad'));
  } else out.push(badge(t('nodes.consul_client'), 'info'));
  if (c.serf_status) out.push(' ', badge(t('serf.' + c.serf_status), SERF_KIND[c.serf_status] || 'muted'));
  // What consulate expects and what the cluster shows disagree.
  if (n.server_state === 'server' && !(c.server && c.in_raft && c.serf_status === 'alive')) {
    out.push(el('p', { class: 'hint warn-text node-missing' }, t('nodes.expected_missing')));
  }
  if (n.server_state !== 'server' && c.server && c.serf_status === 'alive') {
    out.push(el('p', { class: 'hint' }, t('nodes.unexpected_server')));
  }
  return out;
}

function actionsCell(n) {
  const out = [];
  if (can('operator')) {
    const isServer = n.server_state === 'server' || (n.consul && n.consul.server);
    const q = new URLSearchParams({ type: isServer ? 'node-remove' : 'node-add', node: n.name });
    out.push(el('a', { class: 'btn btn-small', href: '#/jobs/new?' + q.toString() },
      isServer ? t('nodes.request_remove') : t('nodes.request_add')),
    // read-only: no approval, runs at once beside any change
    el('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'diagnose', name: n.name } },
      t('nodes.diagnose')));
  }
  out.push(el('a', { class: 'btn btn-small', href: '#/jobs?' + new URLSearchParams({ node: n.name }).toString() },
    t('nodes.jobs')));
  if (can('admin')) {
    out.push(
      el('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'hostkey', name: n.name } }, t('nodes.host_key')),
      el('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'edit', name: n.name } }, t('nodes.edit')),
      el('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'delete', name: n.name } }, t('nodes.delete')));
  }
  return el('div', { class: 'row-actions-inner' }, out);
}

// A cell with its column's name, which a narrow screen shows beside it (.stack-table).
function cell(tag, col, attrs, ...content) {
  return el(tag, { ...attrs, dataset: { label: t('nodes.col_' + col) } }, ...content);
}

function row(n) {
  return el('tr', { class: 'node-row', dataset: { name: n.name, state: n.server_state, pinned: String(!!(n.host_key && n.host_key.pinned)) } },
    cell('th', 'name', { scope: 'row' }, n.name),
    cell('td', 'address', null, el('code', null, n.address)),
    cell('td', 'ssh', null, el('code', null, n.ssh_user || ''), ' ', el('span', { class: 'muted' }, t('nodes.port', { port: n.ssh_port || 22 })),
      el('div', { class: 'muted small' }, el('code', null, n.ssh_key_path || ''))),
    cell('td', 'compose_dir', null, el('code', null, n.compose_dir || ''), el('div', { class: 'muted small' }, el('code', null, n.data_dir || ''))),
    cell('td', 'host_key', { class: 'hostkey-cell' }, hostKeyCell(n)),
    cell('td', 'server_state', null, badge(t('nodes.state.' + n.server_state), STATE_KIND[n.server_state] || 'muted')),
    cell('td', 'consul', { class: 'consul-cell' }, consulCell(n)),
    cell('td', 'actions', { class: 'row-actions' }, actionsCell(n)));
}

export function render(root) {
  const ac = new AbortController();
  let disposed = false;
  let nodes = [];
  let reloadTimer = null;
  let lastLoad = 0;
  const notice = el('div', { 'aria-live': 'polite', class: 'nodes-notice' });
  const listSlot = el('div', { class: 'card' }, loading());
  const adminActions = can('admin') ? [
    el('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'add' } }, t('nodes.add_node')),
    el('button', { type: 'button', class: 'btn', dataset: { action: 'import' } }, t('nodes.import')),
  ] : [];
  const head = el('div', { class: 'page-head' }, el('h1', null, t('nav.nodes')),
    el('div', { class: 'actions' }, can('operator') ? el('a', { class: 'btn', href: '#/jobs/new' }, t('jobs.new_change')) : null,
      adminActions));

  replace(root, head, el('p', { class: 'muted' }, t('nodes.intro')), notice, listSlot);

  function draw() {
    if (!nodes.length) {
      replace(listSlot, empty(t(can('admin') ? 'nodes.none_admin' : 'nodes.none')));
      return;
    }
    replace(listSlot, el('div', { class: 'table-wrap' }, el('table', { class: 'table nodes-table stack-table' },
      el('caption', { class: 'sr-only' }, t('nodes.caption')),
      el('thead', null, el('tr', null,
        ['name', 'address', 'ssh', 'compose_dir', 'host_key', 'server_state', 'consul', 'actions'].map((k) =>
          el('th', { scope: 'col' }, t('nodes.col_' + k))))),
      el('tbody', null, nodes.map(row)))));
  }

  async function load() {
    lastLoad = Date.now();
    try {
      const r = await api.get('/api/nodes', null, { signal: ac.signal });
      if (disposed) return;
      nodes = (r.nodes || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      draw();
    } catch (err) {
      if (!disposed && err.code !== 'aborted') replace(listSlot, errorBox(err));
    }
  }

  function say(node) {
    replace(notice, node);
    notice.scrollIntoView({ block: 'nearest' });
  }

  async function action(name, nodeName, button) {
    const n = nodes.find((x) => x.name === nodeName);
    try {
      if (name === 'add') {
        const saved = await nodeForm(null);
        if (saved) say(okBox(t('nodes.added', { name: saved.name })));
        else return;
      } else if (name === 'import') {
        const r = await importDialog();
        if (!r) return;
        say(importResult(r));
      } else if (!n) {
        return;
      } else if (name === 'edit') {
        if (!(await nodeForm(n))) return;
        say(okBox(t('nodes.saved', { name: n.name })));
      } else if (name === 'delete') {
        if (!(await deleteDialog(n))) return;
        say(okBox(t('nodes.deleted', { name: n.name })));
      } else if (name === 'diagnose') {
        button.disabled = true;
        try {
          const r = await api.post('/api/jobs', { type: 'diagnose', node: n.name });
          location.hash = '#/jobs/' + encodeURIComponent(r.id);
        } finally {
          button.disabled = false;
        }
        return;
      } else if (name === 'hostkey') {
        button.disabled = true;
        const label = button.textContent;
        button.textContent = t('nodes.connecting');
        let saved;
        try {
          saved = await hostKeyDialog(n);
        } finally {
          button.disabled = false;
          button.textContent = label;
        }
        if (!saved) return;
        say(okBox(t('nodes.trusted', { name: n.name, fp: (saved.host_key || {}).fingerprint || '' })));
      }
    } catch (err) {
      if (disposed) return;
      say(errorBox(err));
      return;
    }
    if (!disposed) load();
  }

  const offClick = on(root, 'click', 'button[data-action]', (e, b) => {
    if (!b.disabled) action(b.dataset.action, b.dataset.name, b);
  });

  // Live membership: reload as the cluster changes, at most once per RELOAD_MS.
  const unsub = subscribe('cluster', () => {
    if (reloadTimer || disposed) return;
    reloadTimer = setTimeout(() => {
      reloadTimer = null;
      load();
    }, Math.max(0, lastLoad + RELOAD_MS - Date.now()));
  });

  load();
  return () => {
    disposed = true;
    ac.abort();
    clearTimeout(reloadTimer);
    unsub();
    offClick();
  };
}
