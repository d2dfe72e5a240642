/* compose_read: services.consul.command as docker-compose and the agent read it. The value
 * is decoded with its map to the raw bytes (compose_scalar.c), docker-compose's $$ → $ is
 * applied, a string is split with shlex rules (compose_argv.c), and Go's flag rules run over
 * the result. Everything that makes the file mean something other than it seems becomes a
 * diagnostic; a blocking one stops every edit. */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "compose.h"
#include "compose_internal.h"
#include "util.h"

/* Diagnostics kept per command; the rest are counted in one last message. */
#define MAX_DIAGS 64

/* ---------- the command as docker-compose and the agent read it ---------- */

void
cx_state_free(struct cstate *st)
{
    cx_doc_free(&st->doc);
    cs_value_free(&st->val);
    for (size_t i = 0; i < st->nitems; i++) {
        cs_value_free(&st->items[i]);
    }
    free(st->items);
    for (size_t i = 0; i < st->nargs; i++) {
        free(st->args[i].s);
        free(st->args[i].from);
        free(st->args[i].to);
        free(st->args[i].vi);
    }
    free(st->args);
    free(st->esc);
    free(st->flags);
    free(st->entries);
    free(st->eaddr);
    free(st->eaddr_ok);
    for (size_t i = 0; i < st->ndiags; i++) {
        free(st->diags[i].message);
    }
    free(st->diags);
    memset(st, 0, sizeof(*st));
}

static void diag(struct cstate *st, int kind, int blocking, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
diag(struct cstate *st, int kind, int blocking, int line, const char *fmt, ...)
{
    st->blocking |= blocking;
    if (st->ndiags >= MAX_DIAGS) {
        st->ndropped++;
        return;
    }
    st->diags = xrealloc(st->diags, (st->ndiags + 1) * sizeof(*st->diags));
    va_list ap;
    va_start(ap, fmt);
    char msg[600];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->diags[st->ndiags++] = (struct compose_diag){
        .kind = kind, .blocking = blocking, .line = line, .message = xstrdup(msg)};
}

const char *
cx_style_name(int style)
{
    switch (style) {
    case COMPOSE_STYLE_PLAIN:
        return "plain (unquoted)";
    case COMPOSE_STYLE_SINGLE:
        return "single-quoted";
    case COMPOSE_STYLE_DOUBLE:
        return "double-quoted";
    case COMPOSE_STYLE_LITERAL:
        return "literal block (|)";
    case COMPOSE_STYLE_FOLDED:
        return "folded block (>)";
    case COMPOSE_STYLE_BLOCK_SEQ:
        return "list";
    default:
        return "flow list";
    }
}

/* Applies docker-compose's variable interpolation to a decoded value: $$ is a literal $;
 * any other $ names a variable whose value this module cannot know (a blocking
 * diagnostic). Returns the new value, mapped to the same raw bytes. */
static void
interpolate(struct cstate *st, const struct cs_value *in, struct cs_value *out)
{
    memset(out, 0, sizeof(*out));
    cs_value_push(out, 'x', 0, 0, 0);
    out->n = 0;
    out->s[0] = '\0';
    out->raw_start = in->raw_start;
    out->raw_end = in->raw_end;
    out->comment_start = in->comment_start;
    out->comment_end = in->comment_end;
    int reported = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (in->s[i] == '$' && i + 1 < in->n && in->s[i + 1] == '$') {
            cs_value_push(out, '$', in->from[i], in->to[i + 1], 0);
            i++;
            continue;
        }
        if (in->s[i] == '$' && !reported) {
            int line = cx_line_of(&st->doc, in->from[i]);
            diag(st, COMPOSE_DIAG_INTERPOLATION, 1, line,
                 "line %d: docker-compose substitutes environment variables for $ (write $$ for "
                 "a literal $), so the arguments depend on the environment of whoever runs it",
                 line);
            reported = 1;
        }
        cs_value_push(out, in->s[i], in->from[i], in->to[i], in->synth[i]);
    }
}

