// User administration (admin only): list, add, change role, reset password,
// disable/enable, delete.
import * as api from '../api.js';
import { el, replace, on, uid } from '../dom.js';
import { t } from '../i18n.js';
import { currentUser, ROLES } from '../session.js';
import { timeEl } from '../format.js';
import { loading, errorBox, okBox, badge, empty, confirmDialog } from '../ui.js';

const MIN_PASSWORD = 10;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function roleSelect(id, value, extra) {
  const s = el('select', { id, name: 'role', ...extra },
    ROLES.map((r) => el('option', { value: r }, t('role.' + r))));
  s.value = value;
  return s;
}

// Two password fields with the length and match checks, for the add form and the
// reset dialog. Returns {nodes, check()} where check() returns an error text or null.
function passwordFields() {
  const p1 = uid('pw');
  const p2 = uid('pw2');
  const a = el('input', { id: p1, name: 'password', type: 'password', autocomplete: 'new-password',
    required: true, minlength: String(MIN_PASSWORD), 'aria-describedby': p1 + '-hint' });
  const b = el('input', { id: p2, name: 'password2', type: 'password', autocomplete: 'new-password', required: true });
  const check = () => {
    if (a.value.length < MIN_PASSWORD) return t('users.pw_too_short', { n: MIN_PASSWORD });
    if (a.value !== b.value) return t('users.pw_mismatch');
    return null;
  };
  const sync = () => {
    b.setCustomValidity(b.value && a.value !== b.value ? t('users.pw_mismatch') : '');
    a.setCustomValidity(a.value && a.value.length < MIN_PASSWORD ? t('users.pw_too_short', { n: MIN_PASSWORD }) : '');
  };
  a.addEventListener('input', sync);
  b.addEventListener('input', sync);
  return {
    a,
    nodes: [
      el('div', { class: 'field' }, el('label', { for: p1 }, t('users.password')), a,
        el('p', { class: 'hint', id: p1 + '-hint' }, t('users.pw_hint', { n: MIN_PASSWORD }))),
      el('div', { class: 'field' }, el('label', { for: p2 }, t('users.password_repeat')), b),
    ],
    check,
    clear() {
      a.value = '';
      b.value = '';
    },
  };
}

