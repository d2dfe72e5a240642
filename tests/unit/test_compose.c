/* Unit tests for the compose module (server/compose*.c): reading services.consul.command as
 * docker-compose and the agent do, adding and removing retry-join entries in every form, the
 * new server's file, the backslash trap and its fix, refusals, hostile input, and the unified
 * diff compared with GNU diff -u. Fixtures: tests/fixtures/compose/ (CONSULATE_SRC). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "compose.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------- helpers ---------- */

struct text {
    char *s;
    size_t n;
};

/* Reads tests/fixtures/compose/<name>; the caller frees .s. */
static struct text
fixture(const char *name)
{
    const char *src = getenv("CONSULATE_SRC");
    char *path = xasprintf("%s/tests/fixtures/compose/%s", src ? src : ".", name);
    struct text t = {0};
    t.s = file_read_all(path, 1 << 20, &t.n);
    if (!t.s) {
        fprintf(stderr, "cannot read fixture %s\n", path);
    }
    free(path);
    assert_non_null(t.s);
    return t;
}

static struct text
text_of(const char *s)
{
    return (struct text){.s = xstrdup(s), .n = strlen(s)};
}

static struct compose_command *
read_ok(struct text t)
{
    struct compose_command *c = NULL;
    struct compose_error err = {0};
    int rc = compose_read(t.s, t.n, &c, &err);
    if (rc != COMPOSE_OK) {
        fprintf(stderr, "compose_read: %s: %s\n", compose_rc_name(rc), err.message);
    }
    assert_int_equal(rc, COMPOSE_OK);
    assert_non_null(c);
    return c;
}

static void
assert_argv(const struct compose_command *c, const char *const *exp, size_t n)
{
    for (size_t i = 0; i < n && i < c->argc; i++) {
        assert_string_equal(c->argv[i], exp[i]);
    }
    assert_int_equal(c->argc, n);
}

static void
assert_joins(const struct compose_command *c, const char *const *exp, size_t n)
{
    for (size_t i = 0; i < n && i < c->n_retry_join; i++) {
        assert_string_equal(c->retry_join[i], exp[i]);
    }
    assert_int_equal(c->n_retry_join, n);
}

static const struct compose_diag *
find_diag(const struct compose_command *c, int kind)
{
    for (size_t i = 0; i < c->n_diags; i++) {
        if (c->diags[i].kind == kind) {
            return &c->diags[i];
        }
    }
    return NULL;
}

static size_t
count_diags(const struct compose_command *c, int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_diags; i++) {
        n += c->diags[i].kind == kind;
    }
    return n;
}

/* The unified diff of a and b without its two header lines. */
static char *
diff_body(struct text a, struct text b)
{
    char *d = NULL;
    struct compose_error err = {0};
    assert_int_equal(compose_diff(a.s, a.n, b.s, b.n, "old", "new", &d, &err), COMPOSE_OK);
    assert_non_null(d);
    if (*d == '\0') {
        return d;
    }
    assert_true(strncmp(d, "--- old\n+++ new\n", 16) == 0);
    char *body = xstrdup(d + 16);
    free(d);
    return body;
}

/* Runs compose_add or compose_remove expecting COMPOSE_OK; returns the new text. */
static struct text
edit_ok(int (*edit)(const char *, size_t, const char *, char **, size_t *, struct compose_error *),
        const char *name, struct text t, const char *addr)
{
    struct text o = {0};
    struct compose_error err = {0};
    int rc = edit(t.s, t.n, addr, &o.s, &o.n, &err);
    if (rc != COMPOSE_OK) {
        fprintf(stderr, "%s %s: %s: %s\n", name, addr, compose_rc_name(rc), err.message);
    }
    assert_int_equal(rc, COMPOSE_OK);
    assert_non_null(o.s);
    assert_int_equal(strlen(o.s), o.n);
    return o;
}

#define add_ok(t, addr) edit_ok(compose_add, "compose_add", (t), (addr))
#define remove_ok(t, addr) edit_ok(compose_remove, "compose_remove", (t), (addr))

static void
assert_same_text(struct text a, struct text b)
{
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.s, b.s, a.n);
}

/* Every line break of t is CR LF. */
static void
assert_all_crlf(struct text t)
{
    for (size_t i = 0; i < t.n; i++) {
        if (t.s[i] == '\n') {
            assert_true(i > 0 && t.s[i - 1] == '\r');
        }
    }
}

/* An edit that must be refused: the code, a word of the message, the line, and no output. */
static void
assert_refused(int rc, char *out, const struct compose_error *err, int code, const char *word,
               int line)
{
    if (rc != code || !strstr(err->message, word)) {
        fprintf(stderr, "got %s (%s), wanted %s with \"%s\"\n", compose_rc_name(rc), err->message,
                compose_rc_name(code), word);
    }
    assert_int_equal(rc, code);
    assert_int_equal(err->code, code);
    assert_non_null(strstr(err->message, word));
    if (line >= 0) {
        assert_int_equal(err->line, line);
    }
    assert_null(out);
}

/* Every fixture that can be edited, with the entry it lists last and first. */
static const struct {
    const char *name;
    int style;
    const char *first, *last;
} editable[] = {
    {"dq-continuation.yaml", COMPOSE_STYLE_DOUBLE, "192.168.40.21", "192.168.40.23"},
    {"dq-continuation-crlf.yaml", COMPOSE_STYLE_DOUBLE, "192.168.40.21", "192.168.40.23"},
    {"list-form.yaml", COMPOSE_STYLE_BLOCK_SEQ, "172.20.3.5", "172.20.3.7"},
    {"list-form-crlf.yaml", COMPOSE_STYLE_BLOCK_SEQ, "172.20.3.5", "172.20.3.7"},
    {"list-split.yaml", COMPOSE_STYLE_BLOCK_SEQ, "10.8.0.4", "10.8.0.6"},
    {"plain-multiline.yaml", COMPOSE_STYLE_PLAIN, "10.6.0.1", "10.6.0.3"},
    {"single-quoted.yaml", COMPOSE_STYLE_SINGLE, "10.7.0.1", "10.7.0.3"},
    {"folded.yaml", COMPOSE_STYLE_FOLDED, "10.9.0.11", "10.9.0.13"},
    {"literal.yaml", COMPOSE_STYLE_LITERAL, "10.9.1.11", "10.9.1.13"},
    {"spellings.yaml", COMPOSE_STYLE_DOUBLE, "10.3.0.1", "consul-5.example.internal"},
    {"spelling-space.yaml", COMPOSE_STYLE_DOUBLE, "10.3.1.1", "10.3.1.2"},
    {"spelling-dquote.yaml", COMPOSE_STYLE_FOLDED, "10.3.2.1", "10.3.2.2"},
    {"spelling-squote-split.yaml", COMPOSE_STYLE_PLAIN, "10.3.3.1", "10.3.3.2"},
    {"comments.yaml", COMPOSE_STYLE_DOUBLE, "10.12.0.1", "10.12.0.2"},
};

/* ---------- reading ---------- */

/* The double-quoted form with backslash continuations (the delivered shape), LF and CR LF. */
static void
test_read_double_quoted(void **state)
{
    (void)state;
    static const char *const argv[] = {"agent",
                                       "-server",
                                       "-ui",
                                       "-client=0.0.0.0",
                                       "-bind=192.168.40.22",
                                       "-bootstrap-expect=3",
                                       "-data-dir=/consul/data",
                                       "-datacenter=staging",
                                       "-retry-join=192.168.40.21",
                                       "-retry-join=192.168.40.22",
                                       "-retry-join=192.168.40.23"};
    static const char *const joins[] = {"192.168.40.21", "192.168.40.22", "192.168.40.23"};
    const char *names[] = {"dq-continuation.yaml", "dq-continuation-crlf.yaml"};
    for (size_t k = 0; k < N(names); k++) {
        struct text t = fixture(names[k]);
        struct compose_command *c = read_ok(t);
        assert_int_equal(c->form, COMPOSE_FORM_STRING);
        assert_int_equal(c->style, COMPOSE_STYLE_DOUBLE);
        assert_int_equal(c->line, 12);
        assert_argv(c, argv, N(argv));
        assert_joins(c, joins, N(joins));
        assert_int_equal(c->retry_join_line[0], 14);
        assert_int_equal(c->retry_join_line[2], 16);
        assert_int_equal(c->argv_line[6], 13);
        assert_int_equal(c->flags_start, 1);
        assert_int_equal(c->flags_end, c->argc);
        assert_int_equal(c->n_diags, 0);
        assert_false(c->blocking);
        assert_true(c->editable);
        compose_command_free(c);
        free(t.s);
    }
}

/* The list form: comments between items and after values, a blank line, split items. */
static void
test_read_list(void **state)
{
    (void)state;
    static const char *const argv[] = {"agent",
                                       "-server",
                                       "-ui",
                                       "-client=0.0.0.0",
                                       "-bind=172.20.3.7",
                                       "-bootstrap-expect=3",
                                       "-data-dir=/consul/data",
                                       "-retry-join=172.20.3.5",
                                       "-retry-join=172.20.3.6",
                                       "-retry-join=172.20.3.7"};
    static const char *const joins[] = {"172.20.3.5", "172.20.3.6", "172.20.3.7"};
    const char *names[] = {"list-form.yaml", "list-form-crlf.yaml"};
    for (size_t k = 0; k < N(names); k++) {
        struct text t = fixture(names[k]);
        struct compose_command *c = read_ok(t);
        assert_int_equal(c->form, COMPOSE_FORM_LIST);
        assert_int_equal(c->style, COMPOSE_STYLE_BLOCK_SEQ);
        assert_argv(c, argv, N(argv));
        assert_joins(c, joins, N(joins));
        assert_int_equal(c->retry_join_line[2], 24);
        assert_int_equal(c->n_diags, 0);
        compose_command_free(c);
        free(t.s);
    }
    /* "- -retry-join" and "- 10.8.0.5" as separate items, a comment between them, quotes. */
    static const char *const split_argv[] = {"agent",       "-server",  "-bind",        "10.8.0.4",
                                             "-client",     "0.0.0.0",  "-retry-join",  "10.8.0.4",
                                             "-retry-join", "10.8.0.5", "--retry-join", "10.8.0.6"};
    static const char *const split_joins[] = {"10.8.0.4", "10.8.0.5", "10.8.0.6"};
    struct text t = fixture("list-split.yaml");
    struct compose_command *c = read_ok(t);
    assert_argv(c, split_argv, N(split_argv));
    assert_joins(c, split_joins, N(split_joins));
    assert_int_equal(c->retry_join_line[1], 18);
    assert_int_equal(c->n_diags, 0);
    compose_command_free(c);
    free(t.s);
}

