/* compose_diff: a unified diff (`diff -u`, 3 lines of context) of two small texts, for the
 * approver to read before a compose file is replaced. Lines are compared whole (a last line
 * without its break differs from the same line with one, as in GNU diff); the edit script is
 * Myers' greedy O(ND) algorithm with its history kept (O(D^2) memory, D capped), then GNU
 * diff's boundary shifting so that the hunks read the way `diff -u` prints them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "util.h"

#define CONTEXT 3

struct lines {
    const char *text;
    size_t *start; /* n + 1 offsets: line i is [start[i], start[i + 1]) */
    size_t n;
    size_t *id; /* equal lines have equal ids */
};

static int
split_lines(const char *t, size_t len, struct lines *l)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += t[i] == '\n';
    }
    if (len > 0 && t[len - 1] != '\n') {
        n++;
    }
    if (n > COMPOSE_DIFF_MAX_LINES) {
        return -1;
    }
    l->text = t;
    l->n = n;
    l->start = xmalloc((n + 1) * sizeof(size_t));
    l->id = xmalloc((n ? n : 1) * sizeof(size_t));
    size_t k = 0;
    l->start[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '\n') {
            l->start[++k] = i + 1;
        }
    }
    l->start[n] = len;
    return 0;
}

static uint64_t
hash_line(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return h;
}

/* Gives every distinct line of a and b its own id (open addressing over both files). */
static void
number_lines(struct lines *a, struct lines *b)
{
    size_t total = a->n + b->n, cap = 16;
    while (cap < 2 * total + 1) {
        cap *= 2;
    }
    struct slot {
        const char *s;
        size_t n;
        size_t id;
        int used;
    } *tab = xcalloc(cap, sizeof(*tab));
    size_t next = 0;
    struct lines *ls[2] = {a, b};
    for (int f = 0; f < 2; f++) {
        for (size_t i = 0; i < ls[f]->n; i++) {
            const char *s = ls[f]->text + ls[f]->start[i];
            size_t n = ls[f]->start[i + 1] - ls[f]->start[i];
            size_t h = (size_t)hash_line(s, n) & (cap - 1);
            while (tab[h].used && !(tab[h].n == n && memcmp(tab[h].s, s, n) == 0)) {
                h = (h + 1) & (cap - 1);
            }
            if (!tab[h].used) {
                tab[h] = (struct slot){.s = s, .n = n, .id = next++, .used = 1};
            }
            ls[f]->id[i] = tab[h].id;
        }
    }
    free(tab);
}

/* Marks the changed lines of a[lo_a, hi_a) and b[lo_b, hi_b) in ca / cb with a shortest
 * edit script. Returns -1 when more than COMPOSE_DIFF_MAX_EDITS edits are needed. */
static int
myers(const size_t *a, size_t na, const size_t *b, size_t nb, char *ca, char *cb)
{
    long n = (long)na, m = (long)nb, max = n + m;
    if (max == 0) {
        return 0;
    }
    long dmax = max < COMPOSE_DIFF_MAX_EDITS ? max : COMPOSE_DIFF_MAX_EDITS;
    long *v = xcalloc((size_t)(2 * max + 3), sizeof(long));
    long **hist = xcalloc((size_t)dmax + 1, sizeof(long *));
    long off = max + 1, dfound = -1;
    for (long d = 0; d <= dmax && dfound < 0; d++) {
        for (long k = -d; k <= d; k += 2) {
            long x;
            if (k == -d || (k != d && v[off + k - 1] < v[off + k + 1])) {
                x = v[off + k + 1];
            } else {
                x = v[off + k - 1] + 1;
            }
            long y = x - k;
            while (x < n && y < m && a[x] == b[y]) {
                x++;
                y++;
            }
            v[off + k] = x;
            if (x >= n && y >= m) {
                dfound = d;
            }
        }
        hist[d] = xmalloc((size_t)(2 * d + 1) * sizeof(long));
        memcpy(hist[d], v + off - d, (size_t)(2 * d + 1) * sizeof(long));
    }
    int rc = -1;
    if (dfound >= 0) {
        long x = n, y = m;
        for (long d = dfound; d > 0; d--) {
            long k = x - y;
            const long *pv = hist[d - 1] + (d - 1); /* pv[k] for k in [-(d-1), d-1] */
            long pk = (k == -d || (k != d && pv[k - 1] < pv[k + 1])) ? k + 1 : k - 1;
            long px = pv[pk], py = px - pk;
            if (pk == k + 1) {
                cb[py] = 1;
            } else {
                ca[px] = 1;
            }
            x = px;
            y = py;
        }
        rc = 0;
    }
    for (long d = 0; d <= dmax; d++) {
        free(hist[d]);
    }
    free(hist);
    free(v);
    return rc;
}

