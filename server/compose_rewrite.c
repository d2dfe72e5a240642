/* compose_rewrite: the two rewrites beyond adding and removing one address: the new
 * server's own file (a healthy server's file with its addresses changed) and the fix of the
 * plain-scalar backslash trap. Both end, like every edit, in cx_verify. */
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

/* ---------- the new node's own file ---------- */

/* 1 when s (n bytes) holds an IP address equal to ip as a whole token (an IPv4 one possibly
 * followed by :port). */
static int
mentions_ip(const char *s, size_t n, const struct cs_addr *ip)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (!(isxdigit(c) || c == '.' || c == ':')) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && (isxdigit((unsigned char)s[j]) || s[j] == '.' || s[j] == ':')) {
            j++;
        }
        struct cs_addr a;
        if (cs_ip_parse(s + i, j - i, &a) == 0 && memcmp(a.ip, ip->ip, 16) == 0) {
            return 1;
        }
        const char *colon = memrchr(s + i, ':', j - i);
        if (colon && cs_ip_parse(s + i, (size_t)(colon - (s + i)), &a) == 0 && a.kind == 4 &&
            memcmp(a.ip, ip->ip, 16) == 0) {
            return 1;
        }
        i = j;
    }
    return 0;
}

static int
is_wildcard(const struct cs_addr *a)
{
    static const unsigned char zero[16], loop6[16] = {[15] = 1};
    if (a->kind == 4) {
        return (a->ip[12] == 0 && a->ip[13] == 0 && a->ip[14] == 0 && a->ip[15] == 0) ||
               a->ip[12] == 127;
    }
    return memcmp(a->ip, zero, 16) == 0 || memcmp(a->ip, loop6, 16) == 0;
}

static int
node_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0])) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
            return 0;
        }
    }
    return 1;
}

/* Replaces value bytes [b0, b1) of argument k by text, in the raw file and in the expected
 * arguments. */
static int
plan_replace(const struct cstate *st, struct plan *pl, size_t k, size_t b0, size_t b1,
             const char *text, struct compose_error *err)
{
    const struct carg *a = &st->args[k];
    size_t r0, r1;
    if (!cx_verbatim(st, a, b0, b1, &r0, &r1)) {
        return cx_fail(err, COMPOSE_UNSUPPORTED, a->line,
                       "the value on line %d is written with escapes or across lines; edit it by "
                       "hand",
                       a->line);
    }
    cx_plan_splice(pl, r0, r1, xstrdup(text));
    /* The expected argument: apply the same change to its current expected text, which
     * earlier replacements in the same argument (from its end backwards) left aligned. */
    char *old = pl->argv[k];
    pl->argv[k] = xasprintf("%.*s%s%s", (int)b0, old, text, old + b1);
    free(old);
    return COMPOSE_OK;
}

/* 1 when flag fl is a boolean that is on. */
static int
bool_on(const struct cstate *st, const struct cflag *fl)
{
    const struct carg *a = &st->args[fl->a0];
    if (fl->vstart >= a->n) {
        return 1;
    }
    const char *v = a->s + fl->vstart;
    return strcmp(v, "1") == 0 || strcasecmp(v, "t") == 0 || strcasecmp(v, "true") == 0;
}

