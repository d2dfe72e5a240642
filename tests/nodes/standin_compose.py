"""How a docker-compose.yaml becomes a running Consul agent, read the way the real tools do,
independently of consulate's own reader (server/compose*.c):

1. docker-compose 1.x: the YAML (PyYAML's safe_load, as docker-compose itself), its schema
   checks, `$VAR`/`${VAR...}` interpolation with `$$` for a literal `$`, the container's name,
   restart policy, volumes and environment; a string command is split with shlex.split
   (docker-py's split_command).
2. The consul image's docker-entrypoint.sh: `agent ...` becomes
   `consul agent -data-dir=/consul/data -config-dir=/consul/config ...`.
3. Consul's flag parsing, Go's flag package: flags stop at the first argument that is not a
   flag (or after `--`), `-name=value` or `-name value`, boolean flags take no separate
   value, unknown flags and bad values are errors; arguments left over are an error
   ("Unexpected extra arguments", Consul >= 1.10; "config: Unknown extra arguments" before).
4. What the agent then does on this node: the bind address must be one of the node's own,
   the node name is -node or the hostname, the data dir is the volume mounted at -data-dir.
"""

import hashlib
import json
import os
import re
import shlex
import sys


class ComposeError(Exception):
    """docker-compose refuses the file; str() is the text after "ERROR: "."""


def _yaml():
    try:
        import yaml
    except ImportError:  # python3 -S: no site directories
        sys.path.append("/usr/lib/python3/dist-packages")
        import yaml
    return yaml


def load_yaml(path):
    """compose/config/config.py load_yaml: the same loader and error texts."""
    yaml = _yaml()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for encoding in (None, "utf-8-sig"):
        try:
            if encoding is None:
                with open(path, "rb") as fh:
                    return yaml.load(fh, Loader=loader)
            with open(path, "r", encoding=encoding) as fh:
                return yaml.load(fh, Loader=loader)
        except (IOError, yaml.YAMLError, UnicodeDecodeError) as e:
            if encoding is None:
                continue
            name = getattr(e, "__module__", "") + "." + e.__class__.__name__
            raise ComposeError("%s: %s" % (name, e))
    return None


# ---- interpolation (compose/config/interpolation.py) ----

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|\{(?P<braced>[^}]*)\}|"
                  r"(?P<invalid>))", re.I)
_BRACED = re.compile(r"^([_a-z][_a-z0-9]*)(?:(:?[-?])(.*))?$", re.I | re.S)


