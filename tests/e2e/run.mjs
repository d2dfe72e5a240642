// Browser end-to-end tests: real Chromium (Debian's /usr/bin/chromium through
// playwright-core), the real consulate server, and fake Consul server hosts (tests/nodes:
// the simulator, a real sshd per host with docker/docker-compose stand-ins) that
// consulate's jobs reach over SSH.
//
//   cd tests/e2e && npm ci && node --test --test-concurrency=1 run.mjs
//
// Environment: CONSULATE_BIN (default build/consulate), CONSUL_SIM_BIN (default
// build/consul-sim), FAKE_NODES_BIN (default build/fake-nodes), CHROMIUM (default
// /usr/bin/chromium). Screenshots and logs go to build/e2e/.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, request as apiRequest } from 'playwright-core';
import { checkI18n } from './i18n-check.mjs';
import { JobsStub } from './jobs-stub.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const OUT = path.join(ROOT, 'build/e2e');
const abs = (p) => (path.isAbsolute(p) ? p : path.join(ROOT, p));
const CONSULATE_BIN = abs(process.env.CONSULATE_BIN || 'build/consulate');
const CONSUL_SIM_BIN = abs(process.env.CONSUL_SIM_BIN || 'build/consul-sim');
const FAKE_NODES_BIN = abs(process.env.FAKE_NODES_BIN || 'build/fake-nodes');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP = 20000;

const procs = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'consulate-e2e-'));
let base = '';
let adminPassword = '';
let simControl = '';
let inventory = null; // build/fake-nodes' inventory: nodes with their host keys, consul, control
let ctx = null;
let page = null;
const pageErrors = [];

// Starts a child process, logging its output to build/e2e/<name>.log, and resolves
// with the first stdout line for which match(line) returns a truthy value.
function startProcess(name, bin, args, match, { timeout = 30000, stdin = 'ignore', env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const log = fs.createWriteStream(path.join(OUT, name + '.log'));
    const child = spawn(bin, args, { stdio: [stdin, 'pipe', 'pipe'], cwd: ROOT, env: { ...process.env, ...env } });
    procs.push(child);
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        reject(new Error(`${name}: no ready line within ${timeout} ms (see build/e2e/${name}.log)`));
      }
    }, timeout);
    child.stderr.on('data', (d) => log.write(d));
    const rl = readline.createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      log.write(line + '\n');
      if (done) return;
      const m = match(line);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ child, value: m });
      }
    });
    child.on('exit', (code, sig) => {
      log.write(`\n[exited: ${code ?? sig}]\n`);
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? sig}) before it was ready; see build/e2e/${name}.log`));
      }
    });
    child.on('error', (e) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(e);
      }
    });
  });
}

// consul-1..4 (servers) and consul-5 (a spare host with docker and no Consul yet).
const NODE_IPS = ['127.0.0.51', '127.0.0.52', '127.0.0.53', '127.0.0.54', '127.0.0.55'];

const tryListen = (ip, port) => new Promise((resolve) => {
  const srv = net.createServer();
  srv.once('error', () => resolve(false));
  srv.listen(port, ip, () => srv.close(() => resolve(true)));
});

// A TCP port that is free on every one of ips: preferred when it is (the production ports,
// always free in the test's own network namespace), else random ports in 20000–39999.
async function freePortOn(ips, preferred = 0) {
  const freeOnAll = async (port) => {
    for (const ip of ips) if (!(await tryListen(ip, port))) return false;
    return true;
  };
  if (preferred && await freeOnAll(preferred)) return preferred;
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    if (await freeOnAll(port)) return port;
  }
  throw new Error('no port free on ' + ips.join(', '));
}

// The admin's API session outside the browser (the inventory set-up, checks of the server's
// state, the approver's refusals).
let adminApi = null;
async function apiSession(user, password) {
  const rc = await apiRequest.newContext({ baseURL: base });
  const r = await rc.post('/api/session', { data: { username: user, password } });
  assert.equal(r.status(), 200, `login ${user}: ${await r.text()}`);
  const csrf = (await r.json()).csrf_token;
  const call = async (method, p, data, expect = 200) => {
    // a job request runs its prechecks and dry run over SSH before it answers
    const res = await rc.fetch(p, { method, data, headers: { 'X-CSRF-Token': csrf }, timeout: 90000 });
    const text = await res.text();
    assert.equal(res.status(), expect, `${method} ${p}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return { rc, csrf, call, close: () => rc.dispose() };
}

// The users of the jobs tests (created by the admin in the set-up).
const USERS = {
  operator: { name: 'e2e-operator', role: 'operator', password: 'operator-password-1' },
  approver: { name: 'e2e-approver', role: 'approver', password: 'approver-password-1' },
};

async function startServers() {
  for (const [what, bin] of [['server', CONSULATE_BIN], ['simulator', CONSUL_SIM_BIN], ['fake-nodes', FAKE_NODES_BIN]]) {
    if (!fs.existsSync(bin)) {
      throw new Error(`${what} binary not found: ${bin} (run make ${what === 'fake-nodes' ? 'build/fake-nodes ' : ''}at the repo root)`);
    }
  }
  // Every server's agent and exporter listen on one port each (as on a real site, where they
  // are 8500 and 9107 on each host): consulate is told consul.exporter_port, and the jobs'
  // prechecks test 8500, 9107, 8300 and 8301 from the new host.
  const httpPort = await freePortOn(NODE_IPS, 8500);
  const metricsPort = await freePortOn(NODE_IPS, 9107);
  let buf = '';
  const nodes = await startProcess('fake-nodes', FAKE_NODES_BIN, [
    '--servers', '4', '--spares', '1', '--speed', '20', '--ip-base', NODE_IPS[0],
    '--http-port', String(httpPort), '--metrics-port', String(metricsPort),
    '--sim-args', '--clients 3 --demo-data --quiet', '--parent-dir', tmp, '--exit-on-stdin-eof',
  ], (line) => {
    buf += line + '\n';
    try {
      const j = JSON.parse(buf);
      return j && Array.isArray(j.nodes) ? j : null;
    } catch (_) {
      return null;
    }
  }, { stdin: 'pipe', timeout: 90000, env: { CONSUL_SIM_BIN, CONSULATE_SRC: ROOT } });
  inventory = nodes.value;
  simControl = inventory.control;
  const config = path.join(tmp, 'consulate.json');
  fs.writeFileSync(config, JSON.stringify({
    listen: '127.0.0.1:0',
    database: path.join(tmp, 'c.db'),
    consul: { addresses: inventory.consul.addresses, exporter_port: inventory.consul.exporter_port, exporter_interval_s: 1 },
  }, null, 2));
  let pw = '';
  const srv = await startProcess('consulate', CONSULATE_BIN, ['serve', '--config', config], (line) => {
    const p = /consulate: created user admin with password: (\S+)/.exec(line);
    if (p) pw = p[1];
    const l = /consulate: listening on (http:\/\/\S+)/.exec(line);
    return l ? l[1] : null;
  });
  base = srv.value.replace(/\/$/, '');
  // The password line may follow the listening line.
  for (let i = 0; i < 40 && !pw; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const log = fs.readFileSync(path.join(OUT, 'consulate.log'), 'utf8');
    const p = /consulate: created user admin with password: (\S+)/.exec(log);
    if (p) pw = p[1];
  }
  if (!pw) throw new Error('the server did not print the admin password (is the database fresh?)');
  adminPassword = pw;
  // The inventory as an admin sets it up: every host added, the servers' host keys pinned
  // (consul-5's is trusted through the page, in a test), the operator and the approver.
  adminApi = await apiSession('admin', adminPassword);
  for (const n of inventory.nodes) {
    const { host_key: hk, ...body } = n;
    await adminApi.call('POST', '/api/nodes', body, 201);
    if (n.server_state === 'server') {
      const shown = await adminApi.call('GET', `/api/nodes/${n.name}/hostkey`);
      assert.equal(shown.presented.fingerprint, hk.fingerprint, `${n.name} presents the key the harness made`);
      await adminApi.call('POST', `/api/nodes/${n.name}/trust-hostkey`, { fingerprint: hk.fingerprint });
    }
  }
  for (const u of Object.values(USERS)) await adminApi.call('POST', '/api/users', u, 201);
}

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  await startServers();
  const profile = fs.mkdtempSync(path.join(tmp, 'chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    locale: 'en-US',
    viewport: { width: 1400, height: 1000 },
    acceptDownloads: false,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--lang=en-US'],
  });
  page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(STEP);
  page.on('pageerror', (e) => pageErrors.push('uncaught: ' + (e.stack || e.message)));
  page.on('console', (msg) => {
    const text = msg.text();
    // HTTP error statuses (401 before login, 404 for a missing KV key) are expected and
    // logged by Chromium as "Failed to load resource"; everything else at error level,
    // and any CSP report, fails the test.
    if (/Content Security Policy|Refused to/i.test(text) ||
        (msg.type() === 'error' && !/^Failed to load resource/.test(text))) {
      pageErrors.push(`console.${msg.type()}: ${text}`);
    }
  });
});

afterEach(() => {
  const errs = pageErrors.splice(0);
  assert.deepEqual(errs, [], 'console errors, CSP violations or uncaught exceptions in the page');
});

