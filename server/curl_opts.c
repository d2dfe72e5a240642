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
    if (l->ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, l->ca_file);
    }
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, l->tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, l->tls_verify ? 2L : 0L);
    curl_opts_set_transfer(h, l->timeout_ms, l->cancel);
}

void
curl_opts_set_transfer(CURL *h, long timeout_ms, const atomic_int *cancel)
{
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, cancel ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cancel ? on_progress : NULL);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancel);
}
