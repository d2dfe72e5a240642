/* compose_doc: the compose file as YAML. Refuses text the editor cannot hold with
 * certainty, parses it with libyaml into a flat list of events with byte offsets (libyaml's
 * marks count characters), and finds services.consul.command in it, refusing duplicate keys,
 * merge keys, aliases and anchors on the way. Also the error helpers of the module. */
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

/* ---------- errors ---------- */

static const char *const rc_names[] = {
    [COMPOSE_OK] = "ok",
    [COMPOSE_UNCHANGED] = "unchanged",
    [COMPOSE_TOO_BIG] = "too_big",
    [COMPOSE_BAD_TEXT] = "bad_text",
    [COMPOSE_NOT_YAML] = "not_yaml",
    [COMPOSE_NO_SERVICE] = "no_service",
    [COMPOSE_NO_COMMAND] = "no_command",
    [COMPOSE_AMBIGUOUS] = "ambiguous",
    [COMPOSE_UNSUPPORTED] = "unsupported",
    [COMPOSE_BAD_ADDRESS] = "bad_address",
    [COMPOSE_BROKEN] = "broken_command",
    [COMPOSE_UNSAFE] = "unsafe",
    [COMPOSE_VERIFY] = "verify_failed",
};

const char *
compose_rc_name(int rc)
{
    if (rc < 0 || (size_t)rc >= ARRAY_LEN(rc_names) || !rc_names[rc]) {
        return "unknown";
    }
    return rc_names[rc];
}

/* Fills err (may be NULL) and returns code. */
int cx_fail(struct compose_error *err, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int
cx_fail(struct compose_error *err, int code, int line, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        err->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Writes s (n bytes) into out as a short printable quotation: control bytes as \xNN, at most
 * 60 bytes of the value. */
void
cx_quote(const char *s, size_t n, char *out, size_t outlen)
{
    struct buf b;
    buf_init(&b, outlen > 0 ? outlen - 1 : 0);
    (void)buf_puts(&b, "\"");
    for (size_t i = 0; i < n && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            (void)buf_printf(&b, "\\x%02x", c);
        } else if (c == '"' || c == '\\') {
            (void)buf_printf(&b, "\\%c", c);
        } else {
            (void)buf_append(&b, &c, 1);
        }
    }
    (void)buf_puts(&b, n > 60 ? "…\"" : "\"");
    snprintf(out, outlen, "%s", b.data ? b.data : "\"\"");
    buf_free(&b);
}

/* ---------- the raw text ---------- */

/* Refuses what the editor cannot hold with certainty: oversize input, NUL bytes, invalid
 * UTF-8, and line breaks other than LF and CR LF (YAML 1.1 also breaks lines at a lone CR,
 * NEL, LS and PS; YAML 1.2 parsers do not, so such a file means different things to the two
 * docker-compose generations). */
int
cx_check_text(const char *t, size_t len, struct compose_error *err)
{
    if (len > COMPOSE_MAX_TEXT) {
        return cx_fail(err, COMPOSE_TOO_BIG, 0, "the file has %zu bytes; at most %u are accepted",
                       len, COMPOSE_MAX_TEXT);
    }
    int line = 1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\n') {
            line++;
            i++;
            continue;
        }
        if (c == '\0') {
            return cx_fail(err, COMPOSE_BAD_TEXT, line, "line %d holds a NUL byte", line);
        }
        if (c == '\r' && !(i + 1 < len && t[i + 1] == '\n')) {
            return cx_fail(err, COMPOSE_BAD_TEXT, line,
                           "line %d has a carriage return that does not end the line (only LF and "
                           "CR LF line ends are accepted)",
                           line);
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        if (n == 0 || i + n > len || !utf8_valid(t + i, n)) {
            return cx_fail(err, COMPOSE_BAD_TEXT, line, "line %d is not valid UTF-8", line);
        }
        if ((n == 2 && c == 0xC2 && (unsigned char)t[i + 1] == 0x85) ||
            (n == 3 && c == 0xE2 && (unsigned char)t[i + 1] == 0x80 &&
             ((unsigned char)t[i + 2] == 0xA8 || (unsigned char)t[i + 2] == 0xA9))) {
            return cx_fail(err, COMPOSE_BAD_TEXT, line,
                           "line %d holds a Unicode line or paragraph separator (only LF and CR LF "
                           "line ends are accepted)",
                           line);
        }
        i += n;
    }
    return COMPOSE_OK;
}

size_t
cx_line_start(const char *t, size_t p)
{
    while (p > 0 && t[p - 1] != '\n') {
        p--;
    }
    return p;
}

/* The start of the line after the one holding p (len when it is the last). */
size_t
cx_line_next(const char *t, size_t len, size_t p)
{
    while (p < len && t[p] != '\n') {
        p++;
    }
    return p < len ? p + 1 : len;
}