/* Plans the new node's rewrites in st (without the retry-join list). */
static int
plan_new_node(const struct cstate *st, const struct compose_node *node, const struct cs_addr *src,
              struct plan *pl, struct compose_error *err)
{
    cx_plan_argv_copy(pl, st);
    unsigned char *covered = xcalloc(st->nargs ? st->nargs : 1, 1);
    int rc = COMPOSE_OK;
    if (st->loc.hostname_key) {
        int line = cx_line_of(&st->doc, st->doc.ev[st->loc.hostname_key].start);
        rc = cx_fail(err, COMPOSE_UNSAFE, line,
                     "services.%s.hostname (line %d) would give the new node the same node name",
                     COMPOSE_SERVICE, line);
        goto out;
    }
    /* Walk the flags from the last so that replacements inside one argument stay aligned. */
    for (size_t k = st->nflags; k-- > 0 && rc == COMPOSE_OK;) {
        const struct cflag *fl = &st->flags[k];
        const struct carg *v = &st->args[fl->a1];
        if (!fl->f) {
            continue;
        }
        const char *name = fl->f->name;
        if (strcmp(name, "bootstrap") == 0 && bool_on(st, fl)) {
            rc = cx_fail(err, COMPOSE_UNSAFE, v->line,
                         "the file sets -bootstrap (line %d); a new server started with it would "
                         "elect itself leader of a cluster of its own",
                         v->line);
        } else if (strcmp(name, "node-id") == 0) {
            rc = cx_fail(err, COMPOSE_UNSAFE, v->line,
                         "the file sets -node-id (line %d), which must differ on every server; "
                         "remove it or edit the copy by hand",
                         v->line);
        } else if (strcmp(name, "node") == 0) {
            if (!node->node_name) {
                rc = cx_fail(err, COMPOSE_UNSAFE, v->line,
                             "the file sets -node (line %d); give the new server its own node name",
                             v->line);
            } else {
                rc = plan_replace(st, pl, fl->a1, fl->vstart, v->n, node->node_name, err);
            }
            covered[fl->a0] = covered[fl->a1] = 1;
        } else if (fl->f->addr) {
            /* A value may list several addresses separated by spaces (-client). */
            size_t b1 = v->n;
            while (b1 > fl->vstart && rc == COMPOSE_OK) {
                size_t b0 = b1;
                while (b0 > fl->vstart && v->s[b0 - 1] != ' ') {
                    b0--;
                }
                struct cs_addr a;
                if (b1 > b0 && cs_ip_parse(v->s + b0, b1 - b0, &a) == 0) {
                    if (memcmp(a.ip, src->ip, 16) == 0) {
                        rc = plan_replace(st, pl, fl->a1, b0, b1, node->new_addr, err);
                    } else if (!is_wildcard(&a) && strcmp(name, "client") != 0) {
                        /* A cluster address of a third host: not this server's file. (A
                         * -client address may be one every host has, like docker0's.) */
                        rc =
                            cx_fail(err, COMPOSE_UNSAFE, v->line,
                                    "-%s on line %d names %.*s, which is neither the source server "
                                    "(%s) nor a wildcard; this is not that server's file",
                                    name, v->line, (int)(b1 - b0), v->s + b0, node->source_addr);
                    }
                } else if (b1 > b0 && mentions_ip(v->s + b0, b1 - b0, src)) {
                    rc = cx_fail(err, COMPOSE_UNSAFE, v->line,
                                 "-%s on line %d names the source server inside a template; edit "
                                 "it by hand",
                                 name, v->line);
                }
                b1 = b0 > fl->vstart ? b0 - 1 : b0;
            }
            covered[fl->a0] = covered[fl->a1] = 1;
        } else if (strcmp(name, "retry-join") == 0 || strcmp(name, "join") == 0 ||
                   strcmp(name, "join-wan") == 0 || strcmp(name, "retry-join-wan") == 0) {
            covered[fl->a0] = covered[fl->a1] = 1; /* peers: the source is one */
        }
    }
    for (size_t k = 0; k < st->nargs && rc == COMPOSE_OK; k++) {
        if (!covered[k] && mentions_ip(st->args[k].s, st->args[k].n, src)) {
            rc = cx_fail(err, COMPOSE_UNSAFE, st->args[k].line,
                         "the argument on line %d names the source server (%s); this console does "
                         "not know what the new server's value should be",
                         st->args[k].line, node->source_addr);
        }
    }
    const struct cdoc *d = &st->doc;
    size_t c0 = st->loc.command, c1 = d->ev[c0].after;
    for (size_t i = 0; i < d->nev && rc == COMPOSE_OK; i++) {
        if (i == c0) {
            i = c1 - 1;
            continue;
        }
        if (d->ev[i].type == YAML_SCALAR_EVENT && mentions_ip(d->ev[i].value, d->ev[i].vlen, src)) {
            int line = cx_line_of(d, d->ev[i].start);
            rc = cx_fail(err, COMPOSE_UNSAFE, line,
                         "line %d names the source server (%s) outside the command; this console "
                         "does not know what the new server's value should be",
                         line, node->source_addr);
        }
    }
out:
    free(covered);
    return rc;
}

