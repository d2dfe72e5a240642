// A stand-in for the Jobs API of JOBS.md (/api/nodes*, /api/jobs*, the job and job_log
// events on /api/events, approval_required in GET /api/session), served to the browser
// through Playwright's page.route, for browser tests of the nodes, jobs and job pages
// (written before the engine existed). Everything else goes to the real server.
//
// REST calls are answered by route.fulfill from the state kept here. The event stream is
// redirected (route.continue with another URL) to a small HTTP server of this module on
// 127.0.0.1, so events arrive live on one open connection, as from the real server.
//
// The real flow (operator requests a node-add, approver approves, the live log reaches
// succeeded, five voters) runs against the engine and the fake hosts (run.mjs, "jobs over
// SSH against fake hosts"); this stub serves what the engine cannot be made to do on demand:
// refusals and failures of every kind, a stream that loses lines, a 20,000-line log, paging.
import http from 'node:http';

const COMPOSE_DIR = '/mnt/opt/docker-compose/consul';
const COMPOSE = COMPOSE_DIR + '/docker-compose.yaml';
const DATA_DIR = '/mnt/var/lib/container/consul';

export const FP = {
  'consul-1': 'SHA256:2lqyH3iQ0u9hdyDPqM1zXQh8iBKzYbYy8c3V6qk0l9w',
  'consul-2': 'SHA256:YtA4cCGp+S0h3X1bJHqZ0UoVbq2y7mK2o7W2mXQpZ2E',
  'consul-3': 'SHA256:5C0m0vG3n4cYkq6h0Yc1xwq6m8zj8Qb3Jm1aY2fQZ8o',
  'consul-4': 'SHA256:q0r2uU5m7JtG3w9bS6+Xc1ZkA5mP2dL8vN4eR7tY0aI',
  'consul-5': 'SHA256:Hf3kPq9Lr2Vt6Wx8Yz1Ab4Cd7Ef0Gh3Ij6Kl9Mn2Op5',
  'consul-6': 'SHA256:uNpinnedKey6aaaaBBBBccccDDDDeeeeFFFFggggHHH',
  rotated: 'SHA256:R0tat3dK3yZZZZyyyyXXXXwwwwVVVVuuuuTTTTsss0',
};

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function node(name, i, state, opts = {}) {
  const pinned = opts.pinned !== false;
  return {
    name, address: `127.0.0.${50 + i}`, ssh_port: 22, ssh_user: 'consul', ssh_key_path: '/etc/consulate/id_ed25519',
    compose_dir: COMPOSE_DIR, data_dir: DATA_DIR,
    host_key: pinned
      ? { pinned: true, type: 'ssh-ed25519', bits: 256, fingerprint: FP[name], pinned_at: '2025-01-06T09:00:00Z', pinned_by: 'admin' }
      : { pinned: false, type: null, bits: null, fingerprint: null, pinned_at: null, pinned_by: null },
    server_state: state,
    consul: opts.consul === undefined
      ? { member: state === 'server', server: state === 'server', in_raft: state === 'server', voter: state === 'server',
        leader: name === 'consul-1', serf_status: state === 'server' ? 'alive' : null }
      : opts.consul,
    created_at: '2025-01-06T08:59:00Z', updated_at: '2025-01-06T09:00:00Z',
  };
}

// The unified diffs of a node-add of `name` at `addr`; consul-1's file carries a comment
// that looks like markup, and consul-2's file has CRLF line endings.
function addDiffs(name, addr, servers) {
  const diffs = [{
    node: name, path: COMPOSE,
    diff: `--- /dev/null\n+++ ${COMPOSE}\n@@ -0,0 +1,6 @@\n+services:\n+  consul:\n+    image: consul:1.15\n` +
      `+    network_mode: host\n+    command: "agent -server -bind=${addr} -advertise=${addr}` +
      servers.map((s) => ` -retry-join=${s.address}`).join('') + `"\n+    restart: always\n`,
  }];
  for (const s of servers) {
    const cr = s.name === 'consul-2' ? '\r' : '';
    const hostile = s.name === 'consul-1' ? `     # <img src=x onerror="window.__pwned=1"> owner: ops${cr}\n` : '';
    diffs.push({
      node: s.name, path: COMPOSE,
      diff: `--- ${COMPOSE}.bak\n+++ ${COMPOSE}\n@@ -3,4 +3,5 @@\n     image: consul:1.15${cr}\n${hostile}` +
        `     command: >-${cr}\n       agent -server -bind=${s.address}${cr}\n` +
        `       -retry-join=127.0.0.51${cr}\n+      -retry-join=${addr}${cr}\n`,
    });
  }
  return diffs;
}