static int
scalar_style(int yaml_style)
{
    switch (yaml_style) {
    case YAML_PLAIN_SCALAR_STYLE:
        return CS_PLAIN;
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        return CS_SINGLE;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        return CS_DOUBLE;
    case YAML_LITERAL_SCALAR_STYLE:
        return CS_LITERAL;
    case YAML_FOLDED_SCALAR_STYLE:
        return CS_FOLDED;
    default:
        return 0;
    }
}

/* Decodes the scalar at event i with its map and checks it against libyaml's value. */
static int
decode_checked(struct cstate *st, size_t i, int parent_indent, struct cs_value *v,
               struct compose_error *err)
{
    const struct cev *c = &st->doc.ev[i];
    int line = cx_line_of(&st->doc, c->start);
    int style = scalar_style(c->style);
    if (!style ||
        cs_decode(st->doc.text, st->doc.len, c->start, c->end, style, parent_indent, v) != 0) {
        return cx_fail(err, COMPOSE_UNSUPPORTED, line,
                       "the value on line %d is written in a form this editor cannot map to its "
                       "bytes",
                       line);
    }
    if (v->n != c->vlen || memcmp(v->s, c->value, c->vlen) != 0) {
        cs_value_free(v);
        return cx_fail(err, COMPOSE_UNSUPPORTED, line,
                       "the value on line %d is written in a form this editor reads differently "
                       "from libyaml; it is left alone",
                       line);
    }
    if (memchr(v->s, '\0', v->n)) {
        cs_value_free(v);
        return cx_fail(
            err, COMPOSE_UNSUPPORTED, line,
            "the value on line %d holds a NUL character (\\0), which no argument can hold", line);
    }
    return COMPOSE_OK;
}

static void
push_arg(struct cstate *st, struct carg *a)
{
    st->args = xrealloc(st->args, (st->nargs + 1) * sizeof(*st->args));
    st->args[st->nargs++] = *a;
}

/* String form: decode, interpolate, shlex. */
static int
load_string(struct cstate *st, struct compose_error *err)
{
    const struct cev *c = &st->doc.ev[st->loc.command];
    struct cs_value raw;
    int rc = decode_checked(st, st->loc.command, st->doc.ev[st->loc.command_key].col, &raw, err);
    if (rc) {
        return rc;
    }
    int line = cx_line_of(&st->doc, c->start);
    if (c->style == YAML_PLAIN_SCALAR_STYLE && cs_plain_not_string(raw.s, raw.n)) {
        diag(st, COMPOSE_DIAG_NOT_STRING, 1, line,
             "line %d: YAML reads the command as a number, boolean or null, not a string", line);
    }
    interpolate(st, &raw, &st->val);
    cs_value_free(&raw);
    struct cs_arg *sa = NULL;
    size_t na = 0, err_at = 0;
    unsigned v2 = 0;
    int src = cs_shlex(st->val.s, st->val.n, &sa, &na, &st->esc, &st->nesc, &err_at, &v2);
    if (src != CS_SHLEX_OK) {
        int l = cx_line_of(&st->doc, st->val.from[err_at < st->val.n ? err_at : 0]);
        diag(st, COMPOSE_DIAG_SHELL_SYNTAX, 1, l,
             "line %d: docker-compose cannot split the command into arguments (%s)", l,
             src == CS_SHLEX_NO_CLOSING_QUOTE ? "a quote is never closed"
                                              : "it ends in a backslash");
        return COMPOSE_OK;
    }
    if (v2) {
        diag(st, COMPOSE_DIAG_COMPOSE_V2, 0, line,
             "line %d: docker compose v2 splits a string command with other rules than "
             "docker-compose v1 and would read this one differently (%s); a list is read the "
             "same by both",
             line,
             (v2 & CS_V2_METACHAR) ? "it stops at an unquoted ; & | < or >"
                                   : "it drops a backslash inside double quotes");
    }
    if (na > COMPOSE_MAX_ARGS) {
        cs_args_free(sa, na);
        return cx_fail(err, COMPOSE_UNSUPPORTED, line, "the command has more than %d arguments",
                       COMPOSE_MAX_ARGS);
    }
    for (size_t k = 0; k < na; k++) {
        struct carg a = {
            .s = sa[k].s, .n = sa[k].n, .vi = sa[k].vi, .v0 = sa[k].v0, .v1 = sa[k].v1};
        sa[k].s = NULL;
        sa[k].vi = NULL;
        a.from = xmalloc((a.n ? a.n : 1) * sizeof(size_t));
        a.to = xmalloc((a.n ? a.n : 1) * sizeof(size_t));
        for (size_t j = 0; j < a.n; j++) {
            a.from[j] = st->val.from[a.vi[j]];
            a.to[j] = st->val.to[a.vi[j]];
        }
        a.raw0 = st->val.from[a.v0];
        a.raw1 = st->val.to[a.v1 - 1];
        /* The line of its first visible byte (an escaped line break starts it earlier). */
        size_t first = 0;
        while (first < a.n && strchr(" \t\r\n", a.s[first])) {
            first++;
        }
        a.line = cx_line_of(&st->doc, first < a.n ? a.from[first] : a.raw0);
        push_arg(st, &a);
    }
    cs_args_free(sa, na);
    return COMPOSE_OK;
}

