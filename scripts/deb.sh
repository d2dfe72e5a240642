#!/bin/sh
# deb.sh: makes $BUILD/consulate_VERSION_ARCH.deb with dpkg-deb alone (make deb).
#
# Layout: /usr/lib/consulate/consulate with the OpenSSL 3 shims (libssl.so, libcrypto.so:
# the names civetweb dlopens) in /usr/lib/consulate/lib/
# (the binary's RPATH $ORIGIN/lib finds it there; $ORIGIN is the binary's real directory, so
# the /usr/bin/consulate symlink works too), the other libraries from Debian's packages
# (Depends: packaging/runtime-deps.txt, the list the Docker image installs too, and libc6),
# /lib/systemd/system/consulate.service, /etc/consulate/config.json as a conffile, and the
# maintainer scripts in packaging/deb/ (system user in postinst, purge in postrm).
set -eu
BUILD=${BUILD:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VERSION=${VERSION:-$(sed -n 's/^#define CONSULATE_VERSION "\(.*\)"$/\1/p' include/app.h)}
ARCH=${ARCH:-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
[ -n "$VERSION" ] || { echo "deb: no CONSULATE_VERSION in include/app.h" >&2; exit 1; }
for f in "$BUILD/consulate" "$BUILD/lib/libssl.so" "$BUILD/lib/libcrypto.so"; do
    [ -f "$f" ] || { echo "deb: $f is missing (make $f)" >&2; exit 1; }
done

out=$BUILD/consulate_${VERSION}_$ARCH.deb
root=$BUILD/deb/consulate_${VERSION}_$ARCH
rm -rf "$root"
umask 022
mkdir -p "$root/DEBIAN" "$root/usr/lib/consulate/lib" "$root/usr/bin" \
    "$root/lib/systemd/system" "$root/etc/consulate" "$root/usr/share/doc/consulate"

install -m 0755 "$BUILD/consulate" "$root/usr/lib/consulate/consulate"
install -m 0644 "$BUILD/lib/libssl.so" "$root/usr/lib/consulate/lib/libssl.so"
install -m 0644 "$BUILD/lib/libcrypto.so" "$root/usr/lib/consulate/lib/libcrypto.so"
ln -s ../lib/consulate/consulate "$root/usr/bin/consulate"
sed -e "s|@BIN@|/usr/bin/consulate|g" -e "s|@DOC@|/usr/share/doc/consulate/README.md.gz|g" \
    packaging/consulate.service.in >"$root/lib/systemd/system/consulate.service"
chmod 0644 "$root/lib/systemd/system/consulate.service"
install -m 0640 packaging/config.example.json "$root/etc/consulate/config.json"
install -m 0644 packaging/config.example.json "$root/usr/share/doc/consulate/config.example.json"
gzip -9n <README.md >"$root/usr/share/doc/consulate/README.md.gz"
chmod 0644 "$root/usr/share/doc/consulate/README.md.gz"
chmod 0750 "$root/etc/consulate"

# glibc (the build's version or newer), the libraries' packages, and passwd for postinst's
# useradd/groupadd (required in every Debian, but not Essential).
depends="libc6 (>= $(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//')), passwd"
for p in $(grep -v '^[[:space:]]*#' packaging/runtime-deps.txt | awk 'NF {print $1}'); do
    depends="$depends, $p"
done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" packaging/deb/control.in >"$root/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"
done

# The files' times: the commit's (reproducible); owner root:root whoever builds.
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
find "$root" -exec touch -h -d "@$mtime" {} +
SOURCE_DATE_EPOCH=$mtime dpkg-deb --root-owner-group -Zxz --build "$root" "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
rm -rf "$BUILD/deb"
echo "deb: $out ($(du -k "$out" | cut -f1) kB)"