after(async () => {
  if (adminApi) await adminApi.close().catch(() => {});
  if (ctx) await ctx.close().catch(() => {});
  for (const p of procs.reverse()) {
    if (p.exitCode === null) {
      if (p.stdin) p.stdin.end();
      p.kill('SIGTERM');
    }
  }
  // fake-nodes stops every sshd and the simulator and removes its directories: let it.
  for (let i = 0; i < 100 && procs.some((p) => p.exitCode === null && p.signalCode === null); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function shot(name) {
  await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: true });
}

// The README's pictures (build/e2e/docs/NAME.LANG.png; `make screenshots` copies them to
// docs/screenshots/): the page p as it is, in English, then in Chinese, then back to English.
const DOCS = path.join(OUT, 'docs');
async function docShots(p, name) {
  fs.mkdirSync(DOCS, { recursive: true });
  const lang = () => p.locator('html').getAttribute('lang');
  const to = async (button, want) => {
    if ((await lang()) === want) return;
    await p.getByRole('button', { name: button }).click();
    await p.waitForFunction((l) => document.documentElement.lang === l, want);
    await p.waitForTimeout(300); // the page redrawn in its new language
  };
  await to('English', 'en');
  await p.screenshot({ path: path.join(DOCS, name + '.en.png') });
  await to('中文', 'zh-CN');
  await p.screenshot({ path: path.join(DOCS, name + '.zh-CN.png') });
  await to('English', 'en');
}

async function login(user, password) {
  await page.goto(base + '/#/login');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

// Opens a route as the admin in English, whatever the previous test left behind.
async function open(route) {
  await page.goto(base + '/#/' + route);
  await page.waitForFunction(() => document.querySelector('#main h1, #main .login-form'));
  if (await page.locator('.login-form').count()) {
    await login('admin', adminPassword);
    await page.waitForURL(/#\/cluster$/);
    await page.goto(base + '/#/' + route);
  }
  if ((await page.locator('html').getAttribute('lang')) !== 'en') {
    await page.getByRole('button', { name: 'English' }).click();
    await page.waitForFunction(() => document.documentElement.lang === 'en');
  }
  await page.waitForFunction((r) => location.hash === '#/' + r, route);
}

test('translations: same keys in zh-CN and en, every used key present', () => {
  const { errors, problems, used } = checkI18n();
  assert.deepEqual(errors, []);
  // The problem codes come from the server's table, not from a list kept here.
  assert.ok(problems.length >= 11, `problem codes read from server/cluster.c: ${problems}`);
  for (const code of ['no_leader', 'autopilot_unhealthy', 'check_critical']) assert.ok(problems.includes(code), code);
  assert.ok(used > 100, `keys referenced: ${used}`);
});

// A copy of the parts of the repository the translation check reads, for the tests that
// prove it fails. edit(dir) changes the copy.
function i18nCopy(edit) {
  const dir = fs.mkdtempSync(path.join(tmp, 'i18n-'));
  for (const sub of ['web/i18n', 'web/js', 'server', 'include']) {
    fs.cpSync(path.join(ROOT, sub), path.join(dir, sub), { recursive: true });
  }
  edit(dir);
  return dir;
}

test('translations: a problem code without its texts fails the check', () => {
  // A translation removed from one language.
  let dir = i18nCopy((d) => {
    const f = path.join(d, 'web/i18n/zh-CN.json');
    const zh = JSON.parse(fs.readFileSync(f, 'utf8'));
    delete zh['problem.autopilot_unhealthy'];
    fs.writeFileSync(f, JSON.stringify(zh));
  });
  let { errors } = checkI18n(dir);
  assert.ok(errors.some((e) => /problem\.autopilot_unhealthy'? missing from zh-CN\.json/.test(e)), errors.join('\n'));
  // A code added to the server's table (and enum) with no texts at all.
  dir = i18nCopy((d) => {
    const c = path.join(d, 'server/cluster.c');
    fs.writeFileSync(c, fs.readFileSync(c, 'utf8').replace('[CLUSTER_P_CHECK_CRITICAL] = "check_critical",',
      '[CLUSTER_P_CHECK_CRITICAL] = "check_critical",\n    [CLUSTER_P_SPLIT_BRAIN] = "split_brain",'));
    const h = path.join(d, 'include/cluster.h');
    fs.writeFileSync(h, fs.readFileSync(h, 'utf8').replace('CLUSTER_P_CHECK_CRITICAL,', 'CLUSTER_P_CHECK_CRITICAL,\n    CLUSTER_P_SPLIT_BRAIN,'));
  });
  ({ errors } = checkI18n(dir));
  for (const lang of ['en', 'zh-CN']) {
    for (const k of ['problem.split_brain', 'problem.split_brain.title']) {
      assert.ok(errors.some((e) => e.includes(`'${k}' missing from ${lang}.json`)), `${k} ${lang}: ${errors.join('\n')}`);
    }
  }
  // A code in the enum that the table does not name.
  dir = i18nCopy((d) => {
    const h = path.join(d, 'include/cluster.h');
    fs.writeFileSync(h, fs.readFileSync(h, 'utf8').replace('CLUSTER_P_CHECK_CRITICAL,', 'CLUSTER_P_CHECK_CRITICAL,\n    CLUSTER_P_UNNAMED,'));
  });
  ({ errors } = checkI18n(dir));
  assert.ok(errors.some((e) => /no name for CLUSTER_P_UNNAMED/.test(e)), errors.join('\n'));
  // A diagnose finding the server reports that the job page neither lists nor translates.
  dir = i18nCopy((d) => {
    const c = path.join(d, 'server/procedures_diag.c');
    fs.writeFileSync(c, fs.readFileSync(c, 'utf8') + '\n/* finding(list, "disk_full", m, NULL); */\n');
  });
  ({ errors } = checkI18n(dir));
  assert.ok(errors.some((e) => /FINDINGS lacks disk_full/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => e.includes("'finding.disk_full' missing from zh-CN.json")), errors.join('\n'));
});

test('healthz answers', async () => {
  const r = await ctx.request.get(base + '/healthz');
  assert.equal(r.status(), 200);
  assert.equal((await r.json()).ok, true);
});

test('login with a wrong password shows an error', async () => {
  await login('admin', 'definitely-wrong-password');
  const alert = page.locator('.login-form [role=alert]');
  await alert.waitFor();
  assert.match(await alert.innerText(), /Wrong user name or password|too many/i);
  assert.match(page.url(), /#\/login/);
  await shot('login-error');
  await page.goto(base + '/#/login');
  await page.locator('.login-form').waitFor();
  await docShots(page, 'login');
});

test('login with the admin password opens the cluster view', async () => {
  await login('admin', adminPassword);
  await page.waitForURL(/#\/cluster$/);
  await page.locator('nav[aria-label="Main"] a', { hasText: 'Cluster' }).waitFor();
  assert.equal(await page.locator('.who-name').innerText(), 'admin');
});

test('cluster view draws 4 servers, the leader and the even-count advice', async () => {
  await open('cluster');
  await page.locator('#conn.conn-live').waitFor();
  const nodes = page.locator('svg.topology g.server-node');
  await page.waitForFunction(() => document.querySelectorAll('svg.topology g.server-node').length === 4 &&
    document.querySelectorAll('svg.topology .leader-mark').length === 1, null, { timeout: 60000 });
  assert.equal(await nodes.count(), 4);
  assert.equal(await page.locator('svg.topology g.server-node[data-leader="true"]').count(), 1);
  assert.equal(await page.locator('svg.topology .leader-mark').count(), 1);
  const even = page.locator('.problem[data-code="even_server_count"]');
  await even.waitFor();
  assert.match(await even.innerText(), /4 servers tolerate 1 failure, the same as 3/);
  // Every problem shown has a translated title, never the raw code.
  const heads = await page.locator('.problem').evaluateAll((els) =>
    els.map((e) => [e.dataset.code, e.querySelector('.problem-head strong').textContent]));
  assert.ok(heads.length >= 2, JSON.stringify(heads)); // the even count and the demo's failing check
  for (const [code, title] of heads) assert.notEqual(title, code, `problem ${code} shown untranslated`);
  assert.equal(await page.locator('.servers-table tbody tr').count(), 4);
  // the exporter scrape of every server host (consul_up 1, raft peers 4)
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('.servers-table tbody tr')];
    return rows.length === 4 && rows.every((r) => /consul_up 1/.test(r.lastElementChild.textContent));
  }, null, { timeout: 20000 });
  assert.match(await page.locator('.servers-table tbody tr').first().locator('td').last().innerText(),
    /4/);
  await page.waitForTimeout(300);
  await shot('cluster');
});

// Drives the simulator's control API (POST /sim/servers/<name>/stop|start).
async function simServer(name, verb) {
  const r = await fetch(`${simControl}/sim/servers/${name}/${verb}`, { method: 'POST' });
  assert.equal(r.status, 200, `sim ${verb} ${name}`);
}

test('cluster view follows a quorum loss and recovery live, without reloading', async () => {
  await open('cluster');
  await page.locator('#conn.conn-live').waitFor();
  await page.locator('svg.topology .leader-mark').waitFor();
  await simServer('consul-3', 'stop');
  await simServer('consul-4', 'stop');
  const noLeader = page.locator('.problem[data-code="no_leader"]');
  await noLeader.waitFor({ timeout: 10000 });
  assert.equal(await page.locator('svg.topology .leader-mark').count(), 0);
  await shot('cluster-no-leader');
  await simServer('consul-3', 'start');
  await simServer('consul-4', 'start');
  await noLeader.waitFor({ state: 'detached', timeout: 20000 });
  await page.locator('svg.topology .leader-mark').waitFor({ timeout: 20000 });
});

test('health view lists checks failing first, with the failing demo check and its output as text', async () => {
  await open('health');
  // The simulator's demo data has one failing check: web2 on consul-2, critical.
  const web2 = page.locator('.check-list .check[data-node="consul-2"]', { hasText: 'service:web2' });
  await web2.waitFor();
  assert.equal(await web2.getAttribute('data-status'), 'critical');
  assert.match(await web2.locator('.check-name').innerText(), /^Service 'web' check$/);
  // The output is shown as text, quotes and all.
  assert.match(await web2.locator('pre.check-output').innerText(),
    /^Get "http:\/\/127\.0\.0\.52:8081\/health": dial tcp .*connection refused$/);
  const all = await page.locator('.check-list .check').evaluateAll((els) => els.map((e) => e.dataset.status));
  assert.ok(all.length >= 10, `checks listed: ${all.length}`); // 4 servers + 3 clients + services
  assert.equal(all[0], 'critical');
  assert.ok(all.includes('passing'));
  const firstPassing = all.indexOf('passing');
  assert.ok(all.slice(firstPassing).every((s) => s === 'passing'), `failing first: ${all}`);

  await page.getByLabel('Status').selectOption('passing');
  await web2.waitFor({ state: 'detached' });
  const statuses = await page.locator('.check-list .check').evaluateAll((els) => els.map((e) => e.dataset.status));
  assert.ok(statuses.length >= 9, `passing checks listed: ${statuses.length}`);
  assert.ok(statuses.every((s) => s === 'passing'), `${statuses}`);
  await page.getByLabel('Status').selectOption('critical');
  await web2.waitFor();
  const critical = await page.locator('.check-list .check').evaluateAll((els) => els.map((e) => e.dataset.status));
  assert.ok(critical.length >= 1 && critical.every((s) => s === 'critical'), `${critical}`);
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.locator('.check-list .check[data-status="passing"]').first().waitFor();
  await shot('health');
  await docShots(page, 'health');
});

test('audit view lists the login and the chain verifies', async () => {
  await open('audit');
  const row = page.locator('.audit-table tr.audit-row', { hasText: /login/i }).first();
  await row.waitFor();
  assert.match(await row.innerText(), /admin/);
  await row.locator('button.detail-toggle').click();
  await page.locator('.audit-detail:not([hidden]) .detail-json').first().waitFor();
  await page.getByRole('button', { name: 'Verify chain' }).click();
  const ok = page.locator('.verify-result [data-ok]');
  await ok.waitFor();
  assert.equal(await ok.getAttribute('data-ok'), 'true', await ok.innerText());
  assert.match(await ok.innerText(), /intact/);
  const csv = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
  assert.match(csv, /^\/api\/audit\/export\?format=csv/);
  await shot('audit');
});

test('switching the language to 中文 changes the nav', async () => {
  await open('cluster');
  await page.getByRole('button', { name: '中文' }).click();
  await page.locator('nav a.nav-link[data-route="cluster"]', { hasText: '集群' }).waitFor();
  assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN');
  await page.locator('#main h1', { hasText: '集群' }).waitFor();
  await page.waitForTimeout(500);
  await shot('cluster-zh');
  await page.reload();
  await page.locator('nav a.nav-link[data-route="audit"]', { hasText: '审计日志' }).waitFor();
  await page.getByRole('button', { name: 'English' }).click();
  await page.locator('nav a.nav-link[data-route="cluster"]', { hasText: 'Cluster' }).waitFor();
});

test('KV: create, edit with CAS, conflict, history and restore', async () => {
  const name = 'e2e-' + Date.now().toString(36);
  const key = `e2e/${name}`;
  await open('kv/');
  await page.getByLabel('Key name').fill(key);
  await page.getByLabel('Value', { exact: true }).fill('{"v":1}');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(new RegExp(`#/kv/e2e/${name}$`));
  await page.locator('pre.value', { hasText: '"v": 1' }).waitFor();

  // Creating it again is refused (cas=0) and the form keeps the input.
  await page.goto(base + '/#/kv/e2e/');
  await page.locator('.kv-keys a', { hasText: name }).waitFor();
  await page.getByLabel('Key name').fill(name);
  await page.getByLabel('Value', { exact: true }).fill('dup');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('.kv-create [role=alert]', { hasText: 'already exists' }).waitFor();
  assert.equal(await page.getByLabel('Value', { exact: true }).inputValue(), 'dup');

  // Edit with check-and-set.
  await page.locator('.kv-keys a', { hasText: name }).click();
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.locator('.kv-edit textarea').fill('{"v":2}');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.alert-ok', { hasText: 'Saved' }).waitFor();
  await page.locator('pre.value', { hasText: '"v": 2' }).waitFor();

  // A change behind our back: the save shows a conflict and keeps the draft.
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.locator('.kv-edit textarea').fill('{"v":"mine"}');
  const s = await (await ctx.request.get(base + '/api/session')).json();
  const r = await ctx.request.put(base + '/api/consul/v1/kv/' + key.split('/').map(encodeURIComponent).join('/'), {
    headers: { 'X-CSRF-Token': s.csrf_token, 'Content-Type': 'application/octet-stream' },
    data: '{"v":"theirs"}',
  });
  assert.equal(r.status(), 200);
  await page.getByRole('button', { name: 'Save' }).click();
  const conflict = page.locator('.alert-conflict');
  await conflict.waitFor();
  assert.match(await conflict.innerText(), /theirs/);
  assert.equal(await page.locator('.kv-edit textarea').inputValue(), '{"v":"mine"}');
  await shot('kv-conflict');
  await page.getByRole('button', { name: 'Discard my edit' }).click();
  await page.locator('pre.value', { hasText: 'theirs' }).waitFor();

  // History: newest first; restore the value written by the first edit ({"v":2}).
  const hist = page.locator('.history-list .history-entry');
  await page.waitForFunction(() => document.querySelectorAll('.history-list .history-entry').length >= 3);
  // The refused save is listed as not applied, with nothing to restore.
  const refused = hist.filter({ hasText: '{"v":"mine"}' }).first();
  await refused.locator('.badge', { hasText: 'not applied' }).waitFor();
  assert.equal(await refused.locator('button.restore-btn').count(), 0);
  const edit = hist.filter({ hasText: '{"v":2}' }).filter({ hasText: '{"v":1}' }).first();
  await edit.getByRole('button', { name: 'Restore this value' }).click();
  const dlg = page.locator('dialog[open]');
  await dlg.waitFor();
  assert.match(await dlg.innerText(), /"v":2/);
  await dlg.getByRole('button', { name: 'Restore' }).click();
  await page.locator('.alert-ok', { hasText: 'Restored' }).waitFor();
  await page.locator('pre.value', { hasText: '"v": 2' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('.history-list .history-entry').length >= 4);
  await shot('kv');
  await docShots(page, 'kv');

  // An unsaved edit survives a language switch.
  await page.getByRole('button', { name: 'Edit' }).click();
  await page.locator('.kv-edit textarea').fill('unsaved draft');
  await page.getByRole('button', { name: '中文' }).click();
  await page.getByRole('button', { name: '保存' }).waitFor();
  assert.equal(await page.locator('.kv-edit textarea').inputValue(), 'unsaved draft');
  await page.getByRole('button', { name: 'English' }).click();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('pre.value', { hasText: '"v": 2' }).waitFor();

  // Delete with confirmation.
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.locator('dialog[open]').getByRole('button', { name: 'Delete' }).click();
  await page.waitForURL(/#\/kv\/e2e\/$/);
});

test('users: password length check, add a user, last_admin is refused', async () => {
  await open('users');
  await page.locator('.users-table tr[data-name="admin"]').waitFor();
  const form = page.locator('form.user-add');
  const posts = [];
  const onRequest = (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/users') posts.push(r.url());
  };
  page.on('request', onRequest);
  await form.getByLabel('User name').fill('e2e-viewer');
  await form.getByLabel('Password', { exact: true }).fill('short');
  await form.getByLabel('Repeat password').fill('short');
  await form.getByRole('button', { name: 'Add user' }).click();
  // The browser refuses the form with the length message, and nothing is sent.
  const pwField = form.getByLabel('Password', { exact: true });
  assert.equal(await pwField.evaluate((e) => e.validationMessage), 'The password must have at least 10 characters.');
  assert.equal(await pwField.evaluate((e) => e.validity.valid), false);
  await page.waitForTimeout(300);
  page.off('request', onRequest);
  assert.deepEqual(posts, []);
  assert.equal(await page.locator('.users-table tr[data-name="e2e-viewer"]').count(), 0);
  await form.getByLabel('Password', { exact: true }).fill('long-enough-password');
  await form.getByLabel('Repeat password').fill('long-enough-password');
  await form.getByRole('button', { name: 'Add user' }).click();
  await page.locator('.users-table tr[data-name="e2e-viewer"]').waitFor();

  await page.locator('.users-table tr[data-name="admin"] button', { hasText: 'Disable' }).click();
  const dlg = page.locator('dialog[open]');
  await dlg.getByRole('button', { name: 'Disable' }).click();
  await dlg.locator('[role=alert]').waitFor();
  assert.match(await dlg.innerText(), /last administrator/);
  await dlg.getByRole('button', { name: 'Cancel' }).click();
  await shot('users');
  await docShots(page, 'users');
});

test('a viewer sees no write or admin controls', async () => {
  await open('cluster');
  const s = await (await ctx.request.get(base + '/api/session')).json();
  const list = await (await ctx.request.get(base + '/api/users')).json();
  if (!list.users.some((u) => u.name === 'e2e-viewer')) {
    const r = await ctx.request.post(base + '/api/users', {
      headers: { 'X-CSRF-Token': s.csrf_token },
      data: { name: 'e2e-viewer', role: 'viewer', password: 'long-enough-password' },
    });
    assert.equal(r.status(), 201, await r.text());
  }
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/login$/);
  await login('e2e-viewer', 'long-enough-password');
  await page.waitForURL(/#\/cluster$/);
  // The nav is drawn for this session (the viewer's name, the links a viewer has) before
  // the missing Users link is counted.
  await page.locator('.who-name', { hasText: 'e2e-viewer' }).waitFor();
  await page.locator('nav a.nav-link[data-route="audit"]').waitFor();
  assert.equal(await page.locator('nav a.nav-link[data-route="users"]').count(), 0);
  await page.goto(base + '/#/kv/');
  await page.locator('.kv-list h2').waitFor();
  await page.getByText('Your role can read keys but not change them.').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Create' }).count(), 0);
  await page.goto(base + '/#/users');
  await page.locator('main [role=alert]').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/login$/);
  await login('admin', adminPassword);
  await page.waitForURL(/#\/cluster$/);
});

// ---- Jobs over SSH: the real engine against the fake hosts ----------------------------------
// consul-1..4 run the simulator's servers, consul-5 is a spare host; consulate has all five
// in its inventory (the servers' keys pinned in the set-up, consul-5's through the page
// here). An operator requests the node-add of consul-5 in the wizard, an approver approves
// it in a second browser, the live log reaches succeeded and the topology shows five voters.
describe('jobs over SSH against fake hosts (the real engine)', () => {
  const FP = {}; // node name -> the fingerprint of the host key its sshd presents
  const node = (name) => inventory.nodes.find((n) => n.name === name);
  const actionsShown = (p = page) => p.locator('.job-actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
  let addJob = null; // the node-add the operator requested
  let second = null; // the approver's browser: { ctx, page }

  // Signs the main page in as user (signing out whoever is signed in).
  async function switchUser(user, password) {
    await open('cluster');
    if ((await page.locator('.who-name').innerText()) === user) return;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/#\/login$/);
    await login(user, password);
    await page.waitForURL(/#\/cluster$/);
    await page.locator('.who-name', { hasText: user }).waitFor();
  }

  // A second browser (its own profile: its own cookies) signed in as the approver.
  async function approverPage() {
    if (second) return second.page;
    const profile = fs.mkdtempSync(path.join(tmp, 'chromium-approver-'));
    const c = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, locale: 'en-US', viewport: { width: 1400, height: 1000 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--lang=en-US'],
    });
    const p = c.pages()[0] || await c.newPage();
    p.setDefaultTimeout(STEP);
    p.on('pageerror', (e) => pageErrors.push('approver page uncaught: ' + (e.stack || e.message)));
    p.on('console', (msg) => {
      const text = msg.text();
      if (/Content Security Policy|Refused to/i.test(text) || (msg.type() === 'error' && !/^Failed to load resource/.test(text))) {
        pageErrors.push(`approver page console.${msg.type()}: ${text}`);
      }
    });
    second = { ctx: c, page: p };
    await p.goto(base + '/#/login');
    await p.getByLabel('User name').fill(USERS.approver.name);
    await p.getByLabel('Password', { exact: true }).fill(USERS.approver.password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForURL(/#\/cluster$/);
    await p.locator('.who-name', { hasText: USERS.approver.name }).waitFor();
    return p;
  }

  before(() => {
    for (const n of inventory.nodes) FP[n.name] = n.host_key.fingerprint;
    assert.equal(Object.keys(FP).length, 5);
  });
  after(async () => {
    if (second) await second.ctx.close().catch(() => {});
    // Back to the admin for the tests after these.
    await switchUser('admin', adminPassword).catch(() => {});
  });

  test('nodes: the inventory shows the hosts\' real fingerprints pinned, server state and live membership', async () => {
    await open('nodes');
    await page.waitForFunction(() => document.querySelectorAll('.nodes-table tr.node-row').length === 5);
    for (const name of ['consul-1', 'consul-2', 'consul-3', 'consul-4']) {
      const r = page.locator(`tr.node-row[data-name="${name}"]`);
      assert.equal(await r.getAttribute('data-pinned'), 'true', name);
      assert.equal(await r.locator('.hostkey-cell .fingerprint').innerText(), FP[name]);
      assert.match(await r.locator('.hostkey-cell').innerText(), /pinned[\s\S]*ED25519[\s\S]*pinned by admin/i);
      await r.locator('.consul-cell', { hasText: 'alive' }).waitFor();
      assert.equal(await r.getAttribute('data-state'), 'server');
    }
    // One leader among them, as the cluster says.
    await page.waitForFunction(() => [...document.querySelectorAll('.nodes-table tr.node-row .consul-cell')]
      .filter((c) => /Leader/.test(c.textContent)).length === 1);
    const n1 = node('consul-1');
    const c1 = await page.locator('tr.node-row[data-name="consul-1"]').innerText();
    for (const part of ['127.0.0.51', n1.ssh_user, `port ${n1.ssh_port}`, n1.ssh_key_path, n1.compose_dir, n1.data_dir]) {
      assert.ok(c1.includes(part), `consul-1's row shows ${part}: ${c1}`);
    }
    const c5 = page.locator('tr.node-row[data-name="consul-5"]');
    assert.equal(await c5.getAttribute('data-pinned'), 'false');
    assert.match(await c5.locator('.hostkey-cell').innerText(), /not pinned/);
    assert.match(await c5.innerText(), /spare[\s\S]*not a member/);
    await shot('nodes');
    await docShots(page, 'nodes');
  });

  test('nodes: trusting consul-5\'s key shows the fingerprint its sshd presents, refuses a key other than the one compared, then pins it', async () => {
    await open('nodes');
    const dlg = page.locator('dialog[open]');
    const trustPosts = [];
    const onRequest = (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/nodes/consul-5/trust-hostkey') trustPosts.push(r.postDataJSON());
    };
    page.on('request', onRequest);
    try {
      // The key changes between showing and trusting: the page is shown a key the host no
      // longer presents (the first answer of GET …/hostkey altered on its way), the real
      // server refuses to pin it (409) and the dialog puts both keys side by side.
      const stale = 'SHA256:' + 'St4leK3y'.repeat(6).slice(0, 43);
      let altered = 0;
      const alter = async (route) => {
        if (altered++) return route.continue();
        const res = await route.fetch();
        const body = await res.json();
        assert.equal(body.presented.fingerprint, FP['consul-5']);
        body.presented.fingerprint = stale;
        return route.fulfill({ response: res, json: body });
      };
      await page.route('**/api/nodes/consul-5/hostkey', alter);
      try {
        await page.locator('tr.node-row[data-name="consul-5"] button', { hasText: 'Host key' }).click();
        await dlg.waitFor();
        assert.equal(await dlg.locator('.hk-presented .hk-fingerprint').innerText(), stale);
        await dlg.getByLabel(/I compared the fingerprint/).check();
        await dlg.getByRole('button', { name: 'Trust this key' }).click();
        await dlg.locator('.hk-mismatch .alert').waitFor();
        assert.equal(await dlg.locator('.hk-compared .hk-fingerprint').innerText(), stale);
        assert.equal(await dlg.locator('.hk-now .hk-fingerprint').innerText(), FP['consul-5']);
        const why = await dlg.locator('.dialog-error').innerText();
        assert.match(why, /not the one you compared/);
        assert.ok(why.includes(FP['consul-5']), `the server names the key presented now: ${why}`);
        assert.equal(await dlg.getByRole('button', { name: 'Trust this key' }).isDisabled(), true);
        await shot('nodes-hostkey-mismatch');
        await dlg.getByRole('button', { name: 'Cancel' }).click();
        await dlg.waitFor({ state: 'detached' });
      } finally {
        await page.unroute('**/api/nodes/consul-5/hostkey', alter);
      }
      assert.deepEqual(trustPosts, [{ fingerprint: stale }]);
      assert.equal(await page.locator('tr.node-row[data-name="consul-5"]').getAttribute('data-pinned'), 'false');
      assert.equal((await adminApi.call('GET', '/api/nodes/consul-5')).node.host_key.pinned, false);

      // The real key: compared with what the host's ssh-keygen prints, then pinned.
      await page.locator('tr.node-row[data-name="consul-5"] button', { hasText: 'Host key' }).click();
      await dlg.waitFor();
      assert.equal(await dlg.locator('.hk-presented .hk-fingerprint').innerText(), FP['consul-5']);
      assert.match(await dlg.locator('.hk-presented .hk-type').innerText(), /^(ssh-)?ed25519 \(256 bits\)$/i);
      assert.equal(await dlg.locator('.hk-command').innerText(), 'ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub');
      // Not confirmed as compared: the browser refuses and nothing is sent.
      await dlg.getByRole('button', { name: 'Trust this key' }).click();
      await page.waitForTimeout(200);
      assert.equal(trustPosts.length, 1);
      await dlg.getByLabel(/I compared the fingerprint/).check();
      await dlg.getByRole('button', { name: 'Trust this key' }).click();
      await dlg.waitFor({ state: 'detached' });
      assert.deepEqual(trustPosts[1], { fingerprint: FP['consul-5'] });
      await page.locator('tr.node-row[data-name="consul-5"][data-pinned="true"]').waitFor();
      await page.locator('.nodes-notice', { hasText: FP['consul-5'] }).waitFor();
      const hk = (await adminApi.call('GET', '/api/nodes/consul-5')).node.host_key;
      assert.equal(hk.pinned, true);
      assert.equal(hk.fingerprint, FP['consul-5']);
      assert.equal(hk.pinned_by, 'admin');
    } finally {
      page.off('request', onRequest);
    }
  });

  test('roles: a viewer reads nodes and jobs without controls, an operator requests but does not administer', async () => {
    const viewer = { name: 'e2e-jobs-viewer', role: 'viewer', password: 'viewer-password-1' };
    await adminApi.call('POST', '/api/users', viewer, 201);
    for (const u of [viewer, USERS.operator]) {
      await switchUser(u.name, u.password);
      await page.goto(base + '/#/nodes');
      await page.locator('.who .badge', { hasText: u.role }).waitFor();
      await page.waitForFunction(() => document.querySelectorAll('.nodes-table tr.node-row').length === 5);
      const actions = await page.locator('.nodes-table button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
      assert.deepEqual(actions, u.role === 'operator' ? Array(5).fill('diagnose') : [], `${u.role}: no admin buttons`);
      assert.equal(await page.getByRole('button', { name: 'Add node' }).count(), 0);
      const requests = await page.locator('.nodes-table a', { hasText: /^Request/ }).count();
      assert.equal(requests, u.role === 'operator' ? 5 : 0, `${u.role}: request links`);
      await page.goto(base + '/#/jobs');
      await page.locator('#main h1', { hasText: 'Jobs' }).waitFor();
      await page.locator('.jobs-history').waitFor();
      assert.equal(await page.locator('#new-change').count(), u.role === 'operator' ? 1 : 0);
      await page.goto(base + '/#/jobs/new');
      if (u.role === 'viewer') await page.locator('#main [role=alert]', { hasText: 'Your role does not allow this action.' }).waitFor();
      else await page.locator('form.wizard').waitFor();
    }
    // The server refuses what the pages do not offer.
    const v = await apiSession(viewer.name, viewer.password);
    try {
      await v.call('POST', '/api/jobs', { type: 'node-add', node: 'consul-5', reason: 'a viewer tries' }, 403);
      await v.call('POST', '/api/nodes/consul-5/trust-hostkey', { fingerprint: FP['consul-5'] }, 403);
    } finally {
      await v.close();
    }
    // A request link opens the wizard with the node chosen, at the strategy.
    await page.goto(base + '/#/nodes');
    await page.locator('tr.node-row[data-name="consul-5"] a', { hasText: 'Request add' }).click();
    await page.locator('fieldset[data-step="strategy"]:not([hidden])').waitFor();
    assert.equal(await page.getByLabel('Node', { exact: true }).inputValue(), 'consul-5');
  });

  test('wizard: the operator requests the node-add of consul-5 and lands on its plan preview with the compose diffs', async () => {
    // The hosts as a real site has them: a comment in consul-1's file that looks like markup,
    // consul-2's file with CRLF line ends, consul-3's command in the seed's backslash trap (a
    // plain scalar with lines ending in \: its running agent notices only at a restart), and
    // leftovers in consul-5's data dir.
    const composeOf = (n) => path.join(node(n).compose_dir, 'docker-compose.yaml');
    const edit = (n, f) => {
      const before = fs.readFileSync(composeOf(n), 'utf8');
      const after = f(before);
      assert.notEqual(after, before, `${n}'s file changed`);
      fs.writeFileSync(composeOf(n), after);
    };
    edit('consul-1', (t) => t.replace('\n  consul-exporter:', '\n    # <img src=x onerror="window.__pwned=1"> owner: ops\n  consul-exporter:'));
    edit('consul-2', (t) => t.replace(/\n/g, '\r\n'));
    edit('consul-3', (t) => t.replace('command: "agent ', 'command: agent ').replace('-retry-join=127.0.0.54"\n', '-retry-join=127.0.0.54\n'));
    const leftovers = node('consul-5').data_dir;
    fs.mkdirSync(path.join(leftovers, 'serf'), { recursive: true });
    fs.writeFileSync(path.join(leftovers, 'node-id'), '0b6f7a2e-5d1c-4c55-9f0e-6b1d2c3e4f50\n');
    fs.writeFileSync(path.join(leftovers, 'notes.txt'), 'left from the host\'s previous life\n');

    await switchUser(USERS.operator.name, USERS.operator.password);
    await page.goto(base + '/#/jobs/new');
    await page.locator('form.wizard').waitFor();
    assert.equal(await page.getByLabel('Add a server').isChecked(), true);
    await page.getByRole('button', { name: 'Next' }).click();
    const sel = page.getByLabel('Node', { exact: true });
    const options = await sel.locator('option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
    assert.deepEqual(options, ['consul-5'], 'only the spare is offered for an add');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.locator('.wizard-status [role=alert]', { hasText: 'Choose a node.' }).waitFor();
    await sel.selectOption('consul-5');
    await page.locator('.node-facts', { hasText: FP['consul-5'] }).waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    const warn = page.locator('.full-restart-warning');
    assert.equal(await warn.isVisible(), false);
    assert.equal(await page.getByLabel('rolling', { exact: true }).isChecked(), true);
    await page.getByLabel('full restart', { exact: true }).check();
    await warn.waitFor();
    assert.match(await warn.innerText(), /NO LEADER/);
    await page.getByLabel('rolling', { exact: true }).check();
    await warn.waitFor({ state: 'hidden' });
    await page.getByLabel('Approve the fix of the backslash trap as part of this change').check();
    await page.getByRole('button', { name: 'Next' }).click();
    const posts = [];
    const onRequest = (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/jobs') posts.push(r.postDataJSON());
    };
    page.on('request', onRequest);
    try {
      await page.getByRole('button', { name: 'Request the change' }).click();
      await page.locator('.wizard-status [role=alert]', { hasText: 'Enter a reason.' }).waitFor();
      assert.equal(posts.length, 0);
      const reason = 'CHG-1234: a fifth server, failure tolerance 2';
      await page.getByLabel('Reason', { exact: true }).fill(reason);
      assert.match(await page.locator('.review').innerText(), /Add a server[\s\S]*consul-5[\s\S]*rolling[\s\S]*fix the backslash trap/);
      await page.getByRole('button', { name: 'Request the change' }).click();
      // The prechecks and the dry run over SSH take a moment.
      await page.waitForURL(/#\/jobs\/\d+$/, { timeout: 60000 });
      assert.deepEqual(posts, [{ type: 'node-add', node: 'consul-5', strategy: 'rolling', reason,
        options: { fix_trap: true, node_gone: false } }]);
    } finally {
      page.off('request', onRequest);
    }
    const id = Number(page.url().split('/').pop());
    addJob = await adminApi.call('GET', `/api/jobs/${id}`);
    assert.equal(addJob.state, 'awaiting_approval', JSON.stringify(addJob.prechecks));
    assert.equal(addJob.requested_by, USERS.operator.name);

    // The plan preview: summary, prechecks, steps with their exact commands, the diffs.
    await page.locator('.plan-summary').waitFor();
    assert.equal(await page.locator('#main h1').innerText(), `Job #${id}: Add a server consul-5`);
    assert.equal(await page.locator('.job-head .job-state').getAttribute('data-state'), 'awaiting_approval');
    assert.match(await page.locator('.job-banner').innerText(), /Awaiting approval: an approver other than e2e-operator/);
    assert.equal(await page.locator('details.plan-wrap').getAttribute('open'), '');
    assert.match(await page.locator('.plan-summary').innerText(), /^Add consul-5 \(127\.0\.0\.55\)/);
    assert.equal(await page.locator('.prechecks-table tr.precheck').count(), addJob.prechecks.length);
    assert.ok(addJob.prechecks.length >= 10, `${addJob.prechecks.length} prechecks`);
    // Every precheck passed; the data dir's leftovers are noted (not blocking): the plan moves them aside.
    assert.equal(await page.locator('.prechecks-table tr.precheck[data-ok="false"]').count(), 0);
    assert.deepEqual(addJob.prechecks.filter((p) => !p.blocking).map((p) => [p.name, p.node, p.ok]), [['data_dir', 'consul-5', true]]);
    assert.match(await page.locator('tr.precheck[data-name="data_dir"]').innerText(), /consul-5[\s\S]*is not empty[\s\S]*the plan moves it aside/);
    assert.ok(addJob.plan.steps.some((s) => s.node === 'consul-5' && /^mv '/.test(s.command || '') && s.command.includes(node('consul-5').data_dir)),
      JSON.stringify(addJob.plan.steps));
    assert.match(await page.locator('tr.precheck[data-name="docker_version"]').innerText(), /ok[\s\S]*docker 20\.10\.24\+dfsg1/);
    // The trap in consul-3's file is named, and fixed by this plan (approved with it).
    assert.deepEqual(await page.locator('.plan-warning').allInnerTexts(), addJob.plan.warnings);
    assert.match(await page.locator('.plan-summary').innerText(), /; the backslash trap is fixed too$/);
    const trap = addJob.prechecks.filter((p) => p.name === 'compose_file' && /backslash trap/.test(p.message));
    assert.deepEqual(trap.map((p) => p.node), ['consul-3'], JSON.stringify(addJob.prechecks));
    await page.locator('tr.precheck[data-name="compose_file"]', { hasText: 'falls into the backslash trap; the change fixes it' }).waitFor();
    assert.match(await page.locator('tr.precheck[data-name="ports"]').first().innerText(),
      /consul-5 reaches consul-\d \(127\.0\.0\.5\d\) on 8500, 9107, 8300 and 8301/);
    assert.equal(await page.locator('.plan-step').count(), addJob.plan.steps.length);
    const up = addJob.plan.steps.find((s) => s.node === 'consul-5' && / up -d$/.test(s.command || ''));
    assert.ok(up, JSON.stringify(addJob.plan.steps));
    assert.equal(up.command, `docker-compose -f '${node('consul-5').compose_dir}/docker-compose.yaml' up -d`);
    assert.ok((await page.locator('.plan-step[data-node="consul-5"] pre.command').allInnerTexts()).includes(up.command));
    // One diff per compose file the job writes: the new host's and the four servers'.
    assert.deepEqual(addJob.plan.diffs.map((d) => d.node).sort(), ['consul-1', 'consul-2', 'consul-3', 'consul-4', 'consul-5']);
    assert.equal(await page.locator('.plan-diff').count(), 5);
    // Each diff's lines as the page shows them, without the CR marks.
    const shownLines = (d, cls) => page.locator(`.plan-diff[data-node="${d}"] .${cls}`).evaluateAll((ls) => ls.map((l) =>
      [...l.childNodes].filter((c) => !(c.classList && c.classList.contains('diff-cr'))).map((c) => c.textContent).join('')));
    for (const d of addJob.plan.diffs) {
      const lines = d.diff.split('\n').map((l) => l.replace(/\r$/, ''));
      const adds = lines.filter((l) => l.startsWith('+') && !l.startsWith('+++'));
      const dels = lines.filter((l) => l.startsWith('-') && !l.startsWith('---'));
      assert.deepEqual(await shownLines(d.node, 'diff-add'), adds, `${d.node}: added lines`);
      assert.deepEqual(await shownLines(d.node, 'diff-del'), dels, `${d.node}: removed lines`);
      assert.deepEqual(await shownLines(d.node, 'diff-hunk'), lines.filter((l) => l.startsWith('@@')), `${d.node}: hunks`);
      assert.ok(adds.some((l) => l.includes('127.0.0.55')), `${d.node}: the diff adds consul-5's address`);
    }
    // A file's text that looks like markup stays text.
    const hostile = page.locator('.plan-diff[data-node="consul-1"] .diff-ctx', { hasText: 'onerror' });
    assert.equal(await hostile.innerText(), '     # <img src=x onerror="window.__pwned=1"> owner: ops');
    assert.equal(await page.locator('.plan img, .plan script').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    // CRLF lines are marked; consul-3's diff quotes its command (the trap fixed).
    assert.ok(await page.locator('.plan-diff[data-node="consul-2"] .diff-cr').count() > 0, 'CRLF lines are marked');
    assert.ok((await shownLines('consul-3', 'diff-del')).length > 1, 'consul-3\'s command is rewritten, not only extended');
    // The new host's file binds its own address and joins the four servers.
    const newFile = await page.locator('.plan-diff[data-node="consul-5"] .diff-add').allInnerTexts();
    assert.ok(newFile.some((l) => l.includes('-bind=127.0.0.55')), newFile.join('\n'));
    for (const ip of ['127.0.0.51', '127.0.0.52', '127.0.0.53', '127.0.0.54']) {
      assert.ok(newFile.some((l) => l.includes('-retry-join=' + ip)), `joins ${ip}`);
    }
    // The requester may cancel, not approve (four eyes): no approve or reject button.
    assert.deepEqual(await actionsShown(), ['cancel']);
    await shot('job-plan');
    await docShots(page, 'job-plan');
  });

  test('job page: an approver approves in a second browser, the live log reaches succeeded, the topology shows five voters', async () => {
    assert.ok(addJob, 'the wizard test created the job');
    const id = addJob.id;
    // The operator keeps the job page open; it follows the job live.
    await page.locator('.job-log').waitFor();
    const ap = await approverPage();
    await ap.goto(`${base}/#/jobs/${id}`);
    await ap.locator('.plan-summary').waitFor();
    await ap.locator('.job-actions button').first().waitFor();
    assert.deepEqual(await actionsShown(ap), ['approve', 'reject', 'cancel']);
    await ap.locator('.job-actions').getByRole('button', { name: 'Approve' }).click();
    const dlg = ap.locator('dialog[open]');
    await dlg.waitFor();
    assert.match(await dlg.innerText(), /requested by e2e-operator[\s\S]*CHG-1234/);
    await dlg.getByRole('button', { name: 'Approve' }).click();
    await dlg.waitFor({ state: 'detached' });

    // The operator's page: running, then succeeded, every step done, the log in order.
    await page.locator('.job-head .job-state[data-state="succeeded"]').waitFor({ timeout: 180000 });
    await page.locator('.job-banner[data-state="succeeded"]').waitFor();
    const done = await adminApi.call('GET', `/api/jobs/${id}`);
    assert.equal(done.state, 'succeeded');
    assert.equal(done.approved_by, USERS.approver.name);
    assert.ok(done.log_lines > 20, `${done.log_lines} log lines`);
    await page.waitForFunction((n) => document.querySelectorAll('.log .log-line').length === n, done.log_lines);
    const nums = await page.locator('.log .log-line').evaluateAll((ls) => ls.map((l) => Number(l.dataset.line)));
    assert.deepEqual(nums, Array.from({ length: done.log_lines }, (_, i) => i + 1), 'every line once, in order');
    assert.match(await page.locator('.log .log-line').last().innerText(), new RegExp(`job ${id} ended succeeded`));
    assert.match(await page.locator('.log').innerText(), /gate passed after [\d.]+ s: 5 voters/);
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('.steps-table tr.step')];
      return rows.length > 0 && rows.every((r) => ['succeeded', 'skipped'].includes(r.dataset.state));
    });
    await page.locator('.node-status-item[data-node="consul-5"][data-state="succeeded"]').waitFor();
    assert.deepEqual(await actionsShown(), []);
    assert.equal(await page.locator('details.plan-wrap').getAttribute('open'), null, 'the plan folds away once the job ran');
    await shot('job-succeeded');
    await docShots(page, 'job-done');
    // The approver's page followed too.
    await ap.locator('.job-head .job-state[data-state="succeeded"]').waitFor();

    // The topology: five servers, all voters, one leader.
    await page.goto(base + '/#/cluster');
    await page.waitForFunction(() => document.querySelectorAll('svg.topology g.server-node').length === 5 &&
      document.querySelectorAll('svg.topology g.server-node.voter').length === 5 &&
      document.querySelectorAll('svg.topology .leader-mark').length === 1, null, { timeout: 60000 });
    assert.equal(await page.locator('.servers-table tbody tr').count(), 5);
    assert.equal(await page.locator('.problem[data-code="even_server_count"]').count(), 0, 'five servers: no even-count advice');
    await page.waitForTimeout(300);
    await shot('cluster-five-voters');
    await docShots(page, 'cluster');
    // consul-5 is a server now on the nodes page, too.
    await page.goto(base + '/#/nodes');
    await page.locator('tr.node-row[data-name="consul-5"] .consul-cell', { hasText: 'alive' }).waitFor({ timeout: 30000 });
  });

  test('job page: the requester cannot approve (hidden, and refused by the server); an approver rejects with a comment', async () => {
    await switchUser('admin', adminPassword);
    const j = await adminApi.call('POST', '/api/jobs', { type: 'node-remove', node: 'consul-5', reason: 'e2e: to be rejected' }, 201);
    assert.equal(j.state, 'awaiting_approval', JSON.stringify(j.prechecks));
    await page.goto(`${base}/#/jobs/${j.id}`);
    await page.locator('.plan-summary').waitFor();
    // admin may approve other people's jobs, not its own: only cancel is offered ...
    assert.deepEqual(await actionsShown(), ['cancel']);
    // ... and the server refuses it anyway.
    const refused = await adminApi.rc.post(`/api/jobs/${j.id}/approve`, { data: {}, headers: { 'X-CSRF-Token': adminApi.csrf } });
    assert.equal(refused.status(), 403);
    assert.equal((await refused.json()).error.code, 'self_approval');

    const ap = await approverPage();
    await ap.goto(`${base}/#/jobs/${j.id}`);
    await ap.locator('.job-actions button').first().waitFor();
    assert.deepEqual(await actionsShown(ap), ['approve', 'reject', 'cancel']);
    await ap.locator('.job-actions').getByRole('button', { name: 'Reject' }).click();
    const dlg = ap.locator('dialog[open]');
    // Reject needs a comment: without one the browser sends nothing.
    const rejects = [];
    const onRequest = (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === `/api/jobs/${j.id}/reject`) rejects.push(r.postDataJSON());
    };
    ap.on('request', onRequest);
    try {
      await dlg.getByRole('button', { name: 'Reject' }).click();
      await ap.waitForTimeout(300);
      assert.equal(rejects.length, 0);
      const comment = 'Not during the trading day; resubmit after 18:00.';
      await dlg.getByLabel(/Comment/).fill(comment);
      await dlg.getByRole('button', { name: 'Reject' }).click();
      await dlg.waitFor({ state: 'detached' });
      assert.deepEqual(rejects, [{ comment }]);
      // The requester's page follows live.
      await page.locator('.job-head .job-state[data-state="rejected"]').waitFor();
      await page.locator('.job-banner', { hasText: 'Rejected by e2e-approver.' }).waitFor();
      assert.equal(await page.locator('.job-banner .decision-comment').innerText(), comment);
      assert.deepEqual(await actionsShown(), []);
    } finally {
      ap.off('request', onRequest);
    }
    const after = await adminApi.call('GET', `/api/jobs/${j.id}`);
    assert.equal(after.state, 'rejected');
    assert.equal(after.rejected_by, USERS.approver.name);
  });

  test('nodes: an operator\'s Diagnose runs at once over SSH (no approval) and the job page lists its findings with the fix', async () => {
    // consul-1's file falls into the backslash trap (its running agent notices only at a restart).
    const file = path.join(node('consul-1').compose_dir, 'docker-compose.yaml');
    const before = fs.readFileSync(file, 'utf8');
    const trapped = before.replace('command: "agent ', 'command: agent ').replace(/(-retry-join=127\.0\.0\.\d+)"\n/, '$1\n');
    assert.notEqual(trapped, before);
    fs.writeFileSync(file, trapped);
    try {
      await switchUser(USERS.operator.name, USERS.operator.password);
      await page.goto(base + '/#/nodes');
      await page.locator('tr.node-row[data-name="consul-1"] button[data-action="diagnose"]').click();
      await page.waitForURL(/#\/jobs\/\d+$/);
      const id = Number(page.url().split('/').pop());
      const trap = page.locator('.job-findings .finding[data-code="backslash_trap"]');
      await trap.waitFor({ timeout: 60000 });
      await page.locator('.job-head .job-state[data-state="succeeded"]').waitFor({ timeout: 60000 });
      const j = await adminApi.call('GET', `/api/jobs/${id}`);
      assert.equal(j.type, 'diagnose');
      assert.equal(j.requested_by, USERS.operator.name);
      assert.equal(j.approved_by, null, 'a diagnose needs no approval');
      const found = j.result.findings.find((f) => f.code === 'backslash_trap');
      assert.ok(found && found.fix, JSON.stringify(j.result.findings));
      assert.match(await trap.innerText(), /backslash/);
      assert.equal(await trap.locator('pre.finding-fix').innerText(), found.fix);
      assert.ok(found.fix.includes('command: "agent '), found.fix);
      assert.match(await page.locator('.log').innerText(), /docker-compose\.yaml/);
      await shot('job-diagnose');
      await docShots(page, 'diagnose');
    } finally {
      fs.writeFileSync(file, before);
    }
  });

  test('zh-CN: the nodes, jobs, wizard and job pages are translated, no key shown raw', async () => {
    assert.ok(addJob, 'the wizard test created a job');
    for (const [route, ready] of [['jobs/new', 'form.wizard'], ['jobs', '.jobs-history tr.job-row']]) {
      await open(route);
      await page.locator(ready).first().waitFor();
      await docShots(page, route === 'jobs' ? 'jobs' : 'wizard');
    }
    await open('nodes');
    await page.getByRole('button', { name: '中文' }).click();
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    try {
      const pages = [
        ['nodes', '节点', '.nodes-table tr.node-row'],
        ['jobs', '任务', '.jobs-history tr.job-row'],
        ['jobs/new', '新建变更', 'form.wizard'],
        ['jobs/' + addJob.id, `任务 #${addJob.id}：加入服务器 consul-5`, '.log .log-line'],
      ];
      for (const [route, h1, ready] of pages) {
        await page.goto(base + '/#/' + route);
        await page.locator('#main h1', { hasText: h1 }).waitFor();
        await page.locator(ready).first().waitFor();
        const text = await page.locator('body').innerText();
        assert.doesNotMatch(text, /\b(nodes|jobs|job|wizard|plan|log|problem)\.[a-z_]+\b/, `${route}: a raw key`);
        await shot('zh-' + route.replace(/\//g, '-'));
      }
      assert.match(await page.locator('.job-banner').innerText(), /成功：集群已通过验证关卡/);
      await page.locator('details.plan-wrap summary').click();
      assert.match(await page.locator('.plan').innerText(), /预检查[\s\S]*步骤与确切命令[\s\S]*Compose 文件改动/);
    } finally {
      await page.getByRole('button', { name: 'English' }).click();
      await page.waitForFunction(() => document.documentElement.lang === 'en');
    }
  });

  test('narrow screen and keyboard: the removal of a dead server by keys alone, no page wider than the screen', async () => {
    assert.ok(addJob, 'the wizard test created a job');
    await page.setViewportSize({ width: 390, height: 844 });
    await simServer('consul-4', 'stop');
    let removal = null;
    try {
      // consulate sees consul-4 fail (Serf).
      for (let i = 0; i < 100; i++) {
        const n = (await adminApi.call('GET', '/api/nodes/consul-4')).node;
        if (n.consul && n.consul.serf_status === 'failed') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await open('jobs/new');
      await page.locator('form.wizard').waitFor();
      // Tab to the wizard's Next (or submit) button and press Enter, as a keyboard user does.
      const next = async () => {
        for (let i = 0; i < 12 && await page.evaluate(() => document.activeElement.id) !== 'wz-next'; i++) {
          await page.keyboard.press('Tab');
        }
        assert.equal(await page.evaluate(() => document.activeElement.id), 'wz-next');
        await page.keyboard.press('Enter');
      };
      await page.locator('input[name="type"][value="node-add"]').focus();
      await page.keyboard.press('ArrowDown'); // the remove radio
      assert.equal(await page.getByLabel('Remove a server').isChecked(), true);
      await next();
      const sel = page.getByLabel('Node', { exact: true });
      await page.waitForFunction(() => document.activeElement && document.activeElement.name === 'node');
      const options = await sel.locator('option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
      assert.deepEqual(options, ['consul-1', 'consul-2', 'consul-3', 'consul-4', 'consul-5']);
      await sel.selectOption('consul-4');
      const gone = page.locator('.gone-box');
      await gone.waitFor();
      assert.match(await gone.innerText(), /consul-4 does not answer in the cluster \(Serf status: failed\)/);
      await next();
      await page.locator('.wizard-status [role=alert]', { hasText: 'Confirm that the host is gone for good' }).waitFor();
      assert.equal(await page.evaluate(() => document.activeElement.name), 'node_gone');
      await page.keyboard.press('Space');
      await next();
      await page.locator('fieldset[data-step="strategy"]:not([hidden])').waitFor();
      await next();
      await page.locator('fieldset[data-step="review"]:not([hidden])').waitFor();
      assert.equal(await page.evaluate(() => document.activeElement.name), 'reason');
      await page.keyboard.type('INC-77: consul-4 host burnt, replaced by consul-5');
      const posted = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/api/jobs');
      await next();
      assert.deepEqual((await posted).postDataJSON(), { type: 'node-remove', node: 'consul-4', strategy: 'rolling',
        reason: 'INC-77: consul-4 host burnt, replaced by consul-5', options: { fix_trap: false, node_gone: true } });
      await page.waitForURL(/#\/jobs\/\d+$/, { timeout: 60000 });
      removal = Number(page.url().split('/').pop());
      await page.locator('.job-details [data-field="options"]', { hasText: 'host gone for good' }).waitFor();
      for (const route of ['nodes', 'jobs', 'jobs/' + addJob.id, 'jobs/new']) {
        await page.goto(base + '/#/' + route);
        await page.locator('#main h1').waitFor();
        await page.waitForTimeout(300);
        const w = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth,
          // the outermost elements that stick out, to name them when this fails
          [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 &&
            !(e.parentElement && e.parentElement.getBoundingClientRect().right > window.innerWidth + 1))
            .slice(0, 5).map((e) => e.tagName + '.' + e.className)]);
        assert.ok(w[0] <= w[1], `${route}: the page is ${w[0]} px wide on a ${w[1]} px screen: ${w[2]}`);
        await shot('narrow-' + route.replace(/\//g, '-'));
      }
      await page.goto(`${base}/#/jobs/${addJob.id}`);
      await page.locator('details.plan-wrap summary').click();
      await page.locator('.plan-diff').first().waitFor();
      await shot('narrow-job-plan');
    } finally {
      await page.setViewportSize({ width: 1400, height: 1000 });
      if (removal) {
        const j = await adminApi.call('GET', `/api/jobs/${removal}`);
        if (j.can.cancel) await adminApi.call('POST', `/api/jobs/${removal}/cancel`, {});
      }
      await simServer('consul-4', 'start');
    }
  });

  test('audit: the node-add is on the record, from request to finish, with the refused self-approval', async () => {
    assert.ok(addJob, 'the wizard test created a job');
    await switchUser('admin', adminPassword);
    const r = await adminApi.call('GET', '/api/audit?action=job.&limit=500');
    const of = (id) => r.entries.filter((e) => e.target === String(id));
    const add = of(addJob.id);
    const actions = new Set(add.map((e) => e.action + '/' + e.outcome));
    for (const want of ['job.request/ok', 'job.approve/ok', 'job.start/ok', 'job.step/ok', 'job.finish/ok']) {
      assert.ok(actions.has(want), `${want} for job ${addJob.id}: ${[...actions].join(' ')}`);
    }
    assert.ok(add.filter((e) => e.action === 'job.step').length >= addJob.plan.steps.length,
      'one job.step entry per remote step');
    assert.ok(r.entries.some((e) => e.action === 'job.approve' && e.outcome === 'denied'),
      'the requester\'s own approval is recorded as denied');
    await open('audit');
    await page.locator('.audit-table tbody tr').first().waitFor();
    await docShots(page, 'audit');
  });
});

// ---- Jobs UI against a stub of the Jobs API -----------------------------------------------
// What the real engine cannot be made to do on demand stays on tests/e2e/jobs-stub.mjs
// (the Jobs API answered inside the test through page.route, the event stream from a small
// server of the stub): the server's refusals and failures of every kind, a stream that loses
// lines or drops, a 20,000-line log, 60 jobs to page through, approval switched off. The
// real flow is the group above.
describe('jobs UI against a stub of the Jobs API (what the real engine cannot be made to do on demand)', () => {
  let stub = null;

  const NONE = { approve: false, reject: false, cancel: false, rollback: false };
  const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const actionsShown = () => page.locator('.job-actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
  const logLines = () => page.locator('.log .log-line').evaluateAll((ls) => ls.map((l) => Number(l.dataset.line)));
  const streamOpen = async () => {
    for (let i = 0; i < 100 && !stub.clients.size; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(stub.clients.size > 0, 'the page opened the event stream');
  };

  before(async () => {
    stub = new JobsStub();
    await stub.install(page);
    await open('cluster'); // signed in, whichever tests ran before
    await page.reload(); // the event stream opens again, now through the stub
    await page.locator('#conn.conn-live').waitFor();
  });
  after(async () => {
    if (stub) await stub.uninstall();
  });

  test('nodes: the add form shows the server\'s message on the field it names, then adds the node', async () => {
    await open('nodes');
    await page.locator('tr.node-row').first().waitFor();
    await page.locator('.page-head').getByRole('button', { name: 'Add node' }).click();
    const dlg = page.locator('dialog[open]');
    await dlg.getByLabel('Name').fill('consul-7');
    await dlg.getByLabel('Address').fill('127.0.0.57');
    await dlg.getByLabel('SSH user').fill('consul');
    const key = dlg.getByLabel('SSH private key (path on the console server)');
    await key.fill('keys/id_ed25519');
    await dlg.getByRole('button', { name: 'Add node' }).click();
    const alert = dlg.locator('[role=alert]');
    await alert.waitFor();
    assert.match(await alert.innerText(), /A field is not valid[\s\S]*ssh_key_path: must be an absolute path \(got "keys\/id_ed25519"\)/);
    assert.equal(await key.getAttribute('aria-invalid'), 'true');
    assert.equal(await key.evaluate((e) => e === document.activeElement), true);
    assert.match(await dlg.locator('.field-error:not([hidden])').innerText(), /ssh_key_path: must be an absolute path/);
    await key.fill('/etc/consulate/id_ed25519');
    await dlg.getByRole('button', { name: 'Add node' }).click();
    await dlg.waitFor({ state: 'detached' });
    await page.locator('tr.node-row[data-name="consul-7"]').waitFor();
    const posts = stub.requestsTo('POST', '/api/nodes');
    assert.equal(posts.length, 2);
    assert.deepEqual(posts[1].body, { name: 'consul-7', address: '127.0.0.57', ssh_port: 22, ssh_user: 'consul',
      ssh_key_path: '/etc/consulate/id_ed25519', server_state: 'unknown' });
    assert.ok(posts[1].csrf, 'the CSRF token is sent');
  });

  test('nodes: edit sends only what changed, a busy node is not deleted, the import lists what it skipped', async () => {
    await open('nodes');
    const dlg = page.locator('dialog[open]');
    // A pinned node warns that a new address or port unpins its key.
    await page.locator('tr.node-row[data-name="consul-1"] button', { hasText: 'Edit' }).click();
    assert.match(await dlg.innerText(), /Changing the address or the SSH port unpins the host key/);
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    await page.locator('tr.node-row[data-name="consul-7"] button', { hasText: 'Edit' }).click();
    assert.equal(await dlg.getByLabel('Name').count(), 0, 'a name is not edited');
    await dlg.getByLabel('SSH port').fill('2222');
    await dlg.getByRole('button', { name: 'Save' }).click();
    await dlg.waitFor({ state: 'detached' });
    assert.deepEqual(stub.requestsTo('PATCH', '/api/nodes/consul-7').at(-1).body, { ssh_port: 2222 });
    await page.locator('tr.node-row[data-name="consul-7"]', { hasText: 'port 2222' }).waitFor();

    stub.failNext.set('DELETE /api/nodes/consul-7', { status: 409, code: 'node_busy', message: 'job 9 (queued) names consul-7' });
    await page.locator('tr.node-row[data-name="consul-7"] button', { hasText: 'Delete' }).click();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel', 'a deletion starts on Cancel');
    await dlg.getByRole('button', { name: 'Delete' }).click();
    await dlg.locator('[role=alert]', { hasText: 'job 9 (queued) names consul-7' }).waitFor();
    assert.match(await dlg.locator('[role=alert]').innerText(), /A job that has not finished names this node/);
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    assert.equal(await page.locator('tr.node-row[data-name="consul-7"]').count(), 1);

    await page.getByRole('button', { name: 'Import from the cluster' }).click();
    await dlg.getByLabel('SSH user').fill('consul');
    await dlg.getByLabel('SSH private key (path on the console server)').fill('/etc/consulate/id_ed25519');
    await dlg.getByRole('button', { name: 'Import from the cluster' }).click();
    await dlg.waitFor({ state: 'detached' });
    assert.deepEqual(stub.requestsTo('POST', '/api/nodes/import').at(-1).body,
      { ssh_user: 'consul', ssh_key_path: '/etc/consulate/id_ed25519', ssh_port: 22 });
    const result = page.locator('.import-result');
    await result.waitFor();
    assert.match(await result.innerText(), /Imported 0 nodes\.[\s\S]*1 skipped:[\s\S]*consul-1: exists/);

    // A node that cannot be reached: the reason, and no dialog.
    stub.failNext.set('GET /api/nodes/consul-7/hostkey', { status: 502, code: 'ssh_unreachable',
      message: 'consul-7 (127.0.0.57:2222): connection refused' });
    const hk = page.locator('tr.node-row[data-name="consul-7"] button', { hasText: 'Host key' });
    await hk.click();
    const why = page.locator('.nodes-notice [role=alert]');
    await why.waitFor();
    assert.match(await why.innerText(), /cannot be reached over SSH[\s\S]*ssh_unreachable, HTTP 502[\s\S]*127\.0\.0\.57:2222\): connection refused/);
    assert.equal(await page.locator('dialog[open]').count(), 0);
    assert.equal(await hk.isEnabled(), true);
  });

  test('job page: approve, reject, cancel and roll back follow the job\'s can; the server still decides', async () => {
    const j = stub.addJob({ requested_by: 'alice', can: { approve: true, reject: true, cancel: true, rollback: false } });
    await open('jobs/' + j.id);
    await page.locator('.job-actions button').first().waitFor();
    assert.deepEqual(await actionsShown(), ['approve', 'reject', 'cancel']);
    const dlg = page.locator('dialog[open]');
    // A refusal by the server shows in the dialog, translated, with the server's words.
    stub.failNext.set(`POST /api/jobs/${j.id}/approve`, { status: 403, code: 'self_approval', message: 'alice requested job ' + j.id });
    await page.locator('.job-actions').getByRole('button', { name: 'Approve' }).click();
    assert.match(await dlg.innerText(), /requested by alice[\s\S]*Reason: \W?capacity/);
    await dlg.getByRole('button', { name: 'Approve' }).click();
    await dlg.locator('[role=alert]').waitFor();
    assert.match(await dlg.locator('[role=alert]').innerText(), /another approver must approve it[\s\S]*self_approval, HTTP 403[\s\S]*alice requested job/);
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    // Reject needs a comment.
    await page.locator('.job-actions').getByRole('button', { name: 'Reject' }).click();
    await dlg.getByRole('button', { name: 'Reject' }).click();
    await page.waitForTimeout(200);
    assert.equal(stub.requestsTo('POST', `/api/jobs/${j.id}/reject`).length, 0);
    const comment = 'Not during the trading day; resubmit after 18:00.';
    await dlg.getByLabel(/Comment/).fill(comment);
    await dlg.getByRole('button', { name: 'Reject' }).click();
    await dlg.waitFor({ state: 'detached' });
    assert.deepEqual(stub.requestsTo('POST', `/api/jobs/${j.id}/reject`)[0].body, { comment });
    await page.locator('.job-head .job-state[data-state="rejected"]').waitFor();
    await page.locator('.job-banner', { hasText: 'Rejected by admin.' }).waitFor();
    assert.equal(await page.locator('.job-banner .decision-comment').innerText(), comment);
    assert.deepEqual(await actionsShown(), []);

    // A failed job offers only a rollback, which is a new job with its own reason.
    const f = stub.addJob({ state: 'failed', requested_by: 'alice', approved_by: 'bob', ended_at: now(),
      result: { error: 'gate: consul-5 still a non-voter after 180 s' }, can: { ...NONE, rollback: true } });
    await open('jobs/' + f.id);
    await page.locator('.job-banner[data-state="failed"]').waitFor();
    assert.match(await page.locator('.job-banner').innerText(), /gate: consul-5 still a non-voter after 180 s/);
    assert.deepEqual(await actionsShown(), ['rollback']);
    await page.locator('.job-actions').getByRole('button', { name: 'Roll back' }).click();
    await dlg.getByLabel('Reason (required)').fill('restore the files after the failed gate');
    await dlg.getByRole('button', { name: 'Roll back' }).click();
    await page.waitForURL(new RegExp(`#/jobs/${f.id + 1}$`));
    assert.deepEqual(stub.requestsTo('POST', '/api/jobs').at(-1).body,
      { type: 'rollback', job: f.id, reason: 'restore the files after the failed gate' });
    await page.locator(`.job-details [data-field="target_job"] a[href="#/jobs/${f.id}"]`).waitFor();

    // Nothing allowed: no button at all.
    const v = stub.addJob({ state: 'queued', requested_by: 'alice', approved_by: 'bob', can: NONE });
    await open('jobs/' + v.id);
    await page.locator('.job-head .job-state[data-state="queued"]').waitFor();
    assert.deepEqual(await actionsShown(), []);
  });

  test('job page: a request refused by its prechecks shows every result and that nothing changed', async () => {
    const j = stub.addJob({ state: 'failed', requested_by: 'alice', ended_at: now(), can: NONE });
    j.prechecks = [
      ...j.prechecks,
      { name: 'host_key_pinned', node: 'consul-6', ok: false, blocking: true, message: 'consul-6: no pinned host key' },
      { name: 'port_reachable', node: 'consul-5', ok: false, blocking: true, message: 'consul-5 → 127.0.0.52:8301: connection refused' },
    ];
    await open('jobs/' + j.id);
    await page.locator('.job-banner[data-state="failed"]', { hasText: 'The prechecks failed, so nothing was changed.' }).waitFor();
    assert.equal(await page.locator('.prechecks-summary').innerText(), `2 of ${j.prechecks.length} prechecks failed: the change cannot run.`);
    assert.equal(await page.locator('tr.precheck[data-ok="false"]').count(), 3);
    assert.match(await page.locator('tr.precheck[data-name="port_reachable"]').innerText(),
      /consul-5[\s\S]*failed[\s\S]*127\.0\.0\.52:8301: connection refused/);
    assert.match(await page.locator('tr.precheck[data-name="data_dir_empty"]').innerText(), /warning/);
    assert.equal(await page.locator('details.plan-wrap').getAttribute('open'), '', 'the plan is open: it says why');
    assert.deepEqual(await actionsShown(), []);
  });

  test('job page: the live log follows the stream, a resync and a reconnect fetch what was lost, the state reaches succeeded', async () => {
    const j = stub.addJob({ state: 'queued', requested_by: 'alice', approved_by: 'bob', approved_at: now(),
      can: { ...NONE, cancel: true } });
    stub.startSteps(j);
    await open('jobs/' + j.id);
    await page.locator('.job-head .job-state[data-state="queued"]').waitFor();
    await page.locator('.job-log').waitFor();
    await streamOpen();
    stub.update(j.id, { state: 'running', started_at: now() });
    await page.locator('.job-head .job-state[data-state="running"]').waitFor();
    await page.locator('.job-banner[data-state="running"]').waitFor();
    j.steps[0].state = 'running';
    j.steps[0].started_at = now();
    for (let i = 1; i <= 30; i++) {
      stub.log(j.id, `output ${i}`, { node: 'consul-' + (1 + (i % 4)), stream: i % 7 === 3 ? 'stderr' : 'stdout' });
    }
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 30);
    assert.equal(await page.locator('.log .log-line[data-line="3"]').getAttribute('class'), 'log-line log-stderr');
    assert.match(await page.locator('.log .log-line[data-line="3"]').innerText(), /consul-4[\s\S]*output 3/);
    // The steps follow (the page refetches the job while lines flow).
    await page.locator('.steps-table tr.step[data-seq="1"][data-state="running"]').waitFor();

    // The stream loses five lines; the resync event fetches them from the log API.
    for (let i = 31; i <= 35; i++) stub.log(j.id, `lost ${i}`, { send: false });
    const before = stub.requestsTo('GET', `/api/jobs/${j.id}/log`).length;
    stub.emit('resync', { dropped: 5 });
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 35);
    const fetched = stub.requestsTo('GET', `/api/jobs/${j.id}/log`).slice(before);
    assert.ok(fetched.some((r) => r.query.after === '30' && r.query.format === 'json'), JSON.stringify(fetched));

    // Enough lines to scroll; the view follows them.
    for (let i = 36; i <= 75; i++) stub.log(j.id, `more ${i}`, { node: 'consul-5' });
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 75);
    const box = page.locator('.log');
    assert.ok(await box.evaluate((b) => b.scrollHeight > b.clientHeight && b.scrollTop + b.clientHeight >= b.scrollHeight - 2));
    // The person scrolls up: new lines do not pull the view down; "jump to the end" does.
    await box.evaluate((b) => {
      b.scrollTop = 0;
      b.dispatchEvent(new Event('scroll'));
    });
    const endBtn = page.getByRole('button', { name: 'Jump to the end (follow)' });
    await endBtn.waitFor();
    for (let i = 76; i <= 100; i++) stub.log(j.id, `more ${i}`, { node: 'consul-5' });
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 100);
    assert.equal(await box.evaluate((b) => b.scrollTop), 0);
    await endBtn.click();
    assert.ok(await box.evaluate((b) => b.scrollTop + b.clientHeight >= b.scrollHeight - 2));

    // The stream drops; lines written meanwhile arrive after the reconnect.
    stub.dropStreams();
    for (let i = 101; i <= 103; i++) stub.log(j.id, `while away ${i}`, { send: false });
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 103);
    await streamOpen();
    // A line the stream skipped shows up as a hole before the next one: it is fetched.
    stub.log(j.id, 'skipped 104', { send: false });
    const holeFrom = stub.requestsTo('GET', `/api/jobs/${j.id}/log`).length;
    stub.log(j.id, 'after the hole 105');
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 105);
    assert.ok(stub.requestsTo('GET', `/api/jobs/${j.id}/log`).slice(holeFrom).some((r) => r.query.after === '103'));

    for (const s of j.steps) Object.assign(s, { state: 'succeeded', exit_status: 0, started_at: s.started_at || now(), ended_at: now() });
    stub.log(j.id, 'gate passed: 5 servers in raft, 5 voters, leader consul-1', { stream: 'info' });
    stub.update(j.id, { state: 'succeeded', ended_at: now(), can: NONE });
    await page.locator('.job-head .job-state[data-state="succeeded"]').waitFor();
    await page.locator('.job-banner[data-state="succeeded"]').waitFor();
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('.steps-table tr.step')];
      return rows.length > 0 && rows.every((r) => r.dataset.state === 'succeeded');
    });
    await page.locator('.node-status-item[data-node="consul-5"][data-state="succeeded"]').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('.log .log-line').length === 106);
    const lines = await logLines();
    assert.deepEqual(lines, Array.from({ length: 106 }, (_, i) => i + 1), 'every line once, in order');
    assert.match(await page.locator('.log .log-line').last().innerText(), /gate passed/);
    assert.ok(await box.evaluate((b) => b.scrollTop + b.clientHeight >= b.scrollHeight - 2), 'the view follows the tail');
    assert.deepEqual(await actionsShown(), []);
    // The plan folds away once the job ran, so the steps and the log come first.
    assert.equal(await page.locator('details.plan-wrap').getAttribute('open'), null);
    await shot('job-live');
  });

  test('job page: a 20,000-line log keeps at most 5,000 lines in the page and loads earlier ones on demand', async () => {
    const j = stub.addJob({ state: 'running', requested_by: 'alice', approved_by: 'bob', started_at: now(),
      can: { ...NONE, cancel: true } });
    stub.startSteps(j);
    stub.bigLog(j.id, 20000);
    const t0 = Date.now();
    await open('jobs/' + j.id);
    await page.waitForFunction(() => {
      const l = document.querySelector('.log .log-line:last-child');
      return l && l.dataset.line === '20000';
    }, null, { timeout: 20000 });
    const loadMs = Date.now() - t0;
    let lines = await logLines();
    assert.equal(lines.length, 5000);
    assert.equal(lines[0], 15001);
    assert.equal(await page.locator('.log-status').innerText(), 'Lines 15001–20000 of 20000');
    await streamOpen();
    // Live lines past the cap push the oldest out.
    for (let i = 20001; i <= 20050; i++) {
      stub.emit('job_log', { job: j.id, line: i, time: now(), node: 'consul-2', stream: 'stdout', text: `live ${i}` });
    }
    stub.bigLog(j.id, 20050);
    await page.waitForFunction(() => document.querySelector('.log .log-line:last-child')?.dataset.line === '20050');
    lines = await logLines();
    assert.equal(lines.length, 5000);
    assert.equal(lines[0], 15051);
    // Earlier lines on demand; past the cap the newest leave until "show the latest".
    await page.getByRole('button', { name: 'Load earlier lines' }).click();
    await page.waitForFunction(() => document.querySelector('.log .log-line')?.dataset.line === '14051');
    lines = await logLines();
    assert.ok(lines.length <= 5000, `${lines.length} lines in the page`);
    assert.deepEqual(lines, Array.from({ length: lines.length }, (_, i) => 14051 + i));
    await page.getByRole('button', { name: 'Show the latest lines' }).click();
    await page.waitForFunction(() => document.querySelector('.log .log-line:last-child')?.dataset.line === '20050');
    assert.equal((await logLines()).length, 5000);
    // Responsive throughout: an input answers at once.
    const t1 = Date.now();
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    assert.ok(Date.now() - t1 < 1000, `a frame took ${Date.now() - t1} ms`);
    console.log(`# 20,000-line log: tail shown in ${loadMs} ms`);
    stub.update(j.id, { state: 'succeeded', ended_at: now(), can: NONE }, false);
  });

  test('jobs: the queue and the history with filters, keyset paging and live rows', async () => {
    while (stub.jobs.size < 60) {
      stub.addJob({ state: 'succeeded', requested_by: 'alice', approved_by: 'bob', ended_at: '2025-01-06T10:00:00Z' });
    }
    await open('jobs');
    const hist = page.locator('.jobs-history tbody tr.job-row');
    await page.waitForFunction(() => document.querySelectorAll('.jobs-history tbody tr.job-row').length === 50);
    const ids = await hist.evaluateAll((rs) => rs.map((r) => Number(r.dataset.id)));
    assert.deepEqual(ids, ids.slice().sort((a, b) => b - a), 'newest first');
    const queue = await page.locator('.jobs-queue tr.job-row').evaluateAll((rs) => rs.map((r) => r.dataset.state));
    assert.ok(queue.length >= 1 && queue.every((s) => ['running', 'queued', 'awaiting_approval'].includes(s)), `${queue}`);
    await page.getByRole('button', { name: 'Load more' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('.jobs-history tbody tr.job-row').length === n, stub.jobs.size);
    const pages = stub.requestsTo('GET', '/api/jobs').filter((r) => r.query.before_id);
    assert.equal(pages.at(-1).query.before_id, String(ids[49]));
    await page.getByLabel('State').selectOption('rejected');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('.jobs-history tbody tr.job-row')];
      return rows.length > 0 && rows.every((r) => r.dataset.state === 'rejected');
    });
    assert.equal(stub.requestsTo('GET', '/api/jobs').at(-1).query.state, 'rejected');
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.jobs-history tbody tr.job-row').length === 50);
    // A new request appears on top of the history and in the queue, live.
    await streamOpen();
    const n = stub.addJob({ requested_by: 'carol', reason: 'live row' });
    stub.update(n.id, {});
    await page.locator(`.jobs-history tbody tr.job-row:first-child[data-id="${n.id}"]`).waitFor();
    await page.locator(`.jobs-queue tr.job-row[data-id="${n.id}"]`).waitFor();
    await shot('jobs');
  });

  test('approval off: the header says so, in both languages, and the wizard too', async () => {
    stub.approvalRequired = false;
    try {
      await open('jobs/new');
      await page.reload();
      const banner = page.locator('#approval-off');
      await banner.waitFor();
      assert.match(await banner.innerText(), /Four-eyes approval is OFF\.[\s\S]*approval\.required is false/);
      await page.locator('.wizard-intro', { hasText: 'Approval is OFF on this console' }).waitFor();
      await page.getByRole('button', { name: '中文' }).click();
      await page.locator('#approval-off', { hasText: '双人审批已关闭' }).waitFor();
      await shot('approval-off-zh');
      await page.getByRole('button', { name: 'English' }).click();
      await page.locator('#approval-off', { hasText: 'Four-eyes approval is OFF' }).waitFor();
      stub.approvalRequired = true;
      await page.reload();
      await page.locator('#main h1', { hasText: 'New change' }).waitFor();
      assert.equal(await page.locator('#approval-off').count(), 0);
    } finally {
      stub.approvalRequired = undefined;
    }
  });

});

test('logout returns to the login page', async () => {
  await open('cluster');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/login$/);
  await page.goto(base + '/#/audit');
  await page.waitForURL(/#\/login$/);
  await shot('login');
});
