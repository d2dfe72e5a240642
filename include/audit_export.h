/* audit_export: the one writer of the audit log export, shared by the API
 * (GET /api/audit/export, through the HTTP chunk writer) and the CLI (`consulate audit
 * export`, to a FILE). It walks the filtered rows newest first and hands CSV or JSON Lines to
 * a caller-provided sink in chunks of about 64 KiB; memory stays flat whatever the row count. */
#ifndef CONSULATE_AUDIT_EXPORT_H
#define CONSULATE_AUDIT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct audit_filter;

enum audit_export_format { AUDIT_EXPORT_CSV = 0, AUDIT_EXPORT_JSONL = 1 };

enum audit_export_rc {
    AUDIT_EXPORT_OK = 0,
    AUDIT_EXPORT_SINK = 1,    /* the sink refused a chunk (client gone, disk full) */
    AUDIT_EXPORT_STORE = 2,   /* the log could not be read to the end */
    AUDIT_EXPORT_TOO_BIG = 3, /* one row did not fit the 16 MiB buffer */
};

/* Parses "csv" or "jsonl". Returns 0, or -1 for anything else. */
int audit_export_format_parse(const char *name, enum audit_export_format *out);
/* "csv" or "jsonl". */
const char *audit_export_format_name(enum audit_export_format fmt);
/* What went wrong, as a short phrase ("" for AUDIT_EXPORT_OK). */
const char *audit_export_strerror(int rc);

/* Takes len bytes (never 0) of the export. Returns 0, or -1 to stop the export. */
typedef int (*audit_export_sink)(void *ctx, const void *data, size_t len);

/* Writes the rows of s matching f (its limit and before_id are honoured as given; 0 = all)
 * as fmt to sink: the CSV header first (CSV only), then every row, newest first. On
 * AUDIT_EXPORT_OK everything was handed to the sink; on any other code the output is
 * incomplete and the caller must make that visible (the API leaves the chunked body
 * unterminated and closes the connection, the CLI exits 1). *rows (may be NULL) gets the rows
 * handed on. */
int audit_export(struct store *s, const struct audit_filter *f, enum audit_export_format fmt,
                 audit_export_sink sink, void *ctx, int64_t *rows);

#endif