/* GNU diff's shift_boundaries: slides each run of changed lines over identical neighbours so
 * that runs merge and otherwise sit as late as possible, aligned with changes in the other
 * file when it can. changed[f] and the sentinels changed[f][-1], changed[f][len] are valid. */
static void
shift_boundaries(char *changed[2], const size_t *ids[2], const long len[2])
{
    for (int f = 0; f < 2; f++) {
        char *ch = changed[f], *other = changed[1 - f];
        const size_t *eq = ids[f];
        long i = 0, j = 0, i_end = len[f];
        for (;;) {
            while (i < i_end && !ch[i]) {
                while (other[j++]) {
                }
                i++;
            }
            if (i == i_end) {
                break;
            }
            long start = i, runlength, corresponding;
            while (ch[++i]) {
            }
            while (other[j]) {
                j++;
            }
            do {
                runlength = i - start;
                while (start && eq[start - 1] == eq[i - 1]) {
                    ch[--start] = 1;
                    ch[--i] = 0;
                    while (ch[start - 1]) {
                        start--;
                    }
                    while (other[--j]) {
                    }
                }
                corresponding = other[j - 1] ? i : i_end;
                while (i != i_end && eq[start] == eq[i]) {
                    ch[start++] = 0;
                    ch[i++] = 1;
                    while (ch[i]) {
                        i++;
                    }
                    while (other[++j]) {
                        corresponding = i;
                    }
                }
            } while (runlength != i - start);
            while (corresponding < i) {
                ch[--start] = 1;
                ch[--i] = 0;
                while (other[--j]) {
                }
            }
        }
    }
}

static void
print_range(struct buf *b, size_t start, size_t count)
{
    if (count == 1) {
        (void)buf_printf(b, "%zu", start + 1);
    } else if (count == 0) {
        (void)buf_printf(b, "%zu,0", start);
    } else {
        (void)buf_printf(b, "%zu,%zu", start + 1, count);
    }
}

static void
print_line(struct buf *b, char prefix, const struct lines *l, size_t i)
{
    const char *s = l->text + l->start[i];
    size_t n = l->start[i + 1] - l->start[i];
    (void)buf_append(b, &prefix, 1);
    (void)buf_append(b, s, n);
    if (n == 0 || s[n - 1] != '\n') {
        (void)buf_puts(b, "\n\\ No newline at end of file\n");
    }
}

struct change {
    size_t a0, a1, b0, b1;
};

