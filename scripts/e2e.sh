#!/bin/bash
# Runs the browser tests (tests/e2e) against the real server and fake Consul hosts reached
# over SSH (build/fake-nodes: the simulator, an sshd per host), installing what
# they need when missing: Debian's chromium, Node.js, and playwright-core from npm (no
# browser download). Prints the node test runner's summary.
# `e2e.sh --prepare` only installs (scripts/run-tests.sh calls it outside the test's network
# namespace, which has no route to the package mirrors).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=""
[ -x /usr/bin/chromium ] || need="$need chromium" # normally installed by make test-deps
command -v node >/dev/null 2>&1 || need="$need nodejs npm"
if [ -n "$need" ]; then
    echo "e2e: installing:$need" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need >&2
fi
cd "$here/tests/e2e"
if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
[ "${1:-}" = --prepare ] && exit 0
export CONSULATE_BIN=${CONSULATE_BIN:-$here/build/consulate}
export CONSUL_SIM_BIN=${CONSUL_SIM_BIN:-$here/build/consul-sim}
export FAKE_NODES_BIN=${FAKE_NODES_BIN:-$here/build/fake-nodes}
exec node --test --test-concurrency=1 --test-reporter=spec run.mjs
