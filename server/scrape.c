/* scrape: see include/scrape.h. */
#include "scrape.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cluster.h"
#include "curl_opts.h"
#include "prom.h"
#include "util.h"

struct scraper {
    CURL *h;
    long connect_timeout_ms;
    long timeout_ms;
    const atomic_int *stop;
};

struct scraper *
scraper_new(int connect_timeout_ms, int timeout_ms, const atomic_int *stop)
{
    curl_opts_global_init();
    struct scraper *s = xcalloc(1, sizeof(*s));
    s->h = curl_easy_init();
    s->connect_timeout_ms = connect_timeout_ms > 0 ? connect_timeout_ms : 1000;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 3000;
    s->stop = stop;
    return s;
}

void
scraper_free(struct scraper *s)
{
    if (!s) {
        return;
    }
    if (s->h) {
        curl_easy_cleanup(s->h);
    }
    free(s);
}

char *
scrape_url(const char *host, int port)
{
    if (strchr(host, ':')) {
        return xasprintf("http://[%s]:%d/metrics", host, port);
    }
    return xasprintf("http://%s:%d/metrics", host, port);
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    return buf_append(b, data, n) == BUF_OK ? n : 0;
}

static void
exporter_unknown(struct cluster_exporter *e, const char *host)
{
    e->address = host;
    e->reachable = 0;
    e->consul_up = NAN;
    e->raft_peers = NAN;
    e->raft_leader = NAN;
    e->serf_lan_members = NAN;
}

int
scraper_fetch(struct scraper *s, const char *url, const char *host, struct cluster_exporter *e,
              char *err, size_t errlen)
{
    struct buf body;
    int rc = -1;
    buf_init(&body, SCRAPE_MAX_BODY);
    exporter_unknown(e, host);
    if (!s->h) {
        if (err) {
            snprintf(err, errlen, "no curl handle");
        }
        goto out;
    }
    CURL *h = s->h;
    curl_easy_reset(h);
    struct curl_limits lim = {
        .connect_timeout_ms = s->connect_timeout_ms,
        .timeout_ms = s->timeout_ms,
        .tls_verify = 1,
        .cancel = s->stop,
    };
    curl_opts_apply(h, &lim);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (err) {
            snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        }
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        if (err) {
            snprintf(err, errlen, "HTTP %ld", status);
        }
        goto out;
    }
    struct prom_sample *samples = NULL;
    size_t n = 0;
    if (prom_parse(body.data ? body.data : "", body.len, &samples, &n, NULL) != PROM_OK) {
        if (err) {
            snprintf(err, errlen, "page too large");
        }
        goto out;
    }
    cluster_exporter_fill(e, host, 1, samples, n);
    prom_samples_free(samples, n);
    rc = 0;
out:
    buf_free(&body);
    return rc;
}
