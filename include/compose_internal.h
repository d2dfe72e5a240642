/* compose_internal: what the files of the compose module share (compose_doc.c: the YAML
 * document; compose_scalar.c: scalars mapped to raw bytes; compose_argv.c: shell splitting,
 * flags, addresses; compose_read.c: the command as the agent reads it; compose.c: planned and
 * verified edits; compose_rewrite.c: the new node and the trap fix). Nothing outside the
 * module includes this; its structs are plain data owned by the functions that fill them. */
#ifndef CONSULATE_COMPOSE_INTERNAL_H
#define CONSULATE_COMPOSE_INTERNAL_H

#include <stddef.h>

#include "compose.h"

/* ---- compose_scalar.c: YAML scalars decoded with a map back to the raw bytes ---- */

/* A decoded value in which every byte knows the raw bytes [from, to) of the file it came
 * from. synth marks a byte made by YAML itself from a line break (a folding space, a kept
 * newline) rather than copied or unescaped from the text. */
struct cs_value {
    char *s; /* NUL-terminated; may hold NUL bytes from escapes (n counts them) */
    size_t n;
    size_t *from;
    size_t *to;
    unsigned char *synth;
    size_t cap;
    /* Raw extent of the scalar as written: from the opening quote / block indicator / first
     * character to after the closing quote / last content character. */
    size_t raw_start;
    size_t raw_end;
    /* Block scalars: the comment on the header line ([start, end), empty when none). */
    size_t comment_start;
    size_t comment_end;
};

enum cs_style { CS_PLAIN = 1, CS_SINGLE, CS_DOUBLE, CS_LITERAL, CS_FOLDED };

/* Decodes the scalar of the given style that starts at byte start of text (len bytes) and,
 * for plain scalars, ends at byte end (libyaml's end mark). parent_indent is the column of
 * the mapping key the scalar belongs to (block scalars use it to find their indentation).
 * Returns 0 and fills *v (release with cs_value_free), or -1 when the text is not such a
 * scalar; the caller compares v->s with libyaml's value before trusting the map. */
int cs_decode(const char *text, size_t len, size_t start, size_t end, int style, int parent_indent,
              struct cs_value *v);
void cs_value_free(struct cs_value *v);
/* Appends one byte with its source to v (the arrays grow as needed). */
void cs_value_push(struct cs_value *v, char c, size_t from, size_t to, int synth);

/* ---- compose_argv.c: shell splitting, Go flag rules, addresses ---- */

/* One argument of shlex.split: its bytes and, for each, the index of the value byte it
 * came from; [v0, v1) is the whole token in the value, quotes and escapes included. */
struct cs_arg {
    char *s;
    size_t n;
    size_t *vi;
    size_t v0, v1;
};

/* A backslash that shlex consumed as an escape: value indices of the backslash and of the
 * character it escapes; kept when the backslash itself stayed in the argument (inside
 * double quotes, before a character other than \ or "). */
struct cs_escape {
    size_t bs;
    size_t ch;
    int kept;
};

enum cs_shlex_rc { CS_SHLEX_OK = 0, CS_SHLEX_NO_CLOSING_QUOTE = 1, CS_SHLEX_NO_ESCAPED = 2 };

/* Python's shlex.split(value) (posix=True, comments=False, whitespace_split=True), which
 * docker-compose (v1, Python) applies to a string command. On CS_SHLEX_OK *args (*nargs) and *esc
 * (*nesc) are new arrays the caller frees with cs_args_free and free(). On an error nothing is
 * allocated and *err_at is the value index where splitting failed. */
int cs_shlex(const char *v, size_t n, struct cs_arg **args, size_t *nargs, struct cs_escape **esc,
             size_t *nesc, size_t *err_at, unsigned *v2);
/* Bits of *v2 (may be NULL): where docker compose v2, which splits with go-shellwords, reads
 * the value differently: an unquoted ; & | < or > (it stops there), a backslash shlex keeps
 * inside double quotes (go-shellwords drops it). */
#define CS_V2_METACHAR 1u
#define CS_V2_BACKSLASH 2u
void cs_args_free(struct cs_arg *a, size_t n);

