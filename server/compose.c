/* compose: see include/compose.h. The file is parsed once with libyaml into a flat list of
 * events (with byte offsets), services.consul.command is located in it, its value is decoded
 * with a map back to the raw bytes (compose_scalar.c), split and flag-parsed as docker-compose
 * and the agent do (compose_argv.c), and an edit is a list of byte splices computed from that
 * map. Every edited text is parsed again from scratch and must give exactly the intended
 * arguments with every other YAML event unchanged, or the edit is refused. */
#include "compose.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "compose_internal.h"
#include "util.h"

/* ---------- edits: splices of the raw text, and the arguments they must give ---------- */

void
cx_plan_free(struct plan *pl)
{
    for (size_t i = 0; i < pl->nsp; i++) {
        free(pl->sp[i].text);
    }
    free(pl->sp);
    for (size_t i = 0; i < pl->argc; i++) {
        free(pl->argv[i]);
    }
    free(pl->argv);
    memset(pl, 0, sizeof(*pl));
}

void
cx_plan_splice(struct plan *pl, size_t start, size_t end, char *text)
{
    pl->sp = xrealloc(pl->sp, (pl->nsp + 1) * sizeof(*pl->sp));
    pl->sp[pl->nsp++] = (struct splice){.start = start, .end = end, .text = text};
}

/* Starts the expected arguments as a copy of the current ones. */
void
cx_plan_argv_copy(struct plan *pl, const struct cstate *st)
{
    pl->argc = st->nargs;
    pl->argv = xcalloc(st->nargs + 2, sizeof(char *));
    for (size_t i = 0; i < st->nargs; i++) {
        pl->argv[i] = xstrndup(st->args[i].s, st->args[i].n);
    }
}

static void
plan_argv_insert(struct plan *pl, size_t at, char *s)
{
    pl->argv = xrealloc(pl->argv, (pl->argc + 2) * sizeof(char *));
    memmove(pl->argv + at + 1, pl->argv + at, (pl->argc - at) * sizeof(char *));
    pl->argv[at] = s;
    pl->argc++;
}

static void
plan_argv_delete(struct plan *pl, size_t at, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(pl->argv[at + i]);
    }
    memmove(pl->argv + at, pl->argv + at + count, (pl->argc - at - count) * sizeof(char *));
    pl->argc -= count;
}