/* Plain, single-quoted, folded and literal scalars read to the arguments YAML gives them. */
static void
test_read_scalar_styles(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int style;
        const char *argv[12];
    } cases[] = {
        {"plain-multiline.yaml",
         COMPOSE_STYLE_PLAIN,
         {"agent", "-server", "-bind=10.6.0.1", "-client=0.0.0.0", "-bootstrap-expect=3",
          "-data-dir=/consul/data", "-retry-join=10.6.0.1", "-retry-join=10.6.0.2",
          "-retry-join=10.6.0.3"}},
        {"single-quoted.yaml",
         COMPOSE_STYLE_SINGLE,
         {"agent", "-server", "-bind=10.7.0.1", "-client=0.0.0.0", "-node=consul-one",
          "-bootstrap-expect=3", "-retry-join=10.7.0.1", "-retry-join=10.7.0.2",
          "-retry-join=10.7.0.3"}},
        {"folded.yaml",
         COMPOSE_STYLE_FOLDED,
         {"agent", "-server", "-ui", "-bind=10.9.0.11", "-client=0.0.0.0", "-bootstrap-expect=3",
          "-retry-join=10.9.0.11", "-retry-join=10.9.0.12", "-retry-join=10.9.0.13"}},
        {"literal.yaml",
         COMPOSE_STYLE_LITERAL,
         {"agent", "-server", "-ui", "-bind=10.9.1.11", "-client=0.0.0.0", "-bootstrap-expect=3",
          "-retry-join=10.9.1.11", "-retry-join=10.9.1.12", "-retry-join=10.9.1.13"}},
    };
    for (size_t k = 0; k < N(cases); k++) {
        struct text t = fixture(cases[k].name);
        struct compose_command *c = read_ok(t);
        size_t n = 0;
        while (n < N(cases[k].argv) && cases[k].argv[n]) {
            n++;
        }
        assert_int_equal(c->style, cases[k].style);
        assert_argv(c, cases[k].argv, n);
        assert_int_equal(c->n_retry_join, 3);
        assert_int_equal(c->n_diags, 0);
        compose_command_free(c);
        free(t.s);
    }
}

/* -retry-join=IP, -retry-join IP, -retry-join="IP", -retry-join "IP", --retry-join 'IP',
 * bracketed IPv6 with a port, a bare IPv6 address and a DNS name. */
static void
test_read_spellings(void **state)
{
    (void)state;
    static const char *const joins[] = {"10.3.0.1", "10.3.0.2",       "10.3.0.3",
                                        "fd00::3",  "[fd00::4]:8301", "consul-5.example.internal"};
    struct text t = fixture("spellings.yaml");
    struct compose_command *c = read_ok(t);
    assert_joins(c, joins, N(joins));
    assert_string_equal(c->argv[6], "-retry-join");
    assert_string_equal(c->argv[7], "10.3.0.1");
    assert_string_equal(c->argv[8], "-retry-join=10.3.0.2");
    assert_string_equal(c->argv[9], "--retry-join");
    assert_string_equal(c->argv[10], "10.3.0.3");
    assert_int_equal(c->retry_join_line[5], 11);
    assert_int_equal(c->n_diags, 0);
    compose_command_free(c);
    free(t.s);
    const char *names[] = {"spelling-space.yaml", "spelling-dquote.yaml",
                           "spelling-squote-split.yaml"};
    for (size_t k = 0; k < N(names); k++) {
        t = fixture(names[k]);
        c = read_ok(t);
        assert_int_equal(c->n_retry_join, 2);
        assert_int_equal(c->n_diags, 0);
        assert_null(strchr(c->retry_join[0], '"'));
        assert_null(strchr(c->retry_join[1], '\''));
        compose_command_free(c);
        free(t.s);
    }
}

/* shlex.split rules: quotes, backslash escapes (kept inside double quotes before other
 * characters), empty arguments, and '#' is not a comment. */
static void
test_read_shell_rules(void **state)
{
    (void)state;
    struct text t = text_of("services:\n  consul:\n    command: 'agent -node=a\\ b "
                            "-node-meta=\"k:v w\" -ui=\"\" -hcl=''log_level = \"warn\"'' "
                            "-datacenter=\"d\\q\" #x -retry-join=10.0.0.1'\n");
    struct compose_command *c = read_ok(t);
    static const char *const argv[] = {"agent",
                                       "-node=a b",
                                       "-node-meta=k:v w",
                                       "-ui=",
                                       "-hcl=log_level = \"warn\"",
                                       "-datacenter=d\\q",
                                       "#x",
                                       "-retry-join=10.0.0.1"};
    assert_argv(c, argv, N(argv));
    /* -ui= is not a boolean; the agent stops there. */
    assert_non_null(find_diag(c, COMPOSE_DIAG_BAD_FLAG));
    assert_true(c->blocking);
    compose_command_free(c);
    free(t.s);
}

/* Go's flag rules: booleans take no value, other flags take the next argument, "-" and the
 * first non-flag stop parsing, "--" is consumed and stops it. */
static void
test_read_go_flags(void **state)
{
    (void)state;
    struct text t = text_of("services:\n  consul:\n    command: agent -server -ui -bind "
                            "10.0.0.1 -retry-join -server -retry-join=10.0.0.2\n");
    struct compose_command *c = read_ok(t);
    /* -retry-join takes "-server" as its value (Go does that), which is not an address. */
    static const char *const joins[] = {"-server", "10.0.0.2"};
    assert_joins(c, joins, N(joins));
    assert_int_equal(c->flags_end, c->argc);
    const struct compose_diag *d = find_diag(c, COMPOSE_DIAG_BAD_ADDRESS);
    assert_non_null(d);
    assert_true(d->blocking);
    compose_command_free(c);
    free(t.s);

    t = text_of(
        "services:\n  consul:\n    command: consul agent -server -- -retry-join=10.0.0.3\n");
    c = read_ok(t);
    assert_int_equal(c->flags_start, 2);
    assert_int_equal(c->flags_end, 4); /* after "--" */
    assert_int_equal(c->n_retry_join, 0);
    assert_non_null(find_diag(c, COMPOSE_DIAG_FLAGS_STOPPED));
    d = find_diag(c, COMPOSE_DIAG_RETRY_JOIN_LOST);
    assert_non_null(d);
    assert_non_null(strstr(d->message, "-retry-join=10.0.0.3"));
    compose_command_free(c);
    free(t.s);

    t = text_of("services:\n  consul:\n    command: agent -server - -retry-join=10.0.0.3\n");
    c = read_ok(t);
    assert_int_equal(c->flags_end, 2);
    assert_int_equal(c->n_retry_join, 0);
    assert_true(c->blocking);
    compose_command_free(c);
    free(t.s);

    t = text_of("services:\n  consul:\n    command: agent -frobnicate=1 -retry-join=10.0.0.4\n");
    c = read_ok(t);
    d = find_diag(c, COMPOSE_DIAG_UNKNOWN_FLAG);
    assert_non_null(d);
    assert_false(d->blocking); /* with =value, it cannot swallow the next argument */
    assert_int_equal(c->n_retry_join, 1);
    compose_command_free(c);
    free(t.s);

    t = text_of("services:\n  consul:\n    command: agent -frobnicate -retry-join=10.0.0.4\n");
    c = read_ok(t);
    d = find_diag(c, COMPOSE_DIAG_UNKNOWN_FLAG);
    assert_non_null(d);
    assert_true(d->blocking);
    compose_command_free(c);
    free(t.s);
}

/* A byte order mark and non-ASCII text before and inside the command: libyaml counts
 * characters, the editor counts bytes. */
static void
test_read_utf8(void **state)
{
    (void)state;
    struct text t = text_of("\xef\xbb\xbf# Serveur n\xc2\xb0"
                            "1 \xe2\x80\x94 donn\xc3\xa9"
                            "es\n"
                            "services:\n  consul:\n    labels:\n      note: \"d\xc3\xa9j\xc3\xa0 "
                            "\xf0\x9f\x98\x80\"\n    command: \"agent -node=n\xc5\x93ud \\\n"
                            "      -retry-join=10.0.0.1 \\\n      -retry-join=10.0.0.2\"\n");
    struct compose_command *c = read_ok(t);
    assert_string_equal(c->argv[1], "-node=n\xc5\x93ud");
    assert_int_equal(c->retry_join_line[1], 8);
    compose_command_free(c);
    struct text o = add_ok(t, "10.0.0.3");
    assert_non_null(strstr(o.s, "-retry-join=10.0.0.2 \\\n      -retry-join=10.0.0.3\"\n"));
    assert_int_equal(memcmp(o.s, t.s, t.n - 2), 0);
    struct text back = remove_ok(o, "10.0.0.3");
    assert_same_text(back, t);
    free(back.s);
    free(o.s);
    free(t.s);
}

/* Findings that do not stop an edit: docker compose v2 splits some strings differently, a
 * cloud auto-join entry is kept (but the list cannot be set exactly around it). */
