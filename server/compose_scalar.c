/* compose_scalar: decodes one YAML scalar (plain, '…', "…", | or >) the way libyaml's scanner
 * does, and records for every byte of the value the raw bytes of the file it came from. The
 * editor uses the map to turn "argument 7" into "bytes 212–233 of the file". The decoders
 * follow libyaml 0.2's scan_plain_scalar, scan_flow_scalar and scan_block_scalar; callers
 * compare the result with libyaml's own value and refuse the file on any difference, so a
 * corner this code reads differently is refused, never mis-edited. */
#include <stdlib.h>
#include <string.h>

#include "compose_internal.h"
#include "util.h"

static int
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the line break at i (2 for CR LF, 1 for LF or a lone CR), 0 when none. */
static size_t
brk_len(const char *t, size_t len, size_t i)
{
    if (i >= len) {
        return 0;
    }
    if (t[i] == '\n') {
        return 1;
    }
    if (t[i] == '\r') {
        return (i + 1 < len && t[i + 1] == '\n') ? 2 : 1;
    }
    return 0;
}

void
cs_value_push(struct cs_value *v, char c, size_t from, size_t to, int synth)
{
    if (v->n + 1 >= v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        v->s = xrealloc(v->s, cap);
        v->from = xrealloc(v->from, cap * sizeof(size_t));
        v->to = xrealloc(v->to, cap * sizeof(size_t));
        v->synth = xrealloc(v->synth, cap);
        v->cap = cap;
    }
    v->s[v->n] = c;
    v->from[v->n] = from;
    v->to[v->n] = to;
    v->synth[v->n] = (unsigned char)(synth ? 1 : 0);
    v->n++;
    v->s[v->n] = '\0';
}

void
cs_value_free(struct cs_value *v)
{
    if (!v) {
        return;
    }
    free(v->s);
    free(v->from);
    free(v->to);
    free(v->synth);
    memset(v, 0, sizeof(*v));
}

/* Emits what YAML makes of the run of blanks and line breaks [r0, r1) between two pieces of
 * content of a plain or quoted scalar: the blanks themselves when there is no break, one
 * space for a single break (folding), one newline per further break otherwise. */
static void
emit_gap(const char *t, size_t r0, size_t r1, struct cs_value *v)
{
    size_t nbreaks = 0;
    for (size_t j = r0; j < r1;) {
        size_t bl = brk_len(t, r1, j);
        nbreaks += bl ? 1 : 0;
        j += bl ? bl : 1;
    }
    if (nbreaks == 0) {
        for (size_t j = r0; j < r1; j++) {
            cs_value_push(v, t[j], j, j + 1, 0);
        }
        return;
    }
    if (nbreaks == 1) {
        cs_value_push(v, ' ', r0, r1, 1);
        return;
    }
    int first = 1;
    for (size_t j = r0; j < r1;) {
        size_t bl = brk_len(t, r1, j);
        if (bl) {
            if (!first) {
                cs_value_push(v, '\n', j, j + bl, 1);
            }
            first = 0;
            j += bl;
        } else {
            j++;
        }
    }
}

static int
decode_plain(const char *t, size_t len, size_t start, size_t end, struct cs_value *v)
{
    if (start > end || end > len) {
        return -1;
    }
    v->raw_start = start;
    v->raw_end = end;
    size_t i = start;
    while (i < end) {
        while (i < end && !is_blank(t[i]) && !brk_len(t, end, i)) {
            cs_value_push(v, t[i], i, i + 1, 0);
            i++;
        }
        if (i >= end) {
            break;
        }
        size_t r0 = i;
        while (i < end && (is_blank(t[i]) || brk_len(t, end, i))) {
            size_t bl = brk_len(t, end, i);
            i += bl ? bl : 1;
        }
        if (i >= end) {
            break; /* libyaml's end mark excludes trailing blanks; never reached */
        }
        emit_gap(t, r0, i, v);
    }
    return 0;
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Pushes the UTF-8 encoding of code point cp, every byte mapped to [from, to). */
static int
push_utf8(struct cs_value *v, unsigned long cp, size_t from, size_t to)
{
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        return -1;
    }
    if (cp < 0x80) {
        cs_value_push(v, (char)cp, from, to, 0);
    } else if (cp < 0x800) {
        cs_value_push(v, (char)(0xC0 | (cp >> 6)), from, to, 0);
        cs_value_push(v, (char)(0x80 | (cp & 0x3F)), from, to, 0);
    } else if (cp < 0x10000) {
        cs_value_push(v, (char)(0xE0 | (cp >> 12)), from, to, 0);
        cs_value_push(v, (char)(0x80 | ((cp >> 6) & 0x3F)), from, to, 0);
        cs_value_push(v, (char)(0x80 | (cp & 0x3F)), from, to, 0);
    } else {
        cs_value_push(v, (char)(0xF0 | (cp >> 18)), from, to, 0);
        cs_value_push(v, (char)(0x80 | ((cp >> 12) & 0x3F)), from, to, 0);
        cs_value_push(v, (char)(0x80 | ((cp >> 6) & 0x3F)), from, to, 0);
        cs_value_push(v, (char)(0x80 | (cp & 0x3F)), from, to, 0);
    }
    return 0;
}

