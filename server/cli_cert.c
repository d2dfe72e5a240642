/* cli_cert: `consulate cert --self-signed`. An ECDSA P-256 key, an X.509 v3 certificate for
 * the names given (subjectAltName DNS or IP each, CN the first), valid 825 days (the most
 * Apple platforms accept), CA:FALSE with serverAuth (Firefox refuses a CA certificate as a
 * server's). */
#include "cli_cert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "util.h"

#define CERT_DAYS 825
#define CERT_MAX_HOSTS 32

static const char usage_text[] =
    "usage: consulate cert --self-signed [--host NAME]... [--out FILE]\n"
    "  NAME is a DNS name or an IP address (default: localhost and 127.0.0.1);\n"
    "  FILE defaults to consulate.pem and is never overwritten.\n";

/* 1 when name is a DNS name a certificate may carry: labels of letters, digits and '-'
 * (not at either end) separated by dots, a first label of "*" allowed. */
static int
dns_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 253) {
        return 0;
    }
    const char *p = name;
    if (strncmp(p, "*.", 2) == 0) {
        p += 2;
    }
    while (*p) {
        size_t n = strcspn(p, ".");
        if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-') {
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-')) {
                return 0;
            }
        }
        p += n;
        if (*p == '.') {
            p++;
            if (!*p) {
                return 0;
            }
        }
    }
    return 1;
}

/* Adds one extension given in OpenSSL's configuration syntax. Returns 0 or -1. */
static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!e) {
        return -1;
    }
    int rc = X509_add_ext(x, e, -1) ? 0 : -1;
    X509_EXTENSION_free(e);
    return rc;
}

/* The certificate for hosts signed by key. NULL on failure. */
static X509 *
make_cert(EVP_PKEY *key, const char *const *hosts, int n)
{
    X509 *x = X509_new();
    if (!x) {
        return NULL;
    }
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int ok = X509_set_version(x, 2) && RAND_bytes(serial, sizeof(serial)) == 1;
    serial[0] &= 0x7f; /* positive */
    ok = ok && (bn = BN_bin2bn(serial, sizeof(serial), NULL)) &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
         X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL) && X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hosts[0], -1,
                                    -1, 0) &&
         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                    (const unsigned char *)"consulate (self-signed)", -1, -1, 0) &&
         X509_set_issuer_name(x, name);
    struct buf san;
    buf_init(&san, 16384);
    for (int i = 0; i < n; i++) {
        buf_puts(&san, i ? "," : "");
        buf_puts(&san, ip_literal_valid(hosts[i]) ? "IP:" : "DNS:");
        buf_puts(&san, hosts[i]);
    }
    buf_append(&san, "", 1);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ok = ok && add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
         add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") == 0 &&
         add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") == 0 &&
         add_ext(x, &ctx, NID_subject_key_identifier, "hash") == 0 &&
         add_ext(x, &ctx, NID_subject_alt_name, san.data) == 0 &&
         X509_sign(x, key, EVP_sha256()) > 0;
    buf_free(&san);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* "AB:CD:…": the SHA-256 of the certificate's DER, as browsers show it. */
static int
fingerprint(X509 *x, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(x, EVP_sha256(), md, &n) || outlen < (size_t)n * 3) {
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        snprintf(out + i * 3, outlen - i * 3, "%02X%s", md[i], i + 1 < n ? ":" : "");
    }
    return 0;
}

int
cli_cert_main(int argc, char **argv)
{
    const char *hosts[CERT_MAX_HOSTS];
    int n = 0, self_signed = 0;
    const char *out = "consulate.pem";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--self-signed") == 0) {
            self_signed = 1;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            const char *h = argv[++i];
            if (!ip_literal_valid(h) && !dns_name_valid(h)) {
                fprintf(stderr, "consulate: --host '%s' is neither a DNS name nor an IP address\n",
                        h);
                return 2;
            }
            if (n == CERT_MAX_HOSTS) {
                fprintf(stderr, "consulate: at most %d --host names\n", CERT_MAX_HOSTS);
                return 2;
            }
            hosts[n++] = h;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc && argv[i + 1][0]) {
            out = argv[++i];
        } else {
            fprintf(stderr, "consulate: unexpected argument '%s'\n%s", argv[i], usage_text);
            return 2;
        }
    }
    if (!self_signed) {
        fprintf(stderr, "consulate: cert needs --self-signed (the only kind it makes)\n%s",
                usage_text);
        return 2;
    }
    if (n == 0) {
        hosts[n++] = "localhost";
        hosts[n++] = "127.0.0.1";
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "consulate: cannot create %s: %s%s\n", out, strerror(errno),
                errno == EEXIST ? " (cert never overwrites a file)" : "");
        return 1;
    }
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? make_cert(key, hosts, n) : NULL;
    FILE *f = fdopen(fd, "w");
    int ok = x && f && fchmod(fd, 0600) == 0 && PEM_write_X509(f, x) &&
             PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) && fflush(f) == 0 &&
             fsync(fd) == 0;
    if (f) {
        ok = fclose(f) == 0 && ok;
    } else {
        close(fd);
    }
    char fp[EVP_MAX_MD_SIZE * 3 + 1];
    ok = ok && fingerprint(x, fp, sizeof(fp)) == 0;
    if (!ok) {
        unlink(out);
        fprintf(stderr, "consulate: cannot make the certificate (%s); nothing was written\n",
                key ? "OpenSSL failed" : "no EC key");
    } else {
        printf("consulate: wrote %s (certificate and private key, mode 0600)\n", out);
        printf("names:");
        for (int i = 0; i < n; i++) {
            printf(" %s", hosts[i]);
        }
        printf("\nvalid for %d days\n", CERT_DAYS);
        printf("SHA-256 fingerprint: %s\n", fp);
        printf("use it with \"tls\": {\"certificate\": \"%s\"}; check the fingerprint the browser "
               "shows against this one before trusting it\n",
               out);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ok ? 0 : 1;
}
