/* The request-body fuzz target (tests/fuzz/fuzz_body.c) in `make test`: its seed corpus
 * replayed, a few inputs too large to keep as files, and a short deterministic mutation run
 * over the corpus — each input on a 100 KiB stack like a civetweb worker's. The long
 * coverage-guided run is `make fuzz`. Also the messages json_body_parse gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "../fuzz/fuzz_body.c"

#define MUTATIONS 3000

struct corpus {
    char *data[256];
    size_t len[256];
    size_t n;
};

static void
corpus_load(struct corpus *c)
{
    const char *src = getenv("CONSULATE_SRC");
    char *dir = xasprintf("%s/tests/fuzz/corpus/body", src ? src : ".");
    DIR *d = opendir(dir);
    if (!d) {
        fail_msg("cannot open the corpus %s (set CONSULATE_SRC)", dir);
    }
    struct dirent *e;
    while ((e = readdir(d)) && c->n < 256) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char *path = xasprintf("%s/%s", dir, e->d_name);
        size_t len = 0;
        char *data = file_read_all(path, 1 << 20, &len);
        free(path);
        assert_non_null(data);
        c->data[c->n] = data;
        c->len[c->n++] = len;
    }
    closedir(d);
    free(dir);
}

static void
corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->data[i]);
    }
}

static void
test_corpus_replay(void **state)
{
    (void)state;
    struct corpus c = {0};
    corpus_load(&c);
    assert_true(c.n >= 20);
    for (size_t i = 0; i < c.n; i++) {
        LLVMFuzzerTestOneInput((const uint8_t *)c.data[i], c.len[i]);
    }
    corpus_free(&c);
}

/* n copies of unit, then tail. */
static char *
repeat(const char *unit, size_t n, const char *tail, size_t *len)
{
    struct buf b;
    buf_init(&b, 64 << 20);
    for (size_t i = 0; i < n; i++) {
        buf_puts(&b, unit);
    }
    buf_puts(&b, tail);
    *len = b.len;
    return buf_steal(&b);
}

static void
test_large_inputs(void **state)
{
    (void)state;
    static const struct {
        const char *unit, *tail;
        size_t n;
    } big[] = {
        {"[", "", 100000},         {"{\"a\":", "1", 50000},   {"[1,", "", 100000},
        {"\"", "", 1 << 20},       {"a", "\"", 1 << 20},      {"{\"k\":1,", "\"z\":2}", 100000},
        {"[[[[[[[[[[", "", 10000}, {"\\u0041", "\"", 100000},
    };
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        size_t len;
        char *in = repeat(big[i].unit, big[i].n, big[i].tail, &len);
        LLVMFuzzerTestOneInput((const uint8_t *)in, len);
        free(in);
    }
}

/* xorshift64*: the same mutations on every run */
static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void
test_mutations(void **state)
{
    (void)state;
    struct corpus c = {0};
    corpus_load(&c);
    uint64_t seed = 0x636f6e73756c6174ULL;
    static const char *const tokens[] = {"[",   "]",    "{",     "}", "\"",   ":",    ",",   "\\",
                                         "\\u", "null", "1e999", "-", "\xff", "\xc3", "\x00"};
    for (int m = 0; m < MUTATIONS; m++) {
        size_t pick = next_rand(&seed) % c.n;
        struct buf b;
        buf_init(&b, 4 << 20);
        buf_append(&b, c.data[pick], c.len[pick]);
        int edits = 1 + (int)(next_rand(&seed) % 8);
        for (int e = 0; e < edits; e++) {
            size_t at = b.len ? next_rand(&seed) % (b.len + 1) : 0;
            const char *tok = tokens[next_rand(&seed) % (sizeof(tokens) / sizeof(tokens[0]))];
            size_t tl = tok[0] ? strlen(tok) : 1;
            switch (next_rand(&seed) % 4) {
            case 0: { /* insert a token */
                struct buf nb;
                buf_init(&nb, 4 << 20);
                buf_append(&nb, b.data, at);
                buf_append(&nb, tok, tl);
                buf_append(&nb, b.data + at, b.len - at);
                buf_free(&b);
                b = nb;
                break;
            }
            case 1: /* flip a byte */
                if (at < b.len) {
                    b.data[at] = (char)(b.data[at] ^ (1 << (next_rand(&seed) % 8)));
                }
                break;
            case 2: /* cut the tail */
                b.len = at;
                break;
            default: /* duplicate a slice */
                if (at < b.len) {
                    size_t sl = (b.len - at) < 64 ? b.len - at : 64;
                    char *slice = xmalloc(sl);
                    memcpy(slice, b.data + at, sl); /* b.data may move while appending */
                    buf_append(&b, slice, sl);
                    free(slice);
                }
                break;
            }
        }
        LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
        buf_free(&b);
    }
    corpus_free(&c);
}

