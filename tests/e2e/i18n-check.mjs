// Checks the translation files: web/i18n/en.json and zh-CN.json have the same keys and
// the same {placeholders}, and every t('…') key used in web/js exists in both (plus the
// keys the code builds from API enums, listed below). The cluster problem codes are read
// from the server's own table (problem_names in server/cluster.c), so a code added there
// without its problem.<code> and problem.<code>.title texts fails this check, and so does
// a problem.* text for a code the server no longer has; likewise the diagnose finding codes
// (server/procedures_diag.c, finding.<code>). Exits non-zero on any problem.
// Usage: node tests/e2e/i18n-check.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '../..');
const WEB = path.join(ROOT, 'web');

// Keys the code composes from a prefix and a value from the API contract.
const DYNAMIC = {
  'serf.': ['none', 'alive', 'leaving', 'left', 'failed', 'unknown'],
  'check.': ['passing', 'warning', 'critical', 'maintenance', 'none'],
  'role.': ['viewer', 'operator', 'approver', 'admin'],
  'outcome.': ['ok', 'denied', 'error', 'pending'],
  'kv.mode_': ['json', 'text', 'hex', 'base64'],
  'kv.action.': ['put', 'delete', 'restore'],
  'cluster.col_': ['node', 'address', 'voter', 'leader', 'serf', 'healthy', 'version', 'last_contact',
    'last_index', 'check', 'exporter'],
  'audit.col_': ['time', 'actor', 'role', 'ip', 'action', 'target', 'outcome', 'detail'],
  'users.col_': ['name', 'role', 'status', 'created', 'last_login', 'actions'],
  'error.': ['invalid_credentials', 'too_many_attempts', 'last_admin', 'cas_conflict', 'forbidden',
    'network', 'timeout', 'unknown', 'node_exists', 'node_busy', 'host_key_mismatch', 'ssh_unreachable',
    'self_approval', 'invalid_state', 'invalid_field'],
  // the Jobs API's enums (JOBS.md) and the columns and steps the pages build keys for
  'job.state.': ['awaiting_approval', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'rolled_back',
    'rejected', 'interrupted'],
  'job.type.': ['node-add', 'node-remove', 'rollback', 'diagnose'],
  'job.strategy.': ['rolling', 'full-restart'],
  'job.step_state.': ['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled', 'rolled_back'],
  'job.banner.': ['queued', 'running', 'cancelled', 'rolled_back', 'interrupted'],
  'job.col_': ['seq', 'node', 'step', 'state', 'exit', 'started', 'ended'],
  'jobs.col_': ['id', 'type', 'node', 'strategy', 'state', 'requested', 'decided', 'ended', 'reason'],
  'nodes.state.': ['unknown', 'server', 'spare', 'removed'],
  'nodes.col_': ['name', 'address', 'ssh', 'compose_dir', 'host_key', 'server_state', 'consul', 'actions'],
  'wizard.step_': ['change', 'node', 'strategy', 'review'],
};


// The problem codes of server/cluster.c's problem_names table ([CLUSTER_P_X] = "code"),
// checked against the enum cluster_problem_code in include/cluster.h: every constant before
// CLUSTER_P_COUNT_ has exactly one name. Returns { codes, errors }.
export function problemCodes(root = ROOT) {
  const errors = [];
  const src = fs.readFileSync(path.join(root, 'server/cluster.c'), 'utf8');
  const table = /problem_names\[CLUSTER_P_COUNT_\]\s*=\s*\{([\s\S]*?)\};/.exec(src);
  if (!table) return { codes: [], errors: ['server/cluster.c: the problem_names table was not found'] };
  const entries = Array.from(table[1].matchAll(/\[(CLUSTER_P_[A-Z0-9_]+)\]\s*=\s*"([a-z0-9_]+)"/g));
  const hdr = fs.readFileSync(path.join(root, 'include/cluster.h'), 'utf8');
  const en = /enum cluster_problem_code\s*\{([\s\S]*?)\};/.exec(hdr);
  const constants = en ? Array.from(en[1].matchAll(/\b(CLUSTER_P_[A-Z0-9_]+)\b/g), (m) => m[1])
    .filter((c) => c !== 'CLUSTER_P_COUNT_') : [];
  if (!constants.length) errors.push('include/cluster.h: enum cluster_problem_code was not found');
  const named = new Set(entries.map((m) => m[1]));
  for (const c of constants) if (!named.has(c)) errors.push(`server/cluster.c: problem_names has no name for ${c}`);
  for (const c of named) if (!constants.includes(c)) errors.push(`server/cluster.c: ${c} is not in enum cluster_problem_code`);
  const codes = entries.map((m) => m[2]);
  if (!codes.length) errors.push('server/cluster.c: the problem_names table lists no code');
  return { codes, errors };
}

