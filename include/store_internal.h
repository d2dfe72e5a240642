/* store_internal: helpers shared by the store's own files (store.c, store_audit.c, …).
 * Nothing outside the store includes this. */
#ifndef CONSULATE_STORE_INTERNAL_H
#define CONSULATE_STORE_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include <sqlite3.h>

struct store;

/* Prepares a constant SQL string (its address is the cache key, so pass the literal or a
 * constant table entry, never a built string); logs and returns STORE_ERROR on failure. */
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **st);
/* Hands a statement from store_prepare back: a cached one is reset for its next use, any
 * other is finalized. NULL is a no-op. Every store_prepare is paired with one call. */
void store_finish(struct store *s, sqlite3_stmt *st);
/* Binds text (SQLITE_TRANSIENT) or NULL when v is NULL. */
void store_bind_text(sqlite3_stmt *st, int idx, const char *v);
/* Steps a statement that returns no rows, maps constraint errors to STORE_CONFLICT, and
 * finalizes it. */
int store_step_done(struct store *s, sqlite3_stmt *st);
/* Runs a constant statement that returns no rows. types names the arguments in ap, one letter
 * each: 't' text (NULL binds NULL), 'i' int64_t, 'n' int. With must_change, a statement that
 * changed no row returns STORE_NOT_FOUND; a constraint violation is STORE_CONFLICT. */
int store_exec_v(struct store *s, int must_change, const char *sql, const char *types, va_list ap);
/* One-row one-integer query with an optional text parameter ?1. */
int store_query_int(struct store *s, const char *sql, const char *param, int64_t *n);
/* One-row one-text query with ?1 bound to tparam (text) or, when it is NULL, to iparam.
 * *out is newly allocated (the caller frees it), or NULL with STORE_NOT_FOUND (no row) or
 * STORE_ERROR. */
int store_query_text(struct store *s, const char *sql, const char *tparam, int64_t iparam,
                     char **out);

#endif
