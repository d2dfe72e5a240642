/* compose_diff: a unified diff (`diff -u`, 3 lines of context) of two small texts, for the
 * approver to read before a compose file is replaced. Lines are compared whole (a last line
 * without its break differs from the same line with one, as in GNU diff). The edit script is
 * computed the way GNU diff computes it (discarding lines that cannot match, Myers' linear
 * space divide and conquer, then boundary shifting), so the hunks are the ones `diff -u`
 * prints; the search is capped at COMPOSE_DIFF_MAX_EDITS steps. */
#include <limits.h>
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
static size_t
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
    size_t next = 1; /* ids start at 1 */
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
    return next;
}

/* The edit script, as GNU diff computes it (diffutils analyze.c, gnulib diffseq.h):
 * Myers' linear-space divide and conquer on the lines left after discarding those that
 * cannot match. Following it closely makes our hunks the ones `diff -u` prints even where
 * several shortest scripts exist. */
struct dctx {
    const size_t *xv, *yv; /* line ids of the lines compared */
    long *fd, *bd;         /* forward and backward furthest x per diagonal */
    char *cx, *cy;         /* changed marks, in the compared lines' indices */
    long cost, limit;      /* edit steps spent, and the most allowed */
    int abort;
};

struct partition {
    long xmid, ymid;
};

/* Finds the midpoint of the shortest edit script for x[xoff, xlim) and y[yoff, ylim). */
static void
diag(long xoff, long xlim, long yoff, long ylim, struct partition *part, struct dctx *c)
{
    long *const fd = c->fd, *const bd = c->bd;
    const size_t *xv = c->xv, *yv = c->yv;
    const long dmin = xoff - ylim, dmax = xlim - yoff;
    const long fmid = xoff - yoff, bmid = xlim - ylim;
    long fmin = fmid, fmax = fmid, bmin = bmid, bmax = bmid;
    int odd = (fmid - bmid) & 1;
    fd[fmid] = xoff;
    bd[bmid] = xlim;
    for (;;) {
        if (++c->cost > c->limit) {
            c->abort = 1;
            part->xmid = xoff;
            part->ymid = yoff;
            return;
        }
        if (fmin > dmin) {
            fd[--fmin - 1] = -1;
        } else {
            ++fmin;
        }
        if (fmax < dmax) {
            fd[++fmax + 1] = -1;
        } else {
            --fmax;
        }
        for (long d = fmax; d >= fmin; d -= 2) {
            long tlo = fd[d - 1], thi = fd[d + 1];
            long x0 = tlo < thi ? thi : tlo + 1, x, y;
            for (x = x0, y = x0 - d; x < xlim && y < ylim && xv[x] == yv[y]; x++, y++) {
            }
            fd[d] = x;
            if (odd && bmin <= d && d <= bmax && bd[d] <= x) {
                part->xmid = x;
                part->ymid = y;
                return;
            }
        }
        if (bmin > dmin) {
            bd[--bmin - 1] = LONG_MAX;
        } else {
            ++bmin;
        }
        if (bmax < dmax) {
            bd[++bmax + 1] = LONG_MAX;
        } else {
            --bmax;
        }
        for (long d = bmax; d >= bmin; d -= 2) {
            long tlo = bd[d - 1], thi = bd[d + 1];
            long x0 = tlo < thi ? tlo : thi - 1, x, y;
            for (x = x0, y = x0 - d; xoff < x && yoff < y && xv[x - 1] == yv[y - 1]; x--, y--) {
            }
            bd[d] = x;
            if (!odd && fmin <= d && d <= fmax && x <= fd[d]) {
                part->xmid = x;
                part->ymid = y;
                return;
            }
        }
    }
}

/* GNU's compareseq, with an explicit stack instead of recursion (the halves are independent,
 * so the order they are done in does not matter): a web server thread's stack stays small. */
static void
compareseq(long xoff0, long xlim0, long yoff0, long ylim0, struct dctx *c)
{
    size_t cap = 64, n = 0;
    long(*st)[4] = xmalloc(cap * sizeof(*st));
    st[n][0] = xoff0;
    st[n][1] = xlim0;
    st[n][2] = yoff0;
    st[n++][3] = ylim0;
    while (n > 0 && !c->abort) {
        n--;
        long xoff = st[n][0], xlim = st[n][1], yoff = st[n][2], ylim = st[n][3];
        while (xoff < xlim && yoff < ylim && c->xv[xoff] == c->yv[yoff]) {
            xoff++;
            yoff++;
        }
        while (xoff < xlim && yoff < ylim && c->xv[xlim - 1] == c->yv[ylim - 1]) {
            xlim--;
            ylim--;
        }
        if (xoff == xlim) {
            while (yoff < ylim) {
                c->cy[yoff++] = 1;
            }
            continue;
        }
        if (yoff == ylim) {
            while (xoff < xlim) {
                c->cx[xoff++] = 1;
            }
            continue;
        }
        struct partition part;
        diag(xoff, xlim, yoff, ylim, &part, c);
        if (n + 2 > cap) {
            cap *= 2;
            st = xrealloc(st, cap * sizeof(*st));
        }
        long halves[2][4] = {{part.xmid, xlim, part.ymid, ylim},
                             {xoff, part.xmid, yoff, part.ymid}};
        memcpy(st[n++], halves[0], sizeof(halves[0]));
        memcpy(st[n++], halves[1], sizeof(halves[1]));
    }
    free(st);
}

