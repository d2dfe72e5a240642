#!/bin/bash
# Runs each benchmark binary given (make bench: BUILD=… ./scripts/bench.sh build/tests/bench/*)
# and prints its table, then the first load of the console in Chromium, then the idle memory of a freshly started server, then one summary
# line. A missed target is printed as MISSED and does not fail the run; a benchmark that
# exits non-zero (it could not run, or it found a wrong answer: a FAILED row) makes this
# script exit 1.
# Benchmarks cache their generated data under $BUILD/bench/.
set -u
BUILD=${BUILD:-build}
export BUILD
export CONSULATE_BIN=${CONSULATE_BIN:-$PWD/$BUILD/consulate}
export CONSULATE_SRC=${CONSULATE_SRC:-$PWD}
export CONSUL_SIM_BIN=${CONSUL_SIM_BIN:-$PWD/$BUILD/consul-sim}
# Where a network namespace can be made (root; $BUILD/tests/netns --check), each benchmark
# runs in one of its own (only loopback, tests/netns.c): bench_jobs's fake hosts use the
# production ports 8500/9107/8300/8301, which must not meet anything else on the machine.
NETNS=$PWD/$BUILD/tests/netns
wrap=()
if [ -x "$NETNS" ] && "$NETNS" --check 2>/dev/null; then
    wrap=("$NETNS")
fi
status=0
failed=""
missed=0
out=$(mktemp /tmp/consulate-bench-out.XXXXXX)
trap 'rm -f "$out"' EXIT
for b in "$@"; do
    echo "== $b"
    "${wrap[@]}" "$b" | tee "$out"
    rc=${PIPESTATUS[0]}
    missed=$((missed + $(grep -c 'MISSED' "$out")))
    if [ "$rc" -ne 0 ]; then
        echo "benchmark $b failed (exit $rc)" >&2
        failed="$failed $(basename "$b")"
        status=1
    fi
    echo
done

# The first load of the console in headless Chromium (tests/e2e/bench-firstload.mjs).
echo "== first load (Chromium)"
if [ ! -x "$CONSULATE_BIN" ]; then
    echo "(no $CONSULATE_BIN: the first load not measured)"
elif "$CONSULATE_SRC/scripts/e2e.sh" --prepare; then
    node "$CONSULATE_SRC/tests/e2e/bench-firstload.mjs" | tee "$out"
    rc=${PIPESTATUS[0]}
    missed=$((missed + $(grep -c 'MISSED' "$out")))
    if [ "$rc" -ne 0 ]; then
        echo "benchmark bench-firstload failed (exit $rc)" >&2
        failed="$failed bench-firstload"
        status=1
    fi
else
    failed="$failed bench-firstload(install)"
    status=1
fi
echo

# Idle RSS of `consulate serve` on port 0 with a fresh temporary database.
if [ -x "$CONSULATE_BIN" ]; then
    dir=$(mktemp -d /tmp/consulate-bench-XXXXXX)
    cat >"$dir/config.json" <<JSON
{"listen":"127.0.0.1:0","database":"$dir/consulate.db","web_root":"$CONSULATE_SRC/web"}
JSON
    "$CONSULATE_BIN" serve --config "$dir/config.json" >"$dir/out.log" 2>"$dir/err.log" &
    pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$dir/out.log" 2>/dev/null && break
        sleep 0.1
    done
    if grep -q "listening on" "$dir/out.log" 2>/dev/null; then
        sleep 1
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
        threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
        anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
        file=$(awk '/^RssFile:/ {print $2}' "/proc/$pid/status")
        verdict=MISSED
        [ "$rss" -le $((12 * 1024)) ] && verdict=ok
        [ "$verdict" = MISSED ] && missed=$((missed + 1))
        echo "== server"
        printf "  %-44s %13.1f MB   %-12s %s\n" "idle RSS of consulate serve ($threads threads)" \
            "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "<= 12 MB" "$verdict"
        printf "  %-44s %13.1f MB\n" "  of which anonymous (heap, stacks)" \
            "$(awk -v k="$anon" 'BEGIN {print k / 1024}')"
        printf "  %-44s %13.1f MB\n" "  of which file-backed (shared libraries)" \
            "$(awk -v k="$file" 'BEGIN {print k / 1024}')"
    else
        echo "server did not start; see $dir/err.log" >&2
        failed="$failed server-start"
        status=1
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$dir"
else
    echo "(no $CONSULATE_BIN: idle server memory not measured)"
fi
echo "bench: $# benchmark(s), $missed target(s) MISSED, failed:${failed:- none}"
exit $status
