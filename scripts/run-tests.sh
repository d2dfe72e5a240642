#!/bin/bash
# Runs each test binary given, prints its output, and ends with one summary line
# "N passed, N failed" over all of them. Exit status is non-zero on any failure.
# Test binaries find the server and simulator through CONSULATE_BIN and CONSUL_SIM_BIN.
set -u
BUILD=${BUILD:-build}
export CONSULATE_BIN=${CONSULATE_BIN:-$PWD/$BUILD/consulate}
export CONSUL_SIM_BIN=${CONSUL_SIM_BIN:-$PWD/$BUILD/consul-sim}
export CONSULATE_SRC=${CONSULATE_SRC:-$PWD}
export CMOCKA_MESSAGE_OUTPUT=stdout
passed=0; failed=0; broken=""
for t in "$@"; do
    out=$(mktemp)
    echo "== $t"
    timeout 600 "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
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
    rm -f "$out"
done
[ -n "$broken" ] && echo "binaries that exited abnormally:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
