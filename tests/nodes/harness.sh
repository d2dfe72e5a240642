#!/bin/sh
# The fake nodes (the Consul simulator and a real sshd per host with docker stand-ins, see
# tests/nodes/README.md) as a background service, for `make demo` and by hand.
#
#   tests/nodes/harness.sh start [fake-nodes options]   start, wait, print the inventory JSON
#   tests/nodes/harness.sh stop                         stop everything, remove its files
#   tests/nodes/harness.sh status                       "running <pid>" or "stopped" (exit 1)
#
# Options go to build/fake-nodes (--servers 4 --spares 1 --speed 1 --seed N --ip-base IP
# --ephemeral-ports --sim-args "..." --image IMAGE). The state (pid, inventory.json, log) is
# in $FAKE_NODES_STATE (default build/fake-nodes.d). $FAKE_NODES_BIN, $CONSUL_SIM_BIN and
# $CONSULATE_SRC override the programs and the repository.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
bin=${FAKE_NODES_BIN:-$here/$build/fake-nodes}
state=${FAKE_NODES_STATE:-$here/$build/fake-nodes.d}
export CONSUL_SIM_BIN="${CONSUL_SIM_BIN:-$here/$build/consul-sim}"
export CONSULATE_SRC="${CONSULATE_SRC:-$here}"

running() {
    [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
start)
    if running; then
        echo "harness.sh: already running (pid $(cat "$state/pid"))" >&2
        exit 1
    fi
    [ -x "$bin" ] || { echo "harness.sh: $bin not built (make $build/fake-nodes)" >&2; exit 1; }
    mkdir -p "$state"
    rm -f "$state/inventory.json" "$state/pid"
    # its own session: it outlives this shell; it stops the simulator and every sshd itself
    setsid "$bin" --inventory "$state/inventory.json" "$@" >"$state/log" 2>&1 </dev/null &
    echo $! >"$state/pid"
    tries=0
    while [ ! -s "$state/inventory.json" ]; do
        if ! running; then
            echo "harness.sh: fake-nodes exited:" >&2
            cat "$state/log" >&2
            rm -f "$state/pid"
            exit 1
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt 600 ]; then
            echo "harness.sh: no inventory after 60 s" >&2
            kill -TERM "$(cat "$state/pid")" 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    cat "$state/inventory.json"
    ;;
stop)
    if ! running; then
        rm -f "$state/pid" "$state/inventory.json"
        exit 0
    fi
    pid=$(cat "$state/pid")
    kill -TERM "$pid"
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ]; then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$state/pid" "$state/inventory.json"
    ;;
status)
    if running; then
        echo "running $(cat "$state/pid")"
    else
        echo stopped
        exit 1
    fi
    ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
