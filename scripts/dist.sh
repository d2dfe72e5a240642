#!/bin/sh
# dist.sh: makes the offline bundle $BUILD/dist/consulate-VERSION-linux-ARCH.tar.gz (make dist).
#
# consulate-VERSION/ holds the binary, lib/ with every shared library it needs that is not
# part of glibc (found through the RPATH $ORIGIN/lib the binary is linked with), the OpenSSL 3
# shims lib/libssl.so and lib/libcrypto.so that civetweb dlopens, the example config, the systemd unit, install.sh
# and README.md. The libraries are found from the binary itself: the loader's own answer
# (its PT_INTERP in --list mode, as ldd asks it) for the binary and for the shims, whose needs the binary's DT_NEEDED does not show.
# Then the bundle is checked the same way: each object in it resolves only inside lib/ or
# to glibc.
set -eu
BUILD=${BUILD:-build}
unset LD_LIBRARY_PATH LD_PRELOAD # the loader answers for the binary as it will run
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VERSION=${VERSION:-$(sed -n 's/^#define CONSULATE_VERSION "\(.*\)"$/\1/p' include/app.h)}
ARCH=${ARCH:-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
[ -n "$VERSION" ] || { echo "dist: no CONSULATE_VERSION in include/app.h" >&2; exit 1; }
bin=$BUILD/consulate
shim=$BUILD/lib/libssl.so
cshim=$BUILD/lib/libcrypto.so
for f in "$bin" "$shim" "$cshim"; do
    [ -f "$f" ] || { echo "dist: $f is missing (make $f)" >&2; exit 1; }
done

name=consulate-$VERSION
out=$BUILD/dist/$name-linux-$ARCH.tar.gz
stage=$BUILD/dist/stage
rm -rf "$stage"
mkdir -p "$stage/$name/lib"
dir=$stage/$name

# glibc's own objects: every Debian 12 machine has them (package libc6), and they must match
# the machine's ld.so, so they are never bundled.
is_glibc() {
    case $1 in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | \
        librt.so.* | libresolv.so.* | libanl.so.* | libutil.so.* | libnsl.so.* | libmvec.so.* | \
        libBrokenLocale.so.* | libthread_db.so.* | libc_malloc_debug.so.* | libnss_*.so.*)
        return 0
        ;;
    esac
    return 1
}

# The loader the binary names (PT_INTERP): what ldd runs in list mode, without ldd's shell
# script around it (one process per object, not a dozen).
interp=$(readelf -l "$bin" | sed -n 's/.*program interpreter: \(.*\)\]$/\1/p')
[ -x "$interp" ] || { echo "dist: $bin names no loader" >&2; exit 1; }

# "soname path" of each library the loader finds for the objects given; fails on
# "not found".
needs() {
    for o in "$@"; do
        "$interp" --list "$o" | while read -r l1 l2 l3 _; do
            case "$l1 $l2 $l3" in
            *"not found"*) echo "dist: $o: $l1 not found" >&2; echo "FAIL" ;;
            *" => /"*) echo "$l1 $l3" ;;
            esac
        done
    done
}

list=$(needs "$bin" "$shim" "$cshim")
case $list in *FAIL*) exit 1 ;; esac
echo "$list" | sort -u | while read -r so path; do
    [ -n "$so" ] || continue
    is_glibc "$so" && continue
    cp -L "$path" "$dir/lib/$so"
    chmod 0644 "$dir/lib/$so"
done
cp "$bin" "$dir/consulate"
chmod 0755 "$dir/consulate"
cp "$shim" "$dir/lib/libssl.so"
cp "$cshim" "$dir/lib/libcrypto.so"
chmod 0644 "$dir/lib/libssl.so" "$dir/lib/libcrypto.so"

# A library with DT_RUNPATH would look for its own needs there and not through the binary's
# DT_RPATH: it would escape the bundle.
for f in "$dir"/lib/*; do
    if readelf -d "$f" | grep -q '(RUNPATH)'; then
        echo "dist: $f has a RUNPATH: its needs would not be found in lib/" >&2
        exit 1
    fi
done
readelf -d "$dir/consulate" | grep -q 'Library rpath: \[\$ORIGIN/lib\]' ||
    { echo "dist: $bin has no DT_RPATH \$ORIGIN/lib" >&2; exit 1; }

# The check: from the bundle, everything resolves in lib/ or to glibc. The libraries are
# asked with lib/ first, as the binary's RPATH makes it for them and for the dlopened shim.
abs=$(cd "$dir" && pwd)
bad=$( { "$interp" --list "$abs/consulate"
        for f in "$abs"/lib/*; do "$interp" --library-path "$abs/lib" --list "$f"; done; } |
    while read -r l1 l2 l3 _; do
        case "$l1 $l2 $l3" in
        *"not found"*) echo "$l1 not found" ;;
        *" => $abs/lib/"*) ;;
        *" => /"*) is_glibc "$l1" || echo "$l1 => $l3" ;;
        esac
    done)
if [ -n "$bad" ]; then
    echo "dist: the bundle needs objects from outside it:" >&2
    echo "$bad" | sort -u >&2
    exit 1
fi

sed -e "s|@BIN@|/opt/consulate/consulate|g" -e "s|@DOC@|/opt/consulate/README.md|g" \
    packaging/consulate.service.in >"$dir/consulate.service"
cp packaging/config.example.json README.md "$dir/"
cp packaging/install.sh "$dir/install.sh"
chmod 0644 "$dir/consulate.service" "$dir/config.example.json" "$dir/README.md"
chmod 0755 "$dir/install.sh"

# Reproducible: fixed order, owner and times (the commit's time when there is one).
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    -C "$stage" -cf - "$name" | gzip -6n >"$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$stage"
echo "dist: $out ($(du -k "$out" | cut -f1) kB)"
