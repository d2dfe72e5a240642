#!/bin/sh
# install.sh: installs consulate from this bundle (the directory this script is in).
#
#   sudo ./install.sh                  install or upgrade on this machine
#   ./install.sh --prefix DIR          the same files under DIR (a staging root, e.g. for a
#                                      test or an image): no user, no chown, no systemctl
#   (DESTDIR=DIR ./install.sh is the same as --prefix DIR)
#
# Puts the binary and its libraries in /opt/consulate, creates the system user `consulate`,
# /var/lib/consulate (0700, owned by it; the database and the audit anchor), /etc/consulate
# (0750, root:consulate) with config.json (0640, root:consulate) and the audit key
# (0600, consulate), and the systemd unit (enabled, not started: edit the config first).
# An existing config.json, audit key or database is never overwritten: running it again
# upgrades the binary and its libraries and leaves the site's data alone.
# Needs nothing beyond a Debian 12 base system (sh, coreutils, useradd); no network.
set -eu
PATH=$PATH:/usr/sbin:/sbin # useradd, groupadd (not on the PATH of `su` without -)

prog=install.sh
die() {
    echo "$prog: $*" >&2
    exit 1
}
usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$0"
}

root=${DESTDIR:-}
while [ $# -gt 0 ]; do
    case $1 in
    --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        root=$2
        shift 2
        ;;
    --prefix=*)
        root=${1#--prefix=}
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "$prog: unknown argument '$1'" >&2
        usage >&2
        exit 2
        ;;
    esac
done

src=$(cd "$(dirname "$0")" && pwd)
for f in consulate lib/libssl.so lib/libcrypto.so consulate.service config.example.json; do
    [ -e "$src/$f" ] || die "$src/$f is missing: run install.sh from the extracted bundle"
done

if [ -n "$root" ]; then
    mkdir -p "$root" || die "cannot create $root"
    root=$(cd "$root" && pwd)
    [ "$root" != / ] || root=""
fi
system=0
if [ -z "$root" ]; then
    [ "$(id -u)" -eq 0 ] || die "run as root (or with --prefix DIR to install under DIR)"
    system=1
fi

opt=$root/opt/consulate
etc=$root/etc/consulate
var=$root/var/lib/consulate
unitdir=$root/etc/systemd/system
user=consulate

# ---- the user ----
if [ $system -eq 1 ]; then
    if ! getent group $user >/dev/null; then
        groupadd --system $user
    fi
    if ! getent passwd $user >/dev/null; then
        useradd --system --gid $user --home-dir /var/lib/consulate --no-create-home \
            --shell /usr/sbin/nologin --comment "consulate console" $user
        echo "$prog: created the system user $user"
    fi
fi
own() { # owner:group path…
    o=$1
    shift
    if [ $system -eq 1 ]; then chown "$o" "$@"; fi
}

# ---- the program: replaced as a whole (a running server keeps the files it has open) ----
umask 022
mkdir -p "$opt"
rm -rf "$opt/.new" "$opt/.old"
mkdir "$opt/.new"
cp -R "$src/lib" "$opt/.new/lib"
cp "$src/consulate" "$opt/.new/consulate"
chmod 0755 "$opt/.new/consulate"
chmod 0644 "$opt/.new/lib/"*
for f in config.example.json README.md; do
    if [ -e "$src/$f" ]; then
        cp "$src/$f" "$opt/.new/$f"
        chmod 0644 "$opt/.new/$f"
    fi
done
if [ -d "$opt/lib" ]; then mv "$opt/lib" "$opt/.old"; fi
mv "$opt/.new/lib" "$opt/lib"
for f in consulate config.example.json README.md; do
    if [ -e "$opt/.new/$f" ]; then mv -f "$opt/.new/$f" "$opt/$f"; fi
done
rm -rf "$opt/.new" "$opt/.old"
echo "$prog: installed $("$opt/consulate" version 2>/dev/null | head -1) in $opt"

# ---- state: /var/lib/consulate (the database and the audit anchor) ----
mkdir -p "$var"
chmod 0700 "$var"
own $user:$user "$var"

# ---- configuration: /etc/consulate ----
mkdir -p "$etc"
chmod 0750 "$etc"
own root:$user "$etc"
umask 077
if [ -e "$etc/config.json" ] || [ -L "$etc/config.json" ]; then
    echo "$prog: kept the existing $etc/config.json"
else
    cp "$src/config.example.json" "$etc/.config.json.new"
    chmod 0640 "$etc/.config.json.new"
    own root:$user "$etc/.config.json.new"
    mv "$etc/.config.json.new" "$etc/config.json"
    echo "$prog: wrote $etc/config.json (from config.example.json)"
fi
# The audit key (config.example.json: audit.key_file): made here, since the service may not
# write /etc/consulate. Only for a new site: a new key beside an existing database would not
# verify its log (see README, Tamper evidence).
if [ -e "$etc/audit.key" ]; then
    echo "$prog: kept the existing $etc/audit.key"
elif [ -e "$var/consulate.db" ]; then
    echo "$prog: WARNING: $var/consulate.db exists but $etc/audit.key does not: put the" \
        "key back from your backup (or see 'consulate audit reseal' in README.md)" >&2
else
    head -c 32 /dev/urandom >"$etc/.audit.key.new"
    chmod 0600 "$etc/.audit.key.new"
    own $user:$user "$etc/.audit.key.new"
    mv "$etc/.audit.key.new" "$etc/audit.key"
    echo "$prog: made a new audit key $etc/audit.key"
fi
umask 022

# ---- the systemd unit ----
mkdir -p "$unitdir"
cp "$src/consulate.service" "$unitdir/.consulate.service.new"
chmod 0644 "$unitdir/.consulate.service.new"
mv "$unitdir/.consulate.service.new" "$unitdir/consulate.service"
started=0
if [ $system -eq 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl enable consulate.service >/dev/null 2>&1 && echo "$prog: enabled consulate.service"
    if systemctl is-active --quiet consulate.service; then
        systemctl restart consulate.service && started=1
        echo "$prog: restarted consulate.service (the new binary migrates the database)"
    fi
else
    echo "$prog: installed $unitdir/consulate.service (systemd is not running here:" \
        "not enabled)"
fi

if [ $started -eq 0 ]; then
    cat <<NEXT

Next steps:
  1. Edit /etc/consulate/config.json: consul.addresses (every server of the site),
     consul.token, listen (this host's address, e.g. "10.0.0.5:8080"), allowed_hosts,
     tls.certificate (one PEM: certificate chain and key). Reference: $opt/README.md.
  2. Create the first administrator (asks for the password):
       runuser -u consulate -- /opt/consulate/consulate --config /etc/consulate/config.json \\
           user add admin --role admin
  3. Start it:  systemctl start consulate   (logs: journalctl -u consulate)
     Without systemd:  runuser -u consulate -- /opt/consulate/consulate serve \\
                           --config /etc/consulate/config.json
  4. Open http://<listen>/ and log in as admin.
The database and the audit anchor are in /var/lib/consulate, the audit key in
/etc/consulate/audit.key: back up both, separately.
NEXT
fi