/* GNU diff's discard_confusing_lines: a line with no equal in the other file is changed
 * whatever the script; a line with very many equals is left out of the search when it sits
 * inside a run of such lines. Marks the discarded lines changed and returns, per file, the
 * ids and real indices of the lines kept. */
static void
discard_lines(const struct lines *ls[2], size_t nids, char *changed[2], size_t *keep_id[2],
              size_t *keep_ix[2], size_t nkeep[2])
{
    size_t *count[2];
    char *disc[2];
    for (int f = 0; f < 2; f++) {
        count[f] = xcalloc(nids + 1, sizeof(size_t));
        for (size_t i = 0; i < ls[f]->n; i++) {
            count[f][ls[f]->id[i]]++;
        }
        disc[f] = xcalloc(ls[f]->n + 1, 1);
    }
    for (int f = 0; f < 2; f++) {
        size_t end = ls[f]->n, many = 5, tem = end / 64;
        while ((tem = tem >> 2) > 0) {
            many *= 2;
        }
        for (size_t i = 0; i < end; i++) {
            size_t nmatch = count[1 - f][ls[f]->id[i]];
            disc[f][i] = nmatch == 0 ? 1 : nmatch > many ? 2 : 0;
        }
    }
    for (int f = 0; f < 2; f++) {
        long end = (long)ls[f]->n;
        char *d = disc[f];
        for (long i = 0; i < end; i++) {
            if (d[i] == 2) {
                d[i] = 0;
                continue;
            }
            if (d[i] == 0) {
                continue;
            }
            long j, provisional = 0;
            for (j = i; j < end && d[j] != 0; j++) {
                provisional += d[j] == 2;
            }
            while (j > i && d[j - 1] == 2) {
                d[--j] = 0;
                --provisional;
            }
            long length = j - i;
            if (provisional * 4 > length) {
                while (j > i) {
                    if (d[--j] == 2) {
                        d[j] = 0;
                    }
                }
                continue;
            }
            long minimum = 1, t = length >> 2, consec;
            while (0 < (t >>= 2)) {
                minimum <<= 1;
            }
            minimum++;
            for (j = 0, consec = 0; j < length; j++) {
                if (d[i + j] != 2) {
                    consec = 0;
                } else if (minimum == ++consec) {
                    j -= consec;
                } else if (minimum < consec) {
                    d[i + j] = 0;
                }
            }
            for (j = 0, consec = 0; j < length; j++) {
                if (j >= 8 && d[i + j] == 1) {
                    break;
                }
                if (d[i + j] == 2) {
                    consec = 0;
                    d[i + j] = 0;
                } else if (d[i + j] == 0) {
                    consec = 0;
                } else {
                    consec++;
                }
                if (consec == 3) {
                    break;
                }
            }
            i += length - 1;
            for (j = 0, consec = 0; j < length; j++) {
                if (j >= 8 && d[i - j] == 1) {
                    break;
                }
                if (d[i - j] == 2) {
                    consec = 0;
                    d[i - j] = 0;
                } else if (d[i - j] == 0) {
                    consec = 0;
                } else {
                    consec++;
                }
                if (consec == 3) {
                    break;
                }
            }
        }
    }
    for (int f = 0; f < 2; f++) {
        size_t k = 0;
        keep_id[f] = xmalloc((ls[f]->n + 1) * sizeof(size_t));
        keep_ix[f] = xmalloc((ls[f]->n + 1) * sizeof(size_t));
        for (size_t i = 0; i < ls[f]->n; i++) {
            if (disc[f][i] == 0) {
                keep_id[f][k] = ls[f]->id[i];
                keep_ix[f][k++] = i;
            } else {
                changed[f][i] = 1;
            }
        }
        nkeep[f] = k;
        free(count[f]);
        free(disc[f]);
    }
}

/* Marks the changed lines of a and b (changed[0], changed[1]); -1 when the script would
 * take more than COMPOSE_DIFF_MAX_EDITS edit steps to find. */