def read_env_file(project_dir):
    env = {}
    try:
        with open(os.path.join(project_dir, ".env"), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, _, v = line.partition("=")
                    env[k.strip()] = v
    except OSError:
        pass
    env.update(os.environ)
    return env


class Interpolator:
    def __init__(self, env, warnings):
        self.env = env
        self.warnings = warnings

    def value(self, s, where):
        def sub(m):
            if m.group("escaped"):
                return "$"
            if m.group("named"):
                return self.var(m.group("named"))
            if m.group("braced") is not None:
                b = _BRACED.match(m.group("braced"))
                if not b:
                    raise ComposeError(
                        'Invalid interpolation format for "%s" option in service "%s": "%s"'
                        % (where[1], where[0], s))
                name, op, arg = b.group(1), b.group(2), b.group(3)
                if op is None:
                    return self.var(name)
                val = self.env.get(name)
                empty = val is None or (op.startswith(":") and val == "")
                if op.endswith("-"):
                    return arg if empty else val
                if empty:
                    raise ComposeError("Missing mandatory value for \"%s\" option interpolating"
                                       " %s in service \"%s\": %s" % (where[1], s, where[0], arg))
                return val
            raise ComposeError('Invalid interpolation format for "%s" option in service "%s": '
                               '"%s"' % (where[1], where[0], s))

        return _VAR.sub(sub, s)

    def var(self, name):
        if name not in self.env:
            w = "The %s variable is not set. Defaulting to a blank string." % name
            if w not in self.warnings:
                self.warnings.append(w)
            return ""
        return self.env[name]

    def walk(self, v, where):
        if isinstance(v, str):
            return self.value(v, where)
        if isinstance(v, list):
            return [self.walk(x, where) for x in v]
        if isinstance(v, dict):
            return {k: self.walk(x, where) for k, x in v.items()}
        return v


def project_name(project_dir):
    return re.sub(r"[^-_a-z0-9]", "", os.path.basename(os.path.abspath(project_dir)).lower())


def load_project(path):
    """Reads and checks the compose file: {"name", "dir", "services": {name: config},
    "order": [names], "warnings": [...]}. Raises ComposeError."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ComposeError("Top level object in '%s' needs to be an object not '%s'."
                           % (path, type(data)))
    invalid = "The Compose file '%s' is invalid because:\n" % path
    services = data.get("services")
    if not isinstance(services, dict):
        raise ComposeError(invalid + "services must be a mapping")
    pdir = os.path.dirname(os.path.abspath(path))
    warnings = []
    interp = Interpolator(read_env_file(pdir), warnings)
    out = {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            raise ComposeError(invalid + "services.%s must be a mapping" % name)
        svc = {k: interp.walk(v, (name, k)) for k, v in svc.items()}
        for key in ("command", "entrypoint"):
            v = svc.get(key)
            if v is None:
                continue
            if isinstance(v, list):
                for item in v:
                    if not isinstance(item, str):
                        raise ComposeError(invalid + "services.%s.%s contains %s, which is an "
                                           "invalid type, it should be a string"
                                           % (name, key, json.dumps(item)))
            elif not isinstance(v, str):
                raise ComposeError(invalid + "services.%s.%s contains an invalid type, it "
                                   "should be a string, or an array" % (name, key))
        for key in ("restart", "container_name", "image", "network_mode"):
            if key in svc and not isinstance(svc[key], str):
                raise ComposeError(invalid + "services.%s.%s contains an invalid type, it "
                                   "should be a string" % (name, key))
        if "restart" in svc and not re.match(r"^(no|always|unless-stopped|on-failure(:\d+)?)$",
                                             svc["restart"]):
            raise ComposeError("Restart policy \"%s\" is invalid" % svc["restart"])
        out[name] = svc
    order = _dependency_order(out)
    return {"name": project_name(pdir), "dir": pdir, "services": out, "order": order,
            "warnings": warnings}


def _dependency_order(services):
    order = []

    def visit(n, seen):
        if n in order or n in seen:
            return
        seen.add(n)
        deps = services[n].get("depends_on") or []
        for d in (deps if isinstance(deps, list) else list(deps)):
            if d in services:
                visit(d, seen)
        order.append(n)

    for n in services:
        visit(n, set())
    return order


def split_command(v):
    if v is None:
        return None
    return shlex.split(v) if isinstance(v, str) else list(v)


def container_spec(project, service):
    """What `up` would create for one service."""
    svc = project["services"][service]
    name = svc.get("container_name") or "%s_%s_1" % (project["name"], service)
    env = {}
    e = svc.get("environment") or {}
    if isinstance(e, dict):
        env = {k: "" if v is None else str(v) for k, v in e.items()}
    else:
        for item in e:
            k, _, v = str(item).partition("=")
            env[k] = v
    volumes = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            src, tgt = v.get("source", ""), v.get("target", "")
        else:
            parts = str(v).split(":")
            src, tgt = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        volumes.append([src, tgt])
    config_hash = hashlib.sha256(json.dumps(svc, sort_keys=True, default=str).encode())
    return {
        "service": service,
        "name": name,
        "image": svc.get("image", ""),
        "entrypoint": split_command(svc.get("entrypoint")),
        "command": split_command(svc.get("command")),
        "env": env,
        "volumes": volumes,
        "restart": svc.get("restart", "no").split(":")[0],
        "network_mode": svc.get("network_mode", ""),
        "hash": config_hash.hexdigest(),
    }


# ---- the consul image and the agent's flags ----

BOOL_FLAGS = {"auto-reload-config", "bootstrap", "dev", "disable-host-node-id",
              "disable-keyring-file", "enable-local-script-checks", "enable-script-checks",
              "log-json", "non-voting-server", "read-replica", "rejoin", "server", "syslog", "ui"}
INT_FLAGS = {"bootstrap-expect", "check_output_max_size", "dns-port", "grpc-port",
             "grpc-tls-port", "http-port", "https-port", "log-rotate-bytes",
             "log-rotate-max-files", "protocol", "raft-protocol", "retry-max", "retry-max-wan",
             "serf-lan-port", "serf-wan-port", "server-port"}
DURATION_FLAGS = {"default-query-time", "log-rotate-duration", "max-query-time",
                  "retry-interval", "retry-interval-wan"}
LIST_FLAGS = {"allow-write-http-from", "config-dir", "config-file", "hcl", "join", "join-wan",
              "primary-gateway", "recursor", "retry-join", "retry-join-wan",
              "serf-lan-allowed-cidrs", "serf-wan-allowed-cidrs", "node-meta"}
STRING_FLAGS = {"advertise", "advertise-wan", "alt-domain", "bind", "client", "config-format",
                "data-dir", "datacenter", "domain", "encrypt", "log-file", "log-level", "node",
                "node-id", "pid-file", "segment", "serf-lan-bind", "serf-wan-bind",
                "ui-content-path", "ui-dir"}
CONSUL_SUBCOMMANDS = {"acl", "agent", "catalog", "config", "connect", "debug", "event", "exec",
                      "force-leave", "info", "intention", "join", "keygen", "keyring", "kv",
                      "leave", "lock", "login", "logout", "maint", "members", "monitor",
                      "operator", "reload", "rtt", "services", "snapshot", "tls", "validate",
                      "version", "watch"}


class FlagError(Exception):
    pass


def _parse_bool(s):
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError('strconv.ParseBool: parsing "%s": invalid syntax' % s)


_DUR = re.compile(r"^([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")


def _parse_duration(s):
    orig, rest = s, s.lstrip("+-")
    if rest in ("0",):
        return
    if not rest:
        raise ValueError('time: invalid duration "%s"' % orig)
    while rest:
        m = _DUR.match(rest)
        if not m or m.group(1) in ("", "."):
            raise ValueError('time: invalid duration "%s"' % orig)
        rest = rest[m.end():]


def go_flags(args):
    """flag.FlagSet.Parse over Consul's agent flags: (values, leftover args). Raises
    FlagError with Go's message."""
    vals = {}
    args = list(args)
    while args:
        s = args[0]
        if len(s) < 2 or s[0] != "-":
            break
        minuses = 1
        if s[1] == "-":
            minuses = 2
            if len(s) == 2:
                args.pop(0)
                break
        name = s[minuses:]
        if not name or name[0] in "-=":
            raise FlagError("bad flag syntax: %s" % s)
        args.pop(0)
        has_value, value = False, ""
        if "=" in name[1:]:
            i = name.index("=", 1)
            name, value, has_value = name[:i], name[i + 1:], True
        if name in BOOL_FLAGS:
            if has_value:
                try:
                    vals[name] = _parse_bool(value)
                except ValueError as e:
                    raise FlagError('invalid boolean value "%s" for -%s: %s' % (value, name, e))
            else:
                vals[name] = True
            continue
        known = name in INT_FLAGS or name in DURATION_FLAGS or name in LIST_FLAGS or \
            name in STRING_FLAGS
        if not known:
            if name in ("help", "h"):
                raise FlagError("flag: help requested")
            raise FlagError("flag provided but not defined: -%s" % name)
        if not has_value and args:
            value, has_value = args.pop(0), True
        if not has_value:
            raise FlagError("flag needs an argument: -%s" % name)
        try:
            if name in INT_FLAGS:
                try:
                    int(value, 10)
                except ValueError:
                    raise ValueError('strconv.Atoi: parsing "%s": invalid syntax' % value)
            elif name in DURATION_FLAGS:
                _parse_duration(value)
        except ValueError as e:
            raise FlagError('invalid value "%s" for flag -%s: %s' % (value, name, e))
        if name in LIST_FLAGS:
            vals.setdefault(name, []).append(value)
        else:
            vals[name] = value
    return vals, args


def image_version(image):
    """(major, minor, patch) of a consul image tag; None for latest or no tag."""
    m = re.search(r":v?(\d+)\.(\d+)(?:\.(\d+))?", image or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def is_consul_image(image):
    return re.match(r"^([\w.-]+/)*(hashicorp/)?consul(:|@|$)", image or "") is not None


def _go_list(items):
    return "[" + " ".join(items) + "]"


def _resolve_template(addr, node):
    """go-sockaddr templates and the ANY address resolve to the node's own address."""
    if "{{" in addr or addr in ("0.0.0.0", "", "[::]", "::"):
        return node.ip
    return addr


def agent_plan(node, spec):
    """What the consul container does on this node when it starts: a dict with
    "kind": "agent" (a server the simulator runs: name, bind, retry_join, data_dir, node_id,
    client, version), "crash" (the process exits at once: "lines" it prints, "exit"), or
    "other" (not a Consul image: runs, nothing simulated)."""
    image = spec["image"]
    if not is_consul_image(image):
        return {"kind": "other"}
    version = image_version(image)
    if spec["entrypoint"]:
        args = list(spec["entrypoint"]) + list(spec["command"] or [])
        if args and os.path.basename(args[0]) == "docker-entrypoint.sh":
            args = args[1:]
        elif args and os.path.basename(args[0]) != "consul":
            return _crash(['exec: "%s": executable file not found in $PATH' % args[0]], 127)
    else:
        args = list(spec["command"]) if spec["command"] is not None else \
            ["agent", "-dev", "-client", "0.0.0.0"]
    # docker-entrypoint.sh
    env = spec["env"]
    if args and args[0].startswith("-"):
        args = ["consul"] + args
    if args and args[0] == "agent":
        pre = ["consul", "agent", "-data-dir=/consul/data", "-config-dir=/consul/config"]
        if env.get("CONSUL_BIND_INTERFACE"):
            pre.append("-bind=" + node.ip)
        if env.get("CONSUL_CLIENT_INTERFACE"):
            pre.append("-client=" + node.ip)
        args = pre + args[1:]
    elif args and (args[0] in CONSUL_SUBCOMMANDS):
        args = ["consul"] + args
    if not args or os.path.basename(args[0]) != "consul":
        return _crash(['exec: "%s": executable file not found in $PATH'
                       % (args[0] if args else "")], 127)
    if len(args) < 2 or args[1] != "agent":
        if len(args) > 1 and args[1].startswith("-"):
            return _crash(["Usage: consul [--version] [--help] <command> [<args>]"], 1)
        return _crash(["fake docker: the container runs `consul %s`, which is not simulated"
                       % " ".join(args[1:])], 1)
    try:
        flags, extra = go_flags(args[2:])
    except FlagError as e:
        if "help requested" in str(e):
            return _crash(["Usage: consul agent [options]"], 1)
        return _crash([str(e), "Usage of :", "==> error parsing flags: %s" % e], 1)
    if extra:
        if version and version < (1, 10, 0):
            return _crash(["==> config: Unknown extra arguments: %s" % _go_list(extra)], 1)
        return _crash(["==> Unexpected extra arguments: %s" % _go_list(extra)], 1)
    local = {}
    if env.get("CONSUL_LOCAL_CONFIG"):
        try:
            local = json.loads(env["CONSUL_LOCAL_CONFIG"])
        except ValueError as e:
            return _crash(['==> failed to parse /consul/config/local.json: %s' % e], 1)
    for unsupported in ("dev", "bootstrap"):
        if flags.get(unsupported):
            return _crash(["fake docker: consul agent -%s is not simulated" % unsupported], 1)
    if not flags.get("server") and not local.get("server"):
        return _crash(["fake docker: a client agent (no -server) is not simulated"], 1)
    bind = _resolve_template(flags.get("bind", local.get("bind_addr", "")), node)
    name = flags.get("node", local.get("node_name")) or node.hostname()
    lines = _banner(version, name, bind)
    if bind != node.ip:
        lines.append('[ERROR] agent: Error starting agent: error="Failed to start Consul '
                     'server: Failed to start RPC layer: listen tcp %s:8300: bind: cannot '
                     'assign requested address"' % bind)
        lines.append("[INFO]  agent: Exit code: code=1")
        return _crash(lines, 1, prefixed=True)
    advertise = _resolve_template(flags.get("advertise", local.get("advertise_addr", "")), node)
    joins = flags.get("retry-join", []) + flags.get("join", []) + \
        list(local.get("retry_join", [])) + list(local.get("start_join", []))
    retry_join = []
    for j in joins:
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$", j)
        if m and (m.group(2) in (None, "8301")):
            retry_join.append(m.group(1))
    client = flags.get("client", local.get("client_addr", "127.0.0.1")).split()
    data_dir = flags.get("data-dir", local.get("data_dir", ""))
    return {
        "kind": "agent",
        "name": name,
        "bind": bind,
        "advertise_ok": advertise == node.ip,
        "retry_join": retry_join if advertise == node.ip else [],
        "data_dir": data_dir,
        "node_id": flags.get("node-id", ""),
        "client": [_resolve_template(c, node) if "{{" in c else c for c in client],
        "version": version,
    }


def _crash(lines, code, prefixed=False):
    return {"kind": "crash", "lines": lines, "exit": code, "prefixed": prefixed}


def _banner(version, name, bind):
    v = ".".join(str(x) for x in version) if version else "1.17.3"
    return [
        "==> Starting Consul agent...",
        "           Version: '%s'" % v,
        "         Node name: '%s'" % name,
        "        Datacenter: 'dc1' (Segment: '<all>')",
        "            Server: true (Bootstrap: false)",
        "      Cluster Addr: %s (LAN: 8301, WAN: 8302)" % bind,
        "==> Log data will now stream in as it occurs:",
    ]
