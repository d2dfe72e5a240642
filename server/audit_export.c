/* audit_export: see include/audit_export.h. */
#include "audit_export.h"

#include <string.h>

#include "audit.h"
#include "store.h"
#include "util.h"

#define EXPORT_CHUNK (64 * 1024)
#define EXPORT_BUF_MAX (16 * 1024 * 1024) /* one row never comes near this */

int
audit_export_format_parse(const char *name, enum audit_export_format *out)
{
    if (name && strcmp(name, "csv") == 0) {
        *out = AUDIT_EXPORT_CSV;
    } else if (name && strcmp(name, "jsonl") == 0) {
        *out = AUDIT_EXPORT_JSONL;
    } else {
        return -1;
    }
    return 0;
}

const char *
audit_export_format_name(enum audit_export_format fmt)
{
    return fmt == AUDIT_EXPORT_JSONL ? "jsonl" : "csv";
}

const char *
audit_export_strerror(int rc)
{
    switch (rc) {
    case AUDIT_EXPORT_OK:
        return "";
    case AUDIT_EXPORT_SINK:
        return "the output could not be written";
    case AUDIT_EXPORT_STORE:
        return "the audit log could not be read to the end";
    case AUDIT_EXPORT_TOO_BIG:
        return "an entry was too large to export";
    }
    return "unknown error";
}

struct writer {
    struct buf b;
    enum audit_export_format fmt;
    audit_export_sink sink;
    void *ctx;
    int64_t rows;
    int rc; /* the first failure */
};

/* Hands the buffered bytes to the sink. Returns 0 or -1 (w->rc set). */
static int
writer_flush(struct writer *w)
{
    if (w->b.len && w->sink(w->ctx, w->b.data, w->b.len) != 0) {
        w->rc = AUDIT_EXPORT_SINK;
    }
    buf_reset(&w->b);
    return w->rc ? -1 : 0;
}

static int
writer_row(const struct audit_row *row, void *ctx)
{
    struct writer *w = ctx;
    int rc = w->fmt == AUDIT_EXPORT_JSONL ? audit_jsonl_row(&w->b, row) : audit_csv_row(&w->b, row);
    if (rc != BUF_OK) {
        w->rc = AUDIT_EXPORT_TOO_BIG;
        return 1;
    }
    w->rows++;
    return w->b.len >= EXPORT_CHUNK && writer_flush(w) ? 1 : 0;
}

int
audit_export(struct store *s, const struct audit_filter *f, enum audit_export_format fmt,
             audit_export_sink sink, void *ctx, int64_t *rows)
{
    struct writer w = {.fmt = fmt, .sink = sink, .ctx = ctx};
    buf_init(&w.b, EXPORT_BUF_MAX);
    if (fmt == AUDIT_EXPORT_CSV) {
        audit_csv_header(&w.b);
    }
    int qrc = store_audit_query(s, f, writer_row, &w);
    if (!w.rc && qrc == STORE_ERROR) {
        log_error("audit export: cannot read the audit log: %s", store_errmsg(s));
        w.rc = AUDIT_EXPORT_STORE;
    }
    if (!w.rc) {
        writer_flush(&w);
    }
    if (w.rc == AUDIT_EXPORT_TOO_BIG) {
        log_error("audit export: an entry does not fit %d bytes", EXPORT_BUF_MAX);
    }
    if (rows) {
        *rows = w.rows;
    }
    buf_free(&w.b);
    return w.rc;
}
