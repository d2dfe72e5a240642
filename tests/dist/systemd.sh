#!/bin/bash
# tests/dist/systemd.sh: the .deb's hardened systemd unit, run by a real systemd. Boots a
# Debian 12 container (systemd-nspawn, private network: only its own loopback) with the .deb
# installed as a site installs it, the first administrator made as the README says, and a
# probe unit that checks the service from inside, then powers the container off:
#   - consulate.service active under its unit (User=consulate, ProtectSystem=strict, …),
#     /healthz answers and the administrator logs in;
#   - the sandbox holds: a seccomp filter, no capabilities, no_new_privs, read-only mounts,
#     an empty /home;
#   - systemctl stop ends it cleanly (Result=success).
# A manual check, not part of `make test`: it needs root, systemd-container (systemd-nspawn)
# and debootstrap, and it downloads Debian 12 from the machine's apt mirror once (the root file
# system is kept in ROOTFS_CACHE for the next run). Needs no systemd on the machine itself.
#
#   tests/dist/systemd.sh build/consulate_<version>_amd64.deb
#
# Exit: 0 passed, 1 failed (with the probe's report), 2 usage, 77 cannot run here.
set -euo pipefail

deb=${1:-}
[ -f "$deb" ] || { echo "usage: systemd.sh FILE.deb" >&2; exit 2; }
deb=$(realpath "$deb")
[ "$(id -u)" -eq 0 ] || { echo "systemd.sh: not root: skipped"; exit 77; }
for t in systemd-nspawn debootstrap; do
    command -v "$t" >/dev/null || { echo "systemd.sh: no $t (apt-get install systemd-container debootstrap): skipped"; exit 77; }
done
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${ROOTFS_CACHE:-/var/tmp/consulate-bookworm-systemd}

# The base system with systemd and curl, made once.
if [ ! -x "$cache/lib/systemd/systemd" ]; then
    rm -rf "$cache.tmp"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl bookworm "$cache.tmp" "$mirror" >/dev/null
    mv "$cache.tmp" "$cache"
fi

root=$(mktemp -d /var/tmp/consulate-systemd-XXXXXX)
trap 'rm -rf "$root"' EXIT
cp -a "$cache/." "$root/"
cp "$deb" "$root/root/consulate.deb"
mkdir -p "$root/home/operator/.ssh" # ProtectHome must hide it from the service
# As a site installs it: the .deb with its runtime Depends from the mirror, then the first
# administrator as the service's user (README: The first login).
chroot "$root" /bin/sh -c 'DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/consulate.deb' >"$root.install.log" 2>&1 ||
    { cat "$root.install.log"; echo "systemd.sh: FAILED: the .deb did not install" >&2; exit 1; }
echo 'correct-horse-battery-9' | chroot "$root" runuser -u consulate -- consulate \
    --config /etc/consulate/config.json user add admin --role admin --password-stdin \
    >>"$root.install.log" 2>&1 ||
    { cat "$root.install.log"; echo "systemd.sh: FAILED: user add" >&2; exit 1; }
rm -f "$root.install.log"

cat >"$root/root/probe.sh" <<'EOF'
#!/bin/sh
sleep 3
{
echo "active: $(systemctl is-active consulate)"
echo "healthz: $(curl -sS -m 5 http://127.0.0.1:8080/healthz)"
echo "login: $(curl -sS -m 5 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"correct-horse-battery-9"}' http://127.0.0.1:8080/api/session)"
p=$(systemctl show consulate -p MainPID --value)
grep -E '^(Seccomp|NoNewPrivs|CapEff|CapBnd):' "/proc/$p/status" | tr -d '\t' | sed 's/:/: /'
echo "read-only mounts: $(grep -cE ' ro[, ]' "/proc/$p/mountinfo")"
echo "home entries: $(ls -A "/proc/$p/root/home" | wc -l)"
systemctl stop consulate
echo "stopped: $(systemctl show consulate -p Result --value)"
} >/root/result 2>&1
systemctl poweroff
EOF
chmod +x "$root/root/probe.sh"
cat >"$root/etc/systemd/system/probe.service" <<'EOF'
[Unit]
Description=probe consulate.service
After=consulate.service
Wants=consulate.service
[Service]
Type=oneshot
ExecStart=/root/probe.sh
[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable consulate.service probe.service >/dev/null 2>&1 ||
    { echo "systemd.sh: FAILED: systemctl enable" >&2; exit 1; }

timeout 180 systemd-nspawn -q --register=no --keep-unit --private-network -D "$root" -b >"$root.boot.log" 2>&1 || true
report=$(cat "$root/root/result" 2>/dev/null || echo "no report: the container did not run the probe (see $root.boot.log)")
echo "$report"
want=("active: active" 'healthz: {"ok":true' "login: 200" "Seccomp: 2" "NoNewPrivs: 1"
    "CapEff: 0000000000000000" "CapBnd: 0000000000000000" "home entries: 0" "stopped: success")
for w in "${want[@]}"; do
    grep -qF -- "$w" <<<"$report" || { echo "systemd.sh: FAILED: no '$w'" >&2; exit 1; }
done
grep -qE '^read-only mounts: [1-9]' <<<"$report" || { echo "systemd.sh: FAILED: no read-only mount" >&2; exit 1; }
rm -f "$root.boot.log"
echo "systemd.sh: passed"
