// Entry point: session bootstrap, the top bar, and the hash router.
import * as api from './api.js';
import { el, replace, on } from './dom.js';
import { initI18n, t, getLang, setLang, onLangChange, errorText } from './i18n.js';
import { startEvents, stopEvents, subscribe, onStatus, connectionStatus, lastEvent } from './events.js';
import { currentUser, setUser, can, setApprovalRequired, approvalIsRequired } from './session.js';
import { badge, errorBox } from './ui.js';
import * as loginView from './views/login.js';
import * as clusterView from './views/cluster.js';
import * as healthView from './views/health.js';
import * as kvView from './views/kv.js';
import * as auditView from './views/audit.js';
import * as usersView from './views/users.js';
import * as nodesView from './views/nodes.js';
import * as jobsView from './views/jobs.js';
import * as jobView from './views/job.js';
import * as wizardView from './views/wizard.js';

const ROUTES = {
  login: { view: loginView, title: 'nav.login', public: true },
  cluster: { view: clusterView, title: 'nav.cluster', nav: true },
  health: { view: healthView, title: 'nav.health', nav: true },
  nodes: { view: nodesView, title: 'nav.nodes', nav: true },
  // #/jobs (the list), #/jobs/new (the change wizard), #/jobs/<id> (one job)
  jobs: {
    view: jobsView, title: 'nav.jobs', nav: true,
    sub: (path) => {
      if (path === 'new') return { view: wizardView, title: 'wizard.title', role: 'operator' };
      if (/^[1-9][0-9]{0,15}$/.test(path)) return { view: jobView, title: 'job.page_title' };
      return null;
    },
  },
  kv: { view: kvView, title: 'nav.kv', nav: true },
  audit: { view: auditView, title: 'nav.audit', nav: true },
  users: { view: usersView, title: 'nav.users', nav: true, role: 'admin' },
};

const topbar = document.getElementById('topbar');
const main = document.getElementById('main');
let cleanup = null;
let returnTo = null;
let currentRoute = null;
let bootError = null; // why the session check at start-up failed, shown on the login page

// "#/kv/a%2Fb/c?x=1" → {name: "kv", path: "a/b/c", query: URLSearchParams}
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const qi = raw.indexOf('?');
  const pathPart = qi >= 0 ? raw.slice(0, qi) : raw;
  const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : '');
  const segs = pathPart.split('/');
  const name = segs[0] || '';
  const rest = segs.slice(1).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch (_) {
      return s;
    }
  });
  return { name, path: rest.join('/'), query };
}

function setSession(s) {
  setUser(s.user);
  api.setCsrfToken(s.csrf_token);
  setApprovalRequired(s.approval_required);
  startEvents(checkSession);
  // The sign-in answer may not carry the settings; the session document does.
  if (s.approval_required === undefined) checkSession();
}

function clearSession() {
  setUser(null);
  api.setCsrfToken(null);
  stopEvents();
}

// Called before the event stream reopens: a 401 here sends the person to login.
async function checkSession() {
  try {
    const s = await api.get('/api/session');
    const was = approvalIsRequired();
    setUser(s.user);
    api.setCsrfToken(s.csrf_token);
    setApprovalRequired(s.approval_required);
    if (was !== approvalIsRequired()) renderTopbar();
  } catch (_) {
    /* 401 handled by api.js; a network error lets the stream retry */
  }
}

api.onUnauthorized(() => {
  if (currentUser()) {
    const h = location.hash;
    if (h && !h.startsWith('#/login')) returnTo = h;
  }
  clearSession();
  renderTopbar();
});

function connLabel(status) {
  return {
    live: t('conn.live'),
    connecting: t('conn.connecting'),
    reconnecting: t('conn.reconnecting'),
    off: t('conn.off'),
  }[status] || status;
}

function renderConn(node) {
  const s = connectionStatus();
  node.className = 'conn conn-' + s;
  node.title = t('conn.title');
  replace(node, el('span', { class: 'conn-dot', 'aria-hidden': 'true' }), connLabel(s));
}

function renderDatacenter(node, cluster) {
  replace(node);
  if (!cluster) return;
  if (cluster.datacenter) {
    node.append(el('span', { class: 'dc-label' }, t('topbar.datacenter')), ' ',
      el('strong', null, cluster.datacenter));
  }
  if (cluster.reachable === false) node.append(' ', badge(t('cluster.unreachable_short'), 'bad'));
  else if (cluster.healthy === false) node.append(' ', badge(t('cluster.unhealthy'), 'warn'));
}

function langSwitcher() {
  const cur = getLang();
  return el('div', { class: 'lang', role: 'group', 'aria-label': t('topbar.language') },
    el('button', { type: 'button', class: 'lang-btn', dataset: { lang: 'zh-CN' }, lang: 'zh-CN',
      'aria-pressed': String(cur === 'zh-CN') }, '中文'),
    el('button', { type: 'button', class: 'lang-btn', dataset: { lang: 'en' }, lang: 'en',
      'aria-pressed': String(cur === 'en') }, 'English'));
}