int
compose_diff(const char *old_text, size_t old_len, const char *new_text, size_t new_len,
             const char *label_old, const char *label_new, char **out, struct compose_error *err)
{
    *out = NULL;
    struct lines a = {0}, b = {0};
    char *ca = NULL, *cb = NULL;
    struct change *ch = NULL;
    size_t nch = 0;
    int rc = COMPOSE_OK;
    struct buf o;
    buf_init(&o, 4 * (old_len + new_len) + 8192 + (label_old ? strlen(label_old) : 0) +
                     (label_new ? strlen(label_new) : 0));
    if (split_lines(old_text, old_len, &a) != 0 || split_lines(new_text, new_len, &b) != 0) {
        rc = COMPOSE_TOO_BIG;
        if (err) {
            snprintf(err->message, sizeof(err->message),
                     "a file has more than %d lines; no diff is shown", COMPOSE_DIFF_MAX_LINES);
        }
        goto out;
    }
    number_lines(&a, &b);
    /* Two sentinel bytes on each side for shift_boundaries. */
    ca = xcalloc(a.n + 4, 1);
    cb = xcalloc(b.n + 4, 1);
    size_t pre = 0, suf = 0;
    while (pre < a.n && pre < b.n && a.id[pre] == b.id[pre]) {
        pre++;
    }
    while (suf < a.n - pre && suf < b.n - pre && a.id[a.n - 1 - suf] == b.id[b.n - 1 - suf]) {
        suf++;
    }
    if (myers(a.id + pre, a.n - pre - suf, b.id + pre, b.n - pre - suf, ca + 2 + pre,
              cb + 2 + pre) != 0) {
        rc = COMPOSE_TOO_BIG;
        if (err) {
            snprintf(err->message, sizeof(err->message),
                     "the files differ in more than %d lines; no diff is shown",
                     COMPOSE_DIFF_MAX_EDITS);
        }
        goto out;
    }
    char *changed[2] = {ca + 2, cb + 2};
    const size_t *ids[2] = {a.id, b.id};
    const long lens[2] = {(long)a.n, (long)b.n};
    shift_boundaries(changed, ids, lens);
    for (size_t i = 0, j = 0; i < a.n || j < b.n;) {
        if (i < a.n && j < b.n && !changed[0][i] && !changed[1][j]) {
            i++;
            j++;
            continue;
        }
        struct change c = {.a0 = i, .b0 = j};
        while (i < a.n && changed[0][i]) {
            i++;
        }
        while (j < b.n && changed[1][j]) {
            j++;
        }
        if (i == c.a0 && j == c.b0) {
            break; /* unaligned tails; cannot happen with a consistent script */
        }
        c.a1 = i;
        c.b1 = j;
        ch = xrealloc(ch, (nch + 1) * sizeof(*ch));
        ch[nch++] = c;
    }
    if (nch == 0) {
        *out = xstrdup("");
        goto out;
    }
    (void)buf_printf(&o, "--- %s\n+++ %s\n", label_old ? label_old : "a",
                     label_new ? label_new : "b");
    for (size_t h = 0; h < nch;) {
        size_t last = h;
        while (last + 1 < nch && ch[last + 1].a0 - ch[last].a1 <= 2 * CONTEXT) {
            last++;
        }
        size_t as = ch[h].a0 > CONTEXT ? ch[h].a0 - CONTEXT : 0;
        size_t ae = ch[last].a1 + CONTEXT < a.n ? ch[last].a1 + CONTEXT : a.n;
        size_t bs = ch[h].b0 - (ch[h].a0 - as);
        size_t be = ch[last].b1 + (ae - ch[last].a1);
        (void)buf_puts(&o, "@@ -");
        print_range(&o, as, ae - as);
        (void)buf_puts(&o, " +");
        print_range(&o, bs, be - bs);
        (void)buf_puts(&o, " @@\n");
        size_t i = as;
        for (size_t c = h; c <= last; c++) {
            for (; i < ch[c].a0; i++) {
                print_line(&o, ' ', &a, i);
            }
            for (size_t k = ch[c].a0; k < ch[c].a1; k++) {
                print_line(&o, '-', &a, k);
            }
            for (size_t k = ch[c].b0; k < ch[c].b1; k++) {
                print_line(&o, '+', &b, k);
            }
            i = ch[c].a1;
        }
        for (; i < ae; i++) {
            print_line(&o, ' ', &a, i);
        }
        h = last + 1;
    }
    *out = buf_steal(&o);
out:
    if (rc != COMPOSE_OK && err) {
        err->code = rc;
        err->line = 0;
    }
    buf_free(&o);
    free(ca);
    free(cb);
    free(ch);
    free(a.start);
    free(a.id);
    free(b.start);
    free(b.id);
    return rc;
}