/* List form: each item is one argument, as written. */
static int
load_list(struct cstate *st, struct compose_error *err)
{
    const struct cdoc *d = &st->doc;
    size_t end = d->ev[st->loc.command].after - 1;
    for (size_t i = st->loc.command + 1; i < end; i = d->ev[i].after) {
        const struct cev *c = &d->ev[i];
        int line = cx_line_of(d, c->start);
        int rc = cx_check_path_node(d, i, "a command list item", err);
        if (rc) {
            return rc;
        }
        if (c->type != YAML_SCALAR_EVENT) {
            return cx_fail(err, COMPOSE_UNSUPPORTED, line,
                           "the command list item on line %d is not a string", line);
        }
        if (c->tag) {
            return cx_fail(err, COMPOSE_UNSUPPORTED, line,
                           "the command list item on line %d has an explicit tag (%s)", line,
                           c->tag);
        }
        if (c->style == YAML_LITERAL_SCALAR_STYLE || c->style == YAML_FOLDED_SCALAR_STYLE) {
            return cx_fail(err, COMPOSE_UNSUPPORTED, line,
                           "the command list item on line %d is a block scalar", line);
        }
        if (st->nitems >= COMPOSE_MAX_ARGS) {
            return cx_fail(err, COMPOSE_UNSUPPORTED, line, "the command has more than %d arguments",
                           COMPOSE_MAX_ARGS);
        }
        struct cs_value raw;
        rc = decode_checked(st, i, -1, &raw, err);
        if (rc) {
            return rc;
        }
        if (c->style == YAML_PLAIN_SCALAR_STYLE && cs_plain_not_string(raw.s, raw.n)) {
            diag(
                st, COMPOSE_DIAG_NOT_STRING, 1, line,
                "line %d: YAML reads the list item %s as a number, boolean or null; docker-compose "
                "wants strings",
                line, c->value);
        }
        st->items = xrealloc(st->items, (st->nitems + 1) * sizeof(*st->items));
        struct cs_value *v = &st->items[st->nitems++];
        interpolate(st, &raw, v);
        cs_value_free(&raw);
        struct carg a = {
            .n = v->n, .raw0 = v->raw_start, .raw1 = v->raw_end, .ev = i, .line = line};
        a.s = xmalloc(a.n + 1);
        memcpy(a.s, v->s, a.n + 1);
        a.from = xmalloc((a.n ? a.n : 1) * sizeof(size_t));
        a.to = xmalloc((a.n ? a.n : 1) * sizeof(size_t));
        memcpy(a.from, v->from, a.n * sizeof(size_t));
        memcpy(a.to, v->to, a.n * sizeof(size_t));
        push_arg(st, &a);
    }
    return COMPOSE_OK;
}

static int
arg_is(const struct carg *a, const char *s)
{
    return a->n == strlen(s) && memcmp(a->s, s, a->n) == 0;
}

/* The Go flag name and value of an argument that starts with - or --: sets *name, *nlen and
 * *value (NULL without '='). Returns 0, or -1 when Go reports "bad flag syntax". */
