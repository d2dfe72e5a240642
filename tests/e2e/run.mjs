// Browser end-to-end tests: real Chromium (Debian's /usr/bin/chromium through
// playwright-core), the real consulate server, and the Consul simulator.
//
//   cd tests/e2e && npm ci && node --test --test-concurrency=1 run.mjs
//
// Environment: CONSULATE_BIN (default build/consulate), CONSUL_SIM_BIN (default
// build/consul-sim), CHROMIUM (default /usr/bin/chromium). Screenshots and logs go to
// build/e2e/.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { checkI18n } from './i18n-check.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const OUT = path.join(ROOT, 'build/e2e');
const abs = (p) => (path.isAbsolute(p) ? p : path.join(ROOT, p));
const CONSULATE_BIN = abs(process.env.CONSULATE_BIN || 'build/consulate');
const CONSUL_SIM_BIN = abs(process.env.CONSUL_SIM_BIN || 'build/consul-sim');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP = 20000;

const procs = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'consulate-e2e-'));
let base = '';
let adminPassword = '';
let simControl = '';
let ctx = null;
let page = null;
const pageErrors = [];

// Starts a child process, logging its output to build/e2e/<name>.log, and resolves
// with the first stdout line for which match(line) returns a truthy value.
function startProcess(name, bin, args, match, { timeout = 30000, stdin = 'ignore' } = {}) {
  return new Promise((resolve, reject) => {
    const log = fs.createWriteStream(path.join(OUT, name + '.log'));
    const child = spawn(bin, args, { stdio: [stdin, 'pipe', 'pipe'], cwd: ROOT });
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

const SIM_IPS = ['127.0.0.51', '127.0.0.52', '127.0.0.53', '127.0.0.54'];

// A TCP port that is free on every one of ips (tries random ports in 20000–39999).
async function freePortOn(ips) {
  const tryListen = (ip, port) => new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, ip, () => srv.close(() => resolve(true)));
  });
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    let ok = true;
    for (const ip of ips) {
      if (!(await tryListen(ip, port))) {
        ok = false;
        break;
      }
    }
    if (ok) return port;
  }
  throw new Error('no port free on ' + ips.join(', '));
}

async function startServers() {
  if (!fs.existsSync(CONSULATE_BIN)) {
    throw new Error(`server binary not found: ${CONSULATE_BIN} (run make at the repo root, or set CONSULATE_BIN)`);
  }
  if (!fs.existsSync(CONSUL_SIM_BIN)) {
    throw new Error(`simulator binary not found: ${CONSUL_SIM_BIN} (run make at the repo root)`);
  }
  // Every simulated server's exporter listens on one port (as on a real site, where it is
  // 9107 on each host), so consulate can be told consul.exporter_port.
  const metricsPort = await freePortOn(SIM_IPS);
  const sim = await startProcess('consul-sim', CONSUL_SIM_BIN, [
    '--servers', '4', '--clients', '3', '--demo-data', '--http-port', '0',
    '--metrics-port', String(metricsPort), '--speed', '20', '--exit-on-stdin-eof', '--quiet',
    '--ip-base', SIM_IPS[0],
  ], (line) => {
    try {
      const j = JSON.parse(line);
      return j && Array.isArray(j.servers) ? j : null;
    } catch (_) {
      return null;
    }
  }, { stdin: 'pipe' });
  const addresses = sim.value.servers.map((s) => s.http);
  simControl = sim.value.control;
  const config = path.join(tmp, 'consulate.json');
  fs.writeFileSync(config, JSON.stringify({
    listen: '127.0.0.1:0',
    database: path.join(tmp, 'c.db'),
    consul: { addresses, exporter_port: metricsPort, exporter_interval_s: 1 },
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
  if (ctx) await ctx.close().catch(() => {});
  for (const p of procs.reverse()) {
    if (p.exitCode === null) {
      if (p.stdin) p.stdin.end();
      p.kill('SIGTERM');
    }
  }
  await new Promise((r) => setTimeout(r, 200));
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function shot(name) {
  await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: true });
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

test('logout returns to the login page', async () => {
  await open('cluster');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/login$/);
  await page.goto(base + '/#/audit');
  await page.waitForURL(/#\/login$/);
  await shot('login');
});