export function render(root) {
  const ac = new AbortController();
  let disposed = false;
  let users = [];
  const offs = [];
  const me = currentUser();
  const notice = el('div', { 'aria-live': 'polite' });
  const listSlot = el('div', { class: 'card' }, loading());

  // ---- add form ----
  const nameId = uid('nu-name');
  const roleId = uid('nu-role');
  const nameInput = el('input', { id: nameId, name: 'name', type: 'text', required: true, autocomplete: 'off',
    spellcheck: 'false', pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}', 'aria-describedby': nameId + '-hint' });
  const roleSel = roleSelect(roleId, 'viewer');
  const pw = passwordFields();
  const addStatus = el('div', { 'aria-live': 'polite' });
  const addBtn = el('button', { type: 'submit', class: 'btn btn-primary' }, t('users.add'));
  const addForm = el('form', { class: 'card user-add' },
    el('h2', null, t('users.add_title')),
    el('div', { class: 'form-grid' },
      el('div', { class: 'field' }, el('label', { for: nameId }, t('users.name')), nameInput,
        el('p', { class: 'hint', id: nameId + '-hint' }, t('users.name_hint'))),
      el('div', { class: 'field' }, el('label', { for: roleId }, t('users.role')), roleSel),
      pw.nodes),
    addStatus,
    el('div', { class: 'actions' }, addBtn));

  replace(root, el('h1', null, t('nav.users')), notice, listSlot, addForm);

  function userRow(u) {
    const rid = uid('role-' + u.name);
    const self = me && me.name === u.name;
    return el('tr', { dataset: { name: u.name }, class: u.disabled ? 'row-disabled' : null },
      el('th', { scope: 'row' }, u.name, self ? el('span', { class: 'muted' }, ' ', t('users.you')) : null),
      el('td', null, el('label', { for: rid, class: 'sr-only' }, t('users.role_of', { name: u.name })),
        roleSelect(rid, u.role, { class: 'role-change', dataset: { name: u.name, current: u.role } })),
      el('td', null, u.disabled ? badge(t('users.disabled'), 'bad') : badge(t('users.active'), 'ok')),
      el('td', null, timeEl(u.created_at)),
      el('td', null, timeEl(u.last_login_at)),
      el('td', { class: 'row-actions' }, el('div', { class: 'row-actions-inner' },
        el('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'password', name: u.name } },
          t('users.reset_password')),
        el('button', { type: 'button', class: 'btn btn-small', dataset: { action: u.disabled ? 'enable' : 'disable', name: u.name } },
          u.disabled ? t('users.enable') : t('users.disable')),
        el('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'delete', name: u.name } },
          t('users.delete')))));
  }

  function draw() {
    if (!users.length) {
      replace(listSlot, empty(t('users.none')));
      return;
    }
    replace(listSlot, el('div', { class: 'table-wrap' }, el('table', { class: 'table users-table' },
      el('caption', { class: 'sr-only' }, t('users.caption')),
      el('thead', null, el('tr', null,
        ['name', 'role', 'status', 'created', 'last_login', 'actions'].map((k) =>
          el('th', { scope: 'col' }, t('users.col_' + k))))),
      el('tbody', null, users.map(userRow)))));
  }

  async function load() {
    try {
      const r = await api.get('/api/users', null, { signal: ac.signal });
      if (disposed) return;
      users = (r.users || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      draw();
    } catch (err) {
      if (!disposed && err.code !== 'aborted') replace(listSlot, errorBox(err));
    }
  }

  function say(text) {
    replace(notice, okBox(text));
  }

  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(addStatus);
    const name = nameInput.value.trim();
    if (!NAME_RE.test(name)) {
      replace(addStatus, errorBox({ message: t('users.name_hint') }));
      nameInput.focus();
      return;
    }
    const bad = pw.check();
    if (bad) {
      replace(addStatus, errorBox({ message: bad }));
      pw.a.focus();
      return;
    }
    addBtn.disabled = true;
    try {
      await api.post('/api/users', { name, role: roleSel.value, password: pw.a.value });
      if (disposed) return;
      addForm.reset(); // also clears the :user-invalid marks
      say(t('users.added', { name }));
      load();
    } catch (err) {
      if (!disposed) replace(addStatus, errorBox(err)); // the form keeps what was typed
    } finally {
      addBtn.disabled = false;
    }
  });

  offs.push(on(listSlot, 'change', 'select.role-change', async (e, s) => {
    const name = s.dataset.name;
    const from = s.dataset.current;
    const to = s.value;
    const selfDemote = me && me.name === name && from === 'admin';
    const ok = await confirmDialog({
      title: t('users.change_role_title'),
      body: [el('p', null, t('users.change_role_body', { name, from: t('role.' + from), to: t('role.' + to) })),
        selfDemote ? el('p', { class: 'warn-text' }, t('users.self_demote')) : null],
      confirmLabel: t('users.change_role'),
      danger: selfDemote,
      onConfirm: () => api.patch('/api/users/' + encodeURIComponent(name), { role: to }),
    });
    if (disposed) return;
    if (!ok) {
      s.value = from;
      return;
    }
    say(t('users.role_changed', { name, role: t('role.' + to) }));
    load();
  }));

  offs.push(on(listSlot, 'click', 'button[data-action]', async (e, b) => {
    const name = b.dataset.name;
    const path = '/api/users/' + encodeURIComponent(name);
    const action = b.dataset.action;
    let ok = false;
    if (action === 'password') {
      const f = passwordFields();
      ok = await confirmDialog({
        title: t('users.reset_password_title', { name }),
        body: f.nodes,
        confirmLabel: t('users.reset_password'),
        onConfirm: async () => {
          const bad = f.check();
          if (bad) throw new api.ApiError(0, 'client', bad);
          await api.patch(path, { password: f.a.value });
        },
      });
      if (ok) say(t('users.password_reset', { name }));
    } else if (action === 'disable' || action === 'enable') {
      const disable = action === 'disable';
      ok = await confirmDialog({
        title: t(disable ? 'users.disable_title' : 'users.enable_title', { name }),
        body: el('p', null, t(disable ? 'users.disable_body' : 'users.enable_body', { name })),
        confirmLabel: t(disable ? 'users.disable' : 'users.enable'),
        danger: disable,
        onConfirm: () => api.patch(path, { disabled: disable }),
      });
      if (ok) say(t(disable ? 'users.disabled_done' : 'users.enabled_done', { name }));
    } else if (action === 'delete') {
      ok = await confirmDialog({
        title: t('users.delete_title', { name }),
        body: el('p', null, t('users.delete_body', { name })),
        confirmLabel: t('users.delete'),
        danger: true,
        onConfirm: () => api.del(path),
      });
      if (ok) say(t('users.deleted', { name }));
    }
    if (ok && !disposed) load();
  }));

  load();
  return () => {
    disposed = true;
    ac.abort();
    offs.forEach((f) => f());
  };
}