static void
test_read_notes(void **state)
{
    (void)state;
    struct text t = text_of("services:\n  consul:\n    command: \"agent -node='a;b' "
                            "-datacenter=\\\"d\\\\\\\\q\\\" -retry-join=10.0.0.1\"\n");
    struct compose_command *c = read_ok(t);
    assert_string_equal(c->argv[1], "-node=a;b");
    assert_string_equal(c->argv[2], "-datacenter=d\\q"); /* "d\\q": both read d\q */
    assert_null(find_diag(c, COMPOSE_DIAG_COMPOSE_V2));  /* quoted ; is fine for both */
    compose_command_free(c);
    free(t.s);
    t = text_of("services:\n  consul:\n    command: \"agent -datacenter=\\\"d\\\\q\\\" "
                "-retry-join=10.0.0.1\"\n");
    c = read_ok(t);
    const struct compose_diag *d = find_diag(c, COMPOSE_DIAG_COMPOSE_V2);
    assert_non_null(d);
    assert_false(d->blocking);
    assert_non_null(strstr(d->message, "backslash"));
    compose_command_free(c);
    free(t.s);
    t = text_of("services:\n  consul:\n    command: agent -node=a;b -retry-join=10.0.0.1\n");
    c = read_ok(t);
    d = find_diag(c, COMPOSE_DIAG_COMPOSE_V2);
    assert_non_null(d);
    assert_non_null(strstr(d->message, "stops at an unquoted"));
    compose_command_free(c);
    free(t.s);

    t = text_of("services:\n  consul:\n    command: \"agent -retry-join='provider=aws "
                "tag_key=consul' -retry-join=10.0.0.1\"\n");
    c = read_ok(t);
    d = find_diag(c, COMPOSE_DIAG_CLOUD_JOIN);
    assert_non_null(d);
    assert_false(c->blocking);
    assert_string_equal(c->retry_join[0], "provider=aws tag_key=consul");
    compose_command_free(c);
    struct text o = add_ok(t, "10.0.0.2");
    free(o.s);
    const char *want[] = {"10.0.0.1"};
    struct compose_error err = {0};
    int rc = compose_set(t.s, t.n, want, 1, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSUPPORTED, "not an address", 3);
    free(t.s);

    /* An address YAML would misread when written unquoted like the existing entries. */
    t = fixture("plain-multiline.yaml");
    rc = compose_add(t.s, t.n, "fd00::", &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSUPPORTED, "unquoted", 9);
    free(t.s);
    t = text_of("services:\n  consul:\n    command:\n      - agent\n      - -retry-join\n"
                "      - 10.0.0.1\n");
    rc = compose_add(t.s, t.n, "[fd00::1]:8301", &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSUPPORTED, "unquoted", 6);
    o = add_ok(t, "fd00::1");
    free(o.s);
    free(t.s);
}

/* ---------- adding and removing ---------- */

static void
assert_diff(struct text a, struct text b, const char *expected)
{
    char *body = diff_body(a, b);
    if (strcmp(body, expected) != 0) {
        fprintf(stderr, "diff:\n%s\nexpected:\n%s\n", body, expected);
    }
    assert_string_equal(body, expected);
    free(body);
}

/* The delivered shape: the new entry copies the last one, continuation included; removing a
 * middle entry takes its whole line; removing the last one leaves no dangling backslash. */
static void
test_edit_double_quoted(void **state)
{
    (void)state;
    struct text t = fixture("dq-continuation.yaml");
    struct text o = add_ok(t, "192.168.40.24");
    assert_diff(t, o,
                "@@ -13,7 +13,8 @@\n"
                "       -data-dir=/consul/data -datacenter=staging \\\n"
                "       -retry-join=192.168.40.21 \\\n"
                "       -retry-join=192.168.40.22 \\\n"
                "-      -retry-join=192.168.40.23\"\n"
                "+      -retry-join=192.168.40.23 \\\n"
                "+      -retry-join=192.168.40.24\"\n"
                "   consul-exporter:\n"
                "     image: prom/consul-exporter:v0.8.0\n"
                "     container_name: consul-exporter\n");
    struct compose_command *c = read_ok(o);
    static const char *const joins[] = {"192.168.40.21", "192.168.40.22", "192.168.40.23",
                                        "192.168.40.24"};
    assert_joins(c, joins, N(joins));
    assert_int_equal(c->n_diags, 0);
    compose_command_free(c);
    free(o.s);

    o = remove_ok(t, "192.168.40.22");
    assert_diff(t, o,
                "@@ -12,7 +12,6 @@\n"
                "     command: \"agent -server -ui -client=0.0.0.0 -bind=192.168.40.22 "
                "-bootstrap-expect=3 \\\n"
                "       -data-dir=/consul/data -datacenter=staging \\\n"
                "       -retry-join=192.168.40.21 \\\n"
                "-      -retry-join=192.168.40.22 \\\n"
                "       -retry-join=192.168.40.23\"\n"
                "   consul-exporter:\n"
                "     image: prom/consul-exporter:v0.8.0\n");
    free(o.s);

    o = remove_ok(t, "192.168.40.23");
    assert_diff(t, o,
                "@@ -12,8 +12,7 @@\n"
                "     command: \"agent -server -ui -client=0.0.0.0 -bind=192.168.40.22 "
                "-bootstrap-expect=3 \\\n"
                "       -data-dir=/consul/data -datacenter=staging \\\n"
                "       -retry-join=192.168.40.21 \\\n"
                "-      -retry-join=192.168.40.22 \\\n"
                "-      -retry-join=192.168.40.23\"\n"
                "+      -retry-join=192.168.40.22\"\n"
                "   consul-exporter:\n"
                "     image: prom/consul-exporter:v0.8.0\n"
                "     container_name: consul-exporter\n");
    /* Adding it back gives the original bytes. */
    struct text back = add_ok(o, "192.168.40.23");
    assert_same_text(back, t);
    free(back.s);
    free(o.s);
    free(t.s);
}

static void
test_edit_list(void **state)
{
    (void)state;
    struct text t = fixture("list-form.yaml");
    struct text o = add_ok(t, "172.20.3.8");
    assert_diff(t, o,
                "@@ -22,6 +22,7 @@\n"
                "       - -retry-join=172.20.3.6   # consul-b\n"
                "       # consul-c is this host\n"
                "       - -retry-join=172.20.3.7\n"
                "+      - -retry-join=172.20.3.8\n"
                "     # end of command\n"
                "   consul-exporter:\n"
                "     image: prom/consul-exporter:v0.8.0\n");
    free(o.s);
    /* The entry's own comment goes with its line; the comment lines around stay. */
    o = remove_ok(t, "172.20.3.5");
    assert_diff(t, o,
                "@@ -18,7 +18,6 @@\n"
                "       - -data-dir=/consul/data\n"
                " \n"
                "       # the servers this one joins\n"
                "-      - -retry-join=172.20.3.5   # consul-a\n"
                "       - -retry-join=172.20.3.6   # consul-b\n"
                "       # consul-c is this host\n"
                "       - -retry-join=172.20.3.7\n");
    free(o.s);
    free(t.s);

    /* Flag and value as separate items: both copied (quoted like the last entry), both
     * removed, the comment between them kept. */
    t = fixture("list-split.yaml");
    o = add_ok(t, "10.8.0.7");
    assert_diff(t, o,
                "@@ -18,3 +18,5 @@\n"
                "     - 10.8.0.5\n"
                "     - \"--retry-join\"\n"
                "     - \"10.8.0.6\"\n"
                "+    - \"--retry-join\"\n"
                "+    - \"10.8.0.7\"\n");
    free(o.s);
    o = remove_ok(t, "10.8.0.5");
    assert_diff(t, o,
                "@@ -13,8 +13,6 @@\n"
                "     - 0.0.0.0\n"
                "     - -retry-join\n"
                "     - 10.8.0.4\n"
                "-    - -retry-join\n"
                "     # second server\n"
                "-    - 10.8.0.5\n"
                "     - \"--retry-join\"\n"
                "     - \"10.8.0.6\"\n");
    struct compose_command *c = read_ok(o);
    static const char *const joins[] = {"10.8.0.4", "10.8.0.6"};
    assert_joins(c, joins, N(joins));
    compose_command_free(c);
    free(o.s);
    free(t.s);
}

/* Every form and spelling: the added entry is read back in the same spelling right after the
 * last one, the rest of the arguments unchanged; add then remove gives the original bytes;
 * CR LF files stay CR LF. */
static void
test_edit_every_form(void **state)
{
    (void)state;
    for (size_t k = 0; k < N(editable); k++) {
        struct text t = fixture(editable[k].name);
        struct compose_command *before = read_ok(t);
        assert_int_equal(before->style, editable[k].style);
        assert_string_equal(before->retry_join[0], editable[k].first);
        assert_string_equal(before->retry_join[before->n_retry_join - 1], editable[k].last);
        struct text o = add_ok(t, "10.250.0.9");
        struct compose_command *after = read_ok(o);
        assert_int_equal(after->style, before->style);
        assert_int_equal(after->n_diags, 0);
        assert_int_equal(after->n_retry_join, before->n_retry_join + 1);
        assert_string_equal(after->retry_join[after->n_retry_join - 1], "10.250.0.9");
        /* Same arguments, with the new ones after the old last entry's. */
        size_t added = after->argc - before->argc;
        assert_true(added == 1 || added == 2);
        size_t at = before->argc;
        for (size_t i = 0; i < before->argc; i++) {
            if (i >= before->flags_end) {
                break;
            }
            if (strstr(before->argv[i], "retry-join") ||
                (i > 0 && strstr(before->argv[i - 1], "retry-join"))) {
                at = i + 1;
            }
        }
        for (size_t i = 0; i < after->argc; i++) {
            if (i < at) {
                assert_string_equal(after->argv[i], before->argv[i]);
            } else if (i >= at + added) {
                assert_string_equal(after->argv[i], before->argv[i - added]);
            }
        }
        /* The spelling of the previous entry: "-retry-join" or "--retry-join", "=" or not. */
        const char *prev_flag = before->argv[at - added];
        const char *new_flag = after->argv[at];
        size_t flag_len = strcspn(prev_flag, "=");
        assert_int_equal(strcspn(new_flag, "="), flag_len);
        assert_memory_equal(new_flag, prev_flag, flag_len);
        if (strstr(editable[k].name, "crlf")) {
            assert_all_crlf(o);
        }
        struct text back = remove_ok(o, "10.250.0.9");
        assert_same_text(back, t);
        free(back.s);
        /* Removing the first entry removes exactly it. */
        struct text r = remove_ok(t, editable[k].first);
        struct compose_command *rc = read_ok(r);
        assert_int_equal(rc->n_retry_join, before->n_retry_join - 1);
        assert_string_equal(rc->retry_join[0], before->retry_join[1]);
        assert_int_equal(rc->n_diags, 0);
        compose_command_free(rc);
        free(r.s);
        compose_command_free(before);
        compose_command_free(after);
        free(o.s);
        free(t.s);
    }
}

