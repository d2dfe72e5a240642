// Translations. Loads /i18n/<lang>.json; t(key, params) interpolates {name};
// a key missing in the current language falls back to English, then to the key.

import { getStatic } from './api.js';

const LANGS = ['zh-CN', 'en'];
const STORE_KEY = 'consulate.lang';
const dicts = {};
let lang = 'en';
const listeners = new Set();

function detect() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (LANGS.includes(saved)) return saved;
  } catch (_) {
    /* storage disabled */
  }
  const prefs = navigator.languages && navigator.languages.length
    ? navigator.languages : [navigator.language || 'en'];
  for (const p of prefs) {
    const l = String(p).toLowerCase();
    if (l.startsWith('zh')) return 'zh-CN';
    if (l.startsWith('en')) return 'en';
  }
  return 'en';
}

const loading = {};

// One fetch per language, however many ask for it at once (English is loaded beside the
// chosen language, which is often English too).
function load(l) {
  if (!loading[l]) {
    loading[l] = fetchDict(l).then((res) => {
      dicts[l] = res;
      return res;
    });
  }
  return loading[l];
}

async function fetchDict(l) {
  try {
    // Beside the modules: under the build's versioned prefix (/v/<hash>/i18n/…, cached for
    // good) when the binary serves its own files, /i18n/… from a web_root.
    return await getStatic(new URL(`../i18n/${l}.json`, import.meta.url).pathname);
  } catch (_) {
    return {};
  }
}

export async function initI18n() {
  lang = detect();
  await Promise.all([load('en'), load(lang)]);
  document.documentElement.lang = lang;
}

export function getLang() {
  return lang;
}

export function languages() {
  return LANGS.slice();
}

export async function setLang(l) {
  if (!LANGS.includes(l) || l === lang) return;
  await load(l);
  lang = l;
  try {
    localStorage.setItem(STORE_KEY, l);
  } catch (_) {
    /* storage disabled */
  }
  document.documentElement.lang = l;
  for (const fn of listeners) fn(l);
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(dicts[lang] || {}, key) ||
    Object.prototype.hasOwnProperty.call(dicts.en || {}, key);
}

export function t(key, params) {
  let s = (dicts[lang] && dicts[lang][key]) ?? (dicts.en && dicts.en[key]) ?? key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name) =>
      Object.prototype.hasOwnProperty.call(params, name) && params[name] !== undefined &&
      params[name] !== null ? String(params[name]) : m);
  }
  return s;
}

// A person-readable message for an ApiError (or any Error): the translation of
// "error.<code>" when one exists, else the server's message.
export function errorText(err) {
  if (!err) return t('error.unknown');
  if (err.code && has('error.' + err.code)) return t('error.' + err.code);
  return err.message || t('error.unknown');
}
