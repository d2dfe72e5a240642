#!/bin/bash
# Runs each test binary (or script) given, prints its output, and ends with one summary line
# "N passed, N failed" over all of them. Exit status is non-zero on any failure.
# Test binaries find the server and simulator through CONSULATE_BIN and CONSUL_SIM_BIN.
#
# Where a network namespace can be made (root, as on CI; $BUILD/tests/netns --check), every
# test runs in one of its own (only loopback, see tests/netns.c) and TEST_JOBS of them run at
# once (default: the number of CPUs plus one; the tests mostly wait on timers and sockets).
# Elsewhere they run one after the other in the machine's own namespace. TEST_JOBS=1 forces
# one at a time. Each test's output is printed whole when it ends, with its duration.
set -u
BUILD=${BUILD:-build}
export CONSULATE_BIN=${CONSULATE_BIN:-$PWD/$BUILD/consulate}
export CONSUL_SIM_BIN=${CONSUL_SIM_BIN:-$PWD/$BUILD/consul-sim}
export CONSULATE_SRC=${CONSULATE_SRC:-$PWD}
export CMOCKA_MESSAGE_OUTPUT=stdout
NETNS=$PWD/$BUILD/tests/netns
wrap=()
jobs=1
if [ -x "$NETNS" ] && "$NETNS" --check 2>/dev/null; then
    wrap=("$NETNS")
    jobs=${TEST_JOBS:-$(($(nproc 2>/dev/null || echo 1) + 1))}
else
    jobs=1
    echo "run-tests: no network namespace here (not root?): the tests run one at a time"
fi
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0; broken=""

# Tests that measure the simulator's timing against the wall clock (windows of tens of
# milliseconds at a high speed factor) run alone, after the others: a loaded CPU stretches
# their windows.
ALONE=" test_sim "
is_alone() { [[ "$ALONE" == *" ${1##*/} "* ]]; }

# The longest first (browser tests, then HTTP tests, then unit tests), so that the slowest
# do not start last; the ones that run alone last.
order=()
for t in "$@"; do [ "${t%.sh}" != "$t" ] && order+=("$t"); done
for t in "$@"; do
    [ "${t%.sh}" = "$t" ] && [ "${t#*/http/}" != "$t" ] && ! is_alone "$t" && order+=("$t")
done
for t in "$@"; do
    [ "${t%.sh}" = "$t" ] && [ "${t#*/http/}" = "$t" ] && ! is_alone "$t" && order+=("$t")
done
for t in "$@"; do is_alone "$t" && order+=("$t"); done

run_one() { # index test
    local i=$1 t=$2 t0 rc
    t0=$(date +%s)
    timeout 600 "${wrap[@]}" "$t" >"$tmp/$i.out" 2>&1
    rc=$?
    echo "$rc $(($(date +%s) - t0))" >"$tmp/$i.rc"
}

report() { # index test
    local i=$1 t=$2 rc secs p f out=$tmp/$1.out
    read -r rc secs <"$tmp/$i.rc"
    echo "== $t"
    cat "$out"
    echo "== $t: $secs s"
    if [ "${t%.sh}" != "$t" ]; then
        # node's test runner (spec reporter): "ℹ pass N" / "ℹ fail N"
        p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$out" | tail -1)
        f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$out" | tail -1)
    else
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    fi
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; broken="$broken $t(exit $rc)"
    fi
    passed=$((passed + p)); failed=$((failed + f))
}

# Scripts install what they need first (`--prepare`), here: inside a namespace there is no
# network to install from.
for t in "${order[@]}"; do
    if [ "${t%.sh}" != "$t" ] && ! "$t" --prepare; then
        echo "run-tests: $t --prepare failed: it could not install what it needs"
        failed=$((failed + 1))
        broken="$broken $t(--prepare)"
    fi
done

declare -A running=() # pid -> index
next=0
done_count=0
total=${#order[@]}
while [ "$done_count" -lt "$total" ]; do
    while [ "${#running[@]}" -lt "$jobs" ] && [ "$next" -lt "$total" ]; do
        # one that runs alone waits until the others have ended, and holds the rest back
        if is_alone "${order[$next]}" && [ "${#running[@]}" -gt 0 ]; then
            break
        fi
        run_one "$next" "${order[$next]}" &
        running[$!]=$next
        next=$((next + 1))
        is_alone "${order[$((next - 1))]}" && break
    done
    wait -n -p pid "${!running[@]}"
    i=${running[$pid]}
    unset "running[$pid]"
    report "$i" "${order[$i]}"
    done_count=$((done_count + 1))
done
[ -n "$broken" ] && echo "binaries that exited abnormally:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
