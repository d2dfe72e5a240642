#!/bin/bash
# make demo: a simulated 4-server Consul datacenter (plus client agents, services and one
# failing check) on fake hosts that consulate reaches over SSH (tests/nodes: a real sshd per
# host, docker and docker-compose stand-ins driving the simulator), one spare host consul-5
# ready to be added, and the console with all five hosts in its inventory, host keys pinned,
# and two accounts: admin and approver, so that one person can request a change with one
# and approve it with the other.
#
# Prints the URL and the admin password (the lines "    URL:       http://…" and
# "    password:  …", which .ci/run reads; the approver's line does not match that pattern);
# Ctrl-C (SIGINT to the process group, or SIGINT/SIGTERM to this script) stops everything
# (consulate, the simulator, every sshd, the stand-ins) within a few seconds, prints
# "demo stopped" and leaves no process or file behind.
#
# DEMO_SPEED (default 1: Consul's own timing) is the simulator's speed factor; a node-add of
# consul-5 takes about a minute at 1 (DEMO_SPEED=2 runs Consul's timers twice as fast).
set -euo pipefail
BUILD=${BUILD:-build}
CONSULATE="$BUILD/consulate"
NODES="$BUILD/fake-nodes"
SPEED=${DEMO_SPEED:-1}
dir=$(mktemp -d /tmp/consulate-demo.XXXXXX)
nodes_pid=""
srv_pid=""