int
compose_new_node(const char *text, size_t len, const struct compose_node *node, char **out,
                 size_t *out_len, struct compose_error *err)
{
    *out = NULL;
    *out_len = 0;
    struct cs_addr src, dst;
    if (!node || !node->source_addr || !node->new_addr ||
        cs_ip_parse(node->source_addr, strlen(node->source_addr), &src) != 0 ||
        cs_ip_parse(node->new_addr, strlen(node->new_addr), &dst) != 0) {
        return cx_fail(err, COMPOSE_BAD_ADDRESS, 0,
                       "the source and new server addresses must be plain IPv4 or IPv6 addresses");
    }
    if (memcmp(src.ip, dst.ip, 16) == 0) {
        return cx_fail(err, COMPOSE_BAD_ADDRESS, 0, "the new server's address is the source's");
    }
    if (node->node_name && !node_name_ok(node->node_name)) {
        return cx_fail(err, COMPOSE_BAD_ADDRESS, 0,
                       "a node name has 1 to 63 letters, digits, '-', '_' or '.', starting with a "
                       "letter or digit");
    }
    int has_new = 0;
    for (size_t i = 0; i < node->n_join; i++) {
        struct cs_addr a;
        int rc = cx_parse_addr_arg(node->join[i], &a, err);
        if (rc) {
            return rc;
        }
        has_new |= a.port == 0 && memcmp(a.ip, dst.ip, 16) == 0 && a.kind != 'd';
    }
    if (!has_new) {
        return cx_fail(err, COMPOSE_BAD_ADDRESS, 0,
                       "the retry-join list for the new server must include its own address %s",
                       node->new_addr);
    }
    struct cstate st;
    int rc = cx_state_load(text, len, &st, err);
    if (rc) {
        return rc;
    }
    struct plan pl = {0};
    char *mid = NULL, *cur = NULL;
    size_t mid_len = 0, cur_len = 0;
    if ((rc = cx_ready_to_edit(&st, err)) || (rc = plan_new_node(&st, node, &src, &pl, err))) {
        goto out;
    }
    if (pl.nsp > 0 && (rc = cx_plan_finish(&st, &pl, st.style, 1, &mid, &mid_len, err))) {
        goto out;
    }
    rc = cx_set_list(mid ? mid : text, mid ? mid_len : len, node->join, node->n_join, &cur,
                     &cur_len, err);
    if (rc == COMPOSE_UNCHANGED) {
        rc = COMPOSE_OK;
        cur = mid;
        cur_len = mid_len;
        mid = NULL;
    }
out:
    free(mid);
    cx_plan_free(&pl);
    cx_state_free(&st);
    if (rc == COMPOSE_OK && !cur) {
        cx_fail(err, COMPOSE_UNCHANGED, 0, "the file already is the new server's file");
        return cx_finish_public(COMPOSE_UNCHANGED, text, len, NULL, 0, out, out_len, err);
    }
    return cx_finish_public(rc, text, len, cur, cur_len, out, out_len, err);
}

/* ---------- the line-end backslash trap ---------- */

/* Appends s[0..n) to b escaped for a double-quoted YAML scalar, with docker-compose's $$ for
 * a literal $ (the value is the one after interpolation). */
static void
dq_escape(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            (void)buf_append(b, "\\", 1);
        } else if (s[i] == '$') {
            (void)buf_append(b, "$", 1);
        }
        (void)buf_append(b, s + i, 1);
    }
}

/* The arguments the author meant: shlex.split of the value with every trap backslash and
 * the whitespace it escapes replaced by one space, as a shell joins continued lines. */
static int
intended_argv(const struct cstate *st, const unsigned char *trap_bs, struct plan *pl)
{
    struct buf b;
    buf_init(&b, st->val.n + 1);
    for (size_t i = 0; i < st->val.n; i++) {
        if (trap_bs[i]) {
            (void)buf_puts(&b, " ");
            i++; /* the escaped whitespace */
            continue;
        }
        (void)buf_append(&b, st->val.s + i, 1);
    }
    struct cs_arg *sa = NULL;
    struct cs_escape *esc = NULL;
    size_t na = 0, ne = 0, at = 0;
    int rc = cs_shlex(b.data ? b.data : "", b.len, &sa, &na, &esc, &ne, &at, NULL);
    buf_free(&b);
    free(esc);
    if (rc != CS_SHLEX_OK) {
        return -1;
    }
    pl->argc = na;
    pl->argv = xcalloc(na + 1, sizeof(char *));
    for (size_t i = 0; i < na; i++) {
        pl->argv[i] = xstrndup(sa[i].s, sa[i].n);
    }
    cs_args_free(sa, na);
    return 0;
}