static int
splice_cmp(const void *a, const void *b)
{
    const struct splice *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

/* The text with the plan's splices applied (sorted; overlapping splices are a bug and give
 * NULL). The caller frees the result. */
char *
cx_plan_apply(const char *t, size_t len, struct plan *pl, size_t *out_len)
{
    qsort(pl->sp, pl->nsp, sizeof(*pl->sp), splice_cmp);
    struct buf b;
    buf_init(&b, 2 * COMPOSE_MAX_TEXT + 1);
    size_t at = 0;
    for (size_t i = 0; i < pl->nsp; i++) {
        const struct splice *s = &pl->sp[i];
        if (s->start < at || s->end < s->start || s->end > len) {
            buf_free(&b);
            return NULL;
        }
        (void)buf_append(&b, t + at, s->start - at);
        (void)buf_puts(&b, s->text);
        at = s->end;
    }
    (void)buf_append(&b, t + at, len - at);
    *out_len = b.len;
    if (!b.data) {
        return xstrdup("");
    }
    return buf_steal(&b);
}

/* The raw bytes of value bytes [b0, b1) of argument a, when they are written verbatim: no
 * escape, quote or line break between them. Returns 1 and sets [*r0, *r1), else 0. */
int
cx_verbatim(const struct cstate *st, const struct carg *a, size_t b0, size_t b1, size_t *r0,
            size_t *r1)
{
    if (b0 >= b1 || b1 > a->n) {
        return 0;
    }
    *r0 = a->from[b0];
    *r1 = a->to[b1 - 1];
    return *r1 >= *r0 && *r1 - *r0 == b1 - b0 && *r1 <= st->doc.len &&
           memcmp(st->doc.text + *r0, a->s + b0, b1 - b0) == 0;
}

static int
events_equal(const struct cev *a, const struct cev *b)
{
    if (a->type != b->type || a->style != b->style) {
        return 0;
    }
    if ((a->anchor == NULL) != (b->anchor == NULL) || (a->anchor && strcmp(a->anchor, b->anchor))) {
        return 0;
    }
    if ((a->tag == NULL) != (b->tag == NULL) || (a->tag && strcmp(a->tag, b->tag))) {
        return 0;
    }
    if ((a->value == NULL) != (b->value == NULL)) {
        return 0;
    }
    return !a->value || (a->vlen == b->vlen && memcmp(a->value, b->value, a->vlen) == 0);
}

/* Reads the edited text from scratch and checks that it gives exactly pl->argv, in the
 * style expected, and that every YAML event outside the command is unchanged. need_clean:
 * the result must have no blocking diagnostic either. */
int
cx_verify(const struct cstate *old, const char *nt, size_t nlen, const struct plan *pl,
          int expect_style, int need_clean, struct compose_error *err)
{
    struct cstate ns;
    struct compose_error e2 = {0};
    int rc = cx_state_load(nt, nlen, &ns, &e2);
    if (rc) {
        return cx_fail(err, COMPOSE_VERIFY, e2.line,
                       "the edited file would not read back (%s); nothing was changed", e2.message);
    }
    rc = COMPOSE_OK;
    if (need_clean && ns.blocking) {
        struct compose_error e3;
        cx_fail_blocking(&ns, &e3);
        rc = cx_fail(err, COMPOSE_VERIFY, e3.line, "the edited file would have a problem (%s)",
                     e3.message);
        goto out;
    }
    if (ns.form != old->form || ns.style != expect_style) {
        rc = cx_fail(err, COMPOSE_VERIFY, 0,
                     "the edited command would be written differently (%s instead of %s)",
                     cx_style_name(ns.style), cx_style_name(expect_style));
        goto out;
    }
    for (size_t i = 0; i < pl->argc || i < ns.nargs; i++) {
        if (i >= pl->argc || i >= ns.nargs || strlen(pl->argv[i]) != ns.args[i].n ||
            memcmp(pl->argv[i], ns.args[i].s, ns.args[i].n) != 0) {
            char q1[128] = "(none)", q2[128] = "(none)";
            if (i < ns.nargs) {
                cx_quote(ns.args[i].s, ns.args[i].n, q1, sizeof(q1));
            }
            if (i < pl->argc) {
                cx_quote(pl->argv[i], strlen(pl->argv[i]), q2, sizeof(q2));
            }
            rc = cx_fail(err, COMPOSE_VERIFY, i < ns.nargs ? ns.args[i].line : 0,
                         "the edited file would give argument %zu as %s instead of %s; nothing was "
                         "changed",
                         i + 1, q1, q2);
            goto out;
        }
    }
    const struct cdoc *a = &old->doc, *b = &ns.doc;
    size_t a0 = old->loc.command, a1 = a->ev[a0].after;
    size_t b0 = ns.loc.command, b1 = b->ev[b0].after;
    if (a0 != b0 || a->nev - a1 != b->nev - b1) {
        rc = cx_fail(err, COMPOSE_VERIFY, 0,
                     "the edit would change the file outside services.%s.command", COMPOSE_SERVICE);
        goto out;
    }
    for (size_t i = 0; i < a->nev; i++) {
        size_t j = i;
        if (i == a0) {
            i = a1 - 1;
            continue;
        }
        if (i >= a1) {
            j = i - a1 + b1;
        }
        if (!events_equal(&a->ev[i], &b->ev[j])) {
            rc = cx_fail(err, COMPOSE_VERIFY, cx_line_of(b, b->ev[j].start),
                         "the edit would change line %d, outside services.%s.command",
                         cx_line_of(b, b->ev[j].start), COMPOSE_SERVICE);
            goto out;
        }
    }
out:
    cx_state_free(&ns);
    return rc;
}

/* List form: the start of the line of item arg (its "- " must begin the line). */
static int
item_line_start(const struct cstate *st, const struct carg *a, size_t *l0,
                struct compose_error *err)
{
    const char *t = st->doc.text;
    size_t p = a->raw0;
    while (p > 0 && cx_is_blank(t[p - 1])) {
        p--;
    }
    if (p == 0 || t[p - 1] != '-') {
        return cx_fail(err, COMPOSE_UNSUPPORTED, a->line,
                       "the list item on line %d does not follow its \"- \" on the same line",
                       a->line);
    }
    p--;
    while (p > 0 && cx_is_blank(t[p - 1])) {
        p--;
    }
    if (p > 0 && t[p - 1] != '\n') {
        return cx_fail(err, COMPOSE_UNSUPPORTED, a->line,
                       "the list item on line %d shares its line with something else", a->line);
    }
    *l0 = p;
    return COMPOSE_OK;
}

/* List form: the end of item arg's line, after blanks and a comment ([end, *l1) is the rest of
 * the line with its break). */
static int
item_line_end(const struct cstate *st, const struct carg *a, size_t *l1, struct compose_error *err)
{
    const char *t = st->doc.text;
    size_t p = a->raw1;
    while (p < st->doc.len && cx_is_blank(t[p])) {
        p++;
    }
    if (p < st->doc.len && t[p] == '#') {
        while (p < st->doc.len && t[p] != '\r' && t[p] != '\n') {
            p++;
        }
    }
    if (p < st->doc.len && t[p] != '\r' && t[p] != '\n') {
        return cx_fail(err, COMPOSE_UNSUPPORTED, a->line,
                       "something other than a comment follows the list item on line %d", a->line);
    }
    *l1 = cx_line_next(t, st->doc.len, p);
    return COMPOSE_OK;
}

/* The style the new entry's text is written in (for the plain-scalar checks). */
static int
entry_plain(const struct cstate *st, const struct carg *a)
{
    if (st->form == COMPOSE_FORM_STRING) {
        return st->style == COMPOSE_STYLE_PLAIN;
    }
    return st->doc.ev[a->ev].style == YAML_PLAIN_SCALAR_STYLE;
}

/* Plans adding addr after the last retry-join entry, copying it; or, with no entry yet,
 * after the last argument as -retry-join=addr. */
static int
plan_add(const struct cstate *st, const char *addr, struct plan *pl, struct compose_error *err)
{
    const char *t = st->doc.text;
    size_t len = st->doc.len, alen = strlen(addr);
    struct buf b;
    buf_init(&b, 2 * COMPOSE_MAX_TEXT);
    int rc = COMPOSE_OK;
    cx_plan_argv_copy(pl, st);
    size_t a0i, a1i, A0 = 0, A1 = 0;
    const char *prefix = "";
    if (st->nentries > 0) {
        const struct cflag *fl = &st->flags[st->entries[st->nentries - 1]];
        a0i = fl->a0;
        a1i = fl->a1;
        const struct carg *v = &st->args[a1i];
        if (!cx_verbatim(st, v, fl->vstart, v->n, &A0, &A1)) {
            rc = cx_fail(err, COMPOSE_UNSUPPORTED, v->line,
                         "the address on line %d is written with escapes or across lines; add the "
                         "new entry by hand",
                         v->line);
            goto out;
        }
        if (entry_plain(st, v) && (addr[alen - 1] == ':' || (A0 == v->raw0 && addr[0] == '['))) {
            rc = cx_fail(err, COMPOSE_UNSUPPORTED, v->line,
                         "%s cannot be written unquoted like the entry on line %d (YAML would read "
                         "it differently); quote that entry first",
                         addr, v->line);
            goto out;
        }
        char *arg = a0i == a1i ? xasprintf("%.*s%s", (int)fl->vstart, v->s, addr) : xstrdup(addr);
        if (a0i != a1i) {
            plan_argv_insert(pl, a1i + 1, xstrndup(st->args[a0i].s, st->args[a0i].n));
            plan_argv_insert(pl, a1i + 2, arg);
        } else {
            plan_argv_insert(pl, a1i + 1, arg);
        }
    } else {
        if (st->nargs == 0 || st->flags_end != st->nargs) {
            rc = cx_fail(err, COMPOSE_UNSUPPORTED, 0,
                         "there is no retry-join entry to copy and no last flag to add one after");
            goto out;
        }
        a0i = a1i = st->nargs - 1;
        prefix = "-retry-join=";
        plan_argv_insert(pl, pl->argc, xasprintf("-retry-join=%s", addr));
    }
    const struct carg *f = &st->args[a0i], *v = &st->args[a1i];
    if (st->form == COMPOSE_FORM_STRING) {
        if (a0i > 0) {
            const struct carg *p = &st->args[a0i - 1];
            (void)buf_append(&b, t + p->raw1, f->raw0 - p->raw1);
        } else {
            (void)buf_puts(&b, " ");
        }
        if (*prefix) {
            (void)buf_printf(&b, "%s%s", prefix, addr);
        } else {
            (void)buf_append(&b, t + f->raw0, A0 - f->raw0);
            (void)buf_puts(&b, addr);
            (void)buf_append(&b, t + A1, v->raw1 - A1);
        }
        cx_plan_splice(pl, v->raw1, v->raw1, buf_steal(&b));
        goto out;
    }
    /* List form: new lines after the template's last line, each "<indent>- <item>". */
    size_t at;
    if ((rc = item_line_end(st, v, &at, err))) {
        goto out;
    }
    int eof_no_break = at == len && (len == 0 || t[len - 1] != '\n');
    for (size_t k = a0i; k <= a1i; k++) {
        const struct carg *it = &st->args[k];
        size_t l0;
        if ((rc = item_line_start(st, it, &l0, err))) {
            goto out;
        }
        const char *br = cx_break_of_line(t, len, it->raw1);
        if (eof_no_break) {
            (void)buf_puts(&b, br);
        }
        (void)buf_append(&b, t + l0, it->raw0 - l0);
        if (*prefix) {
            int st_ = st->doc.ev[it->ev].style;
            const char *q = st_ == YAML_DOUBLE_QUOTED_SCALAR_STYLE   ? "\""
                            : st_ == YAML_SINGLE_QUOTED_SCALAR_STYLE ? "'"
                                                                     : "";
            (void)buf_printf(&b, "%s%s%s%s", q, prefix, addr, q);
        } else if (k == a1i) {
            (void)buf_append(&b, t + it->raw0, A0 - it->raw0);
            (void)buf_puts(&b, addr);
            (void)buf_append(&b, t + A1, it->raw1 - A1);
        } else {
            (void)buf_append(&b, t + it->raw0, it->raw1 - it->raw0);
        }
        if (!eof_no_break) {
            (void)buf_puts(&b, br);
        }
    }
    cx_plan_splice(pl, at, at, buf_steal(&b));
out:
    buf_free(&b);
    return rc;
}

/* Plans removing retry-join entry e (flag arguments a0..a1). */
static int
plan_remove(const struct cstate *st, size_t e, struct plan *pl, struct compose_error *err)
{
    const char *t = st->doc.text;
    size_t len = st->doc.len;
    const struct cflag *fl = &st->flags[st->entries[e]];
    const struct carg *f = &st->args[fl->a0], *v = &st->args[fl->a1];
    cx_plan_argv_copy(pl, st);
    plan_argv_delete(pl, fl->a0, fl->a1 - fl->a0 + 1);
    if (st->form == COMPOSE_FORM_LIST) {
        for (size_t k = fl->a0; k <= fl->a1; k++) {
            const struct carg *it = &st->args[k];
            size_t l0, l1;
            int rc = item_line_start(st, it, &l0, err);
            if (rc || (rc = item_line_end(st, it, &l1, err))) {
                return rc;
            }
            if (l1 == len && (len == 0 || t[len - 1] != '\n') && l0 > 0) {
                l0 -= (l0 >= 2 && t[l0 - 2] == '\r') ? 2 : 1; /* keep "no break at the end" */
            }
            if (pl->nsp > 0 && pl->sp[pl->nsp - 1].end == l0) {
                pl->sp[pl->nsp - 1].end = l1;
            } else {
                cx_plan_splice(pl, l0, l1, xstrdup(""));
            }
        }
        return COMPOSE_OK;
    }
    /* Take the separator before the entry with it: an entry alone on its line takes its
     * line, a last entry leaves no dangling continuation before the closing quote, and
     * removing an entry just added gives back the very bytes it was added to (compose_add
     * inserts "separator + entry" after the last entry). */
    size_t r0 = f->raw0, r1 = v->raw1;
    if (fl->a0 > 0) {
        cx_plan_splice(pl, st->args[fl->a0 - 1].raw1, r1, xstrdup(""));
    } else if (fl->a1 + 1 < st->nargs) {
        cx_plan_splice(pl, r0, st->args[fl->a1 + 1].raw0, xstrdup(""));
    } else {
        return cx_fail(err, COMPOSE_UNSUPPORTED, f->line,
                       "the retry-join on line %d is the only argument", f->line);
    }
    return COMPOSE_OK;
}

/* ---------- add, remove, set ---------- */

/* Applies a plan to st's text and verifies it; on COMPOSE_OK *out is the new text. */
int
cx_plan_finish(const struct cstate *st, struct plan *pl, int expect_style, int need_clean,
               char **out, size_t *out_len, struct compose_error *err)
{
    size_t nlen = 0;
    char *nt = cx_plan_apply(st->doc.text, st->doc.len, pl, &nlen);
    if (!nt) {
        return cx_fail(err, COMPOSE_VERIFY, 0, "the planned edits overlap; nothing was changed");
    }
    int rc = cx_verify(st, nt, nlen, pl, expect_style, need_clean, err);
    if (rc) {
        free(nt);
        return rc;
    }
    *out = nt;
    *out_len = nlen;
    return COMPOSE_OK;
}

int
cx_parse_addr_arg(const char *addr, struct cs_addr *a, struct compose_error *err)
{
    char why[200];
    if (!addr || cs_addr_parse(addr, a, why, sizeof(why)) != 0) {
        return cx_fail(err, COMPOSE_BAD_ADDRESS, 0, "not a valid retry-join address: %s",
                       addr ? why : "none given");
    }
    return COMPOSE_OK;
}

/* Index of the first entry naming the same host and port as a, or nentries. */
static size_t
find_entry(const struct cstate *st, const struct cs_addr *a)
{
    for (size_t e = 0; e < st->nentries; e++) {
        if (st->eaddr_ok[e] && cs_addr_same(&st->eaddr[e], a)) {
            return e;
        }
    }
    return st->nentries;
}

static int
entry_line(const struct cstate *st, size_t e)
{
    return st->args[st->flags[st->entries[e]].a1].line;
}

/* One add on text: COMPOSE_OK with *out, COMPOSE_UNCHANGED (no *out), or an error. */
static int
op_add(const char *text, size_t len, const char *addr, char **out, size_t *out_len,
       struct compose_error *err)
{
    struct cs_addr a;
    int rc = cx_parse_addr_arg(addr, &a, err);
    if (rc) {
        return rc;
    }
    struct cstate st;
    if ((rc = cx_state_load(text, len, &st, err))) {
        return rc;
    }
    struct plan pl = {0};
    if ((rc = cx_ready_to_edit(&st, err))) {
        goto out;
    }
    size_t e = find_entry(&st, &a);
    if (e < st.nentries) {
        rc = cx_fail(err, COMPOSE_UNCHANGED, entry_line(&st, e),
                     "%s is already in the retry-join list (line %d); nothing to change", addr,
                     entry_line(&st, e));
        goto out;
    }
    if ((rc = plan_add(&st, addr, &pl, err)) == COMPOSE_OK) {
        rc = cx_plan_finish(&st, &pl, st.style, 1, out, out_len, err);
    }
out:
    cx_plan_free(&pl);
    cx_state_free(&st);
    return rc;
}

/* Removes the first entry equal to a: COMPOSE_OK with *out, COMPOSE_UNCHANGED, or an error. */
static int
op_remove_one(const char *text, size_t len, const struct cs_addr *a, const char *addr, char **out,
              size_t *out_len, struct compose_error *err)
{
    struct cstate st;
    int rc = cx_state_load(text, len, &st, err);
    if (rc) {
        return rc;
    }
    struct plan pl = {0};
    if ((rc = cx_ready_to_edit(&st, err))) {
        goto out;
    }
    size_t e = find_entry(&st, a);
    if (e == st.nentries) {
        rc = cx_fail(err, COMPOSE_UNCHANGED, 0,
                     "%s is not in the retry-join list; nothing to change", addr);
        goto out;
    }
    if ((rc = plan_remove(&st, e, &pl, err)) == COMPOSE_OK) {
        rc = cx_plan_finish(&st, &pl, st.style, 1, out, out_len, err);
    }
out:
    cx_plan_free(&pl);
    cx_state_free(&st);
    return rc;
}

/* Turns an op result into the public contract: OK with the new text, UNCHANGED with a copy
 * of the input, anything else with *out NULL. */
int
cx_finish_public(int rc, const char *text, size_t len, char *cur, size_t cur_len, char **out,
                 size_t *out_len, struct compose_error *err)
{
    if (rc == COMPOSE_OK && cur) {
        *out = cur;
        *out_len = cur_len;
        if (err) {
            memset(err, 0, sizeof(*err));
        }
        return COMPOSE_OK;
    }
    free(cur);
    if (rc == COMPOSE_UNCHANGED || rc == COMPOSE_OK) {
        *out = xmalloc(len + 1);
        memcpy(*out, text, len);
        (*out)[len] = '\0';
        *out_len = len;
        return COMPOSE_UNCHANGED;
    }
    return rc;
}

int
compose_add(const char *text, size_t len, const char *addr, char **out, size_t *out_len,
            struct compose_error *err)
{
    *out = NULL;
    *out_len = 0;
    char *nt = NULL;
    size_t nlen = 0;
    int rc = op_add(text, len, addr, &nt, &nlen, err);
    return cx_finish_public(rc, text, len, nt, nlen, out, out_len, err);
}

/* Removes every entry equal to a from text, one verified edit at a time. *cur is the result
 * (NULL when nothing changed). */
static int
remove_all(const char *text, size_t len, const char *addr, char **cur, size_t *cur_len,
           struct compose_error *err)
{
    struct cs_addr a;
    int rc = cx_parse_addr_arg(addr, &a, err);
    if (rc) {
        return rc;
    }
    for (int guard = 0; guard <= COMPOSE_MAX_ARGS; guard++) {
        char *nt = NULL;
        size_t nlen = 0;
        rc = op_remove_one(*cur ? *cur : text, *cur ? *cur_len : len, &a, addr, &nt, &nlen, err);
        if (rc == COMPOSE_UNCHANGED) {
            return *cur ? COMPOSE_OK : COMPOSE_UNCHANGED;
        }
        if (rc) {
            return rc;
        }
        free(*cur);
        *cur = nt;
        *cur_len = nlen;
    }
    return cx_fail(err, COMPOSE_VERIFY, 0, "removing %s did not converge", addr);
}

int
compose_remove(const char *text, size_t len, const char *addr, char **out, size_t *out_len,
               struct compose_error *err)
{
    *out = NULL;
    *out_len = 0;
    char *cur = NULL;
    size_t cur_len = 0;
    int rc = remove_all(text, len, addr, &cur, &cur_len, err);
    return cx_finish_public(rc, text, len, cur, cur_len, out, out_len, err);
}

/* Makes the list of text exactly addrs; *cur as in remove_all. */
int
cx_set_list(const char *text, size_t len, const char *const *addrs, size_t n, char **cur,
            size_t *cur_len, struct compose_error *err)
{
    struct cs_addr *want = xcalloc(n ? n : 1, sizeof(*want));
    int rc = COMPOSE_OK;
    for (size_t i = 0; i < n && rc == COMPOSE_OK; i++) {
        rc = cx_parse_addr_arg(addrs[i], &want[i], err);
    }
    for (size_t i = 0; i < n && rc == COMPOSE_OK; i++) {
        char *nt = NULL;
        size_t nlen = 0;
        rc = op_add(*cur ? *cur : text, *cur ? *cur_len : len, addrs[i], &nt, &nlen, err);
        if (rc == COMPOSE_OK) {
            free(*cur);
            *cur = nt;
            *cur_len = nlen;
        } else if (rc == COMPOSE_UNCHANGED) {
            rc = COMPOSE_OK;
        }
    }
    for (int guard = 0; rc == COMPOSE_OK && guard <= COMPOSE_MAX_ARGS; guard++) {
        struct cstate st;
        rc = cx_state_load(*cur ? *cur : text, *cur ? *cur_len : len, &st, err);
        if (rc) {
            break;
        }
        if ((rc = cx_ready_to_edit(&st, err))) {
            cx_state_free(&st);
            break;
        }
        char *extra = NULL;
        for (size_t e = 0; e < st.nentries && !extra && rc == COMPOSE_OK; e++) {
            if (!st.eaddr_ok[e]) {
                int line = entry_line(&st, e);
                rc = cx_fail(err, COMPOSE_UNSUPPORTED, line,
                             "the retry-join entry on line %d is not an address (a cloud "
                             "auto-join?), so the list cannot be made exactly the one given",
                             line);
                break;
            }
            int keep = 0;
            for (size_t i = 0; i < n && !keep; i++) {
                keep = st.eaddr_ok[e] && cs_addr_same(&st.eaddr[e], &want[i]);
            }
            if (!keep) {
                const struct cflag *fl = &st.flags[st.entries[e]];
                const struct carg *v = &st.args[fl->a1];
                extra = xstrndup(v->s + fl->vstart, v->n - fl->vstart);
            }
        }
        cx_state_free(&st);
        if (!extra || rc != COMPOSE_OK) {
            break;
        }
        char *nt = NULL;
        size_t nlen = 0;
        rc = remove_all(*cur ? *cur : text, *cur ? *cur_len : len, extra, &nt, &nlen, err);
        free(extra);
        if (rc == COMPOSE_OK) {
            free(*cur);
            *cur = nt;
            *cur_len = nlen;
        } else if (rc == COMPOSE_UNCHANGED) {
            rc = cx_fail(err, COMPOSE_VERIFY, 0, "an entry could not be removed");
        }
    }
    if (rc == COMPOSE_OK && *cur) {
        /* Belt and braces: the final list is exactly the one asked for. */
        struct cstate st;
        rc = cx_state_load(*cur, *cur_len, &st, err);
        for (size_t i = 0; i < n && rc == COMPOSE_OK; i++) {
            if (find_entry(&st, &want[i]) == st.nentries) {
                rc = cx_fail(err, COMPOSE_VERIFY, 0, "%s would be missing; nothing was changed",
                             addrs[i]);
            }
        }
        for (size_t e = 0; e < st.nentries && rc == COMPOSE_OK; e++) {
            int keep = 0;
            for (size_t i = 0; i < n && !keep; i++) {
                keep = st.eaddr_ok[e] && cs_addr_same(&st.eaddr[e], &want[i]);
            }
            if (!keep) {
                rc = cx_fail(err, COMPOSE_VERIFY, entry_line(&st, e),
                             "line %d would keep an entry not asked for; nothing was changed",
                             entry_line(&st, e));
            }
        }
        cx_state_free(&st); /* zeroed when the load failed */
    }
    free(want);
    if (rc == COMPOSE_OK && !*cur) {
        rc = COMPOSE_UNCHANGED;
        cx_fail(err, COMPOSE_UNCHANGED, 0, "the retry-join list is already exactly the one given");
    }
    return rc;
}

int
compose_set(const char *text, size_t len, const char *const *addrs, size_t n, char **out,
            size_t *out_len, struct compose_error *err)
{
    *out = NULL;
    *out_len = 0;
    char *cur = NULL;
    size_t cur_len = 0;
    int rc = cx_set_list(text, len, addrs, n, &cur, &cur_len, err);
    return cx_finish_public(rc, text, len, cur, cur_len, out, out_len, err);
}
