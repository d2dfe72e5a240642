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
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
