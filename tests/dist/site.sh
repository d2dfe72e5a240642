#!/bin/bash
# tests/dist/site.sh: installs a package as root, for real, the way a site does, but inside a
# private mount namespace where /usr, /etc, /var and /opt are overlays on a temporary
# directory: useradd, chown, install.sh, dpkg -i/--remove/--purge act on copies that vanish
# with the namespace; the machine is not changed. Run by tests/http/test_dist.
#
#   site.sh bundle DIR    DIR: the extracted bundle (consulate-VERSION/)
#   site.sh deb FILE      FILE: the .deb
#
# Checks, with the -dev packages' lib*.so names gone as on a site (for the bundle, the
# machine's copies of the libraries it carries too): the user, the owners and
# modes, the first administrator made as the docs say (runuser … user add), the service's
# user serving and a login, over HTTP and HTTPS, a second install (an upgrade) that keeps the
# config, the audit key and the database byte for byte; for the .deb also remove (keeps
# them) and purge (deletes them).
# Exit: 0 passed, 1 failed (with the reason), 77 no mount namespace or overlay here (skip).
set -euo pipefail

mode=${1:-}
arg=${2:-}
case $mode in bundle | deb) ;; *) echo "usage: site.sh bundle DIR | site.sh deb FILE" >&2; exit 2 ;; esac
arg=$(realpath "$arg")

if [ -z "${SITE_TMP:-}" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "site.sh: not root: skipped"; exit 77; }
    command -v unshare >/dev/null || { echo "site.sh: no unshare: skipped"; exit 77; }
    SITE_TMP=$(mktemp -d /tmp/consulate-site-XXXXXX)
    export SITE_TMP
    trap 'rm -rf "$SITE_TMP"' EXIT
    set +e
    unshare --mount --propagation private "$0" "$mode" "$arg"
    rc=$?
    exit $rc
fi

fail() {
    echo "site.sh ($mode): FAILED: $*" >&2
    for f in "$SITE_TMP"/serve.err "$SITE_TMP"/install.out; do
        [ -s "$f" ] && { echo "--- $f:" >&2; tail -30 "$f" >&2; }
    done
    exit 1
}
trap 'fail "line $LINENO: exit $?"' ERR

for d in usr etc var opt; do
    mkdir -p "$SITE_TMP/$d.up" "$SITE_TMP/$d.work"
    if ! mount -t overlay overlay \
        -o "lowerdir=/$d,upperdir=$SITE_TMP/$d.up,workdir=$SITE_TMP/$d.work" "/$d" 2>/dev/null; then
        echo "site.sh: cannot mount an overlay on /$d here: skipped"
        exit 77
    fi
done
# A certificate for 127.0.0.1 (for the HTTPS check), while openssl still has its libraries.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$SITE_TMP/key.pem" -out "$SITE_TMP/cert.pem" \
    >/dev/null 2>&1 || fail "openssl could not make a certificate"

