// Sign-in form.
import * as api from '../api.js';
import { el, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { errorBox } from '../ui.js';

export function render(root, params) {
  const userId = uid('login-user');
  const passId = uid('login-pass');
  const status = el('div', { class: 'form-status', 'aria-live': 'assertive' });
  const userInput = el('input', { id: userId, name: 'username', type: 'text', autocomplete: 'username',
    required: true, autocapitalize: 'none', spellcheck: 'false', 'data-autofocus': true });
  const passInput = el('input', { id: passId, name: 'password', type: 'password',
    autocomplete: 'current-password', required: true });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary btn-block' }, t('login.submit'));
  const form = el('form', { class: 'login-form card', novalidate: false },
    el('h1', null, t('login.title')),
    el('p', { class: 'muted' }, t('login.subtitle')),
    el('div', { class: 'field' }, el('label', { for: userId }, t('login.username')), userInput),
    el('div', { class: 'field' }, el('label', { for: passId }, t('login.password')), passInput),
    status,
    submit);

  let disposed = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    submit.disabled = true;
    replace(status);
    try {
      const s = await api.post('/api/session',
        { username: userInput.value.trim(), password: passInput.value }, { noAuthRedirect: true });
      if (disposed) return;
      params.onLogin(s);
    } catch (err) {
      if (disposed) return;
      replace(status, errorBox(err));
      passInput.select();
      passInput.focus();
    } finally {
      submit.disabled = false;
    }
  });

  if (params.bootError) replace(status, errorBox(params.bootError));
  replace(root, el('div', { class: 'login-wrap' }, form));
  return () => {
    disposed = true;
  };
}
