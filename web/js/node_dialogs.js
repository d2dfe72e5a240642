// The inventory's admin dialogs: add or edit a node, trust its host key, import the
// servers from the cluster, delete a node. Validation is the server's: its error message
// names the field, and that field is marked and focused.
import * as api from './api.js';
import { el, replace, uid } from './dom.js';
import { t } from './i18n.js';
import { timeEl, hostPort } from './format.js';
import { confirmDialog } from './ui.js';

export const SERVER_STATES = ['unknown', 'server', 'spare', 'removed'];
const DEFAULT_COMPOSE_DIR = '/mnt/opt/docker-compose/consul';
const DEFAULT_DATA_DIR = '/mnt/var/lib/container/consul';
const HOSTKEY_TIMEOUT_MS = 30000; // the server connects out (5 s connect timeout, then the handshake)

function nodePath(name) {
  return '/api/nodes/' + encodeURIComponent(name);
}

// One labelled input; returns { name, input, node, hint }.
function input(name, label, attrs, hintText) {
  const id = uid('nf-' + name);
  const hintId = id + '-hint';
  const errId = id + '-err';
  const inp = name === 'server_state'
    ? el('select', { id, name, ...attrs }, SERVER_STATES.map((s) => el('option', { value: s }, t('nodes.state.' + s))))
    : el('input', { id, name, type: 'text', spellcheck: 'false', autocomplete: 'off', ...attrs });
  if (attrs && attrs.value !== undefined && name === 'server_state') inp.value = attrs.value;
  const err = el('p', { class: 'field-error', id: errId, hidden: true });
  inp.setAttribute('aria-describedby', [hintText ? hintId : null, errId].filter(Boolean).join(' '));
  return {
    name,
    input: inp,
    err,
    node: el('div', { class: 'field' }, el('label', { for: id }, label), inp,
      hintText ? el('p', { class: 'hint', id: hintId }, hintText) : null, err),
  };
}

// Marks the field an invalid_field message names (the longest name that occurs in it).
function markField(fields, err) {
  for (const f of fields) {
    f.input.removeAttribute('aria-invalid');
    f.err.hidden = true;
  }
  if (!err || !err.message) return;
  const hit = fields.slice().sort((a, b) => b.name.length - a.name.length)
    .find((f) => new RegExp('(^|[^a-z_])' + f.name + '([^a-z_]|$)').test(err.message));
  if (!hit) return;
  hit.input.setAttribute('aria-invalid', 'true');
  hit.err.textContent = err.message;
  hit.err.hidden = false;
  hit.input.focus();
}

// Add (node null) or edit a node. Resolves to the saved node, or null when cancelled.
export async function nodeForm(node) {
  const editing = !!node;
  const v = node || {};
  const fields = [
    editing ? null : input('name', t('nodes.f_name'), { required: true }, t('nodes.f_name_hint')),
    input('address', t('nodes.f_address'), { required: true, value: v.address || '' },
      editing && v.host_key && v.host_key.pinned ? t('nodes.f_address_unpins') : t('nodes.f_address_hint')),
    input('ssh_port', t('nodes.f_ssh_port'), { type: 'number', min: '1', max: '65535', required: true,
      value: String(v.ssh_port || 22) }),
    input('ssh_user', t('nodes.f_ssh_user'), { required: true, value: v.ssh_user || '' }),
    input('ssh_key_path', t('nodes.f_ssh_key_path'), { required: true, value: v.ssh_key_path || '',
      placeholder: '/etc/consulate/id_ed25519' }, t('nodes.f_ssh_key_path_hint')),
    input('compose_dir', t('nodes.f_compose_dir'), { value: v.compose_dir || '', placeholder: DEFAULT_COMPOSE_DIR }),
    input('data_dir', t('nodes.f_data_dir'), { value: v.data_dir || '', placeholder: DEFAULT_DATA_DIR }),
    input('server_state', t('nodes.f_server_state'), { value: v.server_state || 'unknown' }, t('nodes.f_server_state_hint')),
  ].filter(Boolean);
  let saved = null;
  const ok = await confirmDialog({
    title: editing ? t('nodes.edit_title', { name: v.name }) : t('nodes.add_title'),
    body: el('div', { class: 'form-grid node-form' }, fields.map((f) => f.node)),
    confirmLabel: editing ? t('nodes.save') : t('nodes.add'),
    onConfirm: async () => {
      const body = {};
      for (const f of fields) {
        const raw = f.input.value.trim();
        const val = f.name === 'ssh_port' ? Number(raw) : raw;
        if (editing) {
          if (String(val) !== String(v[f.name] ?? '')) body[f.name] = val;
        } else if (raw !== '') {
          body[f.name] = val;
        }
      }
      try {
        const r = editing
          ? (Object.keys(body).length ? await api.patch(nodePath(v.name), body) : { node: v })
          : await api.post('/api/nodes', body);
        saved = r.node || null;
        markField(fields, null);
      } catch (err) {
        markField(fields, err);
        throw err;
      }
    },
  });
  return ok ? saved : null;
}

