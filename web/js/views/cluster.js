// Cluster topology: the servers as a ring, quorum badges, problems in plain words,
// the server table and the client agents. Live from the "cluster" event.
import * as api from '../api.js';
import { el, svg, replace } from '../dom.js';
import { t, has } from '../i18n.js';
import { subscribe, publish, lastEvent } from '../events.js';
import { timeEl, duration } from '../format.js';
import { loading, errorBox, badge, empty } from '../ui.js';

const SERF_KIND = { alive: 'ok', failed: 'bad', left: 'muted', leaving: 'warn', none: 'muted', unknown: 'warn' };
const CHECK_KIND = { passing: 'ok', warning: 'warn', critical: 'bad', maintenance: 'muted', none: 'muted' };
const SEVERE = new Set(['consul_unreachable', 'no_leader', 'server_failed', 'server_missing', 'check_critical']);

function serfText(s) {
  return has('serf.' + s) ? t('serf.' + s) : String(s ?? '');
}

function yesNo(b) {
  return b ? t('common.yes') : t('common.no');
}

// Five-pointed star centred at (x, y).
function starPoints(x, y, r) {
  const pts = [];
  for (let i = 0; i < 10; i++) {
    const a = -Math.PI / 2 + (i * Math.PI) / 5;
    const rr = i % 2 === 0 ? r : r * 0.45;
    pts.push(`${(x + rr * Math.cos(a)).toFixed(1)},${(y + rr * Math.sin(a)).toFixed(1)}`);
  }
  return pts.join(' ');
}

function nodeTitle(s) {
  return [
    s.node,
    `${t('cluster.col_address')}: ${s.address || '-'}`,
    `${t('cluster.col_role')}: ${s.leader ? t('cluster.role_leader') : s.voter ? t('cluster.role_follower') : t('cluster.role_nonvoter')}`,
    `${t('cluster.col_serf')}: ${serfText(s.serf_status)}`,
    `${t('cluster.col_healthy')}: ${yesNo(s.healthy)}`,
    `${t('cluster.col_version')}: ${s.version || '-'}`,
  ].join('\n');
}

// The ring of servers as an SVG drawing.
function topology(data) {
  const servers = data.servers || [];
  const W = 560;
  const H = 450;
  const cx = W / 2;
  const cy = 218;
  const n = servers.length;
  const R = n <= 1 ? 0 : 150;
  const r = 36;
  const pos = servers.map((s, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    return { s, x: cx + R * Math.cos(a), y: (n <= 1 ? cy - 120 : cy) + R * Math.sin(a) };
  });
  const leader = pos.find((p) => p.s.leader);
  const titleId = 'topo-title';
  const descId = 'topo-desc';
  const root = svg('svg', {
    class: 'topology', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
  },
  svg('title', { id: titleId }, t('cluster.topology_title')),
  svg('desc', { id: descId }, t('cluster.topology_desc', {
    n, leader: data.leader ? data.leader.node : t('cluster.no_leader'),
  })));

  root.append(svg('circle', { class: 'ring', cx, cy, r: R || 1 }));
  if (leader) {
    for (const p of pos) {
      if (p === leader) continue;
      root.append(svg('line', {
        class: ['edge', p.s.voter ? '' : 'edge-nonvoter'], x1: leader.x, y1: leader.y, x2: p.x, y2: p.y,
      }));
    }
  }
  // Centre: datacenter and leader.
  root.append(svg('text', { class: 'centre-dc', x: cx, y: cy - 8, 'text-anchor': 'middle' },
    data.datacenter || t('cluster.unknown_dc')));
  root.append(svg('text', { class: ['centre-leader', data.leader ? '' : 'centre-noleader'], x: cx, y: cy + 18,
    'text-anchor': 'middle' },
  data.leader ? t('cluster.centre_leader', { node: data.leader.node }) : t('cluster.no_leader')));

  for (const p of pos) {
    const s = p.s;
    const g = svg('g', {
      class: ['server-node', 'serf-' + (s.serf_status || 'unknown'), s.voter ? 'voter' : 'nonvoter',
        s.leader ? 'is-leader' : '', s.healthy ? '' : 'unhealthy'],
      dataset: { node: s.node, leader: s.leader ? 'true' : 'false' },
    });
    g.append(svg('title', null, nodeTitle(s)));
    g.append(svg('circle', { class: 'node-circle', cx: p.x, cy: p.y, r }));
    g.append(svg('text', { class: 'node-role', x: p.x, y: p.y + 4, 'text-anchor': 'middle' },
      s.leader ? t('cluster.role_leader') : s.voter ? t('cluster.role_follower') : t('cluster.role_nonvoter')));
    g.append(svg('text', { class: 'node-name', x: p.x, y: p.y + r + 18, 'text-anchor': 'middle' }, s.node));
    g.append(svg('text', { class: 'node-addr', x: p.x, y: p.y + r + 33, 'text-anchor': 'middle' },
      s.address || ''));
    if (s.leader) {
      g.append(svg('polygon', { class: 'leader-mark', points: starPoints(p.x, p.y - r - 4, 13) },
        svg('title', null, t('cluster.leader_mark'))));
    }
    if (!s.healthy) {
      const wx = p.x + r * 0.78;
      const wy = p.y - r * 0.78;
      g.append(svg('g', { class: 'warn-mark' },
        svg('title', null, t('cluster.unhealthy_mark')),
        svg('polygon', { points: `${wx},${wy - 11} ${wx + 11},${wy + 8} ${wx - 11},${wy + 8}` }),
        svg('text', { x: wx, y: wy + 6, 'text-anchor': 'middle' }, '!')));
    }
    root.append(g);
  }
  return el('figure', { class: 'topology-wrap card' },
    root,
    legend());
}

