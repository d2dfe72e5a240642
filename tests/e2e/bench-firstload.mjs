// First load of the console in headless Chromium on loopback (make bench, through
// scripts/bench-firstload.sh): the bytes the browser transfers for the UI (HTML, scripts,
// styles, translations, icon: everything but /api/), the API answers of that load, and the
// time from the start of the navigation until the cluster topology is drawn. Each run uses a
// fresh browser context (an empty cache) and a signed-in session; a warm reload in the same
// context follows, to show what the browser keeps.
//
//   node tests/e2e/bench-firstload.mjs        (CONSULATE_BIN, CONSUL_SIM_BIN, CHROMIUM, RUNS)
//
// The same browser also loads a trivial page as many times (one module that fetches a small
// JSON document and draws one SVG node, from a server in this script): how long this machine's
// Chromium takes for any page, to read the console's figure against (the target assumes a
// fast machine; on a slow one the trivial page alone takes most of it).
//
// Prints one table in the style of the other benchmarks: a target missed prints MISSED (the
// run still succeeds); a load that does not draw the topology, or a console error, prints
// FAILED and exits 1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const abs = (p) => (path.isAbsolute(p) ? p : path.join(ROOT, p));
const CONSULATE_BIN = abs(process.env.CONSULATE_BIN || 'build/consulate');
const CONSUL_SIM_BIN = abs(process.env.CONSUL_SIM_BIN || 'build/consul-sim');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const RUNS = Number(process.env.RUNS || 7);
const BYTES_TARGET = 100 * 1024;
const MS_TARGET = 300;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'consulate-firstload-'));
const procs = [];
let failures = 0;

function start(bin, args, match) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: tmp });
    procs.push(child);
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => reject(new Error(`${path.basename(bin)} not ready in 30 s: ${err}`)), 30000);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = match(line);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('exit', (code) => reject(new Error(`${path.basename(bin)} exited (${code}): ${err}`)));
  });
}

function stop() {
  for (const p of procs) {
    if (p.exitCode === null) {
      p.stdin.end();
      p.kill('SIGTERM');
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const kb = (n) => (n / 1024).toFixed(1) + ' KB';

function row(what, figure, target, verdict) {
  console.log(`  ${what.padEnd(62)} ${figure.padStart(14)}   ${target.padEnd(10)} ${verdict}`);
}

// One load of #/cluster in page: bytes by kind and the time the topology appeared.
async function load(ctx, page, base, reload) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  let ui = 0;
  let api = 0;
  let requests = 0;
  let fromCache = 0;
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.requestServedFromCache', () => { fromCache++; });
  const count = (id, n) => {
    const u = new URL(urls.get(id) || base);
    if (u.pathname.startsWith('/api/')) api += n;
    else ui += n;
  };
  cdp.on('Network.loadingFinished', (e) => {
    requests++;
    count(e.requestId, e.encodedDataLength);
  });
  // The event stream never finishes: count what it delivered.
  cdp.on('Network.dataReceived', (e) => {
    if ((urls.get(e.requestId) || '').includes('/api/events')) count(e.requestId, e.encodedDataLength);
  });
  if (reload) await page.reload({ waitUntil: 'commit' });
  else await page.goto(base + '/#/cluster', { waitUntil: 'commit' });
  await page.waitForFunction(() => window.__topologyAt !== undefined, null, { timeout: 20000 });
  const ms = await page.evaluate(() => window.__topologyAt);
  // where the time went: the document's scripts ready, the cluster document's arrival
  const marks = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const api = performance.getEntriesByType('resource').filter((e) => /\/api\/(cluster|events)/.test(e.name));
    return { dcl: nav ? nav.domContentLoadedEventEnd : 0, data: api.length ? Math.min(...api.map((e) => e.responseStart)) : 0 };
  });
  await page.waitForLoadState('load');
  await new Promise((r) => setTimeout(r, 300)); // late requests (translations, icon)
  await cdp.detach();
  return { ms, ui, api, requests, fromCache, dcl: marks.dcl, data: marks.data };
}