/* Adding what is listed, or removing what is not, changes nothing and says so; equal hosts
 * written differently count as listed. */
static void
test_edit_idempotent(void **state)
{
    (void)state;
    struct text t = fixture("spellings.yaml");
    static const struct {
        const char *addr;
        int line;
    } present[] = {
        {"10.3.0.2", 7},
        {"10.3.0.2:8301", 7},
        {"FD00:0:0::3", 9},
        {"[fd00::3]", 9},
        {"[fd00::4]:8301", 10},
        {"fd00::4", 10},
        {"Consul-5.Example.Internal.", 11},
    };
    for (size_t k = 0; k < N(present); k++) {
        struct text o = {0};
        struct compose_error err = {0};
        assert_int_equal(compose_add(t.s, t.n, present[k].addr, &o.s, &o.n, &err),
                         COMPOSE_UNCHANGED);
        assert_int_equal(err.code, COMPOSE_UNCHANGED);
        assert_int_equal(err.line, present[k].line);
        assert_non_null(strstr(err.message, "already"));
        assert_same_text(o, t);
        free(o.s);
    }
    static const char *const absent[] = {"10.3.0.9", "10.3.0.2:8302", "fd00::5", "consul-6"};
    for (size_t k = 0; k < N(absent); k++) {
        struct text o = {0};
        struct compose_error err = {0};
        assert_int_equal(compose_remove(t.s, t.n, absent[k], &o.s, &o.n, &err), COMPOSE_UNCHANGED);
        assert_non_null(strstr(err.message, "not in the retry-join list"));
        assert_same_text(o, t);
        free(o.s);
    }
    /* Adding twice is adding once. */
    struct text o1 = add_ok(t, "10.3.0.7");
    struct text o2 = {0};
    struct compose_error err = {0};
    assert_int_equal(compose_add(o1.s, o1.n, "10.3.0.7", &o2.s, &o2.n, &err), COMPOSE_UNCHANGED);
    assert_same_text(o2, o1);
    free(o1.s);
    free(o2.s);
    free(t.s);
}

/* Removing an address listed twice removes both; compose_set makes the list exactly the one
 * given, in its order for the new entries. */
static void
test_edit_remove_all_and_set(void **state)
{
    (void)state;
    struct text t = text_of("services:\n  consul:\n    command: \"agent -server \\\n"
                            "      -retry-join=10.0.0.1 \\\n"
                            "      -retry-join=10.0.0.2 \\\n"
                            "      -retry-join=10.0.0.1:8301\"\n");
    struct compose_command *c = read_ok(t);
    assert_non_null(find_diag(c, COMPOSE_DIAG_DUPLICATE));
    assert_false(c->blocking);
    compose_command_free(c);
    struct text o = remove_ok(t, "10.0.0.1");
    assert_string_equal(o.s, "services:\n  consul:\n    command: \"agent -server \\\n"
                             "      -retry-join=10.0.0.2\"\n");
    free(o.s);

    const char *want[] = {"10.0.0.2", "10.0.0.5", "10.0.0.4"};
    struct compose_error err = {0};
    assert_int_equal(compose_set(t.s, t.n, want, N(want), &o.s, &o.n, &err), COMPOSE_OK);
    assert_string_equal(o.s, "services:\n  consul:\n    command: \"agent -server \\\n"
                             "      -retry-join=10.0.0.2 \\\n"
                             "      -retry-join=10.0.0.5 \\\n"
                             "      -retry-join=10.0.0.4\"\n");
    struct text same = {0};
    assert_int_equal(compose_set(o.s, o.n, want, N(want), &same.s, &same.n, &err),
                     COMPOSE_UNCHANGED);
    assert_same_text(same, o);
    free(same.s);
    free(o.s);
    /* A bad address anywhere in the list: nothing changes. */
    const char *bad[] = {"10.0.0.2", "10.0.0.6;reboot"};
    assert_int_equal(compose_set(t.s, t.n, bad, N(bad), &o.s, &o.n, &err), COMPOSE_BAD_ADDRESS);
    assert_null(o.s);
    free(t.s);
}

/* Entries on one line with other flags: an added entry follows the last one on its line,
 * and a removed one takes the space before it; add then remove is the identity even when
 * the layout mixes continued and joined lines. */
static void
test_edit_one_line(void **state)
{
    (void)state;
    struct text t = text_of("services:\n  consul:\n    command: \"agent -server -ui "
                            "-retry-join=consul-1 -retry-join=consul-2 -bootstrap-expect=3\"\n");
    struct text o = add_ok(t, "consul-3");
    assert_string_equal(o.s, "services:\n  consul:\n    command: \"agent -server -ui "
                             "-retry-join=consul-1 -retry-join=consul-2 -retry-join=consul-3 "
                             "-bootstrap-expect=3\"\n");
    struct text back = remove_ok(o, "consul-3");
    assert_same_text(back, t);
    free(back.s);
    free(o.s);
    o = remove_ok(t, "consul-1");
    assert_string_equal(o.s, "services:\n  consul:\n    command: \"agent -server -ui "
                             "-retry-join=consul-2 -bootstrap-expect=3\"\n");
    free(o.s);
    free(t.s);

    t = text_of("services:\n  consul:\n    command: >\n      agent -server\n"
                "      -retry-join=10.0.0.1 -ui\n      -retry-join=10.0.0.2 -bootstrap-expect=3\n");
    o = add_ok(t, "10.0.0.3");
    assert_string_equal(o.s, "services:\n  consul:\n    command: >\n      agent -server\n"
                             "      -retry-join=10.0.0.1 -ui\n      -retry-join=10.0.0.2\n"
                             "      -retry-join=10.0.0.3 -bootstrap-expect=3\n");
    back = remove_ok(o, "10.0.0.3");
    assert_same_text(back, t);
    free(back.s);
    free(o.s);
    free(t.s);
}

/* A file without any entry gets -retry-join=ADDR after its last argument, in its style. */
static void
test_edit_first_entry(void **state)
{
    (void)state;
    struct text t = text_of("services:\n  consul:\n    command: \"agent -server \\\n"
                            "      -bind=10.0.0.1\"\n");
    struct text o = add_ok(t, "10.0.0.2");
    assert_string_equal(o.s, "services:\n  consul:\n    command: \"agent -server \\\n"
                             "      -bind=10.0.0.1 \\\n      -retry-join=10.0.0.2\"\n");
    free(o.s);
    free(t.s);
    t = text_of("services:\n  consul:\n    command:\n      - agent\n      - '-server'\n");
    o = add_ok(t, "10.0.0.2");
    assert_string_equal(o.s,
                        "services:\n  consul:\n    command:\n      - agent\n      - '-server'\n"
                        "      - '-retry-join=10.0.0.2'\n");
    free(o.s);
    free(t.s);
    /* No final line break: the file still ends without one. */
    t = text_of("services:\n  consul:\n    command:\n      - agent\n      - -retry-join=10.0.0.1");
    o = add_ok(t, "10.0.0.2");
    assert_string_equal(o.s, "services:\n  consul:\n    command:\n      - agent\n"
                             "      - -retry-join=10.0.0.1\n      - -retry-join=10.0.0.2");
    struct text back = remove_ok(o, "10.0.0.2");
    assert_same_text(back, t);
    free(back.s);
    free(o.s);
    free(t.s);
}

/* ---------- the new server's file ---------- */