static int
flag_split(const struct carg *a, const char **name, size_t *nlen, const char **value)
{
    size_t minus = (a->n > 1 && a->s[1] == '-') ? 2 : 1;
    const char *nm = a->s + minus;
    size_t rest = a->n - minus;
    if (rest == 0 || nm[0] == '-' || nm[0] == '=') {
        return -1;
    }
    const char *eq = memchr(nm + 1, '=', rest - 1);
    *name = nm;
    *nlen = eq ? (size_t)(eq - nm) : rest;
    *value = eq ? eq + 1 : NULL;
    return 0;
}

static void
add_flag(struct cstate *st, const struct cs_flag *f, size_t a0, size_t a1, size_t vstart)
{
    st->flags = xrealloc(st->flags, (st->nflags + 1) * sizeof(*st->flags));
    st->flags[st->nflags++] = (struct cflag){.f = f, .a0 = a0, .a1 = a1, .vstart = vstart};
}

/* Go's flag.FlagSet.Parse over argv[flags_start..]: stops at the first argument that is not a
 * flag ("-" alone included) and after "--"; an error stops it too. */
static void
parse_flags(struct cstate *st)
{
    size_t i = 0;
    if (st->nargs >= 1 && arg_is(&st->args[0], "agent")) {
        i = 1;
    } else if (st->nargs >= 2 && arg_is(&st->args[0], "consul") && arg_is(&st->args[1], "agent")) {
        i = 2;
    } else if (st->nargs > 0) {
        char q[128];
        cx_quote(st->args[0].s, st->args[0].n, q, sizeof(q));
        diag(st, COMPOSE_DIAG_NOT_AGENT, 1, st->args[0].line,
             "line %d: the command starts with %s, not with agent: the image does not run a Consul "
             "agent with these flags",
             st->args[0].line, q);
    }
    st->flags_start = i;
    int stopped_by_error = 0;
    while (i < st->nargs) {
        const struct carg *a = &st->args[i];
        if (a->n < 2 || a->s[0] != '-') {
            break;
        }
        if (arg_is(a, "--")) {
            i++;
            break;
        }
        const char *name, *value;
        size_t nlen;
        char q[128];
        cx_quote(a->s, a->n, q, sizeof(q));
        if (flag_split(a, &name, &nlen, &value) != 0) {
            diag(st, COMPOSE_DIAG_BAD_FLAG, 1, a->line,
                 "line %d: %s is bad flag syntax; the agent refuses to start", a->line, q);
            stopped_by_error = 1;
            break;
        }
        const struct cs_flag *f = cs_flag_find(name, nlen);
        if (!f) {
            if ((nlen == 4 && memcmp(name, "help", 4) == 0) || (nlen == 1 && name[0] == 'h')) {
                diag(st, COMPOSE_DIAG_BAD_FLAG, 1, a->line,
                     "line %d: %s asks for help; the agent prints its usage and exits", a->line, q);
                stopped_by_error = 1;
                break;
            }
            if (value) {
                diag(st, COMPOSE_DIAG_UNKNOWN_FLAG, 0, a->line,
                     "line %d: %s is not a flag of the Consul agent releases this console knows; "
                     "an agent that does not know it refuses to start",
                     a->line, q);
                add_flag(st, NULL, i, i, (size_t)(value - a->s));
                i++;
                continue;
            }
            diag(st, COMPOSE_DIAG_UNKNOWN_FLAG, 1, a->line,
                 "line %d: %s is not a flag of the Consul agent releases this console knows, so "
                 "it cannot tell whether it takes the next argument as its value",
                 a->line, q);
            stopped_by_error = 1;
            break;
        }
        if (f->kind == CS_FLAG_BOOL) {
            if (value && !cs_parse_bool_ok(value)) {
                diag(st, COMPOSE_DIAG_BAD_FLAG, 1, a->line,
                     "line %d: %s is not a boolean value; the agent refuses to start", a->line, q);
                stopped_by_error = 1;
                break;
            }
            add_flag(st, f, i, i, value ? (size_t)(value - a->s) : a->n);
            i++;
            continue;
        }
        if (value) {
            add_flag(st, f, i, i, (size_t)(value - a->s));
            i++;
            continue;
        }
        if (i + 1 >= st->nargs) {
            diag(st, COMPOSE_DIAG_BAD_FLAG, 1, a->line,
                 "line %d: %s needs a value and is the last argument; the agent refuses to start",
                 a->line, q);
            stopped_by_error = 1;
            break;
        }
        add_flag(st, f, i, i + 1, 0);
        i += 2;
    }
    st->flags_end = i;
    if (stopped_by_error || i >= st->nargs) {
        return;
    }
    const struct carg *a = &st->args[i];
    char q[128];
    cx_quote(a->s, a->n, q, sizeof(q));
    struct buf lost;
    buf_init(&lost, 300);
    size_t nlost = 0;
    for (size_t k = i; k < st->nargs; k++) {
        const struct carg *b = &st->args[k];
        size_t p = 0;
        while (p < b->n && (b->s[p] == ' ' || b->s[p] == '\t' || b->s[p] == '\n' ||
                            b->s[p] == '\r' || b->s[p] == '\\')) {
            p++;
        }
        if (p < b->n && b->s[p] == '-') {
            char q2[128];
            cx_quote(b->s + p, b->n - p, q2, sizeof(q2));
            if (nlost++ < 4) {
                (void)buf_printf(&lost, "%s%s", nlost > 1 ? ", " : "", q2);
            }
        }
    }
    diag(st, COMPOSE_DIAG_FLAGS_STOPPED, 1, a->line,
         "line %d: the agent reads flags only up to argument %zu, %s, which is not a flag; "
         "%zu argument(s) from there on are not read as flags (%zu look like flags: %s%s), and "
         "the agent exits (\"config: Unknown extra arguments\" before Consul 1.10, "
         "\"Unexpected extra arguments\" from 1.10)",
         a->line, i + 1, q, st->nargs - i, nlost, lost.data ? lost.data : "",
         nlost > 4 ? ", …" : "");
    buf_free(&lost);
    for (size_t k = i; k < st->nargs; k++) {
        const struct carg *b = &st->args[k];
        size_t p = 0;
        while (p < b->n && strchr(" \t\r\n\\", b->s[p])) {
            p++;
        }
        size_t rest = b->n - p;
        const char *s = b->s + p;
        size_t minus = rest > 1 && s[1] == '-' ? 2 : 1;
        if (rest >= minus + 10 && s[0] == '-' && memcmp(s + minus, "retry-join", 10) == 0 &&
            (rest == minus + 10 || s[minus + 10] == '=')) {
            char q2[128];
            cx_quote(b->s, b->n, q2, sizeof(q2));
            diag(st, COMPOSE_DIAG_RETRY_JOIN_LOST, 1, b->line,
                 "line %d: the argument %s looks like a retry-join but the agent never reads it",
                 b->line, q2);
        }
    }
}