int
compose_fix_trap(const char *text, size_t len, char **out, size_t *out_len,
                 struct compose_error *err)
{
    *out = NULL;
    *out_len = 0;
    struct cstate st;
    int rc = cx_state_load(text, len, &st, err);
    if (rc) {
        return rc;
    }
    const char *t = st.doc.text;
    struct plan pl = {0};
    unsigned char *trap_bs = NULL, *in_tok = NULL;
    char *nt = NULL;
    size_t nlen = 0, ntraps = 0;
    struct buf b;
    buf_init(&b, 2 * COMPOSE_MAX_TEXT);
    if (st.form == COMPOSE_FORM_STRING && st.nargs > 0) {
        trap_bs = xcalloc(st.val.n + 1, 1);
        for (size_t k = 0; k < st.nesc; k++) {
            if (cx_is_trap(&st, &st.esc[k])) {
                trap_bs[st.esc[k].bs] = 1;
                ntraps++;
            }
        }
    }
    for (size_t k = 0; k < st.ndiags; k++) {
        int kind = st.diags[k].kind;
        if (kind == COMPOSE_DIAG_SHELL_SYNTAX || (ntraps && kind == COMPOSE_DIAG_INTERPOLATION)) {
            rc = cx_fail(err, COMPOSE_UNSUPPORTED, st.diags[k].line, "%s", st.diags[k].message);
            goto out;
        }
    }
    if (ntraps == 0) {
        rc = cx_fail(err, COMPOSE_UNCHANGED, 0, "the command has no line-end backslash trap");
        goto out;
    }
    int line = cx_line_of(&st.doc, st.val.raw_start);
    if (st.style == COMPOSE_STYLE_DOUBLE) {
        rc = cx_fail(
            err, COMPOSE_UNSUPPORTED, line,
            "the double-quoted command on line %d has an escaped backslash (\\\\) at a line "
            "end; fix it by hand",
            line);
        goto out;
    }
    if (!st.editable) {
        rc = cx_fail(err, COMPOSE_UNSUPPORTED, st.not_editable_line, "%s", st.not_editable);
        goto out;
    }
    /* A line break inside shell quotes belongs to an argument; joining lines would change it. */
    in_tok = xcalloc(st.val.n + 1, 1);
    for (size_t k = 0; k < st.nargs; k++) {
        memset(in_tok + st.args[k].v0, 1, st.args[k].v1 - st.args[k].v0);
    }
    for (size_t i = 0; i < st.val.n; i++) {
        if (st.val.synth[i] && in_tok[i] && !(i > 0 && trap_bs[i - 1])) {
            int l = cx_line_of(&st.doc, st.val.from[i]);
            rc = cx_fail(err, COMPOSE_UNSUPPORTED, l,
                         "an argument continues across the line break after line %d inside quotes; "
                         "fix it by hand",
                         l);
            goto out;
        }
    }
    if (intended_argv(&st, trap_bs, &pl) != 0) {
        rc = cx_fail(err, COMPOSE_UNSUPPORTED, line,
                     "the command on line %d cannot be split into arguments", line);
        goto out;
    }
    /* One output line per source line holding text: its bytes without the trap backslash
     * and the whitespace it escapes, and without the separating blanks at either end. */
    size_t r1 = 0, cur_ls = (size_t)-1, pend0 = 0, npend = 0;
    int lines_out = 0;
    for (size_t i = 0; i < st.val.n; i++) {
        if (st.val.synth[i] || trap_bs[i] || (i > 0 && trap_bs[i - 1])) {
            continue;
        }
        size_t ls = cx_line_start(t, st.val.from[i]);
        int sep = !in_tok[i] && cx_is_blank(st.val.s[i]);
        if (ls != cur_ls) {
            if (sep) {
                continue;
            }
            if (lines_out++ == 0) {
                (void)buf_puts(&b, "\"");
            } else {
                size_t ind = ls;
                while (ind < st.doc.len && cx_is_blank(t[ind])) {
                    ind++;
                }
                (void)buf_puts(&b, " \\");
                (void)buf_puts(&b, (ls >= 2 && t[ls - 2] == '\r') ? "\r\n" : "\n");
                (void)buf_append(&b, t + ls, ind - ls);
            }
            cur_ls = ls;
            npend = 0;
        }
        if (sep) {
            pend0 = npend++ ? pend0 : i;
            continue;
        }
        for (size_t k = pend0; npend > 0 && k < i; k++) {
            if (!st.val.synth[k] && !in_tok[k]) {
                (void)buf_append(&b, st.val.s + k, 1);
            }
        }
        npend = 0;
        dq_escape(&b, st.val.s + i, 1);
        r1 = st.val.to[i] > r1 ? st.val.to[i] : r1;
    }
    (void)buf_puts(&b, "\"");
    size_t r0 = st.val.raw_start;
    if (st.style == COMPOSE_STYLE_SINGLE || st.style == COMPOSE_STYLE_PLAIN) {
        r1 = st.val.raw_end; /* the closing quote, or the end of the last line */
    }
    if (st.val.comment_end > st.val.comment_start) {
        (void)buf_puts(&b, " ");
        (void)buf_append(&b, t + st.val.comment_start, st.val.comment_end - st.val.comment_start);
    }
    cx_plan_splice(&pl, r0, r1, buf_steal(&b));
    nt = cx_plan_apply(t, st.doc.len, &pl, &nlen);
    if (!nt) {
        rc = cx_fail(err, COMPOSE_VERIFY, 0, "the planned edits overlap; nothing was changed");
        goto out;
    }
    if ((rc = cx_verify(&st, nt, nlen, &pl, COMPOSE_STYLE_DOUBLE, 0, err)) == COMPOSE_OK) {
        *out = nt;
        *out_len = nlen;
        nt = NULL;
    }
out:
    buf_free(&b);
    free(nt);
    free(trap_bs);
    free(in_tok);
    cx_plan_free(&pl);
    cx_state_free(&st);
    if (rc == COMPOSE_UNCHANGED) {
        return cx_finish_public(rc, text, len, NULL, 0, out, out_len, err);
    }
    return rc;
}
