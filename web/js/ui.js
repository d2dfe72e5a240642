// Shared UI pieces: loading/empty/error states, badges, and the confirmation dialog.
import { el, replace } from './dom.js';
import { t, errorText } from './i18n.js';

export function loading(text) {
  return el('p', { class: 'state loading', role: 'status' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }),
    text || t('common.loading'));
}

export function empty(text) {
  return el('p', { class: 'state empty' }, text);
}

// An error message from an ApiError (translated by code where possible).
export function errorBox(err, extra) {
  const text = errorText(err);
  // When the code was translated, the server's own words follow as detail (unless they say
  // the same, differing only in case and punctuation).
  const same = (a, b) => a.toLowerCase().replace(/[\s.。!]+$/u, '') === b.toLowerCase().replace(/[\s.。!]+$/u, '');
  const detail = err && err.message && !same(err.message, text) ? err.message : null;
  return el('div', { class: 'alert alert-error', role: 'alert' },
    el('strong', null, text),
    err && err.code && err.status ? el('span', { class: 'alert-code' }, ` (${err.code}, HTTP ${err.status})`) : null,
    detail ? el('p', { class: 'alert-detail' }, detail) : null,
    extra || null);
}

export function okBox(text) {
  return el('div', { class: 'alert alert-ok', role: 'status' }, text);
}

export function badge(text, kind, title) {
  return el('span', { class: ['badge', kind ? 'badge-' + kind : ''], title: title || null }, text);
}

// Shows a modal <dialog>. body: nodes; onConfirm: async function run while the dialog
// stays open; a thrown error is shown inside the dialog and the dialog stays open (with
// the confirm button disabled when the error has final: true).
// Resolves true when confirmed (and onConfirm succeeded), false when cancelled.
export function confirmDialog({ title, body, confirmLabel, danger = false, onConfirm }) {
  return new Promise((resolve) => {
    const errSlot = el('div', { class: 'dialog-error' });
    const cancelBtn = el('button', { type: 'button', class: 'btn', value: 'cancel' }, t('common.cancel'));
    const okBtn = el('button', { type: 'submit', class: ['btn', danger ? 'btn-danger' : 'btn-primary'] },
      confirmLabel || t('common.confirm'));
    const titleId = 'dlg-title-' + Math.random().toString(36).slice(2);
    const form = el('form', { method: 'dialog', class: 'dialog-form' },
      el('h2', { id: titleId }, title),
      el('div', { class: 'dialog-body' }, body || null),
      errSlot,
      el('div', { class: 'dialog-actions' }, cancelBtn, okBtn));
    const dlg = el('dialog', { class: 'dialog', 'aria-labelledby': titleId }, form);
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      if (dlg.open) dlg.close();
      dlg.remove();
      resolve(v);
    };
    cancelBtn.addEventListener('click', () => finish(false));
    dlg.addEventListener('cancel', (e) => {
      if (cancelBtn.disabled) e.preventDefault(); // a request is in flight
      else finish(false);
    });
    dlg.addEventListener('close', () => finish(false));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!form.reportValidity()) return;
      if (!onConfirm) {
        finish(true);
        return;
      }
      okBtn.disabled = true;
      cancelBtn.disabled = true;
      replace(errSlot);
      try {
        await onConfirm(form);
        finish(true);
      } catch (err) {
        replace(errSlot, errorBox(err));
        // err.final: trying the same again cannot help; only Cancel stays.
        okBtn.disabled = !!err.final;
        cancelBtn.disabled = false;
      }
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    // Destructive actions start on "Cancel"; others on the first field.
    const first = form.querySelector('input, select, textarea');
    (danger || !first ? cancelBtn : first).focus();
  });
}
