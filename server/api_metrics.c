/* api_metrics: consulate's own Prometheus metrics (GET /metrics, admin session or the
 * configured bearer token). */
#include <stdlib.h>

#include "api.h"
#include "app.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

int
api_metrics(struct req *r)
{
    struct buf b;
    buf_init(&b, 4 << 20);
    http_metrics_write(&b);
    int64_t n = 0;
    if (store_audit_count(r->db, &n) == STORE_OK) {
        buf_printf(&b,
                   "# HELP consulate_audit_entries Entries in the audit log.\n"
                   "# TYPE consulate_audit_entries gauge\nconsulate_audit_entries %lld\n",
                   (long long)n);
    }
    metrics_write(&b);
    int status = http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data,
                            b.len);
    buf_free(&b);
    return status;
}