static int
edit_script(const struct lines *a, const struct lines *b, size_t nids, char *changed[2])
{
    const struct lines *ls[2] = {a, b};
    size_t *kid[2], *kix[2], nk[2];
    discard_lines(ls, nids, changed, kid, kix, nk);
    long diags = (long)(nk[0] + nk[1] + 3);
    long *fd = xmalloc((size_t)diags * sizeof(long)), *bd = xmalloc((size_t)diags * sizeof(long));
    struct dctx c = {
        .xv = kid[0],
        .yv = kid[1],
        .fd = fd + nk[1] + 1,
        .bd = bd + nk[1] + 1,
        .cx = xcalloc(nk[0] + 1, 1),
        .cy = xcalloc(nk[1] + 1, 1),
        .limit = COMPOSE_DIFF_MAX_EDITS,
    };
    compareseq(0, (long)nk[0], 0, (long)nk[1], &c);
    for (size_t i = 0; i < nk[0]; i++) {
        changed[0][kix[0][i]] |= c.cx[i];
    }
    for (size_t i = 0; i < nk[1]; i++) {
        changed[1][kix[1][i]] |= c.cy[i];
    }
    for (int f = 0; f < 2; f++) {
        free(kid[f]);
        free(kix[f]);
    }
    free(c.cx);
    free(c.cy);
    free(fd);
    free(bd);
    return c.abort ? -1 : 0;
}

/* The line that starts at byte offset off of l (l->n when off is the end). */
static size_t
line_at(const struct lines *l, size_t off)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->start[mid] < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* GNU diff's find_identical_ends: the lines outside [*a0, *a1) and [*b0, *b1) are an
 * identical prefix and suffix that the analysis never sees (less CONTEXT lines of each, which
 * it does), so changes cannot slide into them. The suffix is only trimmed when both files
 * end the same way (with or without a final line break). */
static void
identical_ends(const char *t0, size_t n0, const char *t1, size_t n1, const struct lines *a,
               const struct lines *b, size_t *a0, size_t *a1, size_t *b0, size_t *b1)
{
    size_t p = 0, m = n0 < n1 ? n0 : n1;
    while (p < m && t0[p] == t1[p]) {
        p++;
    }
    int horizon = CONTEXT;
    while (p > 0 && (t0[p - 1] != '\n' || horizon-- > 0)) {
        p--;
    }
    size_t prefix_end = p, s0 = n0, s1 = n1;
    int miss0 = n0 > 0 && t0[n0 - 1] != '\n', miss1 = n1 > 0 && t1[n1 - 1] != '\n';
    if (miss0 == miss1) {
        size_t beg0 = prefix_end + (n0 < n1 ? 0 : n0 - n1), q0 = n0, q1 = n1;
        while (q0 != beg0) {
            if (t0[--q0] != t1[--q1]) {
                ++q0;
                ++q1;
                beg0 = q0;
                break;
            }
        }
        size_t start0 = q0;
        int i = CONTEXT + !((q0 == 0 || t0[q0 - 1] == '\n') && (q1 == 0 || t1[q1 - 1] == '\n'));
        while (i && q0 != n0) {
            if (t0[q0++] == '\n') {
                i--;
            }
        }
        q1 += q0 - start0;
        s0 = q0;
        s1 = q1;
    }
    *a0 = line_at(a, prefix_end);
    *b0 = line_at(b, prefix_end);
    *a1 = line_at(a, s0);
    *b1 = line_at(b, s1);
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
    if (!old_text) {
        old_text = "";
        old_len = 0;
    }
    if (!new_text) {
        new_text = "";
        new_len = 0;
    }
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
    size_t nids = number_lines(&a, &b);
    /* Two sentinel bytes on each side for shift_boundaries. */
    ca = xcalloc(a.n + 4, 1);
    cb = xcalloc(b.n + 4, 1);
    char *changed[2] = {ca + 2, cb + 2};
    size_t a0, a1, b0, b1;
    identical_ends(old_text, old_len, new_text, new_len, &a, &b, &a0, &a1, &b0, &b1);
    struct lines va = {.text = a.text, .n = a1 - a0, .id = a.id + a0};
    struct lines vb = {.text = b.text, .n = b1 - b0, .id = b.id + b0};
    char *vchanged[2] = {changed[0] + a0, changed[1] + b0};
    if (edit_script(&va, &vb, nids, vchanged) != 0) {
        rc = COMPOSE_TOO_BIG;
        if (err) {
            snprintf(err->message, sizeof(err->message),
                     "the files differ too much to show a diff (more than %d edit steps)",
                     COMPOSE_DIFF_MAX_EDITS);
        }
        goto out;
    }
    const size_t *ids[2] = {va.id, vb.id};
    const long lens[2] = {(long)va.n, (long)vb.n};
    shift_boundaries(vchanged, ids, lens);
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
