/* curl_opts: see include/curl_opts.h. */
#include "curl_opts.h"

#include <pthread.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
curl_opts_global_init(void)
{
    pthread_once(&global_once, global_init);
}

/* libcurl's progress callback: non-zero aborts the transfer. It runs about once a second
 * even while a blocking query waits, which bounds how long a cancel takes. */
static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_int *cancel = ud;
    return atomic_load(cancel) != 0;
}

void
curl_opts_apply(CURL *h, const struct curl_limits *l)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never http_proxy & co. from the environment */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, (long)CURL_KEEPALIVE_IDLE_S);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, (long)CURL_KEEPALIVE_INTVL_S);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, l->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, l->timeout_ms > 0 ? l->timeout_ms : 0L);
    if (l->ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, l->ca_file);
    }
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, l->tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, l->tls_verify ? 2L : 0L);
    if (l->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)l->cancel);
    }
}
