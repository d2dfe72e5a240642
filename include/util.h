/* util: allocation that aborts on OOM, bounded growable buffers, time, hex, random tokens,
 * small JSON helpers. Depends on nothing but libc, libsodium and cJSON. */
#ifndef CONSULATE_UTIL_H
#define CONSULATE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: these abort the process on out-of-memory, so callers never check. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer with a hard size limit (the curl dynbuf idea). The data is always
 * NUL-terminated. Appending past the limit fails with BUF_TOO_BIG and leaves the buffer
 * unchanged. buf_free releases the storage; the struct itself is the caller's. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};
enum { BUF_OK = 0, BUF_TOO_BIG = 1 };
void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Hands the data to the caller (who frees it) and re-initialises the buffer. */
char *buf_steal(struct buf *b);

/* Time. */
int64_t time_now_ms(void);     /* wall clock, UTC milliseconds since the epoch */
int64_t time_mono_ms(void);    /* monotonic milliseconds, for intervals */
/* Formats a UTC ms timestamp as RFC 3339 with milliseconds ("2026-11-24T19:54:35.123Z")
 * into out (at least 32 bytes). */
void time_format_rfc3339(int64_t ms, char *out, size_t outlen);
/* Parses RFC 3339 (with optional fraction and Z or ±hh:mm) or an integer of epoch
 * milliseconds. Returns 0 and sets *ms, or -1 when the text is not a time. */
int time_parse(const char *s, int64_t *ms);

/* Hex encoding of len bytes into out (2*len+1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);
/* SHA-256 of data as 64 lower-case hex characters plus NUL in out (65 bytes). */
void sha256_hex(const void *data, size_t len, char out[65]);
/* Fills out with nbytes random bytes encoded as lower-case hex (2*nbytes+1 bytes). */
void random_hex(size_t nbytes, char *out);
/* Constant-time equality of two NUL-terminated strings. */
int str_ct_equal(const char *a, const char *b);
/* Overwrites a secret in memory in a way the compiler cannot drop. NULL is a no-op. */
void secret_wipe(void *p, size_t len);
void secret_free_str(char *s);

/* Strings. */
int str_starts_with(const char *s, const char *prefix);
int str_ends_with(const char *s, const char *suffix);
/* Returns 1 when s is a valid UTF-8 string without NUL bytes of length len. */
int utf8_valid(const char *s, size_t len);

/* JSON helpers over cJSON. The get functions return the member or a default; they never
 * allocate. json_print returns an unformatted string the caller frees. */
const char *json_get_str(const cJSON *obj, const char *key, const char *dflt);
double json_get_num(const cJSON *obj, const char *key, double dflt);
int json_get_bool(const cJSON *obj, const char *key, int dflt);
char *json_print(const cJSON *j);
/* Adds key: the UTC ms time as RFC 3339, or null when ms <= 0. */
void json_add_time(cJSON *obj, const char *key, int64_t ms);

/* The deepest nesting of arrays and objects any JSON consulate reads may have. cJSON parses,
 * prints and deletes recursively, and civetweb's worker threads have 100 KiB stacks: a body
 * of a few thousand '[' would overflow one. Consul's own answers nest about 6 deep. */
#define JSON_MAX_DEPTH 64
enum json_rc { JSON_OK = 0, JSON_SYNTAX = 1, JSON_TOO_DEEP = 2 };
/* Parses the len bytes of text (text[len] must be '\0'; nothing but white space may follow
 * the value) as JSON nested at most JSON_MAX_DEPTH levels. The nesting is checked by a scan
 * before cJSON sees the text, so no input reaches its recursion deeper than that. On
 * JSON_OK *out is the value (the caller deletes it); otherwise *out is NULL and *err_at (may
 * be NULL) the byte offset of the problem. */
int json_parse(const char *text, size_t len, cJSON **out, size_t *err_at);
/* json_parse of a NUL-terminated text; NULL when it is not JSON or nests too deep. */
cJSON *json_parse_str(const char *text);
/* Reads a whole file into a NUL-terminated buffer the caller frees; NULL on error
 * (errno set). *len_out gets the length when not NULL. max bounds the size. */
char *file_read_all(const char *path, size_t max, size_t *len_out);

/* Logging to stderr with a UTC timestamp and level. Never pass secrets. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_set_quiet(int quiet);

#endif
