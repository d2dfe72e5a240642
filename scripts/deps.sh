#!/bin/sh
# Installs the Debian packages listed in deps.txt that are missing. Idempotent and fast
# when everything is present (one dpkg-query per package, no apt-get call).
# Usage: deps.sh [--with-test]   (without it, packages marked "test" are left out)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--with-test" ]; then
    list=$(grep -v '^[[:space:]]*#' "$here/deps.txt" | awk 'NF {print $1}')
else
    list=$(grep -v '^[[:space:]]*#' "$here/deps.txt" | awk 'NF && $2 != "test" {print $1}')
fi
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
