/* scrape: reads consul_exporter's Prometheus text from one server host (not the Consul API)
 * with libcurl and short timeouts, and turns it into the model's per-server exporter figures
 * (consul_up, consul_raft_peers, consul_raft_leader, consul_serf_lan_members). */
#ifndef CONSULATE_SCRAPE_H
#define CONSULATE_SCRAPE_H

#include <stdatomic.h>
#include <stddef.h>

struct cluster_exporter;
struct scraper;

/* Exporter pages larger than this are refused (the scrape counts as failed). */
#define SCRAPE_MAX_BODY (4u * 1024u * 1024u)

/* Creates a scraper with its own curl handle (keep-alive reused between scrapes); one per
 * thread. stop (borrowed, may be NULL) aborts a transfer in flight once it becomes nonzero.
 * Free with scraper_free. */
struct scraper *scraper_new(int connect_timeout_ms, int timeout_ms, const atomic_int *stop);
void scraper_free(struct scraper *s);

/* The exporter URL of a server host: "http://<host>:<port>/metrics", with brackets around an
 * IPv6 host. Newly allocated (caller frees). */
char *scrape_url(const char *host, int port);

/* GETs url and fills *e (address = the borrowed host string) from the page: reachable 1 and
 * the figures (NAN where absent) on HTTP 200, else reachable 0 and NAN everywhere. Returns 0
 * when the page was read, -1 otherwise; err (may be NULL) then says why. */
int scraper_fetch(struct scraper *s, const char *url, const char *host, struct cluster_exporter *e,
                  char *err, size_t errlen);

#endif
