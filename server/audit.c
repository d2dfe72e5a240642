/* audit: see include/audit.h. */
#include "audit.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "util.h"

static void
put_len(crypto_hash_sha256_state *st, unsigned char tag, size_t len)
{
    unsigned char hdr[9];
    hdr[0] = tag;
    uint64_t n = (uint64_t)len;
    for (int i = 8; i >= 1; i--) {
        hdr[i] = (unsigned char)(n & 0xff);
        n >>= 8;
    }
    crypto_hash_sha256_update(st, hdr, sizeof(hdr));
}

void
audit_hash_row(const struct audit_value cols[AUDIT_NCOLS], char out[65])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (int c = 0; c < AUDIT_NCOLS; c++) {
        const struct audit_value *v = &cols[c];
        char num[40];
        int n;
        switch (v->type) {
        case AUDIT_NULL:
            put_len(&st, 'n', 0);
            break;
        case AUDIT_INT:
            n = snprintf(num, sizeof(num), "%lld", (long long)v->i);
            put_len(&st, 'i', (size_t)n);
            crypto_hash_sha256_update(&st, (const unsigned char *)num, (size_t)n);
            break;
        case AUDIT_FLOAT:
            n = snprintf(num, sizeof(num), "%.17g", v->f);
            put_len(&st, 'f', (size_t)n);
            crypto_hash_sha256_update(&st, (const unsigned char *)num, (size_t)n);
            break;
        case AUDIT_TEXT:
        case AUDIT_BLOB:
            put_len(&st, v->type == AUDIT_TEXT ? 't' : 'b', v->len);
            if (v->len) {
                crypto_hash_sha256_update(&st, v->data, v->len);
            }
            break;
        }
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    hex_encode(h, sizeof(h), out);
}

int
audit_outcome_valid(const char *outcome)
{
    return outcome && (strcmp(outcome, "ok") == 0 || strcmp(outcome, "denied") == 0 ||
                       strcmp(outcome, "error") == 0);
}

int
audit_action_valid(const char *action)
{
    size_t len = action ? strlen(action) : 0;
    if (len == 0 || len > 64 || action[0] == '.' || action[len - 1] == '.') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = action[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) {
            return 0;
        }
    }
    return 1;
}
