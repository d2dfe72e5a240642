#!/bin/bash
# make demo: a simulated 4-server Consul datacenter (plus client agents, services and one
# failing check) and the console pointed at all four servers. Prints the URL and the admin
# password (the lines "    URL:       http://…" and "    password:  …", which .ci/run reads);
# Ctrl-C (SIGINT to the process group, or SIGINT/SIGTERM to this script) stops everything
# within a few seconds, prints "demo stopped" and leaves no process or file behind.
set -euo pipefail
BUILD=${BUILD:-build}
SIM="$BUILD/consul-sim"
CONSULATE="$BUILD/consulate"
dir=$(mktemp -d /tmp/consulate-demo.XXXXXX)
sim_pid=""
srv_pid=""

cleanup() {
    trap - EXIT INT TERM
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        alive=0
        for p in $srv_pid $sim_pid; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in $srv_pid $sim_pid; do kill -9 "$p" 2>/dev/null || true; done
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

# The simulator: servers on 127.0.0.11-14, on the ports of a real site when they are free
# on all four addresses, else on the first free ones from 18500 and 19107 up.
ips="127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14"
if ! http_port=$(port_free_on_all 8500 $(seq 18500 18599)) ||
    ! metrics_port=$(port_free_on_all 9107 $(seq 19107 19206)); then
    echo "demo: no free port for the simulated Consul servers on $ips" >&2
    exit 1
fi
mkfifo "$dir/sim.out"
"$SIM" --servers 4 --clients 6 --demo-data --ip-base 127.0.0.11 \
    --http-port "$http_port" --metrics-port "$metrics_port" --quiet \
    >"$dir/sim.out" 2>"$dir/sim.log" &
sim_pid=$!
exec 4<"$dir/sim.out"
if ! read -r -t 15 ready <&4; then
    echo "demo: the Consul simulator did not start:" >&2
    cat "$dir/sim.log" >&2
    exit 1
fi
addrs=$(echo "$ready" | grep -o '"http":"[^"]*"' | sed 's/"http":"\(.*\)"/"\1"/' | paste -sd, -)
control=$(echo "$ready" | grep -o '"control":"[^"]*"' | sed 's/"control":"\(.*\)"/\1/')

listen="127.0.0.1:8080"
port_free 127.0.0.1 8080 || listen="127.0.0.1:0"
cat >"$dir/config.json" <<JSON
{
  "listen": "$listen",
  "database": "$dir/consulate.db",
  "web_root": "$PWD/web",
  "consul": {"addresses": [$addrs], "exporter_port": $metrics_port, "exporter_interval_s": 5}
}
JSON
mkfifo "$dir/srv.out"
"$CONSULATE" serve --config "$dir/config.json" >"$dir/srv.out" 2>"$dir/consulate.log" &
srv_pid=$!
exec 5<"$dir/srv.out"
url=""
password=""
while read -r -t 30 line <&5; do
    case "$line" in
    *"with password: "*) password=${line##*with password: } ;;
    *"listening on "*) url=${line##*listening on }; break ;;
    esac
done
if [ -z "$url" ]; then
    echo "demo: consulate did not start:" >&2
    cat "$dir/consulate.log" >&2
    exit 1
fi
cat <<MSG

  Consulate demo is running.

    URL:       $url
    user:      admin
    password:  $password

  Simulated datacenter dc1: 4 Consul servers ($addrs),
  6 client agents, a few services and one failing check.
  Simulator control API: $control
    e.g. stop a server:  curl -X POST $control/sim/servers/consul-2/stop
         start it again: curl -X POST $control/sim/servers/consul-2/start
  Logs: $dir/consulate.log, $dir/sim.log

  Press Ctrl-C to stop.

MSG
# Keep draining both outputs so neither process blocks on a full pipe.
cat <&4 >/dev/null &
cat <&5 >/dev/null &
wait "$srv_pid"