// Run in the page before its own scripts: the time the first topology node appears.
function markTopology() {
  new MutationObserver((_, obs) => {
    if (document.querySelector('svg.topology .server-node')) {
      window.__topologyAt = performance.now();
      obs.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
}

// A trivial page: its time to draw, measured as the console's is. Returns the medians' input.
async function trivialLoads(browser, runs) {
  const page0 = '<!DOCTYPE html><html><head><meta charset="utf-8"><script type="module" src="/m.js"></script></head><body><main id="m"></main></body></html>';
  const mod = 'fetch("/data").then((r) => r.json()).then(() => {' +
    ' const s = document.createElementNS("http://www.w3.org/2000/svg", "svg"); s.setAttribute("class", "topology");' +
    ' const g = document.createElementNS("http://www.w3.org/2000/svg", "g"); g.setAttribute("class", "server-node");' +
    ' s.append(g); document.getElementById("m").append(s); });';
  const srv = http.createServer((q, r) => {
    const [type, body] = q.url === '/m.js' ? ['text/javascript', mod]
      : q.url === '/data' ? ['application/json', '{"servers":[]}'] : ['text/html', page0];
    r.setHeader('Content-Type', type);
    r.end(body);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${srv.address().port}/`;
  const times = [];
  try {
    for (let i = 0; i < runs + 1; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      await ctx.addInitScript(markTopology);
      const page = await ctx.newPage();
      await page.goto(url, { waitUntil: 'commit' });
      await page.waitForFunction(() => window.__topologyAt !== undefined, null, { timeout: 20000 });
      if (i > 0) times.push(await page.evaluate(() => window.__topologyAt));
      await ctx.close();
    }
  } finally {
    srv.close();
  }
  return times;
}

async function main() {
  const sim = await start(CONSUL_SIM_BIN, ['--servers', '4', '--clients', '3', '--demo-data',
    '--http-port', '0', '--metrics-port', '0', '--ip-base', '127.0.0.71', '--exit-on-stdin-eof', '--quiet'],
  (line) => { try { const j = JSON.parse(line); return Array.isArray(j.servers) ? j : null; } catch (_) { return null; } });
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({
    listen: '127.0.0.1:0',
    database: path.join(tmp, 'c.db'),
    consul: { addresses: sim.servers.map((s) => s.http) },
  }));
  let password = '';
  const base = (await start(CONSULATE_BIN, ['serve', '--config', path.join(tmp, 'config.json')], (line) => {
    const p = /created user admin with password: (\S+)/.exec(line);
    if (p) password = p[1];
    const l = /listening on (http:\/\/\S+)/.exec(line);
    return l ? l[1].replace(/\/$/, '') : null;
  }));
  for (let i = 0; i < 40 && !password; i++) await new Promise((r) => setTimeout(r, 50));
  if (!password) throw new Error('the server printed no admin password');

  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const cold = [];
  const warm = [];
  const errors = [];
  let trivial = [];
  try {
    for (let i = 0; i < RUNS + 1; i++) { // the first run warms the server and is not counted
      const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1400, height: 1000 } });
      const r = await ctx.request.post(base + '/api/session', { data: { username: 'admin', password } });
      if (r.status() !== 200) throw new Error('login: HTTP ' + r.status());
      await ctx.addInitScript(markTopology);
      const page = await ctx.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(m.text());
      });
      const c = await load(ctx, page, base, false);
      const w = await load(ctx, page, base, true);
      if (i > 0) {
        cold.push(c);
        warm.push(w);
      }
      await ctx.close();
    }
    trivial = await trivialLoads(browser, RUNS);
  } finally {
    await browser.close();
  }

  const uiBytes = median(cold.map((x) => x.ui));
  const ms = median(cold.map((x) => x.ms));
  console.log(`first load of the console, ${RUNS} cold loads (+ a warm reload each), median:`);
  row('UI bytes transferred (HTML, JS, CSS, translations, icon)', kb(uiBytes), '<= 100 KB',
    uiBytes <= BYTES_TARGET ? 'ok' : 'MISSED');
  row('API bytes of that load (session, cluster, health, events)', kb(median(cold.map((x) => x.api))), '', 'reported');
  row('requests of that load', String(median(cold.map((x) => x.requests))), '', 'reported');
  row('navigation start to topology drawn', ms.toFixed(0) + ' ms', '<= 300 ms', ms <= MS_TARGET ? 'ok' : 'MISSED');
  row('  of which: document and scripts loaded (DOMContentLoaded)', median(cold.map((x) => x.dcl)).toFixed(0) + ' ms', '', 'reported');
  row('  of which: first cluster data arriving', median(cold.map((x) => x.data)).toFixed(0) + ' ms', '', 'reported');
  row('  fastest / slowest', `${Math.min(...cold.map((x) => x.ms)).toFixed(0)} / ${Math.max(...cold.map((x) => x.ms)).toFixed(0)} ms`, '', 'reported');
  const plain = median(trivial);
  row('a trivial page in the same browser (1 module, 1 fetch, 1 SVG)', plain.toFixed(0) + ' ms', '', 'reported');
  row('  the console beyond it (drawn minus trivial)', (ms - plain).toFixed(0) + ' ms', '', 'reported');
  row('warm reload: UI bytes transferred', kb(median(warm.map((x) => x.ui))), '', 'reported');
  row('warm reload: navigation start to topology drawn', median(warm.map((x) => x.ms)).toFixed(0) + ' ms', '', 'reported');
  const drawn = cold.length === RUNS && cold.every((x) => x.ms > 0);
  row('every load drew the topology without a console error', drawn && !errors.length ? 'yes' : 'no', '', drawn && !errors.length ? 'ok' : 'FAILED');
  if (!drawn || errors.length) {
    failures++;
    for (const e of errors) console.error('bench-firstload: ' + e);
  }
}

main().then(() => {
  stop();
  process.exit(failures ? 1 : 0);
}, (e) => {
  console.error('bench-firstload: ' + (e.stack || e.message));
  stop();
  process.exit(1);
});