function addPlan(job, target, servers) {
  const steps = [];
  for (const s of servers) {
    steps.push({ node: s.name, title: 'Back up the compose file', command: `cp -p ${COMPOSE} ${COMPOSE}.bak-${job.id}` });
  }
  steps.push({ node: target.name, title: 'Move the old data directory aside', command: `mv ${DATA_DIR} ${DATA_DIR}.old-${job.id}` });
  steps.push({ node: target.name, title: 'Write the new node\'s compose file', command: `cat > ${COMPOSE}.tmp-${job.id}` });
  steps.push({ node: target.name, title: 'Start Consul', command: `docker-compose -f ${COMPOSE} up -d` });
  steps.push({ node: null, title: 'Gate: 5 servers in raft, all voters, one leader', command: '' });
  for (const s of servers) {
    steps.push({ node: s.name, title: 'Add the retry-join entry', command: `cat > ${COMPOSE}.tmp-${job.id}` });
  }
  steps.push({ node: null, title: 'Gate again', command: '' });
  const warnings = [];
  if (job.strategy === 'full-restart') warnings.push('The cluster has no leader while all servers restart.');
  if (job.options.fix_trap) warnings.push('consul-3: the command is a plain scalar with lines ending in \\; the plan quotes it (approved with this change).');
  return {
    plan: {
      summary: `Add ${target.name} (${target.address}) as server 5 of 5, ${job.strategy}: start it with a file copied from consul-1, ` +
        'wait for the gate, then add its address to the retry-join list of the 4 servers.',
      warnings, steps, diffs: addDiffs(target.name, target.address, servers),
    },
    prechecks: [
      ...[...servers, target].map((s) => ({ name: 'ssh_reachable', node: s.name, ok: true, blocking: true, message: `${s.address}:22 answered, host key pinned` })),
      { name: 'docker_version', node: target.name, ok: true, blocking: true, message: 'Docker 24.0.7 (≥ 19.03)' },
      { name: 'compose_version', node: target.name, ok: true, blocking: true, message: 'docker-compose 1.29.2 (≥ 1.27)' },
      { name: 'hostname_unique', node: target.name, ok: true, blocking: true, message: `hostname ${target.name} is not a member name yet` },
      { name: 'data_dir_empty', node: target.name, ok: false, blocking: false, message: `${DATA_DIR} holds 3 entries: the plan moves them aside` },
    ],
  };
}

function jobSummary(j) {
  const { plan, steps, prechecks, ...rest } = j;
  return rest;
}

function json(route, status, body) {
  return route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
}

function error(route, status, code, message) {
  return json(route, status, { error: { code, message } });
}

export class JobsStub {
  constructor() {
    this.nodes = new Map();
    ['consul-1', 'consul-2', 'consul-3', 'consul-4'].forEach((n, i) => this.nodes.set(n, node(n, i + 1, 'server')));
    this.nodes.set('consul-5', node('consul-5', 5, 'spare', { consul: { member: false, server: false, in_raft: false, voter: false, leader: false, serf_status: null } }));
    this.nodes.set('consul-6', node('consul-6', 6, 'spare', { pinned: false, consul: null }));
    this.presented = new Map([...Object.entries(FP)].map(([n, fp]) => [n, { type: 'ssh-ed25519', bits: 256, fingerprint: fp }]));
    this.rotateAfterGet = new Set(); // nodes whose key changes right after it was shown
    this.jobs = new Map();
    this.logs = new Map(); // id -> [{line,time,node,stream,text}]
    this.bigLogs = new Map(); // id -> number of generated lines
    this.nextId = 1;
    this.approvalRequired = undefined; // undefined: the real server's answer, unchanged
    this.role = undefined; // a role the session document claims (the UI's view of the user)
    this.user = 'admin';
    this.requests = []; // {method, path, query, body, csrf}
    this.clients = new Set();
    this.failNext = new Map(); // "METHOD path" -> {status, code, message}
    this.server = null;
  }

