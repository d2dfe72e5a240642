"""The `consul` CLI inside the consul container (`docker exec consul consul ...`): it talks to
the node's own agent over HTTP, as the real CLI does (CONSUL_HTTP_ADDR 127.0.0.1:8500 inside a
host-network container), and prints what Consul prints."""

import json
import sys

import standin_http as http

STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


def columnize(rows):
    """ryanuber/columnize as Consul's CLI uses it: columns padded to their widest cell and
    joined by two spaces, the last one unpadded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


class Agent:
    def __init__(self, node, server, container):
        self.node = node
        self.base = server["http"] if server else "http://%s:8500" % node.ip
        # what the CLI inside the container dials: 127.0.0.1:8500
        self.shown = "http://127.0.0.1:8500"
        self.reachable = any(c in ("0.0.0.0", "127.0.0.1", "::", "[::]")
                             for c in container.get("client", ["127.0.0.1"]))
        self.token = node.cfg.get("token")

    def call(self, method, path):
        """(status, body) or raises http.HTTPError with the CLI's wording."""
        if not self.reachable:
            raise http.HTTPError('%s "%s%s": dial tcp 127.0.0.1:8500: connect: connection '
                                 'refused' % (_verb(method), self.shown, path.split("?")[0]))
        hdr = {"X-Consul-Token": self.token} if self.token else None
        try:
            return http.request(method, self.base + path, None if method == "GET" else "",
                                hdr)
        except http.HTTPError:
            raise http.HTTPError('%s "%s%s": dial tcp 127.0.0.1:8500: connect: connection '
                                 'refused' % (_verb(method), self.shown, path.split("?")[0]))


def _verb(method):
    return {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "POST": "Post"}.get(method, method)


def _unexpected(st, body):
    return "Unexpected response code: %d (%s)" % (st, body.strip())


def run(node, server, container, args):
    """consul <args> in the container; returns the exit status."""
    agent = Agent(node, server, container)
    if not args:
        sys.stderr.write("Usage: consul [--version] [--help] <command> [<args>]\n")
        return 1
    cmd = args[0]
    try:
        if cmd == "leave":
            return leave(agent)
        if cmd == "members":
            return members(agent, args[1:])
        if cmd == "force-leave":
            return force_leave(agent, args[1:])
        if cmd == "version":
            v = container.get("version") or [1, 17, 3]
            print("Consul v%s\nRevision 98e3a2e1\nBuild Date 2024-02-20T18:04:34Z\nProtocol 2 "
                  "spoken by default, understands 2 to 3 (agent will automatically use "
                  "protocol >2 when speaking to compatible agents)" % ".".join(map(str, v)))
            return 0
        if cmd == "operator" and args[1:2] == ["raft"]:
            sub = args[2:3]
            if sub == ["list-peers"]:
                return list_peers(agent)
            if sub == ["remove-peer"]:
                return remove_peer(agent, args[3:])
    except http.HTTPError as e:
        return _fail(cmd, args, str(e))
    sys.stderr.write("fake consul: `consul %s` is not simulated\n" % " ".join(args))
    return 1


def _fail(cmd, args, err):
    what = {"leave": "Error leaving: %s", "members": "Error retrieving members: %s",
            "force-leave": "Error force leaving: %s"}.get(cmd)
    if cmd == "operator" and args[2:3] == ["list-peers"]:
        what = "Error getting peers: Failed to retrieve raft configuration: %s"
    elif cmd == "operator":
        what = "Error removing peer: %s"
    sys.stderr.write((what or "Error: %s") % err + "\n")
    return 1


def leave(agent):
    st, body = agent.call("PUT", "/v1/agent/leave")
    if st != 200:
        sys.stderr.write("Error leaving: %s\n" % _unexpected(st, body))
        return 1
    print("Graceful leave complete")
    return 0


def members(agent, args):
    wan = "-wan" in args
    st, body = agent.call("GET", "/v1/agent/members" + ("?wan=1" if wan else ""))
    if st != 200:
        sys.stderr.write("Error retrieving members: %s\n" % _unexpected(st, body))
        return 1
    ms = sorted(json.loads(body), key=lambda m: m["Name"])
    rows = [["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition",
             "Segment"]]
    for m in ms:
        tags = m.get("Tags") or {}
        server = tags.get("role") == "consul"
        rows.append([m["Name"], "%s:%d" % (m["Addr"], m["Port"]),
                     STATUS.get(m["Status"], "unknown"), "server" if server else "client",
                     tags.get("build", "").split(":")[0], tags.get("vsn", ""),
                     tags.get("dc", ""), "default", "<all>" if server else "<default>"])
    print(columnize(rows))
    return 0


def list_peers(agent):
    st, body = agent.call("GET", "/v1/operator/raft/configuration")
    if st != 200:
        sys.stderr.write("Error getting peers: Failed to retrieve raft configuration: %s\n"
                         % _unexpected(st, body))
        return 1
    cfg = json.loads(body)
    rows = [["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]]
    for s in cfg.get("Servers") or []:
        rows.append([s["Node"], s["ID"], s["Address"], "leader" if s["Leader"] else "follower",
                     "true" if s["Voter"] else "false", s.get("ProtocolVersion") or "<=1"])
    print(columnize(rows))
    return 0


def force_leave(agent, args):
    prune = False
    rest = []
    for a in args:
        if a in ("-prune", "--prune", "-prune=true"):
            prune = True
        else:
            rest.append(a)
    if len(rest) != 1:
        sys.stderr.write("A single node name must be specified to force leave.\n")
        return 1
    st, body = agent.call("PUT", "/v1/agent/force-leave/%s%s" % (http.q(rest[0]),
                                                                 "?prune=1" if prune else ""))
    if st != 200:
        sys.stderr.write("Error force leaving: %s\n" % _unexpected(st, body))
        return 1
    return 0


def remove_peer(agent, args):
    address = peer_id = ""
    rest = list(args)
    while rest:
        a = rest.pop(0)
        name, eq, val = a.lstrip("-").partition("=")
        if name in ("address", "id"):
            if not eq:
                if not rest:
                    sys.stderr.write("flag needs an argument: -%s\n" % name)
                    return 1
                val = rest.pop(0)
            if name == "address":
                address = val
            else:
                peer_id = val
        else:
            sys.stderr.write("flag provided but not defined: %s\n" % a)
            return 1
    if bool(address) == bool(peer_id):
        sys.stderr.write("Error removing peer: Must specify either -id or -address, but not "
                         "both\n" if address else "Error removing peer: Missing peer address "
                         "or id\n")
        return 1
    q = "address=" + http.q(address) if address else "id=" + http.q(peer_id)
    st, body = agent.call("DELETE", "/v1/operator/raft/peer?" + q)
    if st != 200:
        sys.stderr.write("Error removing peer: %s\n" % _unexpected(st, body))
        return 1
    print('Removed peer with %s "%s"' % (("address", address) if address else ("id", peer_id)))
    return 0