static void
test_new_node(void **state)
{
    (void)state;
    struct text t = fixture("dq-continuation.yaml");
    const char *join[] = {"192.168.40.21", "192.168.40.22", "192.168.40.23", "192.168.40.24"};
    struct compose_node node = {.source_addr = "192.168.40.22",
                                .new_addr = "192.168.40.24",
                                .join = join,
                                .n_join = N(join)};
    struct text o = {0};
    struct compose_error err = {0};
    assert_int_equal(compose_new_node(t.s, t.n, &node, &o.s, &o.n, &err), COMPOSE_OK);
    /* -bind names the new host, -client=0.0.0.0 stays, the list is the full set, and nothing
     * else changes. */
    assert_diff(t, o,
                "@@ -9,11 +9,12 @@\n"
                "     volumes:\n"
                "       - /mnt/var/lib/container/consul:/consul/data\n"
                "     # One flag per line; the backslash joins the lines inside the double "
                "quotes.\n"
                "-    command: \"agent -server -ui -client=0.0.0.0 -bind=192.168.40.22 "
                "-bootstrap-expect=3 \\\n"
                "+    command: \"agent -server -ui -client=0.0.0.0 -bind=192.168.40.24 "
                "-bootstrap-expect=3 \\\n"
                "       -data-dir=/consul/data -datacenter=staging \\\n"
                "       -retry-join=192.168.40.21 \\\n"
                "       -retry-join=192.168.40.22 \\\n"
                "-      -retry-join=192.168.40.23\"\n"
                "+      -retry-join=192.168.40.23 \\\n"
                "+      -retry-join=192.168.40.24\"\n"
                "   consul-exporter:\n"
                "     image: prom/consul-exporter:v0.8.0\n"
                "     container_name: consul-exporter\n");
    struct compose_command *c = read_ok(o);
    assert_joins(c, join, N(join));
    assert_string_equal(c->argv[3], "-client=0.0.0.0");
    compose_command_free(c);
    free(o.s);
    free(t.s);

    /* The list form; a server dropped from the set is dropped from the list; -node renamed;
     * -advertise and -serf-lan-bind follow; -client keeps 127.0.0.1 next to the address. */
    t = text_of("services:\n  consul:\n    command:\n      - agent\n      - -server\n"
                "      - -node=consul-b\n      - -bind=10.2.0.2\n      - -advertise\n"
                "      - 10.2.0.2\n      - -serf-lan-bind=10.2.0.2\n"
                "      - -client=127.0.0.1 10.2.0.2 172.17.0.1\n"
                "      - -retry-join=10.2.0.1\n      - -retry-join=10.2.0.2\n"
                "      - -retry-join=10.2.0.3\n");
    const char *join2[] = {"10.2.0.1", "10.2.0.2", "10.2.0.4"};
    node = (struct compose_node){.source_addr = "10.2.0.2",
                                 .new_addr = "10.2.0.4",
                                 .node_name = "consul-d",
                                 .join = join2,
                                 .n_join = N(join2)};
    assert_int_equal(compose_new_node(t.s, t.n, &node, &o.s, &o.n, &err), COMPOSE_OK);
    assert_string_equal(o.s, "services:\n  consul:\n    command:\n      - agent\n      - -server\n"
                             "      - -node=consul-d\n      - -bind=10.2.0.4\n      - -advertise\n"
                             "      - 10.2.0.4\n      - -serf-lan-bind=10.2.0.4\n"
                             "      - -client=127.0.0.1 10.2.0.4 172.17.0.1\n"
                             "      - -retry-join=10.2.0.1\n      - -retry-join=10.2.0.2\n"
                             "      - -retry-join=10.2.0.4\n");
    free(o.s);
    /* Without a node name for a file that sets -node: refused, nothing written. */
    node.node_name = NULL;
    int rc = compose_new_node(t.s, t.n, &node, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSAFE, "-node", 6);
    free(t.s);
}

static void
test_new_node_refusals(void **state)
{
    (void)state;
    const char *join[] = {"10.1.0.21", "10.1.0.22", "10.1.0.23"};
    struct compose_node node = {
        .source_addr = "10.1.0.21", .new_addr = "10.1.0.23", .join = join, .n_join = N(join)};
    static const struct {
        const char *yaml;
        int code;
        const char *word;
        int line;
    } cases[] = {
        {"services:\n  consul:\n    command: agent -server -bootstrap -bind=10.1.0.21 "
         "-retry-join=10.1.0.21\n",
         COMPOSE_UNSAFE, "-bootstrap", 3},
        {"services:\n  consul:\n    command: agent -server\n      -node-id=1f0b-aa\n"
         "      -bind=10.1.0.21 -retry-join=10.1.0.21\n",
         COMPOSE_UNSAFE, "-node-id", 4},
        {"services:\n  consul:\n    command: agent -server -bind=10.1.0.99 "
         "-retry-join=10.1.0.21\n",
         COMPOSE_UNSAFE, "neither the source", 3},
        {"services:\n  consul:\n    hostname: consul-a\n    command: agent -bind=10.1.0.21 "
         "-retry-join=10.1.0.21\n",
         COMPOSE_UNSAFE, "hostname", 3},
        {"services:\n  consul:\n    command: agent -bind=10.1.0.21 -recursor=10.1.0.21 "
         "-retry-join=10.1.0.21\n",
         COMPOSE_UNSAFE, "names the source server", 3},
        {"services:\n  consul:\n    command: \"agent -bind='{{ GetInterfaceIP \\\"eth0\\\" }}' "
         "-retry-join=10.1.0.21\"\n    environment:\n      - CONSUL_HTTP_ADDR=10.1.0.21:8500\n",
         COMPOSE_UNSAFE, "outside the command", 5},
        {"services:\n  consul:\n    command: agent -bind=10.1.0.21 -retry-join=10.1.0.21 \\\n"
         "      -retry-join=10.1.0.22\n",
         COMPOSE_BROKEN, "backslash", 3},
    };
    for (size_t k = 0; k < N(cases); k++) {
        struct text t = text_of(cases[k].yaml);
        struct text o = {0};
        struct compose_error err = {0};
        int rc = compose_new_node(t.s, t.n, &node, &o.s, &o.n, &err);
        assert_refused(rc, o.s, &err, cases[k].code, cases[k].word, cases[k].line);
        free(t.s);
    }
    /* The exporter of the copy would scrape the source server. */
    struct text t = fixture("node-exporter-addr.yaml");
    struct text o = {0};
    struct compose_error err = {0};
    int rc = compose_new_node(t.s, t.n, &node, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSAFE, "outside the command", 11);
    /* Bad arguments. */
    const char *no_new[] = {"10.1.0.21", "10.1.0.22"};
    struct compose_node n2 = {
        .source_addr = "10.1.0.21", .new_addr = "10.1.0.23", .join = no_new, .n_join = 2};
    rc = compose_new_node(t.s, t.n, &n2, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "must include", 0);
    n2 = (struct compose_node){
        .source_addr = "consul-a", .new_addr = "10.1.0.23", .join = join, .n_join = N(join)};
    rc = compose_new_node(t.s, t.n, &n2, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "IPv4 or IPv6", 0);
    n2 = (struct compose_node){.source_addr = "10.1.0.21",
                               .new_addr = "10.1.0.23",
                               .node_name = "a;b",
                               .join = join,
                               .n_join = N(join)};
    rc = compose_new_node(t.s, t.n, &n2, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "node name", 0);
    free(t.s);
}

/* ---------- the backslash trap ---------- */

/* A plain scalar whose lines end in "\": YAML keeps the backslashes and folds the lines with
 * a space, shlex turns "\ " into an argument starting with a space, and the agent stops
 * reading flags at the first of those: no -retry-join is read. */
static void
test_trap_detected(void **state)
{
    (void)state;
    struct text t = fixture("plain-trap.yaml");
    struct compose_command *c = read_ok(t);
    static const char *const argv[] = {"agent",
                                       "-server",
                                       "-ui",
                                       "-client=0.0.0.0",
                                       "-bind=10.4.1.31",
                                       "-bootstrap-expect=3",
                                       " -data-dir=/consul/data",
                                       " -retry-join=10.4.1.31",
                                       " -retry-join=10.4.1.32",
                                       " -retry-join=10.4.1.33"};
    assert_argv(c, argv, N(argv));
    assert_int_equal(c->flags_end, 6);
    assert_int_equal(c->n_retry_join, 0);
    assert_true(c->blocking);
    assert_int_equal(count_diags(c, COMPOSE_DIAG_TRAP_BACKSLASH), 4);
    assert_int_equal(count_diags(c, COMPOSE_DIAG_RETRY_JOIN_LOST), 3);
    const struct compose_diag *d = find_diag(c, COMPOSE_DIAG_FLAGS_STOPPED);
    assert_non_null(d);
    assert_int_equal(d->line, 10);
    assert_non_null(strstr(d->message, "\" -data-dir=/consul/data\""));
    d = find_diag(c, COMPOSE_DIAG_TRAP_BACKSLASH);
    assert_int_equal(d->line, 9);
    assert_non_null(strstr(d->message, "plain"));
    assert_int_equal(c->argv_line[7], 11);
    compose_command_free(c);
    /* No edit while the agent does not read the command as written. */
    struct text o = {0};
    struct compose_error err = {0};
    int rc = compose_add(t.s, t.n, "10.4.1.34", &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_BROKEN, "not read", -1);
    free(t.s);

    /* Literal block: the backslash escapes the kept newline ("\n-retry-join=…"). */
    t = fixture("trap-literal.yaml");
    c = read_ok(t);
    assert_string_equal(c->argv[4], "\n-retry-join=10.5.0.1");
    assert_int_equal(c->flags_end, 4);
    assert_int_equal(c->n_retry_join, 0);
    compose_command_free(c);
    free(t.s);
    /* No space before the backslash: the next line's flag joins the previous argument. */
    t = fixture("trap-folded.yaml");
    c = read_ok(t);
    assert_string_equal(c->argv[3], "-client=0.0.0.0 -retry-join=10.5.1.1");
    assert_string_equal(c->argv[4], "\n-retry-join=10.5.1.2");
    assert_int_equal(c->n_retry_join, 0);
    compose_command_free(c);
    free(t.s);
}

/* compose_fix_trap rewrites the scalar double-quoted, one source line per line, with the
 * arguments the author meant; a clean file is left alone. */