/* The agent's command-line flags (Consul's agent/config/flags.go, 1.x releases). */
enum cs_flag_kind { CS_FLAG_VALUE = 0, CS_FLAG_BOOL = 1 };
struct cs_flag {
    const char *name;
    int kind;
    int addr; /* an address of this host: rewritten for a new node */
};
/* The flag called name (without dashes), or NULL when the agent has no such flag. */
const struct cs_flag *cs_flag_find(const char *name, size_t len);
/* 1 when s is a value Go's strconv.ParseBool accepts. */
int cs_parse_bool_ok(const char *s);

/* A parsed address: host lower-cased (IPv6 as 16 bytes in ip6), port or 0. */
struct cs_addr {
    int kind; /* 4, 6, or 'd' for a DNS name */
    unsigned char ip[16];
    char host[256];
    unsigned port;
};
/* Parses a retry-join address (see compose_addr_valid). Returns 0, or -1 with a reason in
 * why (at least 160 bytes). */
int cs_addr_parse(const char *s, struct cs_addr *a, char *why, size_t whylen);
/* Parses a bare IPv4 or IPv6 address without port or brackets into a. Returns 0 or -1. */
int cs_ip_parse(const char *s, size_t n, struct cs_addr *a);
int cs_addr_same(const struct cs_addr *a, const struct cs_addr *b);

/* 1 when YAML (1.1 or 1.2) would read the plain scalar s as something other than a string:
 * null, a boolean, an integer, a float or a timestamp. */
int cs_plain_not_string(const char *s, size_t n);

/* ---- compose_doc.c: the YAML document ---- */