// The file ssh-keygen -l reads on the host for a key type ("ssh-ed25519", "ED25519", ...).
function hostKeyFile(type) {
  const k = String(type || '').toLowerCase();
  if (k.includes('rsa')) return '/etc/ssh/ssh_host_rsa_key.pub';
  if (k.includes('ecdsa') || k.includes('nistp')) return '/etc/ssh/ssh_host_ecdsa_key.pub';
  return '/etc/ssh/ssh_host_ed25519_key.pub';
}

function keyFacts(k, cls) {
  return el('dl', { class: ['job-meta', 'hostkey', cls] },
    el('dt', null, t('nodes.key_type')), el('dd', { class: 'hk-type' }, String(k.type || '-'), k.bits ? ` (${k.bits} bits)` : ''),
    el('dt', null, t('nodes.fingerprint')), el('dd', null, el('code', { class: 'fingerprint hk-fingerprint' }, k.fingerprint || '')));
}

// Fetches the key a node presents now and asks the admin to compare it with the host's own
// ssh-keygen output before pinning it. Resolves to the updated node, or null. Throws the
// ApiError when the key cannot be fetched (ssh_unreachable).
export async function hostKeyDialog(node) {
  const hk = await api.get(nodePath(node.name) + '/hostkey', null, { timeout: HOSTKEY_TIMEOUT_MS });
  const presented = hk.presented || {};
  const pinned = hk.pinned || null;
  const same = !!(pinned && hk.matches);
  const cmd = 'ssh-keygen -l -f ' + hostKeyFile(presented.type);
  const confirmId = uid('hk-ok');
  const confirm = el('input', { type: 'checkbox', id: confirmId, required: true });
  const mismatch = el('div', { class: 'hk-mismatch', 'aria-live': 'assertive' });
  let saved = null;
  const body = [
    el('p', null, t('nodes.hk_presented', { name: node.name, addr: hostPort(node.address, node.ssh_port || 22) })),
    keyFacts(presented, 'hk-presented'),
    pinned ? el('div', { class: ['alert', same ? 'alert-ok' : 'alert-error'], role: same ? 'status' : 'alert' },
      el('strong', null, same ? t('nodes.hk_same') : t('nodes.hk_differs')),
      same ? null : [el('p', null, t('nodes.hk_differs_hint')), keyFacts(pinned, 'hk-pinned')],
      pinned.pinned_by ? el('p', { class: 'muted' }, t('nodes.pinned_by', { user: pinned.pinned_by }), ' ',
        pinned.pinned_at ? timeEl(pinned.pinned_at) : null) : null) : null,
    same ? null : [
      el('p', null, t('nodes.hk_compare')),
      el('pre', { class: 'command hk-command' }, el('code', null, cmd)),
      el('p', { class: 'hint' }, t('nodes.hk_compare_hint')),
      el('div', { class: 'choice' }, confirm, el('label', { for: confirmId }, t('nodes.hk_confirm'))),
    ],
    mismatch,
  ];
  const ok = await confirmDialog({
    title: t('nodes.hk_title', { name: node.name }),
    body,
    confirmLabel: same ? t('nodes.hk_close') : t('nodes.hk_trust'),
    onConfirm: same ? null : async () => {
      try {
        const r = await api.post(nodePath(node.name) + '/trust-hostkey', { fingerprint: presented.fingerprint });
        saved = r.node || null;
      } catch (err) {
        if (err.code === 'host_key_mismatch') {
          // Both keys side by side: the one compared and the one the node presents now.
          let now = null;
          try {
            now = (await api.get(nodePath(node.name) + '/hostkey', null, { timeout: HOSTKEY_TIMEOUT_MS })).presented;
          } catch (_) {
            /* the server's message names both fingerprints anyway */
          }
          replace(mismatch, el('div', { class: 'alert alert-error' },
            el('strong', null, t('nodes.hk_mismatch')),
            el('p', null, t('nodes.hk_you_compared')), keyFacts(presented, 'hk-compared'),
            now ? [el('p', null, t('nodes.hk_now')), keyFacts(now, 'hk-now')] : null,
            el('p', null, t('nodes.hk_mismatch_hint'))));
          err.final = true;
        }
        throw err;
      }
    },
  });
  return ok ? saved : null;
}

