/* prom: see include/prom.h. A line-at-a-time parser of the text exposition format: each
 * line is a comment, blank, or `name{label="value",...} value [timestamp]`. A line that is
 * none of these is skipped and counted; the parser never reads past len. */
#include "prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Longest number token (value or timestamp) accepted. */
#define PROM_MAX_NUMBER 128

struct cursor {
    const char *p;
    const char *end;
};

static int
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int
is_name_start(char c, int colon_ok)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

static int
is_name_char(char c, int colon_ok)
{
    return is_name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

static void
skip_blanks(struct cursor *c)
{
    while (c->p < c->end && is_blank(*c->p)) {
        c->p++;
    }
}

/* Reads a metric name (colon_ok) or label name at the cursor into a new string the caller
 * frees. Returns NULL, cursor unchanged, when there is no valid name. */
static char *
read_name(struct cursor *c, int colon_ok)
{
    const char *start = c->p;
    if (c->p >= c->end || !is_name_start(*c->p, colon_ok)) {
        return NULL;
    }
    while (c->p < c->end && is_name_char(*c->p, colon_ok)) {
        c->p++;
    }
    return xstrndup(start, (size_t)(c->p - start));
}

/* Reads a quoted label value, unescaping \\ \" and \n. Returns a new string the caller
 * frees, or NULL when the value is unterminated, holds a NUL or an unknown escape. */
static char *
read_label_value(struct cursor *c)
{
    if (c->p >= c->end || *c->p != '"') {
        return NULL;
    }
    c->p++;
    struct buf b;
    buf_init(&b, (size_t)(c->end - c->p) + 1);
    char *res = NULL;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '"') {
            res = buf_steal(&b);
            goto out;
        }
        if (ch == '\0') {
            goto out;
        }
        if (ch == '\\') {
            if (c->p >= c->end) {
                goto out;
            }
            char e = *c->p++;
            if (e == 'n') {
                ch = '\n';
            } else if (e == '\\' || e == '"') {
                ch = e;
            } else {
                goto out;
            }
        }
        buf_append(&b, &ch, 1);
    }
out:
    buf_free(&b);
    return res;
}

/* Reads a token of non-blank characters into out (NUL-terminated). Returns its length, or
 * 0 when there is none or it does not fit. */
static size_t
read_token(struct cursor *c, char *out, size_t outlen)
{
    const char *start = c->p;
    while (c->p < c->end && !is_blank(*c->p)) {
        c->p++;
    }
    size_t n = (size_t)(c->p - start);
    if (n == 0 || n >= outlen || memchr(start, '\0', n)) {
        return 0;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return n;
}

/* Parses a sample value: a decimal or exponent number, NaN, +Inf, -Inf (any case). */
static int
parse_value(const char *tok, double *v)
{
    char *endp = NULL;
    if (tok[0] == '\0' || is_blank(tok[0])) {
        return -1;
    }
    *v = strtod(tok, &endp);
    if (endp == tok || *endp != '\0') {
        return -1;
    }
    return 0;
}

/* Parses an optional-sign decimal int64 of milliseconds. */
static int
parse_timestamp(const char *tok, int64_t *ts)
{
    const char *p = tok;
    int neg = 0;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (*p == '\0') {
        return -1;
    }
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    if (neg) {
        *ts = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        *ts = (int64_t)v;
    }
    return 0;
}

static void
sample_clear(struct prom_sample *s)
{
    free(s->name);
    for (size_t i = 0; i < s->n_labels; i++) {
        free(s->labels[i].name);
        free(s->labels[i].value);
    }
    free(s->labels);
    memset(s, 0, sizeof(*s));
}

/* Parses the label set after '{' up to and including '}'. Fills s->labels. Returns 0, or
 * -1 on malformed input (s keeps what it had; the caller clears it). */
static int
parse_labels(struct cursor *c, struct prom_sample *s)
{
    size_t cap = 0;
    for (;;) {
        skip_blanks(c);
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return 0;
        }
        if (s->n_labels >= PROM_MAX_LABELS) {
            return -1;
        }
        char *name = read_name(c, 0);
        if (!name) {
            return -1;
        }
        for (size_t i = 0; i < s->n_labels; i++) {
            if (strcmp(s->labels[i].name, name) == 0) {
                free(name);
                return -1;
            }
        }
        skip_blanks(c);
        if (c->p >= c->end || *c->p != '=') {
            free(name);
            return -1;
        }
        c->p++;
        skip_blanks(c);
        char *value = read_label_value(c);
        if (!value) {
            free(name);
            return -1;
        }
        if (s->n_labels == cap) {
            cap = cap ? cap * 2 : 4;
            s->labels = xrealloc(s->labels, cap * sizeof(*s->labels));
        }
        s->labels[s->n_labels].name = name;
        s->labels[s->n_labels].value = value;
        s->n_labels++;
        skip_blanks(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return 0;
        }
        return -1;
    }
}

