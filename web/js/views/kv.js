// KV browser: folders by prefix, value view (text / JSON / hex / base64), create, edit
// with check-and-set, delete, and per-key history with restore.
import * as api from '../api.js';
import { el, svg, replace, on, uid } from '../dom.js';
import { t } from '../i18n.js';
import { can } from '../session.js';
import {
  timeEl, b64ToBytes, bytesToB64, bytesToText, textToBytes, prettyJson, hexDump, preview,
} from '../format.js';
import { loading, errorBox, okBox, badge, empty, confirmDialog } from '../ui.js';

const KV = '/api/consul/v1/kv/';

// Unsaved edits by key, with the ModifyIndex they were based on, so a language switch or
// a trip to another page doesn't lose them (and a later save still detects conflicts).
const drafts = new Map();
window.addEventListener('beforeunload', (e) => {
  if (drafts.size) e.preventDefault();
});

export function kvHash(key) {
  return '#/kv/' + api.encodeKey(key);
}

// A small folder or document icon.
function icon(folder) {
  return svg('svg', { class: 'kv-icon', viewBox: '0 0 16 16', 'aria-hidden': 'true' },
    svg('path', { d: folder ? 'M1.5 3.5h5l1.5 1.5h6.5v8h-13z' : 'M3.5 1.5h6l3 3v10h-9z M9.5 1.5v3h3' }));
}

function parentOf(key) {
  const trimmed = key.endsWith('/') ? key.slice(0, -1) : key;
  const i = trimmed.lastIndexOf('/');
  return i < 0 ? '' : trimmed.slice(0, i + 1);
}

// Returns an error message key when a key can't be addressed through a URL path.
function keyProblem(key) {
  if (!key) return 'kv.err_empty';
  if (key.startsWith('/')) return 'kv.err_leading_slash';
  if (key.split('/').some((s) => s === '.' || s === '..')) return 'kv.err_dot_segment';
  if (key.length > 4096) return 'kv.err_too_long';
  return null;
}

function breadcrumb(folder, key) {
  const items = [el('li', null, el('a', { href: '#/kv/' }, t('kv.root')))];
  const segs = folder.split('/').filter((s, i, a) => i < a.length - 1);
  let acc = '';
  for (const s of segs) {
    acc += s + '/';
    items.push(el('li', null, el('a', { href: kvHash(acc) }, s + '/')));
  }
  if (key) items.push(el('li', { 'aria-current': 'page' }, el('span', null, key.slice(folder.length))));
  const last = items[items.length - 1];
  if (!key) last.setAttribute('aria-current', 'page');
  return el('nav', { class: 'breadcrumb', 'aria-label': t('kv.breadcrumb') }, el('ol', null, items));
}

// The value as shown: tabs for the available representations.
function valueView(bytes, state) {
  const text = bytesToText(bytes);
  const modes = [];
  let pretty = null;
  if (text !== null) {
    pretty = prettyJson(text);
    if (pretty !== null) modes.push('json');
    modes.push('text', 'hex');
  } else {
    modes.push('hex', 'base64');
  }
  if (!modes.includes(state.mode)) state.mode = modes[0];
  const body = {
    json: () => pretty,
    text: () => text,
    hex: () => hexDump(bytes),
    base64: () => bytesToB64(bytes),
  }[state.mode]();
  return el('div', { class: 'value-view' },
    el('div', { class: 'tabs', role: 'group', 'aria-label': t('kv.view_as') },
      modes.map((m) => el('button', {
        type: 'button', class: 'tab', dataset: { mode: m }, 'aria-pressed': String(state.mode === m),
      }, t('kv.mode_' + m))),
      text === null ? badge(t('kv.binary'), 'warn') : null,
      el('span', { class: 'muted size' }, t('kv.size', { n: bytes.length }))),
    bytes.length === 0 ? empty(t('kv.empty_value'))
      : el('pre', { class: ['value', 'value-' + state.mode], tabindex: '0' }, body));
}