function legend() {
  const item = (cls, text) => el('li', null, el('span', { class: 'swatch ' + cls, 'aria-hidden': 'true' }), text);
  return el('figcaption', { class: 'legend' }, el('ul', null,
    item('sw-alive', t('serf.alive')),
    item('sw-leaving', t('serf.leaving')),
    item('sw-failed', t('serf.failed')),
    item('sw-left', t('serf.left')),
    item('sw-voter', t('cluster.legend_voter')),
    item('sw-nonvoter', t('cluster.legend_nonvoter')),
    item('sw-leader', t('cluster.legend_leader')),
    item('sw-warn', t('cluster.legend_unhealthy'))));
}

function stat(label, value, kind, title) {
  return el('div', { class: ['stat', kind ? 'stat-' + kind : ''], title: title || null },
    el('div', { class: 'stat-label' }, label),
    el('div', { class: 'stat-value' }, value));
}

function badges(data) {
  const q = data.quorum || {};
  const ft = q.failure_tolerance;
  const seed = data.seed_check || {};
  return el('div', { class: 'stats' },
    stat(t('cluster.overall'), data.healthy ? t('cluster.healthy') : t('cluster.unhealthy'),
      data.healthy ? 'ok' : 'bad'),
    stat(t('cluster.servers'), String((data.servers || []).length)),
    stat(t('cluster.voters'), String(q.voters ?? '-')),
    stat(t('cluster.quorum_size'), String(q.size ?? '-'), null, t('cluster.quorum_size_hint')),
    stat(t('cluster.failure_tolerance'), String(ft ?? '-'), ft === 0 ? 'bad' : ft === 1 ? 'warn' : 'ok',
      t('cluster.failure_tolerance_hint')),
    stat(t('cluster.seed_check'), seed.ok ? t('cluster.seed_ok') : t('cluster.seed_fail'),
      seed.ok ? 'ok' : 'bad', seed.detail || null),
    el('p', { class: 'seed-detail muted' }, t('cluster.seed_check_hint')),
    seed.detail ? el('p', { class: 'seed-detail muted' }, t('cluster.server_says'), ' ',
      el('span', { lang: 'en' }, seed.detail)) : null);
}

function problemText(p) {
  const key = 'problem.' + p.code;
  if (has(key)) return t(key, { node: p.node || t('cluster.a_server') });
  return p.message || p.code;
}

function problems(data) {
  const list = data.problems || [];
  if (!list.length) {
    return el('section', { class: 'problems card' }, el('h2', null, t('cluster.problems')),
      el('p', { class: 'state empty ok-text' }, t('cluster.no_problems')));
  }
  return el('section', { class: 'problems card', 'aria-labelledby': 'problems-h' },
    el('h2', { id: 'problems-h' }, t('cluster.problems'), ' ', badge(String(list.length), 'bad')),
    el('ul', { class: 'problem-list' }, list.map((p) => el('li', {
      class: ['problem', SEVERE.has(p.code) ? 'problem-bad' : 'problem-warn'], dataset: { code: p.code },
    },
    el('div', { class: 'problem-head' },
      el('strong', null, has('problem.' + p.code + '.title') ? t('problem.' + p.code + '.title') : p.code),
      p.node ? el('span', { class: 'problem-node' }, t('cluster.node_label'), ' ', el('code', null, p.node)) : null),
    el('p', { class: 'problem-text' }, problemText(p)),
    p.message && has('problem.' + p.code)
      ? el('p', { class: 'problem-raw muted' }, t('cluster.server_says'), ' ', p.message) : null))));
}

