/* gohttp: what Go's net/http does to a request path before Consul's handlers see it. The
 * server percent-decodes the path (an invalid escape is a 400 before any handler runs),
 * go-cleanhttp's PrintablePathCheckHandler refuses a decoded path with a non-printable
 * character (400, empty body), and ServeMux redirects (301) a path that is not clean
 * ("//", "/./", "/../") to its cleaned form, and a subtree root without its trailing slash
 * ("/v1/kv") to the subtree ("/v1/kv/"). Consul's handlers then take names and KV keys from
 * the decoded path, so "/v1/kv/a%2Fb" is the key "a/b". */
#include "agent.h"

#include <stdlib.h>
#include <string.h>

static int
hex_value(char c)
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

int
gohttp_path_unescape(const char *raw, char **out, size_t *len)
{
    size_t n = strlen(raw);
    char *d = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] != '%') {
            d[o++] = raw[i]; /* '+' stays '+' in a path, unlike a query */
            continue;
        }
        int hi = i + 2 < n ? hex_value(raw[i + 1]) : -1;
        int lo = i + 2 < n ? hex_value(raw[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            free(d);
            *out = NULL;
            return -1;
        }
        d[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    *len = o;
    return 0;
}

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length and sets *cp, or
 * returns 1 with *cp = U+FFFD for an invalid byte (as Go's range over a string does). */
static size_t
utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (len == 0 || len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    unsigned v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

/* Go's unicode.IsPrint for the code points a path can plausibly carry: false for control
 * characters (C0, DEL, C1), the space separators other than U+0020, the line and paragraph
 * separators and the common format characters. */
static bool
go_is_print(unsigned cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
        return false;
    }
    static const unsigned ranges[][2] = {
        {0x00A0, 0x00A0}, {0x00AD, 0x00AD}, {0x061C, 0x061C}, {0x1680, 0x1680},    {0x180E, 0x180E},
        {0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x2064}, {0x2066, 0x206F},    {0x3000, 0x3000},
        {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB}, {0xE000, 0xF8FF}, {0xF0000, 0x10FFFF},
    };
    for (size_t i = 0; i < ARRAY_LEN(ranges); i++) {
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) {
            return false;
        }
    }
    return true;
}

bool
gohttp_path_printable(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        i += utf8_next(s + i, len - i, &cp);
        if (!go_is_print(cp)) {
            return false;
        }
    }
    return true;
}

char *
gohttp_clean_path(const char *p)
{
    size_t n = strlen(p);
    /* At most one more byte than p: a leading '/' is added when missing. */
    char *out = xmalloc(n + 3);
    size_t o = 0;
    out[o++] = '/';
    const char *s = p;
    while (*s) {
        while (*s == '/') {
            s++;
        }
        const char *e = strchr(s, '/');
        size_t seg = e ? (size_t)(e - s) : strlen(s);
        if (seg == 0) {
            break;
        }
        if (seg == 1 && s[0] == '.') {
            /* "." is dropped */
        } else if (seg == 2 && s[0] == '.' && s[1] == '.') {
            /* ".." drops the previous element; at the root it stays at the root */
            if (o > 1) {
                o--; /* the '/' after the previous element */
                while (o > 1 && out[o - 1] != '/') {
                    o--;
                }
            }
        } else {
            memcpy(out + o, s, seg);
            o += seg;
            out[o++] = '/';
        }
        s += seg;
    }
    if (o > 1) {
        o--; /* path.Clean leaves no trailing slash ... */
    }
    if (n > 0 && p[n - 1] == '/' && o > 1) {
        out[o++] = '/'; /* ... and ServeMux's cleanPath puts it back */
    }
    out[o] = '\0';
    return out;
}

char *
gohttp_escape_path(const char *p)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(p);
    char *out = xmalloc(3 * n + 1);
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
        unsigned c = *s;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c && strchr("-_.~$&+,/:;=@", (int)c));
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* url.QueryEscape of s appended to b. */
static void
query_escape(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_append(b, p, 1);
        } else if (c == ' ') {
            buf_puts(b, "+");
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 3);
        }
    }
}

char *
gohttp_query_encode(const struct query *q)
{
    size_t order[QUERY_MAX];
    for (size_t i = 0; i < q->n; i++) {
        order[i] = i;
    }
    /* Insertion sort by key keeps the values of one key in their order, as Encode does. */
    for (size_t i = 1; i < q->n; i++) {
        size_t v = order[i];
        size_t j = i;
        while (j > 0 && strcmp(q->k[order[j - 1]], q->k[v]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    for (size_t i = 0; i < q->n; i++) {
        if (i) {
            buf_puts(&b, "&");
        }
        query_escape(&b, q->k[order[i]]);
        buf_puts(&b, "=");
        query_escape(&b, q->v[order[i]]);
    }
    return buf_steal(&b);
}