/* Parses one sample line (already known not to be blank or a comment) into s. Returns 0,
 * or -1 when the line is malformed, with s cleared. */
static int
parse_sample_line(const char *line, const char *end, struct prom_sample *s)
{
    struct cursor c = {line, end};
    char tok[PROM_MAX_NUMBER];
    memset(s, 0, sizeof(*s));
    skip_blanks(&c);
    s->name = read_name(&c, 1);
    if (!s->name) {
        goto fail;
    }
    if (c.p < c.end && !is_blank(*c.p) && *c.p != '{') {
        goto fail; /* the name must be followed by a blank or '{' */
    }
    skip_blanks(&c);
    if (c.p < c.end && *c.p == '{') {
        c.p++;
        if (parse_labels(&c, s) != 0) {
            goto fail;
        }
        skip_blanks(&c);
    }
    if (read_token(&c, tok, sizeof(tok)) == 0 || parse_value(tok, &s->value) != 0) {
        goto fail;
    }
    skip_blanks(&c);
    if (c.p < c.end) {
        if (read_token(&c, tok, sizeof(tok)) == 0 || parse_timestamp(tok, &s->timestamp_ms)) {
            goto fail;
        }
        s->has_timestamp = 1;
        skip_blanks(&c);
        if (c.p < c.end) {
            goto fail;
        }
    }
    return 0;
fail:
    sample_clear(s);
    return -1;
}

int
prom_parse(const char *text, size_t len, struct prom_sample **out, size_t *n, size_t *n_skipped)
{
    *out = NULL;
    *n = 0;
    if (n_skipped) {
        *n_skipped = 0;
    }
    if (len > PROM_MAX_TEXT) {
        return PROM_TOO_BIG;
    }
    if (!text) {
        return PROM_OK;
    }
    struct prom_sample *arr = NULL;
    size_t count = 0, cap = 0, skipped = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *lend = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (lend > p && lend[-1] == '\r') {
            lend--;
        }
        const char *q = p;
        while (q < lend && is_blank(*q)) {
            q++;
        }
        if (q == lend || *q == '#') {
            p = next;
            continue;
        }
        struct prom_sample s;
        if (parse_sample_line(p, lend, &s) != 0) {
            skipped++;
            p = next;
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 32;
            arr = xrealloc(arr, cap * sizeof(*arr));
        }
        arr[count++] = s;
        p = next;
    }
    *out = arr;
    *n = count;
    if (n_skipped) {
        *n_skipped = skipped;
    }
    return PROM_OK;
}

void
prom_samples_free(struct prom_sample *s, size_t n)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sample_clear(&s[i]);
    }
    free(s);
}

const char *
prom_label_get(const struct prom_sample *s, const char *label_name)
{
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i].name, label_name) == 0) {
            return s->labels[i].value;
        }
    }
    return NULL;
}

double
prom_value(const struct prom_sample *s, size_t n, const char *name, const char *label_name,
           const char *label_value)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].name, name) != 0) {
            continue;
        }
        if (label_name) {
            const char *v = prom_label_get(&s[i], label_name);
            if (!v || (label_value && strcmp(v, label_value) != 0)) {
                continue;
            }
        }
        return s[i].value;
    }
    return NAN;
}