// The diagnose finding codes (finding(list, "code", …) in server/procedures_diag.c), which
// web/js/views/job.js titles from finding.<code> and lists in its FINDINGS array: the two
// must agree. Returns { codes, errors }.
export function findingCodes(root = ROOT) {
  const errors = [];
  const src = fs.readFileSync(path.join(root, 'server/procedures_diag.c'), 'utf8');
  const codes = [...new Set(Array.from(src.matchAll(/\bfinding\(\s*list,\s*"([a-z0-9_]+)"/g), (m) => m[1]))].sort();
  if (!codes.length) errors.push('server/procedures_diag.c: no finding(list, "code", …) found');
  const js = fs.readFileSync(path.join(root, 'web/js/views/job.js'), 'utf8');
  const arr = /const FINDINGS = \[([\s\S]*?)\];/.exec(js);
  const listed = arr ? Array.from(arr[1].matchAll(/'([a-z0-9_]+)'/g), (m) => m[1]).sort() : [];
  if (!arr) errors.push('web/js/views/job.js: the FINDINGS list was not found');
  for (const c of codes) if (!listed.includes(c)) errors.push(`web/js/views/job.js: FINDINGS lacks ${c} (server/procedures_diag.c)`);
  for (const c of listed) if (!codes.includes(c)) errors.push(`web/js/views/job.js: FINDINGS has ${c}, which server/procedures_diag.c never reports`);
  return { codes, errors };
}

const NAMESPACES = ['common', 'nav', 'topbar', 'conn', 'role', 'outcome', 'serf', 'check', 'time', 'error',
  'login', 'cluster', 'problem', 'health', 'kv', 'audit', 'users', 'nodes', 'jobs', 'job', 'wizard', 'plan', 'log'];

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.js')) out.push(p);
  }
  return out;
}

function placeholders(s) {
  return Array.from(String(s).matchAll(/\{(\w+)\}/g), (m) => m[1]).sort().join(',');
}

// root is the repository (web/, server/ and include/ are read under it). Returns
// { errors, notes, keys, used, problems }.
export function checkI18n(root = ROOT) {
  const web = path.join(root, 'web');
  const { codes: problems, errors } = problemCodes(root);
  const findings = findingCodes(root);
  errors.push(...findings.errors);
  const notes = [];
  const en = JSON.parse(fs.readFileSync(path.join(web, 'i18n/en.json'), 'utf8'));
  const zh = JSON.parse(fs.readFileSync(path.join(web, 'i18n/zh-CN.json'), 'utf8'));
  for (const k of Object.keys(en)) if (!(k in zh)) errors.push(`key in en.json but not zh-CN.json: ${k}`);
  for (const k of Object.keys(zh)) if (!(k in en)) errors.push(`key in zh-CN.json but not en.json: ${k}`);
  for (const k of Object.keys(en)) {
    if (k in zh && placeholders(en[k]) !== placeholders(zh[k])) {
      errors.push(`placeholders differ for ${k}: en {${placeholders(en[k])}} zh-CN {${placeholders(zh[k])}}`);
    }
    if (typeof en[k] !== 'string' || !en[k]) errors.push(`empty en value: ${k}`);
    if (k in zh && (typeof zh[k] !== 'string' || !zh[k])) errors.push(`empty zh-CN value: ${k}`);
  }

  const used = new Map(); // key -> file
  const lit = /\bt\(\s*'([^'\\]+)'/g;
  const ternary = /\bt\([^?;\n()]*(?:\([^()]*\))?[^?;\n()]*\?\s*'([^'\\]+)'\s*:\s*'([^'\\]+)'/g;
  const keyish = new RegExp("'((?:" + NAMESPACES.join('|') + ")\\.[a-z0-9_.]*[a-z0-9])'", 'g');
  for (const file of walk(path.join(web, 'js'))) {
    const src = fs.readFileSync(file, 'utf8');
    const rel = path.relative(web, file);
    for (const m of src.matchAll(lit)) used.set(m[1], rel);
    // Key-shaped literals passed around before reaching t() (route titles, field labels).
    for (const m of src.matchAll(keyish)) used.set(m[1], rel);
    for (const m of src.matchAll(ternary)) {
      used.set(m[1], rel);
      used.set(m[2], rel);
    }
  }
  for (const [prefix, values] of Object.entries(DYNAMIC)) {
    for (const v of values) used.set(prefix + v, '(dynamic)');
  }
  for (const code of problems) {
    used.set(`problem.${code}`, 'server/cluster.c');
    used.set(`problem.${code}.title`, 'server/cluster.c');
  }
  for (const code of findings.codes) used.set(`finding.${code}`, 'server/procedures_diag.c');
  for (const k of Object.keys(en)) {
    const f = /^finding\.([a-z0-9_]+)$/.exec(k);
    if (f && findings.codes.length && !findings.codes.includes(f[1])) {
      errors.push(`${k}: no finding code ${f[1]} in server/procedures_diag.c`);
    }
  }
  for (const k of Object.keys(en)) {
    const m = /^problem\.([a-z0-9_]+)(\.title)?$/.exec(k);
    if (m && problems.length && !problems.includes(m[1])) {
      errors.push(`${k}: no problem code ${m[1]} in server/cluster.c`);
    }
  }
  let literal = 0;
  for (const [k, file] of used) {
    if (/[._]$/.test(k)) continue; // a prefix the code completes at run time
    literal += 1;
    const what = file === 'server/cluster.c' ? `problem code text '${k}'`
      : file === 'server/procedures_diag.c' ? `finding code text '${k}'` : `t('${k}')`;
    if (!(k in en)) errors.push(`${file}: ${what} missing from en.json`);
    if (!(k in zh)) errors.push(`${file}: ${what} missing from zh-CN.json`);
  }
  return { errors, notes, keys: Object.keys(en).length, used: literal, problems };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { errors, notes, keys, used, problems } = checkI18n();
  for (const n of notes) console.log('i18n: note: ' + n);
  for (const e of errors) console.error('i18n: ' + e);
  if (errors.length) {
    console.error(`i18n: ${errors.length} problem(s)`);
    process.exit(1);
  }
  console.log(`i18n: ok (${keys} keys in each language, ${used} keys referenced, ` +
    `${problems.length} problem codes from server/cluster.c)`);
}
