/* libcrypto_compat: built as build/lib/libcrypto.so beside the consulate binary (and shipped
 * with it in the bundle and the .deb).
 *
 * Debian 12's civetweb 1.15 loads OpenSSL at run time with dlopen("libcrypto.so") as well as
 * dlopen("libssl.so") (see libssl_compat.c). The unversioned name libcrypto.so is only a
 * symlink in libssl-dev: on a site's machine without the -dev packages the dlopen fails and
 * civetweb has no TLS. This library defines nothing and depends on libcrypto.so.3, so
 * civetweb's dlsym through its handle finds every name there; the binary's RPATH
 * ($ORIGIN/lib) finds it first. */
int consulate_libcrypto_compat;
int consulate_libcrypto_compat = 1;