# A site's machine has none of the -dev packages: their unversioned lib*.so names go (civetweb
# dlopens libssl.so and libcrypto.so: the package's shims must be what it finds).
for d in /usr/lib/*-linux-gnu; do
    find "$d" -maxdepth 1 -name 'lib*.so' -type l -delete
done
[ ! -e /usr/lib/x86_64-linux-gnu/libcrypto.so ] || fail "libcrypto.so is still there"
# The bundle needs not even the runtime libraries: the machine's copies go too (curl, the
# test's client, then runs with the bundle's libcurl).
client_libs=""
if [ "$mode" = bundle ]; then
    for so in libcivetweb.so.1 libcjson.so.1 libsqlite3.so.0 libcurl.so.4 libssh2.so.1 \
        libsodium.so.23 libyaml-0.so.2 libssl.so.3 libcrypto.so.3; do
        for d in /usr/lib/*-linux-gnu; do rm -f "$d/$so"; done
    done
    client_libs=/opt/consulate/lib
    if curl --version >/dev/null 2>&1; then fail "curl still runs: the libraries are not gone"; fi
fi
if getent passwd consulate >/dev/null; then
    fail "this machine already has a user consulate: cannot test its creation"
fi

# mode owner:group path
check() {
    local got
    got=$(stat -c '%a %U:%G' "$3") || fail "$3 is missing"
    [ "$got" = "$1 $2" ] || fail "$3 is $got, want $1 $2"
}

install_pkg() {
    if [ "$mode" = bundle ]; then
        "$arg/install.sh" >"$SITE_TMP/install.out" 2>&1 || fail "install.sh exited $?"
    else
        dpkg -i "$arg" >"$SITE_TMP/install.out" 2>&1 || fail "dpkg -i exited $?"
    fi
}

if [ "$mode" = bundle ]; then
    bin=/opt/consulate/consulate
else
    bin=/usr/bin/consulate
fi
pw=site-password-1234
scheme=""

install_pkg
getent passwd consulate | grep -q ':/var/lib/consulate:/usr/sbin/nologin$' ||
    fail "the user consulate is not a system user with home /var/lib/consulate: $(getent passwd consulate)"
[ "$(id -u consulate)" -lt 1000 ] || fail "consulate is not a system user (uid $(id -u consulate))"
check 750 root:consulate /etc/consulate
check 640 root:consulate /etc/consulate/config.json
check 600 consulate:consulate /etc/consulate/audit.key
check 700 consulate:consulate /var/lib/consulate
[ "$(stat -c %s /etc/consulate/audit.key)" -eq 32 ] || fail "the audit key is not 32 bytes"
if [ "$mode" = bundle ]; then
    check 755 root:root /opt/consulate/consulate
    check 644 root:root /etc/systemd/system/consulate.service
    grep -q "Next steps" "$SITE_TMP/install.out" || fail "install.sh printed no next steps"
else
    check 644 root:root /lib/systemd/system/consulate.service
    dpkg -s consulate | grep -q '^Status: install ok installed' || fail "dpkg: not installed"
fi
"$bin" version >/dev/null || fail "$bin version exited $?"

# The first administrator, as the README says, then the service's user serves.
echo "$pw" | runuser -u consulate -- "$bin" --config /etc/consulate/config.json \
    user add admin --role admin --password-stdin >/dev/null 2>"$SITE_TMP/serve.err" ||
    fail "runuser … user add admin: exit $?"
check 600 consulate:consulate /var/lib/consulate/consulate.db

serve() { # [config]: serve as the service's user, log in, stop
    local config=${1:-/etc/consulate/config.json}
    : >"$SITE_TMP/serve.out"
    setpriv --reuid=consulate --regid=consulate --init-groups \
        env CONSULATE_LISTEN=127.0.0.1:0 "$bin" serve --config "$config" \
        >"$SITE_TMP/serve.out" 2>"$SITE_TMP/serve.err" &
    spid=$!
    port=""
    for _ in $(seq 1 300); do
        port=$(sed -n 's|.*listening on https\{0,1\}://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$SITE_TMP/serve.out")
        [ -n "$port" ] && break
        kill -0 $spid 2>/dev/null || fail "the server exited at start"
        sleep 0.1
    done
    [ -n "$port" ] || fail "the server did not listen within 30 s"
    scheme=$(sed -n 's|.*listening on \(https\{0,1\}\)://.*|\1|p' "$SITE_TMP/serve.out")
    code=$(LD_LIBRARY_PATH=$client_libs curl -s -o /dev/null -w '%{http_code}' --cacert "$SITE_TMP/cert.pem" \
        -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$pw\"}" "$scheme://127.0.0.1:$port/api/session")
    [ "$code" = 200 ] || fail "login as admin: HTTP $code"
    # no password was printed: the packaged config creates no bootstrap admin
    if grep -q "with password" "$SITE_TMP/serve.out" "$SITE_TMP/serve.err"; then
        fail "the server printed a password"
    fi
    kill -TERM $spid
    wait $spid || fail "the server exited with $? on SIGTERM"
}
serve
check 600 consulate:consulate /var/lib/consulate/consulate.db.audit-anchor
# HTTPS: the config's tls.certificate set to the certificate made above
cat "$SITE_TMP/cert.pem" "$SITE_TMP/key.pem" >/etc/consulate/site.pem
chown consulate:consulate /etc/consulate/site.pem
chmod 0600 /etc/consulate/site.pem
sed 's|"certificate": null|"certificate": "/etc/consulate/site.pem"|' /etc/consulate/config.json \
    >/etc/consulate/tls.json
grep -q site.pem /etc/consulate/tls.json || fail "no tls.certificate in the example config"
chgrp consulate /etc/consulate/tls.json
serve /etc/consulate/tls.json
[ "$scheme" = https ] || fail "tls.certificate set, but the server listens on $scheme"
rm /etc/consulate/tls.json /etc/consulate/site.pem

# A second install (an upgrade) keeps the site's files byte for byte.
printf ' \n' >>/etc/consulate/config.json
kept="/etc/consulate/config.json /etc/consulate/audit.key /var/lib/consulate/consulate.db
      /var/lib/consulate/consulate.db.audit-anchor"
for f in $kept; do cp -p "$f" "$SITE_TMP/$(basename "$f").before"; done
install_pkg
for f in $kept; do
    cmp -s "$f" "$SITE_TMP/$(basename "$f").before" || fail "the second install changed $f"
done
check 640 root:consulate /etc/consulate/config.json
check 600 consulate:consulate /etc/consulate/audit.key
check 700 consulate:consulate /var/lib/consulate
runuser -u consulate -- "$bin" --config /etc/consulate/config.json audit verify >/dev/null ||
    fail "audit verify after the second install"
serve

if [ "$mode" = deb ]; then
    dpkg --remove consulate >>"$SITE_TMP/install.out" 2>&1 || fail "dpkg --remove"
    [ ! -e /usr/lib/consulate/consulate ] || fail "remove left the binary"
    for f in $kept; do [ -e "$f" ] || fail "remove deleted $f"; done
    dpkg --purge consulate >>"$SITE_TMP/install.out" 2>&1 || fail "dpkg --purge"
    [ ! -e /etc/consulate ] || fail "purge left /etc/consulate: $(ls -la /etc/consulate)"
    [ ! -e /var/lib/consulate ] || fail "purge left /var/lib/consulate"
    getent passwd consulate >/dev/null || fail "purge removed the user (Debian keeps it)"
fi
echo "site.sh ($mode): passed"
