/* wrk: see wrk.h. */
#include "wrk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "simctl.h"
#include "util.h"

/* "1.23ms" / "456.00us" / "1.02s" / "1.5m" → milliseconds. */
static double
wrk_ms(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (str_starts_with(end, "us")) {
        return v / 1000.0;
    }
    if (str_starts_with(end, "ms")) {
        return v;
    }
    if (str_starts_with(end, "s")) {
        return v * 1000.0;
    }
    if (str_starts_with(end, "m")) {
        return v * 60000.0;
    }
    return v;
}

int
wrk_run(const char *load, const char *url, const char *header, const char *duration,
        struct wrk_result *out)
{
    memset(out, 0, sizeof(*out));
    char *cmd = xasprintf("wrk %s -d%s --latency %s%s%s '%s' 2>&1", load, duration,
                          header ? "-H '" : "", header ? header : "", header ? "'" : "", url);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) {
        return -1;
    }
    char line[512];
    struct buf all;
    buf_init(&all, 1 << 20);
    while (fgets(line, sizeof(line), p)) {
        buf_puts(&all, line);
        const char *s = line + strspn(line, " \t");
        if (str_starts_with(s, "Requests/sec:")) {
            out->rps = strtod(s + 13, NULL);
        } else if (str_starts_with(s, "50%")) {
            out->p50_ms = wrk_ms(s + 3 + strspn(s + 3, " \t"));
        } else if (str_starts_with(s, "90%")) {
            out->p90_ms = wrk_ms(s + 3 + strspn(s + 3, " \t"));
        } else if (str_starts_with(s, "99%")) {
            out->p99_ms = wrk_ms(s + 3 + strspn(s + 3, " \t"));
        } else if (str_starts_with(s, "Non-2xx or 3xx responses:")) {
            out->non2xx = strtol(s + 25, NULL, 10);
        } else if (str_starts_with(s, "Socket errors:")) {
            out->errors = 1;
        }
    }
    int rc = pclose(p);
    if (rc != 0 || out->rps <= 0) {
        fprintf(stderr, "wrk on %s failed:\n%s\n", url, all.data ? all.data : "");
        buf_free(&all);
        return -1;
    }
    buf_free(&all);
    return 0;
}

char *
wrk_admin_cookie(struct srv *s)
{
    char url[128], body[256];
    snprintf(url, sizeof(url), "%s/api/session", s->base);
    snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", s->admin_pw);
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    long status = 0;
    char *hdrs = NULL;
    int rc = sim_http("POST", url, body, ct, &status, NULL, &hdrs);
    char *sc = rc == 0 && status == 200 ? sim_header(hdrs, "Set-Cookie") : NULL;
    free(hdrs);
    if (sc) {
        sc[strcspn(sc, ";")] = '\0';
    }
    return sc;
}
