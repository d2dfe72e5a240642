"""A small HTTP/1.1 client over a socket (the stand-ins start quickly without http.client):
the simulator's control API and the node's Consul agent."""

import json
import socket
from urllib.parse import quote, urlsplit


class HTTPError(Exception):
    """The connection failed; str() is what Go's net/http client would say."""


def request(method, url, body=None, headers=None, timeout=60.0):
    """Returns (status, body text). Raises HTTPError when no response came."""
    u = urlsplit(url)
    host = u.hostname
    port = u.port or 80
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else body.encode("utf-8")
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (host, port),
             "Connection: close", "User-Agent: Go-http-client/1.1"]
    if body is not None:
        lines.append("Content-Length: %d" % len(data))
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + data
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise HTTPError('%s "%s": dial tcp %s:%d: connect: connection refused'
                        % (method.capitalize() if method != "GET" else "Get", url, host, port))
    except OSError as e:
        raise HTTPError('%s "%s": dial tcp %s:%d: %s' % (method.capitalize(), url, host, port,
                                                         e.strerror or e))
    try:
        s.sendall(raw)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except OSError as e:
        raise HTTPError('%s "%s": %s' % (method.capitalize(), url, e.strerror or e))
    finally:
        s.close()
    resp = b"".join(chunks)
    head, _, payload = resp.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        raise HTTPError('%s "%s": EOF' % (method.capitalize(), url))
    status = int(head.split(b" ", 2)[1])
    hdrs = {}
    for l in head.split(b"\r\n")[1:]:
        k, _, v = l.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        payload = _unchunk(payload)
    return status, payload.decode("utf-8", "replace")


def _unchunk(b):
    out = []
    while b:
        size_line, _, rest = b.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        out.append(rest[:n])
        b = rest[n + 2:]
    return b"".join(out)


def control(node, method, path, obj=None):
    """A call to the simulator's control API: (status, parsed JSON or None)."""
    body = json.dumps(obj) if obj is not None else None
    st, text = request(method, node.control + path, body)
    try:
        return st, json.loads(text)
    except ValueError:
        return st, None


def sim_server(node):
    """The simulator's server on this node's address, or None."""
    st, j = control(node, "GET", "/sim/servers/" + node.ip)
    return j if st == 200 else None


def q(s):
    return quote(s, safe="")