int
cx_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The line break ending the line that holds p: "\r\n", "\n", or the file's first break
 * (LF when it has none) for a last line without one. */
const char *
cx_break_of_line(const char *t, size_t len, size_t p)
{
    size_t e = cx_line_next(t, len, p);
    if (e > 0 && t[e - 1] == '\n') {
        return (e >= 2 && t[e - 2] == '\r') ? "\r\n" : "\n";
    }
    const char *nl = memchr(t, '\n', len);
    return (nl && nl > t && nl[-1] == '\r') ? "\r\n" : "\n";
}

/* ---------- YAML events ---------- */

/* libyaml marks count characters; this turns them into byte offsets. */
struct cmap {
    size_t base; /* 3 after a UTF-8 byte order mark */
    size_t *tab; /* NULL for ASCII text */
    size_t nchars;
    size_t len;
};

static void
cmap_init(struct cmap *m, const char *t, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->len = len;
    if (len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0) {
        m->base = 3;
    }
    size_t n = 0;
    int ascii = 1;
    for (size_t i = m->base; i < len; i++) {
        ascii &= (unsigned char)t[i] < 0x80;
        n += ((unsigned char)t[i] & 0xC0) != 0x80;
    }
    if (ascii) {
        return;
    }
    m->tab = xmalloc((n + 1) * sizeof(size_t));
    size_t k = 0;
    for (size_t i = m->base; i < len; i++) {
        if (((unsigned char)t[i] & 0xC0) != 0x80) {
            m->tab[k++] = i;
        }
    }
    m->tab[k] = len;
    m->nchars = n;
}

static size_t
cmap_byte(const struct cmap *m, size_t idx)
{
    if (!m->tab) {
        return m->base + idx < m->len ? m->base + idx : m->len;
    }
    return idx <= m->nchars ? m->tab[idx] : m->len;
}

void
cx_doc_free(struct cdoc *d)
{
    for (size_t i = 0; i < d->nev; i++) {
        free(d->ev[i].value);
        free(d->ev[i].anchor);
        free(d->ev[i].tag);
    }
    free(d->ev);
    free(d->lines);
    memset(d, 0, sizeof(*d));
}

int
cx_line_of(const struct cdoc *d, size_t off)
{
    size_t lo = 0, hi = d->nlines;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (d->lines[mid] <= off) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return (int)lo + 1;
}

static char *
dup_or_null(const unsigned char *s)
{
    return s ? xstrdup((const char *)s) : NULL;
}

/* Parses text into d->ev. Refuses what libyaml refuses, nesting deeper than
 * COMPOSE_MAX_DEPTH and (AMBIGUOUS) more than one document. */
int
cx_doc_parse(const char *text, size_t len, struct cdoc *d, struct compose_error *err)
{
    memset(d, 0, sizeof(*d));
    d->text = text;
    d->len = len;
    size_t lcap = 64;
    d->lines = xmalloc(lcap * sizeof(size_t));
    d->lines[d->nlines++] = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n' && i + 1 <= len) {
            if (d->nlines == lcap) {
                lcap *= 2;
                d->lines = xrealloc(d->lines, lcap * sizeof(size_t));
            }
            d->lines[d->nlines++] = i + 1;
        }
    }
    struct cmap m;
    cmap_init(&m, text, len);
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    size_t stack[COMPOSE_MAX_DEPTH + 1];
    size_t depth = 0, docs = 0;
    int rc = COMPOSE_OK, done = 0;
    while (!done) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            rc = cx_fail(err, COMPOSE_NOT_YAML, (int)p.problem_mark.line + 1,
                         "not valid YAML: %s%s%s (line %d)", p.problem ? p.problem : "syntax error",
                         p.context ? " " : "", p.context ? p.context : "",
                         (int)p.problem_mark.line + 1);
            break;
        }
        if (d->nev == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 256;
            d->ev = xrealloc(d->ev, d->cap * sizeof(*d->ev));
        }
        struct cev *c = &d->ev[d->nev];
        memset(c, 0, sizeof(*c));
        c->type = e.type;
        c->start = cmap_byte(&m, e.start_mark.index);
        c->end = cmap_byte(&m, e.end_mark.index);
        c->col = (int)e.start_mark.column;
        c->after = d->nev + 1;
        switch (e.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = cx_fail(err, COMPOSE_AMBIGUOUS, cx_line_of(d, c->start),
                             "the file holds more than one YAML document (line %d); docker-compose "
                             "reads one",
                             cx_line_of(d, c->start));
                done = 1;
            }
            break;
        case YAML_SCALAR_EVENT:
            c->vlen = e.data.scalar.length;
            c->value = xmalloc(c->vlen + 1);
            memcpy(c->value, e.data.scalar.value, c->vlen);
            c->value[c->vlen] = '\0';
            c->anchor = dup_or_null(e.data.scalar.anchor);
            c->tag = dup_or_null(e.data.scalar.tag);
            c->style = e.data.scalar.style;
            break;
        case YAML_ALIAS_EVENT:
            c->value = dup_or_null(e.data.alias.anchor);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (e.type == YAML_SEQUENCE_START_EVENT) {
                c->anchor = dup_or_null(e.data.sequence_start.anchor);
                c->tag = dup_or_null(e.data.sequence_start.tag);
                c->style = e.data.sequence_start.style;
            } else {
                c->anchor = dup_or_null(e.data.mapping_start.anchor);
                c->tag = dup_or_null(e.data.mapping_start.tag);
                c->style = e.data.mapping_start.style;
            }
            if (depth == COMPOSE_MAX_DEPTH) {
                rc = cx_fail(err, COMPOSE_UNSUPPORTED, cx_line_of(d, c->start),
                             "the YAML nests deeper than %d levels (line %d)", COMPOSE_MAX_DEPTH,
                             cx_line_of(d, c->start));
                done = 1;
                break;
            }
            stack[depth++] = d->nev;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0) {
                d->ev[stack[--depth]].after = d->nev + 1;
            }
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        d->nev++;
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    free(m.tab);
    if (rc != COMPOSE_OK) {
        cx_doc_free(d);
    }
    return rc;
}