static void
test_trap_fix(void **state)
{
    (void)state;
    struct text t = fixture("plain-trap.yaml");
    struct text o = {0};
    struct compose_error err = {0};
    assert_int_equal(compose_fix_trap(t.s, t.n, &o.s, &o.n, &err), COMPOSE_OK);
    assert_diff(t, o,
                "@@ -6,8 +6,8 @@\n"
                "     restart: always\n"
                "     network_mode: host\n"
                "     # Written as the ops guide says, but without the quotes: YAML keeps the "
                "backslashes.\n"
                "-    command: agent -server -ui -client=0.0.0.0 -bind=10.4.1.31 "
                "-bootstrap-expect=3 \\\n"
                "+    command: \"agent -server -ui -client=0.0.0.0 -bind=10.4.1.31 "
                "-bootstrap-expect=3 \\\n"
                "       -data-dir=/consul/data \\\n"
                "       -retry-join=10.4.1.31 \\\n"
                "       -retry-join=10.4.1.32 \\\n"
                "-      -retry-join=10.4.1.33\n"
                "+      -retry-join=10.4.1.33\"\n");
    struct compose_command *c = read_ok(o);
    static const char *const argv[] = {"agent",
                                       "-server",
                                       "-ui",
                                       "-client=0.0.0.0",
                                       "-bind=10.4.1.31",
                                       "-bootstrap-expect=3",
                                       "-data-dir=/consul/data",
                                       "-retry-join=10.4.1.31",
                                       "-retry-join=10.4.1.32",
                                       "-retry-join=10.4.1.33"};
    assert_argv(c, argv, N(argv));
    assert_int_equal(c->style, COMPOSE_STYLE_DOUBLE);
    assert_int_equal(c->n_diags, 0);
    compose_command_free(c);
    /* Fixed, it can be edited. */
    struct text o2 = add_ok(o, "10.4.1.34");
    free(o2.s);
    /* Fixing again: nothing to do. */
    struct text o3 = {0};
    assert_int_equal(compose_fix_trap(o.s, o.n, &o3.s, &o3.n, &err), COMPOSE_UNCHANGED);
    assert_same_text(o3, o);
    free(o3.s);
    free(o.s);
    free(t.s);

    static const struct {
        const char *name;
        const char *argv[8];
        const char *expect;
    } cases[] = {
        {"trap-literal.yaml",
         {"agent", "-server", "-bind=10.5.0.1", "-client=0.0.0.0", "-retry-join=10.5.0.1",
          "-retry-join=10.5.0.2"},
         "    command: \"agent -server -bind=10.5.0.1 -client=0.0.0.0 \\\n"
         "      -retry-join=10.5.0.1 \\\n"
         "      -retry-join=10.5.0.2\" # one flag per line\n"
         "    restart: always\n"},
        {"trap-folded.yaml",
         {"agent", "-server", "-bind=10.5.1.1", "-client=0.0.0.0", "-retry-join=10.5.1.1",
          "-retry-join=10.5.1.2"},
         "    command: \"agent -server -bind=10.5.1.1 -client=0.0.0.0 \\\n"
         "      -retry-join=10.5.1.1 \\\n"
         "      -retry-join=10.5.1.2\"\n"
         "    restart: always\n"},
        {"trap-single.yaml",
         {"agent", "-server", "-bind=10.5.2.1", "-node=consul two", "-retry-join=10.5.2.1",
          "-retry-join=10.5.2.2"},
         "    command: \"agent -server -bind=10.5.2.1 -node='consul two' \\\n"
         "      -retry-join=10.5.2.1 \\\n"
         "      -retry-join=10.5.2.2\"\n"},
    };
    for (size_t k = 0; k < N(cases); k++) {
        t = fixture(cases[k].name);
        assert_int_equal(compose_fix_trap(t.s, t.n, &o.s, &o.n, &err), COMPOSE_OK);
        assert_non_null(strstr(o.s, cases[k].expect));
        assert_int_equal(memcmp(o.s, t.s, 60), 0); /* the lines before are untouched */
        c = read_ok(o);
        assert_argv(c, cases[k].argv, 6);
        assert_int_equal(c->n_retry_join, 2);
        assert_int_equal(c->n_diags, 0);
        compose_command_free(c);
        free(o.s);
        free(t.s);
    }
    /* docker-compose's $$ stays $$; a $ variable cannot be carried over with certainty. */
    t = text_of("services:\n  consul:\n    command: agent -node=a$$b \\\n"
                "      -retry-join=10.0.0.1\n");
    assert_int_equal(compose_fix_trap(t.s, t.n, &o.s, &o.n, &err), COMPOSE_OK);
    assert_string_equal(o.s, "services:\n  consul:\n    command: \"agent -node=a$$b \\\n"
                             "      -retry-join=10.0.0.1\"\n");
    c = read_ok(o);
    assert_string_equal(c->argv[1], "-node=a$b");
    compose_command_free(c);
    free(o.s);
    free(t.s);
    t = text_of("services:\n  consul:\n    command: agent -node=$HOST \\\n"
                "      -retry-join=10.0.0.1\n");
    int rc = compose_fix_trap(t.s, t.n, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSUPPORTED, "environment variables", 3);
    free(t.s);
    /* A command without the trap, and one that cannot be split. */
    t = fixture("dq-continuation.yaml");
    assert_int_equal(compose_fix_trap(t.s, t.n, &o.s, &o.n, &err), COMPOSE_UNCHANGED);
    assert_same_text(o, t);
    free(o.s);
    free(t.s);
    t = text_of("services:\n  consul:\n    command: agent -node='a \\\n"
                "      -retry-join=10.0.0.1\n");
    rc = compose_fix_trap(t.s, t.n, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_UNSUPPORTED, "cannot split", 3);
    free(t.s);
}

/* ---------- refusals ---------- */

/* Files the editor must not touch: the code, a word of the message, the line, no output. */
static void
test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        int read_code; /* COMPOSE_OK: readable, but edits are refused */
        int code;
        const char *word;
        int line;
    } cases[] = {
        {"services:\n  consul:\n    command: \"agent\n  - x: [\n", COMPOSE_NOT_YAML,
         COMPOSE_NOT_YAML, "YAML", 5},
        {"services: [consul\n", COMPOSE_NOT_YAML, COMPOSE_NOT_YAML, "YAML", 2},
        {"", COMPOSE_NO_SERVICE, COMPOSE_NO_SERVICE, "empty", 0},
        {"- a\n- b\n", COMPOSE_NO_SERVICE, COMPOSE_NO_SERVICE, "not a mapping", 1},
        {"version: '3'\n", COMPOSE_NO_SERVICE, COMPOSE_NO_SERVICE, "no services", 0},
        {"services:\n  web:\n    command: agent\n", COMPOSE_NO_SERVICE, COMPOSE_NO_SERVICE,
         "no consul service", 2},
        {"services:\n  consul:\n    image: consul\n", COMPOSE_NO_COMMAND, COMPOSE_NO_COMMAND,
         "no command", 3},
        {"services:\n  consul:\n    command:\n", COMPOSE_NO_COMMAND, COMPOSE_NO_COMMAND, "empty",
         3},
        {"services:\n  consul:\n    command: []\n", COMPOSE_NO_COMMAND, COMPOSE_NO_COMMAND,
         "empty list", 3},
        {"services:\n  consul:\n    command: agent -retry-join=10.0.0.1\n    image: x\n"
         "    command: agent -retry-join=10.0.0.2\n",
         COMPOSE_AMBIGUOUS, COMPOSE_AMBIGUOUS, "twice", 5},
        {"services:\n  consul:\n    command: agent\nservices:\n  consul:\n    command: agent\n",
         COMPOSE_AMBIGUOUS, COMPOSE_AMBIGUOUS, "twice", 4},
        {"x-cmd: &cmd \"agent -retry-join=10.0.0.1\"\nservices:\n  consul:\n    command: *cmd\n",
         COMPOSE_AMBIGUOUS, COMPOSE_AMBIGUOUS, "alias", 4},
        {"services:\n  consul:\n    command: &c \"agent -retry-join=10.0.0.1\"\n  other:\n"
         "    command: *c\n",
         COMPOSE_AMBIGUOUS, COMPOSE_AMBIGUOUS, "anchor", 3},
        {"x-base: &base\n  command: agent -retry-join=10.0.0.1\nservices:\n  consul:\n"
         "    <<: *base\n    image: x\n",
         COMPOSE_AMBIGUOUS, COMPOSE_AMBIGUOUS, "merge key", 5},
        {"services:\n  consul:\n    command:\n      - agent\n      - *x\n", COMPOSE_AMBIGUOUS,
         COMPOSE_AMBIGUOUS, "alias", 5},
        {"services:\n  consul:\n    command: agent\n---\nservices: {}\n", COMPOSE_AMBIGUOUS,
         COMPOSE_AMBIGUOUS, "more than one YAML document", 4},
        {"services:\n  consul:\n    command: !!str agent -retry-join=10.0.0.1\n",
         COMPOSE_UNSUPPORTED, COMPOSE_UNSUPPORTED, "tag", 3},
        {"services:\n  consul:\n    command:\n      - agent\n      - [-retry-join, 10.0.0.1]\n",
         COMPOSE_UNSUPPORTED, COMPOSE_UNSUPPORTED, "not a string", 5},
        /* A retry-join inside a quoted argument of another flag, or elsewhere in the file. */
        {"services:\n  consul:\n    command: \"agent -hcl='retry_join = [\\\"10.0.0.9\\\"]' "
         "-retry-join=10.0.0.1\"\n",
         COMPOSE_OK, COMPOSE_AMBIGUOUS, "also sets retry-join", 3},
        {"services:\n  consul:\n    environment:\n      CONSUL_LOCAL_CONFIG: "
         "'{\"retry_join\":[\"10.0.0.9\"]}'\n    command: \"agent -retry-join=10.0.0.1\"\n",
         COMPOSE_OK, COMPOSE_AMBIGUOUS, "outside services.consul.command", 4},
        {"services:\n  consul:\n    command: [\"agent\", \"-retry-join=10.0.0.1\"]\n", COMPOSE_OK,
         COMPOSE_UNSUPPORTED, "flow list", 3},
        {"services: {consul: {command: \"agent -retry-join=10.0.0.1\"}}\n", COMPOSE_OK,
         COMPOSE_UNSUPPORTED, "flow style", 1},
        {"services:\n  consul:\n    command: agent -retry-join=$PEER -retry-join=10.0.0.1\n",
         COMPOSE_OK, COMPOSE_UNSUPPORTED, "environment variables", 3},
        {"services:\n  consul:\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command: agent "
         "-retry-join=10.0.0.1\n",
         COMPOSE_OK, COMPOSE_UNSUPPORTED, "entrypoint", 3},
        {"services:\n  consul:\n    command:\n      - agent\n      - -retry-join=\"10.0.0.1\"\n",
         COMPOSE_OK, COMPOSE_BROKEN, "quote characters", 5},
        {"services:\n  consul:\n    command:\n      - agent\n      - -retry-join\n      - 1.5\n",
         COMPOSE_OK, COMPOSE_BROKEN, "number", 6},
        {"services:\n  consul:\n    command: -server -retry-join=10.0.0.1\n", COMPOSE_OK,
         COMPOSE_BROKEN, "not with agent", 3},
        {"services:\n  consul:\n    command: agent -server=yes -retry-join=10.0.0.1\n", COMPOSE_OK,
         COMPOSE_BROKEN, "boolean", 3},
        {"services:\n  consul:\n    command: agent -server -retry-join\n", COMPOSE_OK,
         COMPOSE_BROKEN, "needs a value", 3},
        {"services:\n  consul:\n    command: agent ---server -retry-join=10.0.0.1\n", COMPOSE_OK,
         COMPOSE_BROKEN, "bad flag syntax", 3},
        {"services:\n  consul:\n    command: \"agent -node='a -retry-join=10.0.0.1\"\n", COMPOSE_OK,
         COMPOSE_BROKEN, "cannot split", 3},
        {"services:\n  consul:\n    command: agent -retry-join=10.0.0.1;reboot\n", COMPOSE_OK,
         COMPOSE_BROKEN, "not an address", 3},
        {"services:\n  consul:\n    command: \"agent \\\\\n      -retry-join=10.0.0.1\"\n",
         COMPOSE_OK, COMPOSE_BROKEN, "escaped backslash", 3},
    };
    for (size_t k = 0; k < N(cases); k++) {
        struct text t = text_of(cases[k].yaml);
        struct compose_command *c = NULL;
        struct compose_error err = {0};
        int rc = compose_read(t.s, t.n, &c, &err);
        if (rc != cases[k].read_code) {
            fprintf(stderr, "case %zu: read gave %s (%s)\n", k, compose_rc_name(rc), err.message);
        }
        assert_int_equal(rc, cases[k].read_code);
        if (rc == COMPOSE_OK) {
            assert_true(c->blocking || !c->editable);
            compose_command_free(c);
        } else {
            assert_null(c);
        }
        struct text o = {0};
        rc = compose_add(t.s, t.n, "10.0.0.7", &o.s, &o.n, &err);
        assert_refused(rc, o.s, &err, cases[k].code, cases[k].word, cases[k].line);
        rc = compose_remove(t.s, t.n, "10.0.0.1", &o.s, &o.n, &err);
        assert_refused(rc, o.s, &err, cases[k].code, cases[k].word, cases[k].line);
        free(t.s);
    }
}

