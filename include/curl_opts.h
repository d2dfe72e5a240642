/* curl_opts: the one place that prepares a libcurl easy handle for consulate's outgoing
 * requests (Consul agents, consul_exporter scrapes), so every one of them is hardened the
 * same way: http and https only, no proxy taken from the environment, no redirects followed,
 * no signals, connect and total timeouts, TLS verification, TCP keepalive and no Nagle. */
#ifndef CONSULATE_CURL_OPTS_H
#define CONSULATE_CURL_OPTS_H

#include <stdatomic.h>

#include <curl/curl.h>

/* TCP keepalive on every outgoing connection: the first probe after this many idle seconds,
 * then one every CURL_KEEPALIVE_INTVL_S, so a vanished agent is noticed during a long
 * blocking query instead of when its timeout ends. */
#define CURL_KEEPALIVE_IDLE_S 15
#define CURL_KEEPALIVE_INTVL_S 5

struct curl_limits {
    long connect_timeout_ms;  /* > 0 */
    long timeout_ms;          /* the whole transfer; 0 = none */
    const char *ca_file;      /* CA bundle for https, NULL = the system's (borrowed) */
    int tls_verify;           /* verify the peer's certificate and name */
    const atomic_int *cancel; /* when it becomes non-zero the transfer is abandoned within
                                 about a second (curl's progress callback); NULL = never */
};

/* curl_global_init, once per process (thread-safe). */
void curl_opts_global_init(void);

/* Resets nothing: applies the hardening options and l's timeouts, TLS settings and cancel
 * flag to h, which the caller then gives its URL, callbacks and headers. l is read, not
 * kept (but l->ca_file and l->cancel must live as long as the handle uses them). */
void curl_opts_apply(CURL *h, const struct curl_limits *l);
/* Sets the options that may change from one transfer to the next on a handle set up with
 * curl_opts_apply: the whole transfer's timeout (0 = none) and the cancel flag (NULL =
 * never). */
void curl_opts_set_transfer(CURL *h, long timeout_ms, const atomic_int *cancel);

#endif
