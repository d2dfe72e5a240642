/* libssl_compat: built as build/lib/libssl.so beside the consulate binary.
 *
 * Debian 12's civetweb 1.15 loads OpenSSL at run time with dlopen("libssl.so") and looks
 * up the OpenSSL 1.1 names. OpenSSL 3 no longer exports SSL_get_peer_certificate (it became
 * a macro for SSL_get1_peer_certificate), so civetweb would call a NULL pointer on the first
 * TLS connection. consulate is linked with an RPATH of $ORIGIN/lib, so civetweb's dlopen
 * finds this library first; it defines the one missing name and depends on libssl.so.3,
 * through which every other name resolves. */
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

X509 *SSL_get_peer_certificate(const SSL *s);

/* Same reference semantics as OpenSSL 1.1: the caller frees the certificate. */
X509 *
SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