/* ---------- hostile input ---------- */

static void
test_hostile(void **state)
{
    (void)state;
    struct text o = {0};
    struct compose_error err = {0};
    struct text t = fixture("dq-continuation.yaml");
    /* Addresses with shell metacharacters, spaces, quotes, zones, or not addresses at all. */
    static const char *const bad[] = {"10.0.0.1;reboot",
                                      "10.0.0.1 -dev",
                                      "$(id)",
                                      "`id`",
                                      "10.0.0.1\"",
                                      "'10.0.0.1'",
                                      "fe80::1%eth0",
                                      "10.0.0.256",
                                      "010.0.0.1",
                                      "-dev",
                                      "",
                                      "provider=aws tag_key=x",
                                      "a..b",
                                      "host-.example",
                                      "10.0.0.1:0",
                                      "10.0.0.1:65536",
                                      "[10.0.0.1]",
                                      "1:2:3:4:5:6:7:8:9",
                                      "10.0.0.1\n-dev",
                                      "x\\y"};
    for (size_t k = 0; k < N(bad); k++) {
        int rc = compose_add(t.s, t.n, bad[k], &o.s, &o.n, &err);
        assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "address", 0);
        rc = compose_remove(t.s, t.n, bad[k], &o.s, &o.n, &err);
        assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "address", 0);
    }
    int rc = compose_add(t.s, t.n, NULL, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "address", 0);
    rc = compose_new_node(t.s, t.n, NULL, &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_BAD_ADDRESS, "address", 0);
    rc = compose_add(NULL, 0, "10.0.0.1", &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_NO_SERVICE, "empty", 0);

    /* A NUL byte, invalid UTF-8, a lone CR, a Unicode line separator. */
#define TXT(x) x, sizeof(x) - 1
    static const struct {
        const char *s;
        size_t n;
        int line;
    } texts[] = {
        {TXT("services:\n  consul:\n    command: agent\0 -retry-join=10.0.0.1\n"), 3},
        {TXT("services:\n  consul:\n    command: \"agent \xff\"\n"), 3},
        {TXT("services:\n  consul:\n    command: \"agent \xc0\xaf\"\n"), 3},
        {TXT("services:\n  consul:\n    command: \"agent \xed\xa0\x80\"\n"), 3},
        {TXT("services:\n  consul:\n    command: agent\r -retry-join=10.0.0.1\n"), 3},
        {TXT("services:\n  consul:\n    command: agent\xe2\x80\xa8-retry-join=10.0.0.1\n"), 3},
        {TXT("services:\n  consul:\n    command: agent\xc2\x85-retry-join=10.0.0.1\n"), 3},
    };
#undef TXT
    for (size_t k = 0; k < N(texts); k++) {
        struct compose_command *c = NULL;
        rc = compose_read(texts[k].s, texts[k].n, &c, &err);
        assert_int_equal(rc, COMPOSE_BAD_TEXT);
        assert_int_equal(err.line, texts[k].line);
        assert_null(c);
        rc = compose_add(texts[k].s, texts[k].n, "10.0.0.7", &o.s, &o.n, &err);
        assert_refused(rc, o.s, &err, COMPOSE_BAD_TEXT, "line", texts[k].line);
    }

    /* Deep nesting stops at COMPOSE_MAX_DEPTH, well before any stack is at risk. */
    size_t deep = 100000;
    char *d = xmalloc(deep + 64);
    memcpy(d, "services:\n  consul:\n    command: ", 33);
    memset(d + 33, '[', deep);
    memcpy(d + 33 + deep, "\n", 2);
    rc = compose_read(d, strlen(d), &(struct compose_command *){NULL}, &err);
    assert_int_equal(rc, COMPOSE_UNSUPPORTED);
    assert_non_null(strstr(err.message, "deeper"));
    free(d);

    /* A huge single line: read within the size limit, refused beyond it. */
    size_t big = COMPOSE_MAX_TEXT - 200;
    char *h = xmalloc(COMPOSE_MAX_TEXT + 2);
    int n = snprintf(h, 200, "services:\n  consul:\n    command: \"agent -node=");
    memset(h + n, 'x', big - (size_t)n);
    memcpy(h + big, " -retry-join=10.0.0.1\"\n", 24);
    struct compose_command *c = NULL;
    clock_t t0 = clock();
    assert_int_equal(compose_read(h, strlen(h), &c, &err), COMPOSE_OK);
    assert_int_equal(c->argc, 3);
    assert_int_equal(strlen(c->argv[1]), big - (size_t)n + 6);
    compose_command_free(c);
    struct text ht = {h, strlen(h)};
    struct text ho = add_ok(ht, "10.0.0.2");
    assert_true(ho.n == strlen(h) + 21);
    free(ho.s);
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 20.0);
    memset(h, 'x', COMPOSE_MAX_TEXT + 1);
    rc = compose_add(h, COMPOSE_MAX_TEXT + 1, "10.0.0.2", &o.s, &o.n, &err);
    assert_refused(rc, o.s, &err, COMPOSE_TOO_BIG, "bytes", 0);
    free(h);

    /* Many arguments: refused past COMPOSE_MAX_ARGS. */
    struct buf b;
    buf_init(&b, COMPOSE_MAX_TEXT);
    (void)buf_puts(&b, "services:\n  consul:\n    command: agent");
    for (int i = 0; i < COMPOSE_MAX_ARGS + 1; i++) {
        (void)buf_puts(&b, " -ui");
    }
    (void)buf_puts(&b, "\n");
    rc = compose_read(b.data, b.len, &(struct compose_command *){NULL}, &err);
    assert_int_equal(rc, COMPOSE_UNSUPPORTED);
    assert_non_null(strstr(err.message, "arguments"));
    buf_free(&b);
    free(t.s);
}

/* ---------- addresses ---------- */