/* Decodes the escape sequence whose backslash is at i of a double-quoted scalar. Returns the
 * number of raw bytes it spans, or 0 when it is not a valid escape. */
static size_t
decode_escape(const char *t, size_t len, size_t i, struct cs_value *v)
{
    if (i + 1 >= len) {
        return 0;
    }
    unsigned long cp;
    size_t digits = 0;
    switch (t[i + 1]) {
    case '0':
        cp = 0;
        break;
    case 'a':
        cp = 7;
        break;
    case 'b':
        cp = 8;
        break;
    case 't':
    case '\t':
        cp = 9;
        break;
    case 'n':
        cp = 10;
        break;
    case 'v':
        cp = 11;
        break;
    case 'f':
        cp = 12;
        break;
    case 'r':
        cp = 13;
        break;
    case 'e':
        cp = 27;
        break;
    case ' ':
        cp = ' ';
        break;
    case '"':
        cp = '"';
        break;
    case '/':
        cp = '/';
        break;
    case '\'':
        cp = '\'';
        break;
    case '\\':
        cp = '\\';
        break;
    case 'N':
        cp = 0x85;
        break;
    case '_':
        cp = 0xA0;
        break;
    case 'L':
        cp = 0x2028;
        break;
    case 'P':
        cp = 0x2029;
        break;
    case 'x':
        digits = 2;
        break;
    case 'u':
        digits = 4;
        break;
    case 'U':
        digits = 8;
        break;
    default:
        return 0;
    }
    if (digits) {
        if (i + 2 + digits > len) {
            return 0;
        }
        cp = 0;
        for (size_t k = 0; k < digits; k++) {
            int h = hex_val(t[i + 2 + k]);
            if (h < 0) {
                return 0;
            }
            cp = cp * 16 + (unsigned long)h;
        }
    }
    size_t span = 2 + digits;
    return push_utf8(v, cp, i, i + span) == 0 ? span : 0;
}

static int
decode_quoted(const char *t, size_t len, size_t start, int dbl, struct cs_value *v)
{
    char q = dbl ? '"' : '\'';
    if (start >= len || t[start] != q) {
        return -1;
    }
    v->raw_start = start;
    size_t i = start + 1;
    for (;;) {
        int escaped_break = 0;
        while (i < len && !is_blank(t[i]) && !brk_len(t, len, i)) {
            if (!dbl && t[i] == '\'' && i + 1 < len && t[i + 1] == '\'') {
                cs_value_push(v, '\'', i, i + 2, 0);
                i += 2;
                continue;
            }
            if (t[i] == q) {
                v->raw_end = i + 1;
                return 0;
            }
            if (dbl && t[i] == '\\') {
                size_t bl = brk_len(t, len, i + 1);
                if (bl) {
                    i += 1 + bl;
                    escaped_break = 1;
                    break;
                }
                size_t span = decode_escape(t, len, i, v);
                if (!span) {
                    return -1;
                }
                i += span;
                continue;
            }
            cs_value_push(v, t[i], i, i + 1, 0);
            i++;
        }
        if (i >= len) {
            return -1;
        }
        if (escaped_break) {
            /* The break is gone; indentation is skipped; further breaks are newlines. */
            while (i < len && (is_blank(t[i]) || brk_len(t, len, i))) {
                size_t bl = brk_len(t, len, i);
                if (bl) {
                    cs_value_push(v, '\n', i, i + bl, 1);
                    i += bl;
                } else {
                    i++;
                }
            }
            continue;
        }
        size_t r0 = i;
        while (i < len && (is_blank(t[i]) || brk_len(t, len, i))) {
            size_t bl = brk_len(t, len, i);
            i += bl ? bl : 1;
        }
        emit_gap(t, r0, i, v);
    }
}

/* Line breaks remembered by the block scalar decoder until it knows what they become. */
struct breaks {
    size_t *pos;
    size_t *len;
    size_t n, cap;
};

static void
breaks_push(struct breaks *b, size_t pos, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->pos = xrealloc(b->pos, b->cap * sizeof(size_t));
        b->len = xrealloc(b->len, b->cap * sizeof(size_t));
    }
    b->pos[b->n] = pos;
    b->len[b->n] = len;
    b->n++;
}

static void
breaks_flush(struct breaks *b, struct cs_value *v)
{
    for (size_t k = 0; k < b->n; k++) {
        cs_value_push(v, '\n', b->pos[k], b->pos[k] + b->len[k], 1);
    }
    b->n = 0;
}