// Prefills the inventory from the raft configuration. Resolves to {created, skipped} or null.
export async function importDialog() {
  const fields = [
    input('ssh_user', t('nodes.f_ssh_user'), { required: true }),
    input('ssh_key_path', t('nodes.f_ssh_key_path'), { required: true, placeholder: '/etc/consulate/id_ed25519' },
      t('nodes.f_ssh_key_path_hint')),
    input('ssh_port', t('nodes.f_ssh_port'), { type: 'number', min: '1', max: '65535', value: '22' }),
    input('compose_dir', t('nodes.f_compose_dir'), { placeholder: DEFAULT_COMPOSE_DIR }),
    input('data_dir', t('nodes.f_data_dir'), { placeholder: DEFAULT_DATA_DIR }),
  ];
  let result = null;
  const ok = await confirmDialog({
    title: t('nodes.import_title'),
    body: [el('p', null, t('nodes.import_body')), el('div', { class: 'form-grid node-form' }, fields.map((f) => f.node))],
    confirmLabel: t('nodes.import'),
    onConfirm: async () => {
      const body = {};
      for (const f of fields) {
        const raw = f.input.value.trim();
        if (raw !== '') body[f.name] = f.name === 'ssh_port' ? Number(raw) : raw;
      }
      try {
        result = await api.post('/api/nodes/import', body);
        markField(fields, null);
      } catch (err) {
        markField(fields, err);
        throw err;
      }
    },
  });
  return ok ? result || { created: [], skipped: [] } : null;
}

// Resolves true when the node was deleted.
export function deleteDialog(node) {
  return confirmDialog({
    title: t('nodes.delete_title', { name: node.name }),
    body: [el('p', null, t('nodes.delete_body', { name: node.name })),
      node.server_state === 'server' ? el('p', { class: 'warn-text' }, t('nodes.delete_server')) : null],
    confirmLabel: t('nodes.delete'),
    danger: true,
    onConfirm: () => api.del(nodePath(node.name)),
  });
}

// The result of an import, for the page's notice.
export function importResult(r) {
  const created = r.created || [];
  const skipped = r.skipped || [];
  return el('div', { class: 'alert alert-ok import-result', role: 'status' },
    el('strong', null, t('nodes.imported', { n: created.length })),
    created.length ? el('p', null, created.map((n, i) => [i ? ', ' : '', el('code', null, n)])) : null,
    skipped.length ? [el('p', null, t('nodes.import_skipped', { n: skipped.length })),
      el('ul', null, skipped.map((s) => el('li', null, el('code', null, s.name), ': ', s.reason || '')))] : null);
}