static void
test_addresses(void **state)
{
    (void)state;
    static const char *const good[] = {
        "10.1.0.15",
        "0.0.0.0",
        "255.255.255.255",
        "10.1.0.15:8301",
        "fd00::1",
        "::1",
        "::",
        "2001:db8:0:0:1:0:0:1",
        "::ffff:10.0.0.1",
        "[fd00::1]",
        "[fd00::1]:8301",
        "consul-1",
        "consul-1.dc1.example.",
        "a.b-c.d",
        "host:8301",
        "1:2:3:4:5:6:7::",
    };
    for (size_t k = 0; k < N(good); k++) {
        struct compose_error err = {0};
        if (compose_addr_valid(good[k], &err) != COMPOSE_OK) {
            fprintf(stderr, "%s: %s\n", good[k], err.message);
        }
        assert_int_equal(compose_addr_valid(good[k], &err), COMPOSE_OK);
    }
    static const char *const bad[] = {
        "10.1.0", "10.1.0.15.1",       "1.2.3.04", "10.1.0.15:",    "10.1.0.15:08301", "fd00::1::2",
        ":::",    "fd00::1:8301]",     "[fd00::1", "[fd00::1]8301", "-host",           "host-",
        "a_b",    "1:2:3:4:5:6:7:8::", "12345::1", "::1.2.3",       "abc.123",
    };
    for (size_t k = 0; k < N(bad); k++) {
        struct compose_error err = {0};
        if (compose_addr_valid(bad[k], &err) != COMPOSE_BAD_ADDRESS) {
            fprintf(stderr, "%s accepted\n", bad[k]);
        }
        assert_int_equal(compose_addr_valid(bad[k], &err), COMPOSE_BAD_ADDRESS);
        assert_int_equal(err.code, COMPOSE_BAD_ADDRESS);
        assert_true(strlen(err.message) > 20);
    }
    assert_true(compose_addr_equal("10.0.0.1", "10.0.0.1:8301"));
    assert_true(compose_addr_equal("::ffff:10.0.0.1", "10.0.0.1"));
    assert_true(compose_addr_equal("FD00::1", "[fd00:0::1]:8301"));
    assert_true(compose_addr_equal("Consul-1.", "consul-1"));
    assert_false(compose_addr_equal("10.0.0.1", "10.0.0.1:8302"));
    assert_false(compose_addr_equal("10.0.0.1", "10.0.0.10"));
    assert_false(compose_addr_equal("consul-1", "consul-1.dc1"));
    assert_false(compose_addr_equal("bad;", "bad;"));
    assert_string_equal(compose_rc_name(COMPOSE_AMBIGUOUS), "ambiguous");
    assert_string_equal(compose_rc_name(COMPOSE_BROKEN), "broken_command");
    assert_string_equal(compose_rc_name(99), "unknown");
    assert_string_equal(compose_rc_name(-1), "unknown");
}

/* ---------- the unified diff against GNU diff -u ---------- */

static char *
write_temp(struct text t)
{
    const char *dir = getenv("TMPDIR");
    char *path = xasprintf("%s/compose-diff-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, t.s, t.n), (ssize_t)t.n);
    close(fd);
    return path;
}

/* GNU diff -u of a and b without its two header lines (they hold timestamps). */
static char *
gnu_diff_body(struct text a, struct text b)
{
    char *pa = write_temp(a), *pb = write_temp(b);
    char *cmd = xasprintf("diff -u '%s' '%s'", pa, pb);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct buf out;
    buf_init(&out, 1 << 24);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        assert_int_equal(buf_append(&out, chunk, got), BUF_OK);
    }
    int status = pclose(p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    unlink(pa);
    unlink(pb);
    free(pa);
    free(pb);
    free(cmd);
    char *s = out.data ? out.data : xstrdup("");
    char *body = s;
    for (int k = 0; k < 2 && *body; k++) {
        char *nl = strchr(body, '\n');
        assert_non_null(nl);
        body = nl + 1;
    }
    char *r = xstrdup(body);
    free(s);
    return r;
}

static void
assert_like_gnu(struct text a, struct text b)
{
    char *mine = diff_body(a, b), *gnu = gnu_diff_body(a, b);
    if (strcmp(mine, gnu) != 0) {
        fprintf(stderr, "compose_diff:\n%s\nGNU diff -u:\n%s\n", mine, gnu);
    }
    assert_string_equal(mine, gnu);
    free(mine);
    free(gnu);
}

/* The edits of the editor (every fixture, add and remove), files without a final line
 * break, changes at the start and end, several hunks, and random edits of texts full of
 * repeated lines, where several shortest diffs exist and GNU's choice must be met. */
static void
test_diff_like_gnu(void **state)
{
    (void)state;
    for (size_t k = 0; k < N(editable); k++) {
        struct text t = fixture(editable[k].name);
        struct text o = add_ok(t, "10.250.0.9");
        assert_like_gnu(t, o);
        free(o.s);
        o = remove_ok(t, editable[k].last);
        assert_like_gnu(t, o);
        assert_like_gnu(o, t);
        free(o.s);
        free(t.s);
    }
    static const char *const pairs[][2] = {
        {"a\nb\nc\n", "a\nb\nc"},
        {"a\nb\nc", "a\nB\nc"},
        {"", "a\n"},
        {"a\n", ""},
        {"x\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\ny\n",
         "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"},
        {"1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\nx\n5\n6\n7\n8\n9\n"},
        {"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n", "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"},
        {"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n",
         "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\nY\n14\n"},
        {"a\r\nb\r\n", "a\r\nb\n"},
    };
    for (size_t k = 0; k < N(pairs); k++) {
        struct text a = text_of(pairs[k][0]), b = text_of(pairs[k][1]);
        assert_like_gnu(a, b);
        free(a.s);
        free(b.s);
    }
    /* Random texts over 1 to 5 distinct lines, edited by up to 5 deletions, insertions or
     * replacements: the ties GNU diff breaks its own way. */
    uint32_t seed = 12345;
    for (int it = 0; it < 400; it++) {
        size_t pool = 1 + (size_t)(it % 5), n = (size_t)(it * 7 % 31);
        size_t len = n, cap = n + 8;
        unsigned *lines = xmalloc(cap * sizeof(unsigned));
        char *kind = xmalloc(cap);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            lines[i] = (seed >> 16) % pool;
        }
        struct buf a, b;
        buf_init(&a, 1 << 20);
        buf_init(&b, 1 << 20);
        for (size_t i = 0; i < n; i++) {
            (void)buf_printf(&a, "l%u\n", lines[i]);
            kind[i] = 'l';
        }
        seed = seed * 1103515245u + 12345u;
        for (unsigned ops = 1 + (seed >> 16) % 5; ops > 0; ops--) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 10, v = (seed >> 8) % (unsigned)pool;
            size_t at = len ? (seed >> 4) % len : 0;
            if (r < 4 && len > 0) {
                memmove(lines + at, lines + at + 1, (len - at - 1) * sizeof(unsigned));
                memmove(kind + at, kind + at + 1, len - at - 1);
                len--;
            } else if (r < 8 && len < cap) {
                at = len ? (seed >> 4) % (len + 1) : 0;
                memmove(lines + at + 1, lines + at, (len - at) * sizeof(unsigned));
                memmove(kind + at + 1, kind + at, len - at);
                lines[at] = v;
                kind[at] = 'n';
                len++;
            } else if (len > 0) {
                lines[at] = v;
                kind[at] = 'r';
            }
        }
        for (size_t i = 0; i < len; i++) {
            (void)buf_printf(&b, "%c%u\n", kind[i], lines[i]);
        }
        if (it % 4 == 1 && a.len > 0) {
            a.data[--a.len] = '\0'; /* no final line break in one or both */
        }
        if (it % 6 == 1 && b.len > 0) {
            b.data[--b.len] = '\0';
        }
        struct text ta = {a.data ? a.data : xstrdup(""), a.len};
        struct text tb = {b.data ? b.data : xstrdup(""), b.len};
        assert_like_gnu(ta, tb);
        free(ta.s);
        free(tb.s);
        free(lines);
        free(kind);
    }
}

static void
test_diff_limits(void **state)
{
    (void)state;
    char *d = NULL;
    struct compose_error err = {0};
    assert_int_equal(compose_diff("same\n", 5, "same\n", 5, "a", "b", &d, &err), COMPOSE_OK);
    assert_string_equal(d, "");
    free(d);
    assert_int_equal(compose_diff("a\n", 2, "b\n", 2, "old file", "new file", &d, &err),
                     COMPOSE_OK);
    assert_string_equal(d, "--- old file\n+++ new file\n@@ -1 +1 @@\n-a\n+b\n");
    free(d);
    /* Two texts that differ everywhere in a way that needs a long search: refused, not slow. */
    struct buf a, b;
    buf_init(&a, 1 << 22);
    buf_init(&b, 1 << 22);
    uint32_t seed = 7;
    for (int i = 0; i < 40000; i++) {
        seed = seed * 1103515245u + 12345u;
        (void)buf_puts(&a, (seed >> 16) & 1 ? "a\n" : "b\n");
        seed = seed * 1103515245u + 12345u;
        (void)buf_puts(&b, (seed >> 16) & 1 ? "a\n" : "b\n");
    }
    clock_t t0 = clock();
    assert_int_equal(compose_diff(a.data, a.len, b.data, b.len, "a", "b", &d, &err),
                     COMPOSE_TOO_BIG);
    assert_null(d);
    assert_non_null(strstr(err.message, "differ too much"));
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 20.0);
    buf_free(&a);
    buf_free(&b);
    /* Too many lines. */
    size_t lines = COMPOSE_DIFF_MAX_LINES + 1;
    char *many = xmalloc(lines + 1);
    memset(many, '\n', lines);
    many[lines] = '\0';
    assert_int_equal(compose_diff(many, lines, "x\n", 2, "a", "b", &d, &err), COMPOSE_TOO_BIG);
    assert_null(d);
    free(many);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_double_quoted),
        cmocka_unit_test(test_read_list),
        cmocka_unit_test(test_read_scalar_styles),
        cmocka_unit_test(test_read_spellings),
        cmocka_unit_test(test_read_shell_rules),
        cmocka_unit_test(test_read_go_flags),
        cmocka_unit_test(test_read_utf8),
        cmocka_unit_test(test_read_notes),
        cmocka_unit_test(test_edit_double_quoted),
        cmocka_unit_test(test_edit_list),
        cmocka_unit_test(test_edit_every_form),
        cmocka_unit_test(test_edit_idempotent),
        cmocka_unit_test(test_edit_remove_all_and_set),
        cmocka_unit_test(test_edit_one_line),
        cmocka_unit_test(test_edit_first_entry),
        cmocka_unit_test(test_new_node),
        cmocka_unit_test(test_new_node_refusals),
        cmocka_unit_test(test_trap_detected),
        cmocka_unit_test(test_trap_fix),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_diff_like_gnu),
        cmocka_unit_test(test_diff_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