cleanup() {
    trap - EXIT INT TERM
    exec 6>&- 2>/dev/null || true # fake-nodes stops when its stdin closes, too
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
    [ -n "$nodes_pid" ] && kill "$nodes_pid" 2>/dev/null || true
    for _ in $(seq 1 80); do
        alive=0
        for p in $srv_pid $nodes_pid; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in $srv_pid $nodes_pid; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$dir"
    echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { # host port
    ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# The first of the ports given that is free on every one of the IPs in $ips.
port_free_on_all() { # port...
    local p ip
    for p in "$@"; do
        for ip in $ips; do
            port_free "$ip" "$p" || continue 2
        done
        echo "$p"
        return 0
    done
    return 1
}

# The hosts: servers consul-1..4 on 127.0.0.11-14, the spare consul-5 on 127.0.0.15. Their
# agents listen on the ports of a real site when those are free on all five addresses, else
# on the first free ones from 18500 and 19107 up.
ips="127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.15"
if ! http_port=$(port_free_on_all 8500 $(seq 18500 18599)) ||
    ! metrics_port=$(port_free_on_all 9107 $(seq 19107 19206)); then
    echo "demo: no free port for the simulated Consul servers on $ips" >&2
    exit 1
fi
mkfifo "$dir/nodes.in"
CONSUL_SIM_BIN="$PWD/$BUILD/consul-sim" CONSULATE_SRC="$PWD" \
    "$NODES" --servers 4 --spares 1 --speed "$SPEED" --ip-base 127.0.0.11 \
    --http-port "$http_port" --metrics-port "$metrics_port" \
    --sim-args "--clients 6 --demo-data --quiet" --parent-dir "$dir" \
    --inventory "$dir/inventory.json" --exit-on-stdin-eof \
    <"$dir/nodes.in" >"$dir/nodes.log" 2>&1 &
nodes_pid=$!
exec 6>"$dir/nodes.in" # held until this script ends
for _ in $(seq 1 600); do
    [ -s "$dir/inventory.json" ] && break
    if ! kill -0 "$nodes_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ ! -s "$dir/inventory.json" ]; then
    echo "demo: the fake nodes did not start:" >&2
    cat "$dir/nodes.log" >&2
    exit 1
fi
# One line per node: name address fingerprint body (a POST /api/nodes body), then the
# consul addresses (a JSON array), the exporter port and the simulator's control URL.
python3 -S - "$dir/inventory.json" >"$dir/inventory.txt" <<'PY'
import json, sys
inv = json.load(open(sys.argv[1]))
for n in inv["nodes"]:
    fp = n.pop("host_key")["fingerprint"]
    print("node", n["name"], n["address"], fp, json.dumps(n, separators=(",", ":")))
print("consul", json.dumps(inv["consul"]["addresses"], separators=(",", ":")),
      inv["consul"]["exporter_port"])
print("control", inv["control"])
PY
read -r _ addrs exporter_port < <(grep '^consul ' "$dir/inventory.txt")
read -r _ control < <(grep '^control ' "$dir/inventory.txt")

listen="127.0.0.1:8080"
port_free 127.0.0.1 8080 || listen="127.0.0.1:0"
cat >"$dir/config.json" <<JSON
{
  "listen": "$listen",
  "database": "$dir/consulate.db",
  "consul": {"addresses": $addrs, "exporter_port": $exporter_port, "exporter_interval_s": 5}
}
JSON
mkfifo "$dir/srv.out"
"$CONSULATE" serve --config "$dir/config.json" >"$dir/srv.out" 2>"$dir/consulate.log" &
srv_pid=$!
exec 5<"$dir/srv.out"
url=""
password=""
# Both lines, in whichever order they come.
while { [ -z "$url" ] || [ -z "$password" ]; } && read -r -t 30 line <&5; do
    case "$line" in
    *"with password: "*) password=${line##*with password: } ;;
    *"listening on "*) url=${line##*listening on } ;;
    esac
done
if [ -z "$url" ] || [ -z "$password" ]; then
    echo "demo: consulate did not start:" >&2
    cat "$dir/consulate.log" >&2
    exit 1
fi
# Keep draining consulate's output so it never blocks on a full pipe.
cat <&5 >/dev/null &

# The inventory and the second account, through the API as an admin in the browser would
# set them up: each host added, the key it presents compared with the one the harness made
# and pinned; the approver created. Then the session ends.
jar="$dir/cookies"
api() { # method path [body]: prints the body; fails on a status other than 2xx
    local out status data=()
    [ $# -ge 3 ] && data=(--data-binary "$3")
    out=$(curl -sS --max-time 20 -b "$jar" -c "$jar" -X "$1" -w '\n%{http_code}' \
        -H 'Content-Type: application/json' -H "X-CSRF-Token: ${csrf:-}" \
        "${data[@]}" "$url$2") || return 1
    status=${out##*$'\n'}
    out=${out%$'\n'*}
    if [ "${status:0:1}" != 2 ]; then
        echo "demo: $1 $2: HTTP $status $out" >&2
        return 1
    fi
    printf '%s\n' "$out"
}
setup_failed() {
    echo "demo: setting up the inventory failed (log: consulate.log below)" >&2
    cat "$dir/consulate.log" >&2
    exit 1
}
csrf=""
login=$(printf '{"username":"admin","password":"%s"}' "$password")
csrf=$(api POST /api/session "$login" | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p') || setup_failed
[ -n "$csrf" ] || setup_failed
while read -r _ name address fp body; do
    api POST /api/nodes "$body" >/dev/null || setup_failed
    presented=$(api GET "/api/nodes/$name/hostkey") || setup_failed
    case "$presented" in
    *"\"presented\":{"*"\"fingerprint\":\"$fp\""*) ;;
    *)
        echo "demo: $name ($address) presents another host key than the harness made: $presented" >&2
        exit 1
        ;;
    esac
    api POST "/api/nodes/$name/trust-hostkey" "{\"fingerprint\":\"$fp\"}" >/dev/null || setup_failed
done < <(grep '^node ' "$dir/inventory.txt")
approver_password=$(head -c 15 /dev/urandom | base64 | tr -d '/+=')
api POST /api/users "{\"name\":\"approver\",\"role\":\"approver\",\"password\":\"$approver_password\"}" \
    >/dev/null || setup_failed
api DELETE /api/session >/dev/null || setup_failed
rm -f "$jar"

nodes_table=$(grep '^node ' "$dir/inventory.txt" | while read -r _ name address fp _; do
    printf '    %-9s %-11s %s\n' "$name" "$address" "$fp"
done)
cat <<MSG

  Consulate demo is running.

    URL:       $url
    user:      admin
    password:  $password
    approver:  approver / $approver_password

  Simulated datacenter dc1 (speed $SPEED): 4 Consul servers consul-1..4 (${addrs//[\[\]\"]/}),
  6 client agents, a few services and one failing check; a spare host consul-5 with docker
  and no Consul yet. Every host runs a real sshd; consulate has all five in its inventory
  with their host keys pinned (SHA256 fingerprints):
$nodes_table

  Try it: sign in as admin, Jobs > New change > Add a server > consul-5, give a reason and
  request it; sign in as approver in another browser (or a private window) and approve the
  job; watch its live log reach "succeeded" and the Cluster page show five voters.

  Simulator control API: $control
    e.g. stop a server:  curl -X POST $control/sim/servers/consul-2/stop
         start it again: curl -X POST $control/sim/servers/consul-2/start
  Logs: $dir/consulate.log, $dir/nodes.log

  Press Ctrl-C to stop.

MSG
wait "$srv_pid"