/* ---------- locating services.consul.command ---------- */

static int
anchor_used(const struct cdoc *d, const char *anchor)
{
    if (!anchor) {
        return 0;
    }
    for (size_t i = 0; i < d->nev; i++) {
        if (d->ev[i].type == YAML_ALIAS_EVENT && d->ev[i].value &&
            strcmp(d->ev[i].value, anchor) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Refuses a node of the path that is an alias or carries an anchor some alias uses: the
 * bytes edited would then not be (only) the bytes meant. */
int
cx_check_path_node(const struct cdoc *d, size_t i, const char *what, struct compose_error *err)
{
    const struct cev *c = &d->ev[i];
    int line = cx_line_of(d, c->start);
    if (c->type == YAML_ALIAS_EVENT) {
        return cx_fail(err, COMPOSE_AMBIGUOUS, line,
                       "%s on line %d is an alias (*%s); edit the anchored value instead", what,
                       line, c->value ? c->value : "");
    }
    if (anchor_used(d, c->anchor)) {
        return cx_fail(err, COMPOSE_AMBIGUOUS, line,
                       "%s on line %d carries the anchor &%s, which an alias reuses; an edit would "
                       "change both places",
                       what, line, c->anchor);
    }
    return COMPOSE_OK;
}

/* Finds key in the mapping that starts at event map. Returns COMPOSE_OK with *val (and *key)
 * set, COMPOSE_NO_SERVICE when absent, or AMBIGUOUS for a duplicate key, a merge key or an
 * alias used as a key. */
static int
map_find(const struct cdoc *d, size_t map, const char *key, const char *where, size_t *keyev,
         size_t *val, struct compose_error *err)
{
    int found = 0;
    size_t end = d->ev[map].after - 1; /* the MAPPING-END */
    for (size_t k = map + 1; k < end;) {
        const struct cev *ke = &d->ev[k];
        size_t v = ke->after;
        if (v >= end) {
            break;
        }
        int line = cx_line_of(d, ke->start);
        if (ke->type == YAML_ALIAS_EVENT) {
            return cx_fail(err, COMPOSE_AMBIGUOUS, line,
                           "%s has an alias as a key on line %d; it could stand for \"%s\"", where,
                           line, key);
        }
        if (ke->type == YAML_SCALAR_EVENT) {
            if (strcmp(ke->value, "<<") == 0) {
                return cx_fail(err, COMPOSE_AMBIGUOUS, line,
                               "%s uses a merge key (<<) on line %d; the merged values cannot be "
                               "edited with certainty",
                               where, line);
            }
            if (ke->vlen == strlen(key) && strcmp(ke->value, key) == 0) {
                if (found) {
                    return cx_fail(err, COMPOSE_AMBIGUOUS, line,
                                   "%s has the key \"%s\" twice (again on line %d)", where, key,
                                   line);
                }
                found = 1;
                *keyev = k;
                *val = v;
            }
        }
        k = d->ev[v].after;
    }
    return found ? COMPOSE_OK : COMPOSE_NO_SERVICE;
}

int
cx_doc_locate(const struct cdoc *d, struct cloc *l, struct compose_error *err)
{
    memset(l, 0, sizeof(*l));
    /* STREAM-START, DOCUMENT-START, root */
    if (d->nev < 4 || d->ev[1].type != YAML_DOCUMENT_START_EVENT) {
        return cx_fail(err, COMPOSE_NO_SERVICE, 0, "the file is empty: no services.%s",
                       COMPOSE_SERVICE);
    }
    size_t root = 2, key = 0, v = 0;
    int rc = cx_check_path_node(d, root, "the document", err);
    if (rc) {
        return rc;
    }
    if (d->ev[root].type != YAML_MAPPING_START_EVENT) {
        return cx_fail(err, COMPOSE_NO_SERVICE, cx_line_of(d, d->ev[root].start),
                       "the file is not a mapping of keys, so it has no services.%s",
                       COMPOSE_SERVICE);
    }
    l->flow |= d->ev[root].style == YAML_FLOW_MAPPING_STYLE;
    rc = map_find(d, root, "services", "the top level", &key, &v, err);
    if (rc == COMPOSE_NO_SERVICE) {
        return cx_fail(err, rc, 0, "the file has no services key");
    }
    if (rc || (rc = cx_check_path_node(d, v, "services", err))) {
        return rc;
    }
    if (d->ev[v].type != YAML_MAPPING_START_EVENT) {
        return cx_fail(err, COMPOSE_NO_SERVICE, cx_line_of(d, d->ev[v].start),
                       "services on line %d is not a mapping of services",
                       cx_line_of(d, d->ev[v].start));
    }
    l->services = v;
    l->flow |= d->ev[v].style == YAML_FLOW_MAPPING_STYLE;
    rc = map_find(d, l->services, COMPOSE_SERVICE, "services", &key, &v, err);
    if (rc == COMPOSE_NO_SERVICE) {
        return cx_fail(err, rc, cx_line_of(d, d->ev[l->services].start),
                       "services has no %s service", COMPOSE_SERVICE);
    }
    if (rc || (rc = cx_check_path_node(d, v, "services." COMPOSE_SERVICE, err))) {
        return rc;
    }
    if (d->ev[v].type != YAML_MAPPING_START_EVENT) {
        return cx_fail(err, COMPOSE_NO_SERVICE, cx_line_of(d, d->ev[v].start),
                       "services.%s on line %d is not a mapping", COMPOSE_SERVICE,
                       cx_line_of(d, d->ev[v].start));
    }
    l->consul = v;
    l->flow |= d->ev[v].style == YAML_FLOW_MAPPING_STYLE;
    size_t ek, ev;
    rc = map_find(d, l->consul, "entrypoint", "services." COMPOSE_SERVICE, &ek, &ev, err);
    if (rc == COMPOSE_OK) {
        l->has_entrypoint = (int)ek;
    } else if (rc != COMPOSE_NO_SERVICE) {
        return rc;
    }
    rc = map_find(d, l->consul, "hostname", "services." COMPOSE_SERVICE, &ek, &ev, err);
    if (rc == COMPOSE_OK) {
        l->hostname_key = ek;
    } else if (rc != COMPOSE_NO_SERVICE) {
        return rc;
    }
    rc = map_find(d, l->consul, "command", "services." COMPOSE_SERVICE, &l->command_key,
                  &l->command, err);
    if (rc == COMPOSE_NO_SERVICE) {
        return cx_fail(err, COMPOSE_NO_COMMAND, cx_line_of(d, d->ev[l->consul].start),
                       "services.%s has no command", COMPOSE_SERVICE);
    }
    if (rc || (rc = cx_check_path_node(d, l->command, "the command", err))) {
        return rc;
    }
    const struct cev *c = &d->ev[l->command];
    int line = cx_line_of(d, c->start);
    if (c->type == YAML_MAPPING_START_EVENT) {
        return cx_fail(
            err, COMPOSE_UNSUPPORTED, line,
            "the command on line %d is a mapping; docker-compose wants a string or a list", line);
    }
    if (c->tag) {
        return cx_fail(err, COMPOSE_UNSUPPORTED, line,
                       "the command on line %d has an explicit tag (%s)", line, c->tag);
    }
    if (c->type == YAML_SCALAR_EVENT && c->style == YAML_PLAIN_SCALAR_STYLE &&
        (c->vlen == 0 || strcmp(c->value, "~") == 0 || strcmp(c->value, "null") == 0 ||
         strcmp(c->value, "Null") == 0 || strcmp(c->value, "NULL") == 0)) {
        return cx_fail(err, COMPOSE_NO_COMMAND, line, "the command on line %d is empty", line);
    }
    if (c->type == YAML_SCALAR_EVENT && c->vlen == 0) {
        return cx_fail(err, COMPOSE_NO_COMMAND, line, "the command on line %d is empty", line);
    }
    if (c->type == YAML_SEQUENCE_START_EVENT && c->after == l->command + 2) {
        return cx_fail(err, COMPOSE_NO_COMMAND, line, "the command on line %d is an empty list",
                       line);
    }
    return COMPOSE_OK;
}
