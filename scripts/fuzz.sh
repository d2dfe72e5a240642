#!/bin/sh
# Builds a libFuzzer target with clang (address and undefined-behaviour sanitizers) and runs it
# on a copy of its seed corpus. Usage: fuzz.sh [body|cluster|compose] [seconds]  (default: body 300)
# Environment: FUZZ_JOBS (parallel jobs, default 1). New inputs that raise coverage land in
# build/fuzz/<target>-corpus; a crash is saved as build/fuzz/crash-* and fails the run.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-body}
seconds=${2:-300}
missing=""
command -v clang >/dev/null 2>&1 || missing="$missing clang"
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
    missing="$missing libclang-rt-dev"
if [ -n "$missing" ]; then
    echo "fuzz: installing:$missing" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
case "$target" in
body) srcs="tests/fuzz/fuzz_body.c server/json_body.c server/util.c" ;;
cluster) srcs="tests/fuzz/fuzz_cluster.c server/cluster.c server/prom.c server/util.c" ;;
compose) srcs="tests/fuzz/fuzz_compose.c $(echo server/compose*.c) server/util.c" ;;
*) echo "fuzz: unknown target '$target' (body, cluster or compose)" >&2; exit 2 ;;
esac
out="$here/build/fuzz"
mkdir -p "$out" "$out/$target-corpus"
cd "$here"
# shellcheck disable=SC2086
clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -D_GNU_SOURCE -Iinclude $srcs $(pkg-config --cflags --libs libcjson libsodium yaml-0.1) -lm \
    -lpthread -o "$out/fuzz_$target"
seeds="tests/fuzz/corpus/$target"
if [ "$target" = compose ]; then
    # the compose fixtures, each behind the byte that picks the address and the operations
    seeds="build/fuzz/compose-seeds"
    mkdir -p "$seeds"
    for f in tests/fixtures/compose/*.yaml; do
        for b in '\000' '\101' '\202' '\303'; do
            { printf "$b"; cat "$f"; } >"$seeds/$(basename "$f" .yaml)-$(printf '%s' "$b" | tr -d '\\')"
        done
    done
fi
[ -d "$seeds" ] || seeds=""
echo "fuzz: running fuzz_$target for $seconds s (corpus $out/$target-corpus ${seeds:++ $seeds})"
jobs=""
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    jobs="-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS" # each job logs to build/fuzz/fuzz-N.log
    cd "$out"
    [ -z "$seeds" ] || seeds="$here/$seeds"
fi
# shellcheck disable=SC2086
"$out/fuzz_$target" -max_total_time="$seconds" -max_len=1048576 -timeout=10 \
    -rss_limit_mb=2048 $jobs -artifact_prefix="$out/" "$out/$target-corpus" $seeds