/* 1 when s holds "retry-join" or "retry_join", in any case. */
static int
mentions_retry_join(const char *s, size_t n)
{
    for (size_t i = 0; i + 10 <= n; i++) {
        if (strncasecmp(s + i, "retry", 5) == 0 && (s[i + 5] == '-' || s[i + 5] == '_') &&
            strncasecmp(s + i + 6, "join", 4) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The addresses of the -retry-join flags, other places that mention retry-join, and the
 * line-end backslash trap. */
static void
check_entries(struct cstate *st)
{
    for (size_t k = 0; k < st->nflags; k++) {
        const struct cflag *fl = &st->flags[k];
        if (fl->f && strcmp(fl->f->name, "retry-join") == 0) {
            st->entries = xrealloc(st->entries, (st->nentries + 1) * sizeof(size_t));
            st->eaddr = xrealloc(st->eaddr, (st->nentries + 1) * sizeof(*st->eaddr));
            st->eaddr_ok = xrealloc(st->eaddr_ok, (st->nentries + 1) * sizeof(int));
            size_t e = st->nentries++;
            st->entries[e] = k;
            const struct carg *v = &st->args[fl->a1];
            const char *val = v->s + fl->vstart;
            size_t vn = v->n - fl->vstart;
            char why[200], q[128];
            cx_quote(val, vn, q, sizeof(q));
            st->eaddr_ok[e] =
                strlen(val) == vn && cs_addr_parse(val, &st->eaddr[e], why, sizeof(why)) == 0;
            if (st->eaddr_ok[e]) {
                for (size_t j = 0; j < e; j++) {
                    if (st->eaddr_ok[j] && cs_addr_same(&st->eaddr[j], &st->eaddr[e])) {
                        diag(st, COMPOSE_DIAG_DUPLICATE, 0, v->line, "line %d: %s is listed twice",
                             v->line, q);
                        break;
                    }
                }
            } else if (memmem(val, vn, "provider=", 9)) {
                diag(st, COMPOSE_DIAG_CLOUD_JOIN, 0, v->line,
                     "line %d: %s is a cloud auto-join entry; it is kept as it is", v->line, q);
            } else if (st->form == COMPOSE_FORM_LIST &&
                       (memchr(val, '"', vn) || memchr(val, '\'', vn))) {
                diag(st, COMPOSE_DIAG_LITERAL_QUOTES, 1, v->line,
                     "line %d: the retry-join value %s holds quote characters; no shell removes "
                     "them from a list item, so the agent receives them",
                     v->line, q);
            } else {
                diag(st, COMPOSE_DIAG_BAD_ADDRESS, 1, v->line,
                     "line %d: the retry-join value %s is not an address: %s", v->line, q, why);
            }
            continue;
        }
        /* Another flag's value mentioning retry-join (-hcl='retry_join = [...]'). */
        const struct carg *v = &st->args[fl->a1];
        if (fl->vstart < v->n && mentions_retry_join(v->s + fl->vstart, v->n - fl->vstart)) {
            char q[128];
            cx_quote(v->s, v->n, q, sizeof(q));
            diag(st, COMPOSE_DIAG_RETRY_JOIN_ELSEWHERE, 1, v->line,
                 "line %d: the argument %s also sets retry-join; the list cannot be edited with "
                 "certainty",
                 v->line, q);
        }
    }
    /* Every other value of the file (CONSUL_LOCAL_CONFIG, another service, …). */
    const struct cdoc *d = &st->doc;
    size_t c0 = st->loc.command, c1 = d->ev[st->loc.command].after;
    for (size_t i = 0; i < d->nev; i++) {
        if (i == c0) {
            i = c1 - 1;
            continue;
        }
        if (d->ev[i].type == YAML_SCALAR_EVENT &&
            mentions_retry_join(d->ev[i].value, d->ev[i].vlen)) {
            int line = cx_line_of(d, d->ev[i].start);
            diag(st, COMPOSE_DIAG_RETRY_JOIN_ELSEWHERE, 1, line,
                 "line %d: retry-join is also written outside services.%s.command; the list "
                 "cannot be edited with certainty",
                 line, COMPOSE_SERVICE);
        }
    }
    if (st->loc.has_entrypoint) {
        int line = cx_line_of(d, d->ev[st->loc.has_entrypoint].start);
        diag(st, COMPOSE_DIAG_ENTRYPOINT, 1, line,
             "line %d: services.%s.entrypoint replaces the image's entrypoint, so the command may "
             "not be the agent's arguments",
             line, COMPOSE_SERVICE);
    }
}

/* 1 when the value byte at index i of st->val is followed in the file by nothing but blanks
 * up to the end of its line. */
static int
at_line_end(const struct cstate *st, size_t i)
{
    size_t p = st->val.to[i];
    const char *t = st->doc.text;
    while (p < st->doc.len && cx_is_blank(t[p])) {
        p++;
    }
    return p < st->doc.len && (t[p] == '\n' || t[p] == '\r');
}

/* 1 when shlex escape e is the trap: a backslash at the end of a line whose line break YAML
 * turned into a space or newline, so the backslash escapes that whitespace. */
int
cx_is_trap(const struct cstate *st, const struct cs_escape *e)
{
    char ch = st->val.s[e->ch];
    return (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') && at_line_end(st, e->bs);
}

static void
check_trap(struct cstate *st)
{
    if (st->form != COMPOSE_FORM_STRING) {
        return;
    }
    for (size_t k = 0; k < st->nesc; k++) {
        const struct cs_escape *e = &st->esc[k];
        if (!cx_is_trap(st, e)) {
            continue;
        }
        int line = cx_line_of(&st->doc, st->val.from[e->bs]);
        const struct carg *a = NULL;
        for (size_t j = 0; j < st->nargs; j++) {
            if (st->args[j].v0 <= e->bs && e->bs < st->args[j].v1) {
                a = &st->args[j];
                break;
            }
        }
        char q[128] = "";
        if (a) {
            cx_quote(a->s, a->n, q, sizeof(q));
        }
        if (st->style == COMPOSE_STYLE_DOUBLE) {
            diag(st, COMPOSE_DIAG_TRAP_BACKSLASH, 1, line,
                 "line %d ends in an escaped backslash (\\\\), which YAML keeps as a backslash "
                 "before the line break it turns into %s, so docker-compose passes the argument %s",
                 line, st->val.s[e->ch] == '\n' ? "a newline" : "a space", q);
            continue;
        }
        diag(st, COMPOSE_DIAG_TRAP_BACKSLASH, 1, line,
             "line %d ends in a backslash, but in a %s scalar YAML keeps it and joins the lines "
             "with %s, so docker-compose passes the argument %s%s",
             line, cx_style_name(st->style), st->val.s[e->ch] == '\n' ? "a newline" : "a space", q,
             e->kept ? " with the backslash in it"
                     : " (the backslash escapes the whitespace, which starts the argument)");
    }
}

/* Reads text into st: parse, locate, decode, split, flag-parse, diagnose. */
int
cx_state_load(const char *text, size_t len, struct cstate *st, struct compose_error *err)
{
    memset(st, 0, sizeof(*st));
    if (!text) {
        text = "";
        len = 0;
    }
    int rc = cx_check_text(text, len, err);
    if (rc || (rc = cx_doc_parse(text, len, &st->doc, err))) {
        return rc;
    }
    if ((rc = cx_doc_locate(&st->doc, &st->loc, err))) {
        goto out;
    }
    const struct cev *c = &st->doc.ev[st->loc.command];
    st->editable = !st->loc.flow;
    if (st->loc.flow) {
        st->not_editable_line = cx_line_of(&st->doc, st->doc.ev[st->loc.consul].start);
        snprintf(st->not_editable, sizeof(st->not_editable),
                 "services.%s is written in flow style ({…}) (line %d); edit it by hand",
                 COMPOSE_SERVICE, st->not_editable_line);
    }
    if (c->type == YAML_SCALAR_EVENT) {
        st->form = COMPOSE_FORM_STRING;
        st->style = scalar_style(c->style); /* CS_* and COMPOSE_STYLE_* agree on 1..5 */
        rc = load_string(st, err);
    } else {
        st->form = COMPOSE_FORM_LIST;
        st->style =
            c->style == YAML_FLOW_SEQUENCE_STYLE ? COMPOSE_STYLE_FLOW_SEQ : COMPOSE_STYLE_BLOCK_SEQ;
        if (st->style == COMPOSE_STYLE_FLOW_SEQ) {
            st->editable = 0;
            st->not_editable_line = cx_line_of(&st->doc, c->start);
            snprintf(st->not_editable, sizeof(st->not_editable),
                     "the command on line %d is a flow list ([…]); rewrite it as a block list "
                     "(one \"- item\" per line) to edit it here",
                     cx_line_of(&st->doc, c->start));
        }
        rc = load_list(st, err);
    }
    if (rc) {
        goto out;
    }
    check_trap(st); /* first: the root cause of what parse_flags then reports */
    parse_flags(st);
    check_entries(st);
    if (st->ndropped) {
        st->ndiags--; /* make room for the summary */
        free(st->diags[st->ndiags].message);
        st->ndropped++;
        diag(st, st->diags[st->ndiags].kind, 0, 0, "and %zu more findings", st->ndropped);
    }
out:
    if (rc) {
        cx_state_free(st);
    }
    return rc;
}

/* The first blocking diagnostic as an error: AMBIGUOUS when retry-join is written somewhere
 * else too, UNSUPPORTED for what this module cannot know (variables, an entrypoint), BROKEN
 * when the agent would not read the command as written. */
int
cx_fail_blocking(const struct cstate *st, struct compose_error *err)
{
    for (size_t i = 0; i < st->ndiags; i++) {
        const struct compose_diag *dg = &st->diags[i];
        if (!dg->blocking) {
            continue;
        }
        if (dg->kind == COMPOSE_DIAG_RETRY_JOIN_ELSEWHERE) {
            return cx_fail(err, COMPOSE_AMBIGUOUS, dg->line, "%s", dg->message);
        }
        if (dg->kind == COMPOSE_DIAG_INTERPOLATION || dg->kind == COMPOSE_DIAG_ENTRYPOINT) {
            return cx_fail(err, COMPOSE_UNSUPPORTED, dg->line, "%s", dg->message);
        }
        return cx_fail(err, COMPOSE_BROKEN, dg->line,
                       "the agent does not read the command as it is written, so it is not "
                       "edited: %s",
                       dg->message);
    }
    return cx_fail(err, COMPOSE_BROKEN, 0, "the command is not read as written");
}

int
cx_ready_to_edit(const struct cstate *st, struct compose_error *err)
{
    if (st->blocking) {
        return cx_fail_blocking(st, err);
    }
    if (!st->editable) {
        return cx_fail(err, COMPOSE_UNSUPPORTED, st->not_editable_line, "%s", st->not_editable);
    }
    return COMPOSE_OK;
}

/* ---------- compose_read ---------- */

int
compose_read(const char *text, size_t len, struct compose_command **out, struct compose_error *err)
{
    *out = NULL;
    struct cstate st;
    int rc = cx_state_load(text, len, &st, err);
    if (rc) {
        return rc;
    }
    struct compose_command *c = xcalloc(1, sizeof(*c));
    c->form = st.form;
    c->style = st.style;
    c->line = cx_line_of(&st.doc, st.doc.ev[st.loc.command].start);
    c->argc = st.nargs;
    c->argv = xcalloc(st.nargs + 1, sizeof(char *));
    c->argv_line = xcalloc(st.nargs + 1, sizeof(int));
    for (size_t i = 0; i < st.nargs; i++) {
        c->argv[i] = xmalloc(st.args[i].n + 1);
        memcpy(c->argv[i], st.args[i].s, st.args[i].n + 1);
        c->argv_line[i] = st.args[i].line;
    }
    c->flags_start = st.flags_start;
    c->flags_end = st.flags_end;
    c->n_retry_join = st.nentries;
    c->retry_join = xcalloc(st.nentries + 1, sizeof(char *));
    c->retry_join_line = xcalloc(st.nentries + 1, sizeof(int));
    for (size_t e = 0; e < st.nentries; e++) {
        const struct cflag *fl = &st.flags[st.entries[e]];
        const struct carg *v = &st.args[fl->a1];
        c->retry_join[e] = xstrndup(v->s + fl->vstart, v->n - fl->vstart);
        c->retry_join_line[e] = v->line;
    }
    c->diags = st.diags;
    c->n_diags = st.ndiags;
    st.diags = NULL;
    st.ndiags = 0;
    c->blocking = st.blocking;
    c->editable = st.editable;
    cx_state_free(&st);
    *out = c;
    if (err) {
        memset(err, 0, sizeof(*err));
    }
    return COMPOSE_OK;
}

void
compose_command_free(struct compose_command *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->argc; i++) {
        free(c->argv[i]);
    }
    free(c->argv);
    free(c->argv_line);
    for (size_t i = 0; i < c->n_retry_join; i++) {
        free(c->retry_join[i]);
    }
    free(c->retry_join);
    free(c->retry_join_line);
    for (size_t i = 0; i < c->n_diags; i++) {
        free(c->diags[i].message);
    }
    free(c->diags);
    free(c);
}
