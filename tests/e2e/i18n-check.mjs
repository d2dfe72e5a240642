// Checks the translation files: web/i18n/en.json and zh-CN.json have the same keys and
// the same {placeholders}, and every t('…') key used in web/js exists in both (plus the
// keys the code builds from API enums, listed below). Exits non-zero on any problem.
// Usage: node tests/e2e/i18n-check.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(here, '../../web');

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
    'network', 'timeout', 'unknown'],
};
const PROBLEMS = ['consul_unreachable', 'no_leader', 'server_not_voter', 'server_failed', 'server_left',
  'raft_peer_unknown', 'server_not_in_raft', 'even_server_count', 'low_failure_tolerance', 'check_critical'];

const NAMESPACES = ['common', 'nav', 'topbar', 'conn', 'role', 'outcome', 'serf', 'check', 'time', 'error',
  'login', 'cluster', 'problem', 'health', 'kv', 'audit', 'users'];

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

export function checkI18n() {
  const errors = [];
  const en = JSON.parse(fs.readFileSync(path.join(WEB, 'i18n/en.json'), 'utf8'));
  const zh = JSON.parse(fs.readFileSync(path.join(WEB, 'i18n/zh-CN.json'), 'utf8'));
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
  for (const file of walk(path.join(WEB, 'js'))) {
    const src = fs.readFileSync(file, 'utf8');
    const rel = path.relative(WEB, file);
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
  for (const code of PROBLEMS) {
    used.set(`problem.${code}`, '(dynamic)');
    used.set(`problem.${code}.title`, '(dynamic)');
  }
  let literal = 0;
  for (const [k, file] of used) {
    if (/[._]$/.test(k)) continue; // a prefix the code completes at run time
    literal += 1;
    if (!(k in en)) errors.push(`${file}: t('${k}') missing from en.json`);
    if (!(k in zh)) errors.push(`${file}: t('${k}') missing from zh-CN.json`);
  }
  return { errors, keys: Object.keys(en).length, used: literal };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { errors, keys, used } = checkI18n();
  for (const e of errors) console.error('i18n: ' + e);
  if (errors.length) {
    console.error(`i18n: ${errors.length} problem(s)`);
    process.exit(1);
  }
  console.log(`i18n: ok (${keys} keys in each language, ${used} keys referenced)`);
}
