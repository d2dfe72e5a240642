#!/bin/sh
# Installs the Debian packages listed in deps.txt that are missing. Idempotent and fast
# when everything is present (one dpkg-query per package, no apt-get call).
# Usage: deps.sh [--with-test | --with-demo]
#   (none)         the packages without a marker (build and run)
#   --with-test    every package (the tests need them all)
#   --with-demo    those without a marker and those marked "demo" (make demo)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
--with-test) want='NF' ;;
--with-demo) want='NF == 1 || / demo( |$)/' ;;
"") want='NF == 1' ;;
*)
    echo "usage: deps.sh [--with-test | --with-demo]" >&2
    exit 2
    ;;
esac
list=$(grep -v '^[[:space:]]*#' "$here/deps.txt" | awk "$want {print \$1}")
missing=""
for p in $list; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
# Two installs at once (make -j runs deps and test-deps side by side) would fight over apt's
# lock: the second waits for the first, then looks again at what is still missing.
if [ -z "${CONSULATE_DEPS_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    export CONSULATE_DEPS_LOCKED=1
    exec flock "${TMPDIR:-/tmp}/consulate-deps.lock" "$0" "$@"
fi
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's own apt timers may hold the lock for a while: wait for it (10 min).
wait_lock="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
$SUDO apt-get $wait_lock update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get $wait_lock install -y -qq --no-install-recommends $missing >&2