/* Fills err (may be NULL) and returns code. */
int cx_fail(struct compose_error *err, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes a short printable quotation of s[0..n) (control bytes as \xNN) into out. */
void cx_quote(const char *s, size_t n, char *out, size_t outlen);
/* COMPOSE_OK, or TOO_BIG / BAD_TEXT for text the editor refuses to hold. */
int cx_check_text(const char *t, size_t len, struct compose_error *err);
size_t cx_line_start(const char *t, size_t p);
/* The start of the line after the one holding p (len when it is the last). */
size_t cx_line_next(const char *t, size_t len, size_t p);
int cx_is_blank(char c);
/* The break ending p's line ("\r\n" or "\n"; for a last line without one, the file's). */
const char *cx_break_of_line(const char *t, size_t len, size_t p);

struct cev {
    int type;
    size_t start, end; /* bytes */
    int col;           /* column of the start, in characters */
    char *value;       /* scalar value, or the anchor an alias names */
    size_t vlen;
    char *anchor;
    char *tag;
    int style;
    size_t after; /* index of the first event after this node */
};

struct cdoc {
    const char *text;
    size_t len;
    struct cev *ev;
    size_t nev, cap;
    size_t *lines; /* byte offset where each line starts */
    size_t nlines;
};

struct cloc {
    size_t services, consul, command_key, command;
    int has_entrypoint;
    size_t hostname_key; /* 0 when absent */
    int flow;            /* a flow mapping on the path */
};

/* One argument docker passes to the image, with the raw bytes behind each of its bytes. */
struct carg {
    char *s;
    size_t n;
    size_t *from, *to;
    size_t *vi;        /* string form: index in st->val of each byte */
    size_t raw0, raw1; /* the whole argument as written (quotes included) */
    size_t v0, v1;     /* string form: the token in st->val */
    size_t ev;         /* list form: the item's event */
    int line;
};

/* A flag Go's parser reads: arguments a0..a1 (a1 = a0 + 1 when the value is the next
 * argument); the value is args[a1].s + vstart. */
struct cflag {
    const struct cs_flag *f;
    size_t a0, a1, vstart;
};

struct cstate {
    struct cdoc doc;
    struct cloc loc;
    int form, style;
    struct cs_value val;    /* string form: the scalar after docker-compose's $$ → $ */
    struct cs_value *items; /* list form: each item after $$ → $ */
    size_t nitems;
    struct carg *args;
    size_t nargs;
    struct cs_escape *esc; /* string form: shlex escapes, indices in val */
    size_t nesc;
    size_t flags_start, flags_end;
    struct cflag *flags;
    size_t nflags;
    size_t *entries;       /* indices in flags of the -retry-join flags */
    struct cs_addr *eaddr; /* their parsed addresses */
    int *eaddr_ok;
    size_t nentries;
    struct compose_diag *diags;
    size_t ndiags, ndropped;
    int blocking;
    int editable;
    char not_editable[200];
    int not_editable_line;
};

struct splice {
    size_t start, end;
    char *text;
};

struct plan {
    struct splice *sp;
    size_t nsp;
    char **argv; /* the arguments the edited file must give */
    size_t argc;
};

/* Parses text into d (release with cx_doc_free): NOT_YAML, UNSUPPORTED (too deep) or
 * AMBIGUOUS (several documents) on failure, with nothing to release. */
int cx_doc_parse(const char *text, size_t len, struct cdoc *d, struct compose_error *err);
void cx_doc_free(struct cdoc *d);
/* The 1-based line of byte offset off. */
int cx_line_of(const struct cdoc *d, size_t off);
/* AMBIGUOUS when node i is an alias or carries an anchor some alias uses. */
int cx_check_path_node(const struct cdoc *d, size_t i, const char *what, struct compose_error *err);
/* Finds services.consul.command (and the keys around it that matter). */
int cx_doc_locate(const struct cdoc *d, struct cloc *l, struct compose_error *err);

/* ---- compose_read.c: the command as the agent reads it ---- */

/* Reads text into st (release with cx_state_free); on an error nothing is left to free. */
int cx_state_load(const char *text, size_t len, struct cstate *st, struct compose_error *err);
void cx_state_free(struct cstate *st);
/* The first blocking diagnostic of st as an error (BROKEN, AMBIGUOUS or UNSUPPORTED). */
int cx_fail_blocking(const struct cstate *st, struct compose_error *err);
/* COMPOSE_OK when st may be edited: no blocking diagnostic, no flow style. */
int cx_ready_to_edit(const struct cstate *st, struct compose_error *err);
const char *cx_style_name(int style);
/* 1 when shlex escape e is the line-end backslash trap. */
int cx_is_trap(const struct cstate *st, const struct cs_escape *e);

/* ---- compose.c: planned edits ---- */

void cx_plan_free(struct plan *pl);
/* Adds a splice replacing raw bytes [start, end) with text (which the plan then owns). */
void cx_plan_splice(struct plan *pl, size_t start, size_t end, char *text);
/* Starts the expected arguments as a copy of st's. */
void cx_plan_argv_copy(struct plan *pl, const struct cstate *st);
/* The text with the plan's splices applied, or NULL when they overlap; the caller frees. */
char *cx_plan_apply(const char *t, size_t len, struct plan *pl, size_t *out_len);
/* 1 when value bytes [b0, b1) of argument a are written verbatim in the file, at [*r0, *r1). */
int cx_verbatim(const struct cstate *st, const struct carg *a, size_t b0, size_t b1, size_t *r0,
                size_t *r1);
/* Re-reads nt and checks it gives pl->argv in expect_style with everything outside the
 * command unchanged (need_clean: and no blocking diagnostic). */
int cx_verify(const struct cstate *old, const char *nt, size_t nlen, const struct plan *pl,
              int expect_style, int need_clean, struct compose_error *err);
/* cx_plan_apply then cx_verify; on COMPOSE_OK *out (the caller frees) is the new text. */
int cx_plan_finish(const struct cstate *st, struct plan *pl, int expect_style, int need_clean,
                   char **out, size_t *out_len, struct compose_error *err);
/* Parses a retry-join address argument (BAD_ADDRESS with a reason). */
int cx_parse_addr_arg(const char *addr, struct cs_addr *a, struct compose_error *err);
/* Makes the retry-join list of text exactly addrs; *cur is the result (NULL: unchanged). */
int cx_set_list(const char *text, size_t len, const char *const *addrs, size_t n, char **cur,
                size_t *cur_len, struct compose_error *err);
/* The public result contract: OK with cur, UNCHANGED with a copy of text, else *out NULL.
 * Takes ownership of cur. */
int cx_finish_public(int rc, const char *text, size_t len, char *cur, size_t cur_len, char **out,
                     size_t *out_len, struct compose_error *err);

#endif