// One history entry. result === false marks a write Consul refused (check-and-set
// failed): nothing changed, so it offers no restore. Values too large to keep in the
// audit log come back with value_truncated and can't be restored either.
function historyEntry(e, opsAllowed) {
  const applied = e.outcome === 'ok' && e.result !== false;
  const prev = e.previous || null;
  const prevRestorable = prev && prev.exists && !prev.value_truncated && prev.value_b64 !== null &&
    prev.value_b64 !== undefined;
  const valueRestorable = !e.value_truncated && e.value_b64 !== null && e.value_b64 !== undefined;
  const restoreBtns = [];
  if (opsAllowed && applied) {
    if (prevRestorable) {
      restoreBtns.push(el('button', { type: 'button', class: 'btn btn-small restore-btn',
        dataset: { id: e.id, which: 'previous' } }, t('kv.restore_previous')));
    }
    if (valueRestorable) {
      restoreBtns.push(el('button', { type: 'button', class: 'btn btn-small restore-btn',
        dataset: { id: e.id, which: 'value' } }, t('kv.restore_value')));
    }
  }
  let before;
  if (!prev) before = el('span', { class: 'muted' }, '-');
  else if (!prev.exists) before = el('span', { class: 'muted' }, t('kv.absent'));
  else if (prev.value_truncated) before = el('span', { class: 'muted' }, t('kv.too_large'));
  else before = el('code', { class: 'preview' }, preview(prev.value_b64) || t('kv.empty_value'));
  let after;
  if (e.action === 'consul.kv.delete') after = el('span', { class: 'muted' }, t('kv.deleted'));
  else if (e.value_truncated) after = el('span', { class: 'muted' }, t('kv.too_large'));
  else if (valueRestorable) after = el('code', { class: 'preview' }, preview(e.value_b64) || t('kv.empty_value'));
  else after = el('span', { class: 'muted' }, '-');
  const action = (e.action || '').replace('consul.kv.', '');
  return el('li', { class: ['history-entry', applied ? '' : 'history-not-applied'], dataset: { id: e.id } },
    el('div', { class: 'history-head' },
      timeEl(e.time), ' ',
      el('strong', null, e.actor), ' ',
      badge(t('kv.action.' + action), 'info'), ' ',
      e.outcome !== 'ok' ? badge(t('outcome.' + e.outcome), 'bad')
        : e.result === false ? badge(t('kv.not_applied'), 'warn', t('kv.not_applied_hint'))
          : badge(t('outcome.ok'), 'ok'),
      e.restored_from ? el('span', { class: 'muted' }, ' ', t('kv.restored_from', { id: e.restored_from })) : null,
      el('span', { class: 'muted' }, ' #', String(e.id))),
    el('dl', { class: 'history-values' },
      el('dt', null, t('kv.before')), el('dd', null, before),
      el('dt', null, applied ? t('kv.after') : t('kv.attempted')), el('dd', null, after)),
    restoreBtns.length ? el('div', { class: 'history-actions' }, restoreBtns) : null);
}

