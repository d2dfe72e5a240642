"""Entry point of the fake node's command stand-ins (see tests/nodes/README.md).

Each fake node has wrapper scripts in <root>/bin (first on the PATH sshd gives its sessions):
`docker`, `docker-compose`, `hostname` run

    /usr/bin/python3 -S standin.py --root <root> <tool> <args...>

and `mv`, `cp`, `cat`, `ls`, `mkdir`, `rm` run the real tool unless the node has faults, then

    /usr/bin/python3 -S standin.py --root <root> --exec /bin/mv mv <args...>

<root> is the node's directory standing in for its file system: <root>/etc/hostname,
<root>/mnt/..., and <root>/.fake/ (node.json: address, simulator, versions; faults: one JSON
object per line; docker/: the containers' state).

Faults are checked first, for every tool: a line whose "match" is a substring of the command
line ("<tool> <args joined by spaces>") makes the command print "stdout"/"stderr" and exit
with "exit" (default 1), or hang ("hang": true) until it is killed or the node is gone;
"times" (when > 0) is how many more commands it applies to.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


class Node:
    """One fake node: its root directory and node.json."""

    def __init__(self, root):
        self.root = root
        self.fake = os.path.join(root, ".fake")
        with open(os.path.join(self.fake, "node.json"), encoding="utf-8") as f:
            self.cfg = json.load(f)
        self.ip = self.cfg["ip"]
        self.control = self.cfg["control"]

    def path(self, host_path):
        """The real path of an absolute path on the node (the node's root stands for /)."""
        return os.path.join(self.root, host_path.lstrip("/"))

    def hostname(self):
        try:
            with open(os.path.join(self.root, "etc", "hostname"), encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return "localhost"

    def alive(self):
        """False once the harness removed the node (a hanging command then ends)."""
        return os.path.isdir(self.fake)


def _lock(path):
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def check_faults(node, line):
    """Applies the first fault matching the command line: returns an exit status, or None
    when no fault applies. A hanging fault returns only when the node is gone."""
    path = os.path.join(node.fake, "faults")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    fd = _lock(os.path.join(node.fake, "faults.lock"))
    try:
        with open(path, encoding="utf-8") as f:
            rules = [json.loads(l) for l in f if l.strip()]
        hit = None
        for i, r in enumerate(rules):
            if r.get("match", "") in line:
                hit = r
                times = int(r.get("times", 0))
                if times > 0:
                    if times == 1:
                        del rules[i]
                    else:
                        r["times"] = times - 1
                    with open(path + ".tmp", "w", encoding="utf-8") as f:
                        f.writelines(json.dumps(x) + "\n" for x in rules)
                    os.rename(path + ".tmp", path)
                break
    finally:
        os.close(fd)
    if hit is None:
        return None
    if hit.get("hang"):
        # until killed (the SSH runner kills the process group), the node goes away, its
        # faults are cleared, or the session's parent is gone
        # (hang.<pid> in the node's .fake marks it hanging: nodes_hanging counts them)
        deadline = time.monotonic() + 3600
        marker = os.path.join(node.fake, "hang.%d" % os.getpid())
        open(marker, "w").close()
        try:
            while (node.alive() and os.path.exists(path) and os.getppid() != 1
                   and time.monotonic() < deadline):
                time.sleep(0.1)
        finally:
            try:
                os.unlink(marker)
            except OSError:
                pass
        return 124
    sys.stdout.write(hit.get("stdout", ""))
    sys.stderr.write(hit.get("stderr", ""))
    sys.stdout.flush()
    return int(hit.get("exit", 1))


def main(argv):
    if len(argv) < 3 or argv[0] != "--root":
        sys.stderr.write("usage: standin.py --root ROOT [--exec REAL] TOOL ARGS...\n")
        return 2
    node = Node(argv[1])
    rest = argv[2:]
    real = None
    if rest[0] == "--exec":
        real, rest = rest[1], rest[2:]
    tool, args = rest[0], rest[1:]
    rc = check_faults(node, " ".join([tool] + args))
    if rc is not None:
        return rc
    if real:
        os.execv(real, [tool] + args)
    if tool == "hostname":
        return hostname_cmd(node, args)
    if tool in ("docker", "docker-compose"):
        import standin_docker

        return standin_docker.run(node, tool, args)
    sys.stderr.write("standin: unknown tool %s\n" % tool)
    return 127


def hostname_cmd(node, args):
    """hostname [-s|-f|-I|NAME]: the node's name is <root>/etc/hostname."""
    name = node.hostname()
    if not args or args[0] in ("-f", "--fqdn", "--long", "-a", "--alias"):
        print(name)
    elif args[0] in ("-s", "--short"):
        print(name.split(".")[0])
    elif args[0] in ("-I", "--all-ip-addresses", "-i", "--ip-address"):
        print(node.ip + (" " if args[0] in ("-I", "--all-ip-addresses") else ""))
    elif args[0].startswith("-"):
        sys.stderr.write("hostname: invalid option -- '%s'\n" % args[0].lstrip("-")[:1])
        return 64
    else:
        with open(os.path.join(node.root, "etc", "hostname"), "w", encoding="utf-8") as f:
            f.write(args[0] + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        sys.exit(141)