function serverTable(data) {
  const rows = (data.servers || []).map((s) => {
    const ex = s.exporter;
    return el('tr', { dataset: { node: s.node } },
      el('th', { scope: 'row' }, s.node, s.leader ? el('span', { class: 'star-inline', title: t('cluster.leader_mark') }, ' ★') : null),
      el('td', null, el('code', null, s.address || '')),
      el('td', null, s.voter ? badge(t('common.yes'), 'ok') : badge(t('common.no'), 'warn')),
      el('td', null, s.leader ? badge(t('cluster.role_leader'), 'leader') : t('common.no')),
      el('td', null, badge(serfText(s.serf_status), SERF_KIND[s.serf_status] || 'muted')),
      el('td', null, s.healthy ? badge(t('common.yes'), 'ok') : badge(t('common.no'), 'bad')),
      el('td', null, s.version || '-'),
      el('td', null, s.last_contact || '-'),
      el('td', null, s.last_index ?? '-'),
      el('td', null, badge(has('check.' + s.check_status) ? t('check.' + s.check_status) : String(s.check_status ?? '-'),
        CHECK_KIND[s.check_status] || 'muted')),
      el('td', null, ex
        ? (ex.reachable
          ? [badge(ex.consul_up ? 'consul_up 1' : 'consul_up 0', ex.consul_up ? 'ok' : 'bad'), ' ',
            el('span', { class: 'muted' }, t('cluster.raft_peers', { n: ex.raft_peers ?? '-' }))]
          : badge(t('cluster.exporter_down'), 'bad'))
        : el('span', { class: 'muted' }, '-')));
  });
  return el('section', { class: 'card' },
    el('h2', null, t('cluster.server_table')),
    el('div', { class: 'table-wrap' }, el('table', { class: 'table servers-table' },
      el('thead', null, el('tr', null,
        ['col_node', 'col_address', 'col_voter', 'col_leader', 'col_serf', 'col_healthy', 'col_version',
          'col_last_contact', 'col_last_index', 'col_check', 'col_exporter']
          .map((k) => el('th', { scope: 'col' }, t('cluster.' + k))))),
      el('tbody', null, rows))));
}

const SERF_ORDER = { failed: 0, leaving: 1, unknown: 2, none: 3, left: 4, alive: 5 };

function clients(data, state) {
  const list = (data.clients || []).slice()
    .sort((a, b) => (SERF_ORDER[a.serf_status] ?? 9) - (SERF_ORDER[b.serf_status] ?? 9) ||
      String(a.node).localeCompare(String(b.node)));
  const counts = data.client_counts || {};
  const details = el('details', { class: 'clients-details', open: state.clientsOpen },
    el('summary', null, t('cluster.clients_list', { n: list.length })),
    list.length
      ? el('div', { class: 'table-wrap' }, el('table', { class: 'table' },
        el('thead', null, el('tr', null, el('th', { scope: 'col' }, t('cluster.col_node')),
          el('th', { scope: 'col' }, t('cluster.col_address')), el('th', { scope: 'col' }, t('cluster.col_serf')))),
        el('tbody', null, list.map((c) => el('tr', null, el('th', { scope: 'row' }, c.node),
          el('td', null, el('code', null, c.address || '')),
          el('td', null, badge(serfText(c.serf_status), SERF_KIND[c.serf_status] || 'muted')))))))
      : empty(t('cluster.no_clients')));
  details.addEventListener('toggle', () => {
    state.clientsOpen = details.open;
  });
  return el('section', { class: 'card' },
    el('h2', null, t('cluster.clients')),
    el('div', { class: 'badges' }, ['alive', 'failed', 'leaving', 'left', 'none'].map((k) =>
      badge(`${serfText(k)}: ${counts[k] ?? 0}`, counts[k] ? SERF_KIND[k] : 'muted'))),
    details);
}

function view(data, state) {
  const out = [];
  if (data.reachable === false) {
    out.push(el('div', { class: 'banner banner-bad', role: 'alert' },
      el('strong', null, t('cluster.unreachable_banner', { age: duration(data.age_ms) })),
      el('span', null, ' ', t('cluster.unreachable_hint'))));
  }
  out.push(el('p', { class: 'updated muted' }, t('cluster.updated'), ' ', timeEl(data.updated_at),
    ' (', t('cluster.ago', { age: duration(data.age_ms) }), ')'));
  if (!(data.servers || []).length) {
    out.push(empty(t('cluster.no_servers')));
  } else {
    out.push(el('div', { class: 'cluster-grid' }, topology(data),
      el('div', { class: 'cluster-side' }, badges(data), problems(data))));
    out.push(serverTable(data));
  }
  out.push(clients(data, state));
  return out;
}

export function render(root) {
  const state = { clientsOpen: false };
  const content = el('div', { class: 'cluster-content' }, loading());
  replace(root, el('h1', null, t('nav.cluster')), content);
  let got = false;
  const show = (data) => {
    got = true;
    replace(content, view(data, state));
  };
  const ac = new AbortController();
  const cached = lastEvent('cluster');
  if (cached) show(cached);
  const unsub = subscribe('cluster', show);
  api.get('/api/cluster', null, { signal: ac.signal }).then((data) => {
    const last = lastEvent('cluster');
    // The stream may already have delivered something newer.
    if (!last || !(Date.parse(last.updated_at) > Date.parse(data.updated_at))) publish('cluster', data);
  }).catch((err) => {
    if (err.code === 'aborted') return;
    if (!got) replace(content, errorBox(err));
  });
  return () => {
    ac.abort();
    unsub();
  };
}