/* libyaml's scan_block_scalar_breaks: eats indentation and empty lines, remembering the
 * breaks, and settles the indentation when it is not known yet. */
static int
block_breaks(const char *t, size_t len, size_t *i, int *col, int *indent, int parent_indent,
             struct breaks *tb)
{
    int max_indent = 0;
    for (;;) {
        while ((*indent == 0 || *col < *indent) && *i < len && t[*i] == ' ') {
            (*i)++;
            (*col)++;
        }
        if (*col > max_indent) {
            max_indent = *col;
        }
        if ((*indent == 0 || *col < *indent) && *i < len && t[*i] == '\t') {
            return -1;
        }
        size_t bl = brk_len(t, len, *i);
        if (!bl) {
            break;
        }
        breaks_push(tb, *i, bl);
        *i += bl;
        *col = 0;
    }
    if (*indent == 0) {
        *indent = max_indent;
        if (*indent < parent_indent + 1) {
            *indent = parent_indent + 1;
        }
        if (*indent < 1) {
            *indent = 1;
        }
    }
    return 0;
}

static int
decode_block(const char *t, size_t len, size_t start, int literal, int parent_indent,
             struct cs_value *v)
{
    int rc = -1;
    struct breaks tb = {0};
    size_t i = start + 1;
    int chomp = 0, increment = 0;
    v->raw_start = start;
    /* Header: a chomping indicator and an indentation indicator, in either order. */
    for (int k = 0; k < 2 && i < len; k++) {
        if (!chomp && (t[i] == '+' || t[i] == '-')) {
            chomp = t[i] == '+' ? 1 : -1;
            i++;
        } else if (!increment && t[i] >= '0' && t[i] <= '9') {
            if (t[i] == '0') {
                goto out;
            }
            increment = t[i] - '0';
            i++;
        }
    }
    while (i < len && is_blank(t[i])) {
        i++;
    }
    v->comment_start = v->comment_end = i;
    if (i < len && t[i] == '#') {
        while (i < len && !brk_len(t, len, i)) {
            i++;
        }
        v->comment_end = i;
    }
    v->raw_end = i;
    if (i < len) {
        size_t bl = brk_len(t, len, i);
        if (!bl) {
            goto out;
        }
        i += bl;
    }
    int indent = increment ? (parent_indent >= 0 ? parent_indent + increment : increment) : 0;
    int col = 0, leading_blank = 0, have_lb = 0;
    size_t lb_pos = 0, lb_len = 0;
    if (block_breaks(t, len, &i, &col, &indent, parent_indent, &tb) != 0) {
        goto out;
    }
    while (col == indent && i < len) {
        int trailing_blank = is_blank(t[i]);
        if (!literal && have_lb && !leading_blank && !trailing_blank) {
            if (tb.n == 0) {
                cs_value_push(v, ' ', lb_pos, lb_pos + lb_len, 1);
            }
        } else if (have_lb) {
            cs_value_push(v, '\n', lb_pos, lb_pos + lb_len, 1);
        }
        have_lb = 0;
        breaks_flush(&tb, v);
        leading_blank = is_blank(t[i]);
        while (i < len && !brk_len(t, len, i)) {
            cs_value_push(v, t[i], i, i + 1, 0);
            i++;
        }
        v->raw_end = i;
        if (i < len) {
            lb_pos = i;
            lb_len = brk_len(t, len, i);
            have_lb = 1;
            i += lb_len;
            col = 0;
        }
        if (block_breaks(t, len, &i, &col, &indent, parent_indent, &tb) != 0) {
            goto out;
        }
    }
    if (chomp != -1 && have_lb) {
        cs_value_push(v, '\n', lb_pos, lb_pos + lb_len, 1);
    }
    if (chomp == 1) {
        breaks_flush(&tb, v);
    }
    rc = 0;
out:
    free(tb.pos);
    free(tb.len);
    return rc;
}

int
cs_decode(const char *text, size_t len, size_t start, size_t end, int style, int parent_indent,
          struct cs_value *v)
{
    memset(v, 0, sizeof(*v));
    cs_value_push(v, 'x', 0, 0, 0); /* allocates, so an empty value is "" not NULL */
    v->n = 0;
    v->s[0] = '\0';
    int rc = -1;
    switch (style) {
    case CS_PLAIN:
        rc = decode_plain(text, len, start, end, v);
        break;
    case CS_SINGLE:
        rc = decode_quoted(text, len, start, 0, v);
        break;
    case CS_DOUBLE:
        rc = decode_quoted(text, len, start, 1, v);
        break;
    case CS_LITERAL:
    case CS_FOLDED:
        if (start < len && text[start] == (style == CS_LITERAL ? '|' : '>')) {
            rc = decode_block(text, len, start, style == CS_LITERAL, parent_indent, v);
        }
        break;
    default:
        break;
    }
    if (rc != 0) {
        cs_value_free(v);
    }
    return rc;
}