static void
expect(const char *body, int want, const char *words)
{
    cJSON *j = NULL;
    char msg[200];
    int rc = json_body_parse(body, body ? strlen(body) : 0, &j, msg, sizeof(msg));
    if (rc != want || (words && !strstr(msg, words))) {
        fail_msg("%s: rc %d (want %d), message \"%s\"", body ? body : "(null)", rc, want, msg);
    }
    assert_true((rc == JSON_BODY_OK) == (j != NULL));
    cJSON_Delete(j);
}

static void
test_messages(void **state)
{
    (void)state;
    expect("{\"a\":1}", JSON_BODY_OK, NULL);
    expect(NULL, JSON_BODY_EMPTY, "must be a JSON object");
    expect("", JSON_BODY_EMPTY, "must be a JSON object");
    expect("[1]", JSON_BODY_NOT_OBJECT, "must be a JSON object");
    expect("\"s\"", JSON_BODY_NOT_OBJECT, "must be a JSON object");
    expect("{\"a\":\"\xc3\x28\"}", JSON_BODY_NOT_UTF8, "UTF-8");
    expect("{\"a\":", JSON_BODY_SYNTAX, "not valid JSON (at byte");
    expect("{\"a\":1} x", JSON_BODY_SYNTAX, "not valid JSON");
    /* a NUL: C strings would end there (a name "a\u0000b" stored as "a") */
    expect("{\"a\":\"x\\u0000y\"}", JSON_BODY_NUL, "\\u0000 (NUL) in a string (at byte 7)");
    expect("{\"a\\u0000b\":1}", JSON_BODY_NUL, "(NUL) in a string");
    expect("{\"a\":[\"\\u0000\"]}", JSON_BODY_NUL, "(NUL)");
    expect("{\"a\":\"\\\\u0000\"}", JSON_BODY_OK, NULL); /* a backslash, then "u0000" */
    expect("{\"a\":\"\\u0001\"}", JSON_BODY_OK, NULL);
    cJSON *j = NULL;
    char m[200];
    assert_int_equal(json_body_parse("{\"a\":1}\0{}", 10, &j, m, sizeof(m)), JSON_BODY_NUL);
    assert_non_null(strstr(m, "NUL byte (at byte 7)"));
    /* a key twice, at any depth: parsers differ on which one wins */
    expect("{\"a\":1,\"b\":2,\"a\":3}", JSON_BODY_DUP_KEY, "the key 'a' twice");
    expect("{\"o\":{\"x\":1,\"x\":1}}", JSON_BODY_DUP_KEY, "the key 'x' twice");
    expect("{\"l\":[{\"y\":1},{\"y\":2,\"y\":3}]}", JSON_BODY_DUP_KEY, "'y' twice");
    expect("{\"a\":1,\"A\":2,\"l\":[{\"a\":1},{\"a\":2}]}", JSON_BODY_OK, NULL);
    size_t len;
    char *deep = repeat("[", 65, "", &len);
    expect(deep, JSON_BODY_TOO_DEEP, "more than 64 deep");
    free(deep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_corpus_replay),
        cmocka_unit_test(test_large_inputs),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
