"""`docker` and `docker-compose` on a fake node: the commands consulate runs (JOBS.md,
"Commands consulate runs on nodes"), answering as Docker 20.10 and docker-compose 1.29 do.

The containers' state lives in <root>/.fake/docker/containers.json. The consul container's
agent is the simulator's server on the node's address: `up -d` creates or reconfigures and
starts it with what the compose file really gives the agent (standin_compose.py), `down`
stops it, `docker logs` shows its log since the container was created, `docker ps` its state.
A container whose agent cannot start (flags it cannot parse, a bind address that is not the
node's) restarts in a loop as Docker's restart policy would; its log repeats the error.
"""

import calendar
import json
import os
import re
import secrets
import shutil
import sys
import time
import uuid

import standin_http as http

FS = "fake docker"


def now_ms():
    return int(time.time() * 1000)


def ts(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def parse_ts(s):
    """Milliseconds of an RFC 3339 UTC time as the simulator writes it; 0 when empty."""
    if not s:
        return 0
    m = re.match(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z", s)
    if not m:
        return 0
    secs = calendar.timegm(tuple(int(x) for x in m.groups()[:6]) + (0, 0, 0))
    return secs * 1000 + int((m.group(7) or "0")[:3].ljust(3, "0"))


def human_duration(ms):
    """go-units HumanDuration, as `docker ps` shows ages."""
    s = int(ms / 1000)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return "%d seconds" % s
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    hours = int(s / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    if hours < 24 * 7 * 2:
        return "%d days" % (hours // 24)
    if hours < 24 * 30 * 2:
        return "%d weeks" % (hours // 24 // 7)
    if hours < 24 * 365 * 2:
        return "%d months" % (hours // 24 // 30)
    return "%d years" % (s // 3600 // 24 // 365)


# ---- state ----

class State:
    """The node's containers, under an exclusive lock while the command runs."""

    def __init__(self, node):
        import fcntl

        self.node = node
        self.dir = os.path.join(node.fake, "docker")
        os.makedirs(self.dir, exist_ok=True)
        self.lock = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.path = os.path.join(self.dir, "containers.json")
        try:
            with open(self.path, encoding="utf-8") as f:
                self.containers = json.load(f)
        except (OSError, ValueError):
            self.containers = {}

    def save(self):
        with open(self.path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(self.containers, f, indent=1, sort_keys=True)
        os.rename(self.path + ".tmp", self.path)

    def close(self):
        os.close(self.lock)


def restart_schedule(since_ms, now):
    """The times Docker restarted a container that exits at once: 100 ms, then doubling, at
    most a minute apart. Returns the attempt start times up to now."""
    out = [since_ms]
    delay = 100
    t = since_ms
    while len(out) < 1000:
        t += delay
        if t > now:
            break
        out.append(t)
        delay = min(delay * 2, 60000)
    return out


def container_status(node, c, srv):
    """(running, status text, exit code or None) as `docker ps` shows the container."""
    now = now_ms()
    if c["kind"] == "crash":
        last = restart_schedule(c["created"], now)[-1]
        if c.get("restart", "no") == "no":
            return False, "Exited (%d) %s ago" % (c["exit"], human_duration(now - last)), c["exit"]
        return True, "Restarting (%d) %s ago" % (c["exit"], human_duration(now - last)), None
    if c["kind"] == "agent":
        if srv and srv.get("running"):
            return True, "Up " + human_duration(now - parse_ts(srv.get("started_at"))), None
        if srv and srv.get("restart_pending"):
            return True, "Restarting (0) Less than a second ago", None
        stopped = parse_ts(srv.get("stopped_at")) if srv else 0
        code = 0 if srv and srv.get("serf_status") == 3 else 137
        return False, "Exited (%d) %s ago" % (code, human_duration(now - (stopped or now))), code
    return True, "Up " + human_duration(now - c["started"]), None


# ---- docker-compose ----

COMPOSE_USAGE = """Define and run multi-container applications with Docker.

Usage:
  docker-compose [-f <arg>...] [--profile <name>...] [options] [--] [COMMAND] [ARGS...]
  docker-compose -h|--help
"""


def compose(node, args):
    files = []
    project_name = None
    rest = list(args)
    while rest and rest[0].startswith("-"):
        a = rest.pop(0)
        if a in ("-f", "--file", "-p", "--project-name") and rest:
            v = rest.pop(0)
            if a in ("-f", "--file"):
                files.append(v)
            else:
                project_name = v
        elif a.startswith("--file="):
            files.append(a[7:])
        elif a.startswith("-f") and len(a) > 2:
            files.append(a[2:])
        elif a in ("-v", "--version"):
            print("docker-compose version %s, build unknown" % node.cfg["compose_version"])
            return 0
        else:
            sys.stderr.write("%s: compose option %s is not simulated\n" % (FS, a))
            return 1
    if not rest:
        sys.stderr.write(COMPOSE_USAGE)
        return 1
    cmd, cargs = rest[0], rest[1:]
    if cmd == "version":
        if "--short" in cargs:
            print(node.cfg["compose_version"])
        else:
            print("docker-compose version %s, build unknown\ndocker-py version: 5.0.3\n"
                  "CPython version: 3.11.2\nOpenSSL version: OpenSSL 3.0.11  19 Sep 2023"
                  % node.cfg["compose_version"])
        return 0
    if cmd not in ("up", "down"):
        sys.stderr.write("%s: docker-compose %s is not simulated\n" % (FS, cmd))
        return 1
    if len(files) > 1:
        sys.stderr.write("%s: several -f files are not simulated\n" % FS)
        return 1
    path = files[0] if files else _find_compose_file()
    if path is None:
        sys.stderr.write("ERROR: \n        Can't find a suitable configuration file in this "
                         "directory or any\n        parent directory.\n\n        Are you in "
                         "the right directory?\n\n        Supported filenames: "
                         "docker-compose.yml, docker-compose.yaml, compose.yml, compose.yaml\n")
        return 1
    import standin_compose as sc

    try:
        project = sc.load_project(os.path.abspath(path))
    except sc.ComposeError as e:
        sys.stderr.write("ERROR: %s\n" % e)
        return 1
    if project_name:
        project["name"] = project_name
    for w in project["warnings"]:
        sys.stderr.write("WARNING: %s\n" % w)
    if cmd == "up":
        if not ("-d" in cargs or "--detach" in cargs):
            sys.stderr.write("%s: docker-compose up without -d (attached) is not simulated\n"
                             % FS)
            return 1
        return compose_up(node, project, os.path.abspath(path))
    return compose_down(node, project)


def _find_compose_file():
    d = os.getcwd()
    while True:
        for name in ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"):
            p = os.path.join(d, name)
            if os.path.exists(p):
                return p
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _orphans(st, project):
    names = set()
    import standin_compose as sc

    for svc in project["services"]:
        names.add(sc.container_spec(project, svc)["name"])
    return sorted(n for n, c in st.containers.items()
                  if c.get("project") == project["name"] and n not in names)


def compose_up(node, project, path):
    import standin_compose as sc

    st = State(node)
    try:
        orphans = _orphans(st, project)
        if orphans:
            sys.stderr.write("WARNING: Found orphan containers (%s) for this project. If you "
                             "removed or renamed this service in your compose file, you can "
                             "run this command with the --remove-orphans flag to clean it up.\n"
                             % ", ".join(orphans))
        changed = set()
        for svc in project["order"]:
            spec = sc.container_spec(project, svc)
            cur = st.containers.get(spec["name"])
            deps = project["services"][svc].get("depends_on") or []
            dep_changed = any(d in changed for d in deps)
            if cur and cur["hash"] == spec["hash"] and not dep_changed:
                srv = http.sim_server(node) if cur["kind"] == "agent" else None
                running = container_status(node, cur, srv)[0]
                if running:
                    sys.stderr.write("%s is up-to-date\n" % spec["name"])
                    continue
                action = "Starting"
            else:
                action = "Recreating" if cur else "Creating"
            if action == "Starting" and cur["kind"] == "agent":
                # the same container again: its log goes on
                http.control(node, "POST", "/sim/servers/%s/start" % node.ip)
                cur["started"] = now_ms()
                changed.add(svc)
                sys.stderr.write("%s %s ... done\n" % (action, spec["name"]))
                continue
            if cur:
                _stop(node, st, cur)
                _remove(st, spec["name"])
            err = _create(node, st, project, path, spec, adopt=cur is None)
            if err:
                sys.stderr.write("%s %s ... error\n\nERROR: for %s  %s\nERROR: %s\n"
                                 % (action, spec["name"], spec["name"], err, err))
                st.save()
                return 1
            changed.add(svc)
            sys.stderr.write("%s %s ... done\n" % (action, spec["name"]))
        st.save()
    finally:
        st.close()
    return 0


def compose_down(node, project):
    import standin_compose as sc

    st = State(node)
    try:
        names = []
        for svc in reversed(project["order"]):
            name = sc.container_spec(project, svc)["name"]
            if name in st.containers:
                names.append(name)
        orphans = _orphans(st, project)
        if orphans:
            sys.stderr.write("WARNING: Found orphan containers (%s) for this project. If you "
                             "removed or renamed this service in your compose file, you can "
                             "run this command with the --remove-orphans flag to clean it up.\n"
                             % ", ".join(orphans))
        width = max((len(n) for n in names), default=0)
        for n in names:
            if container_status(node, st.containers[n],
                                http.sim_server(node) if st.containers[n]["kind"] == "agent"
                                else None)[0]:
                sys.stderr.write("Stopping %s ... done\n" % n.ljust(width))
            _stop(node, st, st.containers[n])
        for n in names:
            sys.stderr.write("Removing %s ... done\n" % n.ljust(width))
            _remove(st, n)
        st.save()
    finally:
        st.close()
    return 0


def _stop(node, st, c):
    if c["kind"] == "agent":
        srv = http.sim_server(node)
        if srv and (srv.get("running") or srv.get("restart_pending")):
            http.control(node, "POST", "/sim/servers/%s/stop" % node.ip)


def _remove(st, name):
    c = st.containers.pop(name)
    shutil.rmtree(os.path.join(st.dir, "fs", c["id"]), ignore_errors=True)


def _data_dir(node, st, project, spec, cid, target):
    """The host directory mounted at target inside the container (the node's root stands
    for /), or the container's own file system when nothing is mounted there."""
    best = None
    for src, tgt in spec["volumes"]:
        tgt = tgt.rstrip("/") or "/"
        if target == tgt or target.startswith(tgt + "/"):
            if best is None or len(tgt) > len(best[1]):
                best = (src, tgt)
    if best is None or not best[0]:
        return os.path.join(st.dir, "fs", cid, target.lstrip("/"))
    src, tgt = best
    sub = target[len(tgt):].lstrip("/")
    if src.startswith("/"):
        host = node.path(src)
    elif src.startswith("."):
        host = os.path.normpath(os.path.join(project["dir"], src))
    else:  # a named volume
        host = node.path("/var/lib/docker/volumes/%s_%s/_data" % (project["name"], src))
    return os.path.join(host, sub) if sub else host


def _read_marker(data):
    """The raft state a previous server left in its data dir: (cluster id, peers), or None
    when the data dir has none."""
    p = os.path.join(data, "raft", "raft.db")
    if not os.path.exists(p):
        return None
    try:
        with open(p, encoding="utf-8") as f:
            m = json.load(f)
        return str(m.get("cluster_id", "unknown")), [str(x) for x in m.get("peers", [])]
    except (OSError, ValueError):
        return "unknown", []


def _write_marker(node, data, plan, node_id):
    os.makedirs(os.path.join(data, "raft"), exist_ok=True)
    os.makedirs(os.path.join(data, "serf"), exist_ok=True)
    p = os.path.join(data, "raft", "raft.db")
    if not os.path.exists(p):
        with open(p, "w", encoding="utf-8") as f:
            json.dump({"fake": "raft state written by the consul stand-in",
                       "cluster_id": node.cfg.get("cluster_id", ""),
                       "peers": plan["retry_join"], "node": plan["name"]}, f)
            f.write("\n")
    for name, text in (("node-id", node_id), ("serf/local.snapshot", "alive: %s %s:8301\n"
                                              % (plan["name"], node.ip))):
        q = os.path.join(data, name)
        if not os.path.exists(q):
            with open(q, "w", encoding="utf-8") as f:
                f.write(text)


def _create(node, st, project, path, spec, adopt):
    """Creates and starts one container; returns None or an error text for docker-compose."""
    import standin_compose as sc

    cid = secrets.token_hex(32)
    c = {"id": cid, "name": spec["name"], "service": spec["service"],
         "project": project["name"], "compose_file": path, "image": spec["image"],
         "hash": spec["hash"], "restart": spec["restart"], "created": now_ms(),
         "started": now_ms(), "command": " ".join((spec["entrypoint"] or
                                                   ["docker-entrypoint.sh"]) +
                                                  (spec["command"] or []))}
    plan = sc.agent_plan(node, spec) if spec["service"] == "consul" or \
        sc.is_consul_image(spec["image"]) else {"kind": "other"}
    c["kind"] = plan["kind"]
    srv = http.sim_server(node)
    if plan["kind"] == "crash":
        if srv and srv.get("running"):
            http.control(node, "POST", "/sim/servers/%s/stop" % node.ip)
        c["exit"] = plan["exit"]
        c["lines"] = plan["lines"]
        st.containers[spec["name"]] = c
        return None
    if plan["kind"] == "other":
        st.containers[spec["name"]] = c
        return None
    data = _data_dir(node, st, project, spec, cid, plan["data_dir"] or "/consul/data")
    os.makedirs(data, exist_ok=True)
    marker = _read_marker(data)
    node_id = plan["node_id"]
    if not node_id:
        try:
            with open(os.path.join(data, "node-id"), encoding="utf-8") as f:
                node_id = f.read().strip()
        except OSError:
            node_id = srv["node_id"] if srv else str(uuid.uuid4())
    cfg = {"retry_join": plan["retry_join"], "restart": spec["restart"], "name": plan["name"],
           "data_cluster": marker[0] if marker else "", "old_peers": marker[1] if marker else [],
           "serf_snapshot": os.path.exists(os.path.join(data, "serf", "local.snapshot"))}
    cfg["old_peers"] = [p for p in cfg["old_peers"] if re.match(r"^\d+\.\d+\.\d+\.\d+$", p)]
    if srv is None:
        body = dict(cfg, ip=node.ip)
        if re.match(r"^[0-9a-fA-F-]{36}$", node_id):
            body["node_id"] = node_id
        code, j = http.control(node, "POST", "/sim/servers", body)
        if code != 201:
            return "%s: the simulator refused the server: %s" % (FS, (j or {}).get("error"))
        log_base = 0
    else:
        same = srv.get("running") and srv.get("retry_join") == cfg["retry_join"] and \
            srv.get("name") == cfg["name"] and \
            srv.get("data_cluster") in ("", cfg["data_cluster"]) and \
            cfg["data_cluster"] in ("", node.cfg.get("cluster_id"))
        log_base = srv.get("log_lines", 0)
        if adopt and same:
            log_base = 0  # the server the harness started with: this container ran it
        elif srv.get("running") or srv.get("restart_pending"):
            http.control(node, "POST", "/sim/servers/%s/stop" % node.ip)
        code, j = http.control(node, "POST", "/sim/servers/%s/config" % node.ip, cfg)
        if code != 200:
            return "%s: %s" % (FS, (j or {}).get("error"))
        if not (adopt and same):
            log_base = http.sim_server(node).get("log_lines", log_base)
            http.control(node, "POST", "/sim/servers/%s/start" % node.ip)
    _write_marker(node, data, plan, node_id)
    if not cfg["serf_snapshot"]:
        # The running agent has written its serf snapshot now: a later start of this server
        # (a restart, or the simulator's control API) finds it and rejoins, as Consul does.
        http.control(node, "POST", "/sim/servers/%s/config" % node.ip, {"serf_snapshot": True})
    c.update({"sim_ip": node.ip, "log_base": log_base, "client": plan["client"],
              "version": list(plan["version"]) if plan["version"] else None,
              "data_dir": data})
    st.containers[spec["name"]] = c
    return None


# ---- docker ----

def docker(node, args):
    if not args:
        sys.stderr.write("Usage:  docker [OPTIONS] COMMAND\n")
        return 1
    cmd, rest = args[0], args[1:]
    if cmd in ("-v", "--version"):
        print("Docker version %s, build 297e128" % node.cfg["docker_version"])
        return 0
    if cmd == "version":
        return docker_version(node, rest)
    if cmd == "ps":
        return docker_ps(node, rest)
    if cmd == "logs":
        return docker_logs(node, rest)
    if cmd == "exec":
        return docker_exec(node, rest)
    known = {"attach", "build", "commit", "cp", "create", "diff", "events", "export", "history",
             "images", "import", "info", "inspect", "kill", "load", "login", "logout", "pause",
             "port", "pull", "push", "rename", "restart", "rm", "rmi", "run", "save", "search",
             "start", "stats", "stop", "tag", "top", "unpause", "update", "wait", "compose",
             "container", "image", "network", "system", "volume"}
    if cmd in known:
        sys.stderr.write("%s: `docker %s` is not simulated (consulate does not use it)\n"
                         % (FS, cmd))
        return 125
    sys.stderr.write("docker: '%s' is not a docker command.\nSee 'docker --help'\n" % cmd)
    return 1


def _format_opt(args, names):
    """Pops an option with a value (`--format X`, `--format=X`) from args; returns the values."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        hit = None
        for n in names:
            if a == n and i + 1 < len(args):
                hit = args[i + 1]
                del args[i:i + 2]
                break
            if a.startswith(n + "="):
                hit = a[len(n) + 1:]
                del args[i]
                break
        if hit is None:
            i += 1
        else:
            out.append(hit)
    return out


def _template(fmt, fields):
    """A Go template of {{.Field}} references, as docker's --format takes it."""
    def sub(m):
        key = m.group(1)
        if key not in fields:
            raise KeyError(key)
        return str(fields[key])

    return re.sub(r"\{\{\s*\.([A-Za-z.]+)\s*\}\}", sub, fmt.replace("\\t", "\t"))


def docker_version(node, args):
    fmt = _format_opt(args, ["--format", "-f"])
    v = node.cfg["docker_version"]
    fields = {"Server.Version": v, "Client.Version": v, "Server.APIVersion": "1.41",
              "Client.APIVersion": "1.41"}
    if fmt:
        try:
            print(_template(fmt[-1], fields))
        except KeyError as e:
            sys.stderr.write('template: :1:%d: executing "" at <.%s>: can\'t evaluate field\n'
                             % (3, e.args[0]))
            return 1
        return 0
    print("Client:\n Version:           %s\n API version:       1.41\n\nServer:\n Engine:\n"
          "  Version:          %s\n  API version:      1.41 (minimum version 1.12)" % (v, v))
    return 0


def docker_ps(node, args):
    args = list(args)
    fmt = _format_opt(args, ["--format"])
    filters = _format_opt(args, ["--filter", "-f"])
    show_all = quiet = False
    for a in args:
        if a in ("-a", "--all"):
            show_all = True
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a in ("--no-trunc",):
            pass
        elif a in ("-aq", "-qa"):
            show_all = quiet = True
        else:
            sys.stderr.write("unknown flag: %s\nSee 'docker ps --help'.\n" % a)
            return 125
    st = State(node)
    try:
        containers = dict(st.containers)
    finally:
        st.close()
    srv = None
    if any(c["kind"] == "agent" for c in containers.values()):
        srv = http.sim_server(node)
    rows = []
    for name, c in sorted(containers.items(), key=lambda kv: -kv[1]["created"]):
        running, status, _ = container_status(node, c, srv)
        if not running and not show_all:
            continue
        ok = True
        for f in filters:
            k, _, v = f.partition("=")
            if k == "name":
                ok = ok and re.search(v, name) is not None
            elif k == "status":
                state = status.split()[0].lower()
                state = {"up": "running", "restarting": "restarting", "exited": "exited"}.get(
                    state, state)
                ok = ok and state == v
            elif k == "id":
                ok = ok and c["id"].startswith(v)
            else:
                sys.stderr.write('Error response from daemon: invalid filter \'%s\'\n' % k)
                return 1
        if ok:
            rows.append((name, c, status))
    if quiet:
        for name, c, _ in rows:
            print(c["id"][:12])
        return 0
    if fmt:
        for name, c, status in rows:
            fields = {"Names": name, "Status": status, "ID": c["id"][:12], "Image": c["image"],
                      "Command": '"%s"' % c["command"][:20], "State": status.split()[0].lower(),
                      "CreatedAt": ts(c["created"]), "Ports": "",
                      "RunningFor": human_duration(now_ms() - c["created"]) + " ago"}
            try:
                print(_template(fmt[-1], fields))
            except KeyError as e:
                sys.stderr.write('template: :1: executing "" at <.%s>: can\'t evaluate field %s '
                                 'in type *formatter.ContainerContext\n' % (e.args[0], e.args[0]))
                return 1
        return 0
    table = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for name, c, status in rows:
        cmd = c["command"]
        cmd = '"%s…"' % cmd[:19] if len(cmd) > 20 else '"%s"' % cmd
        table.append([c["id"][:12], c["image"], cmd,
                      human_duration(now_ms() - c["created"]) + " ago", status, "", name])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
    return 0


def _container(node, name):
    st = State(node)
    try:
        return st.containers.get(name)
    finally:
        st.close()


def docker_logs(node, args):
    args = list(args)
    tails = _format_opt(args, ["--tail", "-n"])
    names = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    for f in flags:
        if f not in ("-t", "--timestamps", "-f", "--follow"):
            sys.stderr.write("unknown flag: %s\nSee 'docker logs --help'.\n" % f)
            return 125
    if len(names) != 1:
        sys.stderr.write('"docker logs" requires exactly 1 argument.\nSee \'docker logs '
                         '--help\'.\n\nUsage:  docker logs [OPTIONS] CONTAINER\n\nFetch the logs '
                         'of a container\n')
        return 1
    c = _container(node, names[0])
    if c is None:
        sys.stderr.write("Error: No such container: %s\n" % names[0])
        return 1
    lines = container_log(node, c)
    tail = tails[-1] if tails else "all"
    if tail != "all":
        try:
            n = int(tail)
        except ValueError:
            n = -1
        if n >= 0:
            lines = lines[-n:] if n else []
    for l in lines:
        sys.stdout.write(l + "\n")
    return 0


def container_log(node, c):
    if c["kind"] == "agent":
        code, j = http.control(node, "GET", "/sim/servers/%s/log?since=%d"
                               % (c["sim_ip"], c.get("log_base", 0)))
        return (j or {}).get("lines", []) if code == 200 else []
    if c["kind"] == "crash":
        out = []
        attempts = restart_schedule(c["created"], now_ms())
        if c.get("restart", "no") == "no":
            attempts = attempts[:1]
        for t in attempts:
            for l in c["lines"]:
                out.append("%s %s" % (ts(t), l) if l.startswith("[") else l)
        return out
    return []


def docker_exec(node, args):
    args = list(args)
    tty = False
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a in ("-u", "--user", "-e", "--env", "-w", "--workdir") and args:
            args.pop(0)
        elif a in ("-i", "--interactive", "-d", "--detach"):
            continue
        elif a in ("-t", "--tty", "-it", "-ti"):
            tty = True
        elif re.match(r"^--(user|env|workdir)=", a):
            continue
        else:
            sys.stderr.write("unknown flag: %s\nSee 'docker exec --help'.\n" % a)
            return 125
    if len(args) < 2:
        sys.stderr.write('"docker exec" requires at least 2 arguments.\nSee \'docker exec '
                         '--help\'.\n')
        return 1
    if tty and not sys.stdin.isatty():
        sys.stderr.write("the input device is not a TTY\n")
        return 1
    name, cmd = args[0], args[1:]
    c = _container(node, name)
    if c is None:
        sys.stderr.write("Error: No such container: %s\n" % name)
        return 1
    srv = http.sim_server(node) if c["kind"] == "agent" else None
    running, status, _ = container_status(node, c, srv)
    if status.startswith("Restarting"):
        sys.stderr.write("Error response from daemon: Container %s is restarting, wait until "
                         "the container is running\n" % c["id"])
        return 1
    if not running:
        sys.stderr.write("Error response from daemon: Container %s is not running\n" % c["id"])
        return 1
    if c["kind"] != "agent" or os.path.basename(cmd[0]) != "consul":
        sys.stderr.write('OCI runtime exec failed: exec failed: container_linux.go:380: '
                         'starting container process caused: exec: "%s": executable file not '
                         'found in $PATH: unknown\n' % cmd[0] if c["kind"] != "agent" else
                         "%s: `%s` inside the consul container is not simulated\n"
                         % (FS, " ".join(cmd)))
        return 126
    import standin_consul

    return standin_consul.run(node, srv, c, cmd[1:])


def run(node, tool, args):
    try:
        if tool == "docker-compose":
            return compose(node, args)
        return docker(node, args)
    except http.HTTPError as e:
        # the daemon's own view of the simulator failed: say so plainly
        sys.stderr.write("%s: the simulator did not answer: %s\n" % (FS, e))
        return 1