  async start() {
    this.server = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
      res.write('retry: 200\n\n');
      this.clients.add(res);
      req.on('close', () => this.clients.delete(res));
    });
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.eventsUrl = `http://127.0.0.1:${this.server.address().port}/events`;
  }

  async stop() {
    for (const c of this.clients) c.end();
    this.clients.clear();
    if (this.server) await new Promise((r) => this.server.close(r));
  }

  // Sends one SSE frame to every open stream.
  emit(name, data) {
    const frame = `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of this.clients) c.write(frame);
  }

  // Closes the open streams: the browser reconnects (and must catch up).
  dropStreams() {
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  // Adds a job as the server would hold it; returns it.
  addJob(fields) {
    const id = this.nextId++;
    const now = Date.now();
    const j = {
      id, type: 'node-add', node: 'consul-5', strategy: 'rolling', state: 'awaiting_approval', reason: 'capacity',
      requested_by: 'alice', requested_at: iso(now - 60000), approved_by: null, approved_at: null, rejected_by: null,
      rejected_at: null, decision_comment: null, cancelled_by: null, started_at: null, ended_at: null, target_job: null,
      options: { fix_trap: false, node_gone: false }, plan: null, prechecks: [], steps: [], result: {}, log_lines: 0,
      can: { approve: false, reject: false, cancel: false, rollback: false },
      ...fields,
    };
    j.id = id;
    if (!j.plan && (j.type === 'node-add')) {
      const target = this.nodes.get(j.node);
      const servers = [...this.nodes.values()].filter((n) => n.server_state === 'server');
      Object.assign(j, addPlan(j, target, servers));
    }
    this.jobs.set(id, j);
    this.logs.set(id, []);
    return j;
  }

  // Turns the plan's steps into the job's steps, all pending.
  startSteps(j) {
    j.steps = (j.plan ? j.plan.steps : []).map((s, i) => ({
      seq: i + 1, node: s.node, title: s.title, command: s.command, state: 'pending', exit_status: null,
      started_at: null, ended_at: null,
    }));
  }

  // Changes a job and sends the "job" event (the job without plan, steps, prechecks).
  update(id, fields, send = true) {
    const j = this.jobs.get(id);
    Object.assign(j, fields);
    if (send) this.emit('job', jobSummary(j));
    return j;
  }

  // Appends a log line; sends it as job_log unless send is false (a line the stream lost).
  log(id, text, { node = null, stream = 'stdout', send = true } = {}) {
    const lines = this.logs.get(id);
    const e = { line: lines.length + 1, time: iso(Date.now()), node: node || '-', stream, text };
    lines.push(e);
    this.jobs.get(id).log_lines = lines.length;
    if (send) this.emit('job_log', { job: id, ...e });
    return e;
  }

  // A log of n generated lines, produced on demand.
  bigLog(id, n) {
    this.bigLogs.set(id, n);
    this.jobs.get(id).log_lines = n;
  }

  logLines(id, after) {
    const n = this.bigLogs.get(id);
    if (n !== undefined) {
      const out = [];
      for (let i = after + 1; i <= n; i++) {
        out.push({ line: i, time: '2025-01-06T10:00:00Z', node: 'consul-' + (1 + (i % 4)), stream: i % 10 ? 'stdout' : 'stderr', text: `generated line ${i}` });
      }
      return out;
    }
    return (this.logs.get(id) || []).filter((e) => e.line > after);
  }

  // Installs the routes on page.
  async install(page) {
    await this.start();
    this.page = page;
    this.handlers = [
      [(u) => u.pathname === '/api/events', (route) => route.continue({ url: this.eventsUrl })],
      [(u) => u.pathname === '/api/session', (route) => this.session(route)],
      [(u) => u.pathname === '/api/nodes' || u.pathname.startsWith('/api/nodes/'), (route) => this.handle(route)],
      [(u) => u.pathname === '/api/jobs' || u.pathname.startsWith('/api/jobs/'), (route) => this.handle(route)],
    ];
    for (const [m, h] of this.handlers) await page.route(m, h);
  }

  async uninstall() {
    for (const [m, h] of this.handlers || []) await this.page.unroute(m, h);
    await this.stop();
  }

  async session(route) {
    const req = route.request();
    if (req.method() !== 'GET' || (this.approvalRequired === undefined && this.role === undefined)) return route.continue();
    const res = await route.fetch();
    if (res.status() !== 200) return route.fulfill({ response: res });
    const body = await res.json();
    if (this.approvalRequired !== undefined) body.approval_required = this.approvalRequired;
    if (this.role !== undefined) body.user.role = this.role;
    return route.fulfill({ response: res, json: body });
  }

  requestsTo(method, path) {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  async handle(route) {
    const req = route.request();
    const u = new URL(req.url());
    const method = req.method();
    let body = null;
    if (method !== 'GET') {
      try {
        body = req.postDataJSON();
      } catch (_) {
        body = req.postData();
      }
    }
    const headers = await req.allHeaders();
    this.requests.push({ method, path: u.pathname, query: Object.fromEntries(u.searchParams), body, csrf: headers['x-csrf-token'] || null });
    const fail = this.failNext.get(`${method} ${u.pathname}`);
    if (fail) {
      this.failNext.delete(`${method} ${u.pathname}`);
      return error(route, fail.status, fail.code, fail.message);
    }
    const seg = u.pathname.split('/').slice(2).map(decodeURIComponent); // ['nodes', name, 'hostkey']
    if (seg[0] === 'nodes') return this.nodesApi(route, method, seg, body);
    return this.jobsApi(route, method, seg, body, u.searchParams);
  }

  nodesApi(route, method, seg, body) {
    const [, name, sub] = seg;
    if (!name && method === 'GET') return json(route, 200, { nodes: [...this.nodes.values()].sort((a, b) => a.name.localeCompare(b.name)) });
    if (!name && method === 'POST') {
      for (const f of ['name', 'address', 'ssh_user', 'ssh_key_path']) {
        if (!body[f]) return error(route, 400, 'invalid_field', `${f}: required`);
      }
      if (!body.ssh_key_path.startsWith('/')) return error(route, 400, 'invalid_field', `ssh_key_path: must be an absolute path (got "${body.ssh_key_path}")`);
      if (this.nodes.has(body.name)) return error(route, 409, 'node_exists', `node ${body.name} exists`);
      const n = node(body.name, 0, body.server_state || 'unknown', { pinned: false, consul: null });
      Object.assign(n, body);
      this.nodes.set(n.name, n);
      this.presented.set(n.name, { type: 'ssh-ed25519', bits: 256, fingerprint: 'SHA256:N3wN0d3' + n.name.replace(/[^A-Za-z0-9]/g, '') + 'AAAAbbbbCCCCddddEEEEffff' });
      return json(route, 201, { node: n });
    }
    if (name === 'import' && method === 'POST') return json(route, 200, { created: [], skipped: [{ name: 'consul-1', reason: 'exists' }] });
    const n = this.nodes.get(name);
    if (!n) return error(route, 404, 'not_found', `no node ${name}`);
    if (method === 'GET' && sub === 'hostkey') {
      const presented = this.presented.get(name);
      const answer = { presented, pinned: n.host_key.pinned ? n.host_key : null, matches: n.host_key.fingerprint === presented.fingerprint };
      if (this.rotateAfterGet.has(name)) {
        this.rotateAfterGet.delete(name);
        this.presented.set(name, { type: 'ssh-ed25519', bits: 256, fingerprint: FP.rotated });
      }
      return json(route, 200, answer);
    }
    if (method === 'POST' && sub === 'trust-hostkey') {
      const now = this.presented.get(name);
      if (body.fingerprint !== now.fingerprint) {
        return error(route, 409, 'host_key_mismatch', `${name} presents ${now.fingerprint}, not ${body.fingerprint}; nothing pinned`);
      }
      n.host_key = { pinned: true, ...now, pinned_at: iso(Date.now()), pinned_by: this.user };
      return json(route, 200, { node: n });
    }
    if (method === 'PATCH') {
      Object.assign(n, body);
      return json(route, 200, { node: n });
    }
    if (method === 'DELETE') {
      this.nodes.delete(name);
      return json(route, 200, { ok: true });
    }
    return error(route, 405, 'method_not_allowed', method);
  }

  jobsApi(route, method, seg, body, q) {
    const [, idText, sub] = seg;
    if (!idText && method === 'GET') {
      let list = [...this.jobs.values()].sort((a, b) => b.id - a.id);
      for (const f of ['state', 'type', 'node']) if (q.get(f)) list = list.filter((j) => j[f] === q.get(f));
      if (q.get('before_id')) list = list.filter((j) => j.id < Number(q.get('before_id')));
      const limit = Number(q.get('limit') || 100);
      const page = list.slice(0, limit);
      return json(route, 200, { jobs: page.map(jobSummary), next_before_id: list.length > limit ? page[page.length - 1].id : null });
    }
    if (!idText && method === 'POST' && body.type === 'rollback') {
      const target = this.jobs.get(Number(body.job));
      if (!target) return error(route, 400, 'invalid_field', `job: no job ${body.job}`);
      if (!body.reason || !String(body.reason).trim()) return error(route, 400, 'invalid_field', 'reason: a rollback needs a reason');
      const j = this.addJob({
        type: 'rollback', node: target.node, strategy: null, target_job: target.id, reason: body.reason,
        requested_by: this.user, requested_at: iso(Date.now()), plan: { summary: `Roll back job #${target.id}`, warnings: [], steps: [], diffs: [] },
        can: { approve: false, reject: false, cancel: true, rollback: false },
      });
      return json(route, 201, j);
    }
    if (!idText && method === 'POST') {
      if (!body.reason || !String(body.reason).trim()) return error(route, 400, 'invalid_field', 'reason: a cluster change needs a reason');
      if (!this.nodes.has(body.node)) return error(route, 400, 'invalid_field', `node: no node named ${body.node}`);
      const j = this.addJob({
        type: body.type, node: body.node, strategy: body.strategy || 'rolling', reason: body.reason,
        options: { fix_trap: false, node_gone: false, ...(body.options || {}) }, requested_by: this.user,
        requested_at: iso(Date.now()), state: this.approvalRequired === false ? 'queued' : 'awaiting_approval',
        can: { approve: false, reject: false, cancel: true, rollback: false },
      });
      return json(route, 201, j);
    }
    const id = Number(idText);
    const j = this.jobs.get(id);
    if (!j) return error(route, 404, 'not_found', `no job ${idText}`);
    if (method === 'GET' && !sub) return json(route, 200, j);
    if (method === 'GET' && sub === 'log') {
      const after = Number(q.get('after') || 0);
      const lines = this.logLines(id, after);
      return json(route, 200, { lines, last_line: j.log_lines });
    }
    if (method === 'POST' && (sub === 'approve' || sub === 'reject')) {
      if (j.state !== 'awaiting_approval') return error(route, 409, 'invalid_state', `job ${id} is ${j.state}`);
      const now = iso(Date.now());
      const none = { approve: false, reject: false, cancel: false, rollback: false };
      if (sub === 'approve') this.update(id, { state: 'queued', approved_by: this.user, approved_at: now, decision_comment: body.comment || null, can: none });
      else this.update(id, { state: 'rejected', rejected_by: this.user, rejected_at: now, decision_comment: body.comment || null, ended_at: now, can: none });
      return json(route, 200, j);
    }
    if (method === 'POST' && sub === 'cancel') {
      this.update(id, { state: 'cancelled', cancelled_by: this.user, ended_at: iso(Date.now()), can: { approve: false, reject: false, cancel: false, rollback: false } });
      return json(route, 200, j);
    }
    return error(route, 405, 'method_not_allowed', method);
  }
}