function renderTopbar() {
  const user = currentUser();
  const brand = el('a', { class: 'brand', href: user ? '#/cluster' : '#/login' },
    el('img', { src: 'favicon.svg', alt: '', width: '22', height: '22' }), 'Consulate');
  if (!user) {
    replace(topbar, brand, el('div', { class: 'topbar-spacer' }), langSwitcher());
    topbar.classList.add('logged-out');
    return;
  }
  topbar.classList.remove('logged-out');
  const active = currentRoute ? currentRoute.name : '';
  const links = Object.entries(ROUTES)
    .filter(([, r]) => r.nav && (!r.role || can(r.role)))
    .map(([name, r]) => el('li', null, el('a', {
      href: '#/' + name, class: 'nav-link', dataset: { route: name },
      'aria-current': name === active ? 'page' : null,
    }, t(r.title))));
  const dc = el('span', { class: 'dc', id: 'topbar-dc' });
  renderDatacenter(dc, lastEvent('cluster'));
  const conn = el('span', { id: 'conn', role: 'status', 'aria-live': 'polite' });
  renderConn(conn);
  replace(topbar,
    brand,
    dc,
    el('nav', { class: 'nav', 'aria-label': t('nav.label') }, el('ul', null, links)),
    el('div', { class: 'topbar-spacer' }),
    conn,
    el('span', { class: 'who' },
      el('span', { class: 'who-name', title: t('topbar.signed_in_as') }, user.name), ' ',
      badge(t('role.' + user.role), 'role')),
    langSwitcher(),
    el('button', { type: 'button', class: 'btn btn-small btn-ghost', id: 'logout' }, t('topbar.logout')),
    approvalIsRequired() ? null : el('div', { class: 'approval-off', id: 'approval-off', role: 'status' },
      el('strong', null, t('topbar.approval_off')), ' ', t('topbar.approval_off_detail')));
}

subscribe('cluster', (c) => {
  const dc = document.getElementById('topbar-dc');
  if (dc) renderDatacenter(dc, c);
});
onStatus(() => {
  const n = document.getElementById('conn');
  if (n) renderConn(n);
});

on(topbar, 'click', '.lang-btn', (e, b) => {
  setLang(b.dataset.lang);
});
on(topbar, 'click', '#logout', async () => {
  try {
    await api.del('/api/session');
  } catch (_) {
    /* the session is dropped locally either way */
  }
  returnTo = null;
  clearSession();
  location.hash = '#/login';
});
document.getElementById('skip-link').addEventListener('click', () => main.focus());

function runCleanup() {
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      setTimeout(() => {
        throw e;
      });
    }
  }
  cleanup = null;
}

function route() {
  const r = parseHash();
  let def = ROUTES[r.name];
  if (def && def.sub && r.path) def = def.sub(r.path);
  const user = currentUser();
  if (!def) {
    location.replace(user ? '#/cluster' : '#/login');
    return;
  }
  if (!def.public && !user) {
    returnTo = location.hash;
    location.replace('#/login');
    return;
  }
  if (r.name === 'login' && user) {
    location.replace('#/cluster');
    return;
  }
  runCleanup();
  // A dialog belongs to the page it was opened on.
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  currentRoute = r;
  renderTopbar();
  document.title = t(def.title) + ' · Consulate';
  replace(main);
  main.className = 'main view-' + r.name;
  if (def.role && !can(def.role)) {
    main.append(el('h1', null, t(def.title)), errorBox({ code: 'forbidden', message: t('error.forbidden') }));
    return;
  }
  const params = {
    bootError: r.name === 'login' ? bootError : null,
    path: r.path,
    query: r.query,
    onLogin: (s) => {
      bootError = null;
      setSession(s);
      const target = returnTo && !returnTo.startsWith('#/login') ? returnTo : '#/cluster';
      returnTo = null;
      location.hash = target;
    },
  };
  try {
    const res = def.view.render(main, params);
    cleanup = typeof res === 'function' ? res : null;
  } catch (e) {
    main.append(errorBox(e));
    throw e;
  }
  // Move focus to the page heading for keyboard and screen-reader users.
  const target = main.querySelector('[data-autofocus]') || main.querySelector('h1');
  if (target) {
    if (target.tagName === 'H1') target.tabIndex = -1;
    target.focus({ preventScroll: true });
  }
}

onLangChange(() => {
  // Re-render the current page in the new language.
  route();
});

async function boot() {
  // The dictionaries and the session side by side: neither waits for the other.
  const session = api.get('/api/session', null, { noAuthRedirect: true });
  session.catch(() => {}); // handled below, once the texts are there
  await initI18n();
  try {
    const s = await session;
    if (s && s.user) setSession(s);
  } catch (e) {
    if (e.status !== 401) {
      bootError = e;
      console.warn('session check failed:', errorText(e));
    }
  }
  window.addEventListener('hashchange', route);
  route();
}

boot();
