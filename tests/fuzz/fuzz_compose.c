/* libFuzzer entry for the compose module: `make fuzz FUZZ_TARGET=compose` (scripts/fuzz.sh
 * builds it with clang and seeds it with tests/fixtures/compose/, each file behind a few
 * operation bytes).
 * The first byte picks an address and the operations; the rest is the compose file. The
 * invariants, checked with abort(): nothing crashes or leaks; every edit that succeeds reads
 * back without a blocking diagnostic and with the retry-join list it promised; an add that
 * changed the file, undone by a remove, gives back the input byte for byte; a refused edit
 * returns no text; the diff of a text with itself is empty and every diff is well formed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const addrs[] = {"10.250.0.9",       "fd00::9",   "[fd00::9]:8302",
                                    "consul-9.example", "10.1.0.11", "10.0.0.1"};

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Reads t and returns 1 when addr is in its retry-join list; aborts unless it reads cleanly. */
static int
listed(const char *t, size_t n, const char *addr)
{
    struct compose_command *c = NULL;
    struct compose_error err;
    CHECK(compose_read(t, n, &c, &err) == COMPOSE_OK);
    CHECK(!c->blocking);
    int found = 0;
    for (size_t i = 0; i < c->n_retry_join; i++) {
        found |= compose_addr_equal(c->retry_join[i], addr);
    }
    compose_command_free(c);
    return found;
}

static void
check_diff(const char *a, size_t an, const char *b, size_t bn)
{
    char *d = NULL;
    struct compose_error err;
    int rc = compose_diff(a, an, b, bn, "a", "b", &d, &err);
    CHECK(rc == COMPOSE_OK || rc == COMPOSE_TOO_BIG);
    if (rc == COMPOSE_OK) {
        CHECK(d != NULL);
        CHECK((an == bn && memcmp(a, b, an) == 0) == (*d == '\0'));
        CHECK(*d == '\0' || strncmp(d, "--- a\n+++ b\n@@ -", 16) == 0);
    } else {
        CHECK(d == NULL);
    }
    free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    unsigned sel = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const char *addr = addrs[sel % ARRAY_LEN(addrs)];
    struct compose_error err;

    struct compose_command *c = NULL;
    int rc = compose_read(text, len, &c, &err);
    CHECK((rc == COMPOSE_OK) == (c != NULL));
    if (c) {
        CHECK(c->flags_start <= c->flags_end && c->flags_end <= c->argc);
        for (size_t i = 0; i < c->argc; i++) {
            CHECK(c->argv[i] != NULL && c->argv_line[i] >= 1);
        }
        for (size_t i = 0; i < c->n_diags; i++) {
            CHECK(c->diags[i].message != NULL);
        }
        compose_command_free(c);
    }

    char *out = NULL;
    size_t out_len = 0;
    rc = compose_add(text, len, addr, &out, &out_len, &err);
    if (rc == COMPOSE_OK) {
        CHECK(listed(out, out_len, addr));
        check_diff(text, len, out, out_len);
        char *back = NULL;
        size_t back_len = 0;
        CHECK(compose_remove(out, out_len, addr, &back, &back_len, &err) == COMPOSE_OK);
        CHECK(back_len == len && memcmp(back, text, len) == 0);
        free(back);
    } else if (rc == COMPOSE_UNCHANGED) {
        CHECK(out != NULL && out_len == len && memcmp(out, text, len) == 0);
        CHECK(listed(text, len, addr));
    } else {
        CHECK(out == NULL);
    }
    free(out);
    out = NULL;

    rc = compose_remove(text, len, addr, &out, &out_len, &err);
    if (rc == COMPOSE_OK) {
        CHECK(!listed(out, out_len, addr));
    } else if (rc == COMPOSE_UNCHANGED) {
        CHECK(out_len == len && memcmp(out, text, len) == 0);
    } else {
        CHECK(out == NULL);
    }
    free(out);
    out = NULL;

    if (sel & 0x80) {
        rc = compose_fix_trap(text, len, &out, &out_len, &err);
        if (rc == COMPOSE_OK) {
            struct compose_command *f = NULL;
            CHECK(compose_read(out, out_len, &f, &err) == COMPOSE_OK);
            for (size_t i = 0; i < f->n_diags; i++) {
                CHECK(f->diags[i].kind != COMPOSE_DIAG_TRAP_BACKSLASH);
            }
            compose_command_free(f);
        } else {
            CHECK(rc == COMPOSE_UNCHANGED || out == NULL);
        }
        free(out);
        out = NULL;
    }
    if (sel & 0x40) {
        const char *join[] = {"10.1.0.11", "10.1.0.12", "10.1.0.15"};
        struct compose_node node = {.source_addr = "10.1.0.11",
                                    .new_addr = "10.1.0.15",
                                    .node_name = "consul-5",
                                    .join = join,
                                    .n_join = ARRAY_LEN(join)};
        rc = compose_new_node(text, len, &node, &out, &out_len, &err);
        if (rc == COMPOSE_OK) {
            struct compose_command *f = NULL;
            CHECK(compose_read(out, out_len, &f, &err) == COMPOSE_OK);
            CHECK(!f->blocking);
            for (size_t i = 0; i < f->n_retry_join; i++) {
                int in = 0;
                for (size_t j = 0; j < ARRAY_LEN(join); j++) {
                    in |= compose_addr_equal(f->retry_join[i], join[j]);
                }
                CHECK(in);
            }
            for (size_t j = 0; j < ARRAY_LEN(join); j++) {
                CHECK(listed(out, out_len, join[j]));
            }
            compose_command_free(f);
        } else {
            CHECK(rc == COMPOSE_UNCHANGED || out == NULL);
        }
        free(out);
        out = NULL;
    }
    check_diff(text, len, text, len);
    return 0;
}
