/* wrk: helpers the benchmarks share — running wrk and reading its figures, and the admin
 * session cookie to load authenticated routes with. */
#ifndef CONSULATE_TEST_WRK_H
#define CONSULATE_TEST_WRK_H

struct srv;

struct wrk_result {
    double rps;
    double p50_ms, p90_ms, p99_ms;
    long non2xx;
    int errors; /* wrk reported socket errors */
};

/* Runs `wrk <load> -d<duration> --latency [-H header] url` (load e.g. "-t2 -c16") and fills
 * out. Returns 0, or -1 (wrk's output printed to stderr) when wrk failed or served nothing. */
int wrk_run(const char *load, const char *url, const char *header, const char *duration,
            struct wrk_result *out);

/* Logs in as admin and returns "consulate_session=…" (the caller frees it), or NULL. */
char *wrk_admin_cookie(struct srv *s);

#endif