export function render(root, params) {
  const path = params.path || '';
  const isFolder = path === '' || path.endsWith('/');
  const folder = isFolder ? path : parentOf(path);
  const key = isFolder ? null : path;
  const ac = new AbortController();
  const sig = { signal: ac.signal };
  const operator = can('operator');
  let disposed = false;
  const offs = [];

  const listPanel = el('section', { class: 'kv-list card', 'aria-labelledby': 'kv-list-h' });
  const mainPanel = el('section', { class: 'kv-main' });
  replace(root,
    el('h1', null, t('nav.kv')),
    breadcrumb(folder, key),
    el('div', { class: 'kv-grid' }, listPanel, mainPanel));

  // ---- folder listing -------------------------------------------------------
  async function loadList() {
    replace(listPanel, el('h2', { id: 'kv-list-h' }, folder ? folder : t('kv.root')), loading());
    let keys = [];
    try {
      keys = await api.get(KV + api.encodeKey(folder), { keys: true, separator: '/' }, sig) || [];
    } catch (err) {
      if (err.code === 'aborted') return;
      if (err.status !== 404) {
        replace(listPanel, el('h2', { id: 'kv-list-h' }, folder || t('kv.root')), errorBox(err));
        return;
      }
    }
    if (disposed) return;
    const items = keys.filter((k) => k !== folder).sort((a, b) => {
      const fa = a.endsWith('/');
      const fb = b.endsWith('/');
      return fa === fb ? a.localeCompare(b) : fa ? -1 : 1;
    });
    const head = el('div', { class: 'panel-head' },
      el('h2', { id: 'kv-list-h' }, folder || t('kv.root')),
      operator && !isFolder ? el('a', { class: 'btn btn-small btn-primary', href: kvHash(folder) },
        t('kv.new_key')) : null);
    replace(listPanel, head,
      folder ? el('p', null, el('a', { href: kvHash(parentOf(folder)), class: 'up-link' }, '↑ ', t('kv.up'))) : null,
      items.length
        ? el('ul', { class: 'kv-keys' }, items.map((k) => {
          const name = k.slice(folder.length);
          const dir = k.endsWith('/');
          return el('li', { class: dir ? 'kv-folder' : 'kv-leaf' },
            el('a', { href: kvHash(k), 'aria-current': k === key ? 'page' : null, dataset: { key: k } },
              icon(dir),
              el('span', { class: 'sr-only' }, dir ? t('kv.folder') + ' ' : t('kv.key') + ' '),
              name));
        }))
        : empty(t('kv.no_keys')));
  }

  // ---- create form ------------------------------------------------------------
  function createForm(initialName) {
    const nameId = uid('kv-new-name');
    const valId = uid('kv-new-val');
    const nameInput = el('input', { id: nameId, name: 'name', type: 'text', required: true, spellcheck: 'false',
      value: initialName || '', 'aria-describedby': nameId + '-hint' });
    const valInput = el('textarea', { id: valId, name: 'value', rows: '8', spellcheck: 'false', class: 'mono' });
    const status = el('div', { 'aria-live': 'polite' });
    const submit = el('button', { type: 'submit', class: 'btn btn-primary' }, t('kv.create'));
    const form = el('form', { class: 'card kv-create' },
      el('h2', null, t('kv.new_key_in', { folder: folder || t('kv.root') })),
      el('div', { class: 'field' },
        el('label', { for: nameId }, t('kv.key_name')),
        el('div', { class: 'prefixed' }, folder ? el('span', { class: 'prefix' }, folder) : null, nameInput),
        el('p', { class: 'hint', id: nameId + '-hint' }, t('kv.key_name_hint'))),
      el('div', { class: 'field' }, el('label', { for: valId }, t('kv.value')), valInput),
      status,
      el('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const full = folder + nameInput.value.trim();
      const prob = keyProblem(nameInput.value.trim() ? full : '');
      if (prob) {
        replace(status, errorBox({ message: t(prob) }));
        nameInput.focus();
        return;
      }
      submit.disabled = true;
      replace(status, loading(t('kv.saving')));
      try {
        const ok = await api.put(KV + api.encodeKey(full), valInput.value, { cas: 0 }, sig);
        if (disposed) return;
        if (ok === true) {
          location.hash = kvHash(full);
          return;
        }
        replace(status, errorBox({ message: t('kv.exists') },
          el('p', null, el('a', { href: kvHash(full) }, t('kv.open_existing', { key: full })))));
      } catch (err) {
        if (!disposed) replace(status, errorBox(err));
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  // ---- key view ----------------------------------------------------------------
  const keyState = { entry: null, bytes: null, mode: null, editing: false, conflict: null, draft: null, base: null };
  const valueSlot = el('div');
  const historySlot = el('section', { class: 'card kv-history', 'aria-labelledby': 'kv-hist-h' });
  const notice = el('div', { 'aria-live': 'polite' });

  async function fetchEntry() {
    try {
      const arr = await api.get(KV + api.encodeKey(key), null, sig);
      return Array.isArray(arr) && arr.length ? arr[0] : null;
    } catch (err) {
      if (err.status === 404) return null;
      throw err;
    }
  }

  async function loadKey() {
    replace(valueSlot, loading());
    try {
      const entry = await fetchEntry();
      if (disposed) return;
      keyState.entry = entry;
      keyState.bytes = entry ? (b64ToBytes(entry.Value) || new Uint8Array(0)) : null;
      keyState.editing = false;
      keyState.conflict = null;
      const d = entry ? drafts.get(key) : null;
      if (d) {
        keyState.editing = true;
        keyState.draft = d.text;
        keyState.base = d.base;
        replace(notice, el('div', { class: 'alert alert-conflict', role: 'status' }, t('kv.draft_restored')));
      }
      drawKey();
    } catch (err) {
      if (err.code !== 'aborted' && !disposed) replace(valueSlot, errorBox(err));
    }
  }

  function meta(entry) {
    const item = (k, v) => [el('dt', null, t(k)), el('dd', null, String(v))];
    return el('dl', { class: 'meta' },
      item('kv.modify_index', entry.ModifyIndex),
      item('kv.create_index', entry.CreateIndex),
      item('kv.flags', entry.Flags),
      item('kv.lock_index', entry.LockIndex),
      entry.Session ? item('kv.session', entry.Session) : null);
  }

  function drawKey() {
    const entry = keyState.entry;
    const header = el('div', { class: 'panel-head' },
      el('h2', { class: 'key-title' }, el('code', null, key)),
      entry && operator && !keyState.editing ? el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'btn', dataset: { action: 'edit' } }, t('kv.edit')),
        el('button', { type: 'button', class: 'btn btn-danger', dataset: { action: 'delete' } }, t('kv.delete')))
        : null);
    if (!entry) {
      replace(valueSlot, el('div', { class: 'card' }, header,
        el('p', { class: 'state empty' }, t('kv.missing'))),
      operator ? createForm(key.slice(folder.length)) : null);
      return;
    }
    const parts = [header, meta(entry), notice];
    if (keyState.conflict) parts.push(conflictPanel());
    if (keyState.editing) parts.push(editForm());
    else parts.push(valueView(keyState.bytes, keyState));
    replace(valueSlot, el('div', { class: 'card kv-value' }, parts));
  }

  function editForm() {
    const text = bytesToText(keyState.bytes);
    const binary = text === null;
    const id = uid('kv-edit');
    if (keyState.draft === null) keyState.draft = binary ? bytesToB64(keyState.bytes) : text;
    const area = el('textarea', { id, name: 'value', rows: '14', class: 'mono', spellcheck: 'false',
      value: keyState.draft });
    const wasJson = !binary && prettyJson(text) !== null;
    const jsonHint = el('p', { class: 'hint', 'aria-live': 'polite' });
    const status = el('div', { 'aria-live': 'polite' });
    const save = el('button', { type: 'submit', class: 'btn btn-primary' }, t('kv.save'));
    const checkJson = () => {
      if (!wasJson) return;
      const ok = prettyJson(area.value) !== null;
      jsonHint.textContent = ok ? t('kv.json_valid') : t('kv.json_invalid');
      jsonHint.className = 'hint ' + (ok ? 'ok-text' : 'warn-text');
    };
    area.addEventListener('input', () => {
      keyState.draft = area.value;
      drafts.set(key, { text: area.value, base: keyState.base });
      checkJson();
    });
    checkJson();
    const form = el('form', { class: 'kv-edit' },
      el('div', { class: 'field' },
        el('label', { for: id }, binary ? t('kv.value_base64') : t('kv.value')),
        area, jsonHint),
      el('p', { class: 'hint' }, t('kv.cas_hint', { index: keyState.base })),
      status,
      el('div', { class: 'actions' }, save,
        el('button', { type: 'button', class: 'btn', dataset: { action: 'cancel-edit' } }, t('common.cancel'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let body;
      if (binary) {
        try {
          body = b64ToBytes(area.value.replace(/\s+/g, ''));
        } catch (_) {
          replace(status, errorBox({ message: t('kv.bad_base64') }));
          return;
        }
      } else {
        body = area.value;
      }
      await saveValue(body, keyState.base, status, save);
    });
    setTimeout(() => area.focus());
    return form;
  }

  // PUT with check-and-set; on a CAS miss shows the conflict and keeps the draft.
  async function saveValue(body, cas, status, btn) {
    if (btn) btn.disabled = true;
    replace(status, loading(t('kv.saving')));
    try {
      const ok = await api.put(KV + api.encodeKey(key), body, { cas }, sig);
      if (disposed) return;
      if (ok === true) {
        keyState.draft = null;
        drafts.delete(key);
        await loadKey();
        replace(notice, okBox(t('kv.saved')));
        loadHistory();
        return;
      }
      // Someone else changed (or deleted) the key: show theirs, keep ours.
      const current = await fetchEntry();
      if (disposed) return;
      keyState.conflict = { entry: current };
      drawKey();
      loadHistory();
    } catch (err) {
      if (!disposed) replace(status, errorBox(err));
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  function conflictPanel() {
    const cur = keyState.conflict.entry;
    const curBytes = cur ? (b64ToBytes(cur.Value) || new Uint8Array(0)) : null;
    const curText = curBytes ? bytesToText(curBytes) : null;
    return el('div', { class: 'alert alert-conflict', role: 'alert' },
      el('strong', null, cur ? t('kv.conflict', { was: keyState.base, now: cur.ModifyIndex })
        : t('kv.conflict_deleted')),
      el('p', null, t('kv.conflict_hint')),
      cur ? el('div', null, el('p', null, t('kv.current_value')),
        el('pre', { class: 'value conflict-value' }, curText !== null ? (prettyJson(curText) ?? curText) : hexDump(curBytes)))
        : null,
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'btn btn-danger', dataset: { action: 'overwrite' } }, t('kv.overwrite')),
        el('button', { type: 'button', class: 'btn', dataset: { action: 'discard' } }, t('kv.discard'))));
  }

  async function loadHistory() {
    replace(historySlot, el('h2', { id: 'kv-hist-h' }, t('kv.history')), loading());
    try {
      const h = await api.get('/api/kv/history', { key }, sig);
      if (disposed) return;
      const entries = (h && h.entries) || [];
      replace(historySlot, el('h2', { id: 'kv-hist-h' }, t('kv.history')),
        entries.length ? el('ol', { class: 'history-list' }, entries.map((e) => historyEntry(e, operator)))
          : empty(t('kv.no_history')));
      historySlot.history = entries;
    } catch (err) {
      if (err.code !== 'aborted' && !disposed) {
        replace(historySlot, el('h2', { id: 'kv-hist-h' }, t('kv.history')), errorBox(err));
      }
    }
  }

  // ---- actions (delegated) -----------------------------------------------------
  offs.push(on(mainPanel, 'click', 'button[data-action]', async (e, b) => {
    const action = b.dataset.action;
    if (action === 'edit') {
      keyState.editing = true;
      keyState.draft = null;
      keyState.base = keyState.entry.ModifyIndex;
      replace(notice);
      drawKey();
    } else if (action === 'cancel-edit') {
      keyState.editing = false;
      keyState.draft = null;
      keyState.conflict = null;
      drafts.delete(key);
      replace(notice);
      drawKey();
    } else if (action === 'discard') {
      keyState.draft = null;
      drafts.delete(key);
      replace(notice);
      await loadKey();
      loadHistory();
    } else if (action === 'overwrite') {
      const cur = keyState.conflict.entry;
      const ok = await confirmDialog({
        title: t('kv.overwrite_title'),
        body: el('p', null, t('kv.overwrite_body', { key })),
        confirmLabel: t('kv.overwrite'),
        danger: true,
      });
      if (!ok) return;
      const text = bytesToText(keyState.bytes);
      const draft = keyState.draft ?? '';
      let body = draft;
      if (text === null) {
        try {
          body = b64ToBytes(draft.replace(/\s+/g, ''));
        } catch (_) {
          return;
        }
      }
      keyState.entry = cur || { ...keyState.entry, ModifyIndex: 0 };
      keyState.base = cur ? cur.ModifyIndex : 0;
      keyState.conflict = null;
      drawKey();
      const status = valueSlot.querySelector('.kv-edit [aria-live]') || notice;
      await saveValue(body, cur ? cur.ModifyIndex : 0, status, null);
    } else if (action === 'delete') {
      const entry = keyState.entry;
      await confirmDialog({
        title: t('kv.delete_title'),
        body: [el('p', null, t('kv.delete_body')), el('p', null, el('code', null, key))],
        confirmLabel: t('kv.delete'),
        danger: true,
        onConfirm: async () => {
          const ok = await api.del(KV + api.encodeKey(key), { cas: entry.ModifyIndex });
          if (ok !== true) throw new api.ApiError(409, 'cas_conflict', t('kv.delete_conflict'));
        },
      }).then((ok) => {
        if (ok && !disposed) location.hash = kvHash(folder);
      });
    }
  }));

  offs.push(on(mainPanel, 'click', 'button.tab[data-mode]', (e, b) => {
    keyState.mode = b.dataset.mode;
    drawKey();
    const again = valueSlot.querySelector(`button.tab[data-mode="${b.dataset.mode}"]`);
    if (again) again.focus();
  }));

  offs.push(on(mainPanel, 'click', 'button.restore-btn', async (e, b) => {
    const entries = historySlot.history || [];
    const entry = entries.find((x) => String(x.id) === b.dataset.id);
    if (!entry) return;
    const which = b.dataset.which;
    const b64 = which === 'previous' ? entry.previous.value_b64 : entry.value_b64;
    const bytes = b64ToBytes(b64) || new Uint8Array(0);
    const txt = bytesToText(bytes);
    const ok = await confirmDialog({
      title: t('kv.restore_title'),
      body: [
        el('p', null, t(which === 'previous' ? 'kv.restore_body_previous' : 'kv.restore_body_value',
          { key, id: entry.id })),
        el('pre', { class: 'value restore-preview' }, txt !== null ? txt : hexDump(bytes, 512)),
      ],
      confirmLabel: t('kv.restore'),
      onConfirm: () => api.post('/api/kv/restore', { key, audit_id: entry.id, which }),
    });
    if (!ok || disposed) return;
    await loadKey();
    replace(notice, okBox(t('kv.restored', { id: entry.id })));
    loadHistory();
    loadList();
  }));

  // ---- start -----------------------------------------------------------------
  loadList();
  if (key) {
    const prob = keyProblem(key);
    if (prob) {
      replace(mainPanel, errorBox({ message: t(prob) }));
    } else {
      replace(mainPanel, valueSlot, historySlot);
      loadKey();
      loadHistory();
    }
  } else if (operator) {
    replace(mainPanel, createForm(''));
  } else {
    replace(mainPanel, el('div', { class: 'card' }, empty(t('kv.pick_key')),
      el('p', { class: 'hint center-text' }, t('kv.read_only'))));
  }

  return () => {
    disposed = true;
    ac.abort();
    offs.forEach((f) => f());
  };
}

