/* simctl: start and drive the Consul simulator (build/consul-sim) from HTTP tests and
 * benchmarks. Every name is prefixed sim_ so it cannot clash with other test helpers. */
#ifndef CONSULATE_TESTS_SIMCTL_H
#define CONSULATE_TESTS_SIMCTL_H

#include <sys/types.h>

#include <cjson/cJSON.h>

#define SIM_MAX_SERVERS 32

struct sim_server {
    char name[64];
    char ip[32];
    char http[96];    /* "http://127.0.0.11:PORT" */
    char metrics[96]; /* exporter base URL; /metrics is the scrape path */
};

struct sim {
    pid_t pid;
    int stdin_fd; /* the write end of the simulator's stdin; closing it stops the sim */
    char control[96];
    int n_servers;
    struct sim_server servers[SIM_MAX_SERVERS];
};

/* Spawns $CONSUL_SIM_BIN (default ./build/consul-sim) with --http-port 0 --metrics-port 0
 * --exit-on-stdin-eof --quiet plus args (split on spaces, e.g. "--servers 4 --speed 20
 * --ip-base 127.0.0.21"), waits for its ready line and returns the handle, or NULL with a
 * message on stderr. Free it with sim_stop. */
struct sim *sim_start(const char *args);
/* SIGTERM, wait (SIGKILL after 5 s), free. NULL is a no-op. */
void sim_stop(struct sim *sim);
/* The same, returning 0 when the simulator exited cleanly with status 0 (so sanitizer
 * reports in the simulator fail a test), else its exit status or 128 + signal. */
int sim_stop_rc(struct sim *sim);

/* One HTTP request with libcurl. headers is a NULL-terminated list of "Name: value" lines or
 * NULL; body may be NULL. *resp_body and *resp_headers (raw header block), when not NULL,
 * get strings the caller frees. Returns the CURLcode (0 = a response arrived; 7 =
 * connection refused). Times out after 30 s. */
int sim_http(const char *method, const char *url, const char *body, const char *const *headers,
             long *status, char **resp_body, char **resp_headers);
int sim_http_get(const char *url, long *status, char **resp_body, char **resp_headers);
/* A request to the control API, e.g. sim_ctl(sim, "POST", "/sim/servers/consul-2/stop",
 * NULL, &status, &body). Same return and ownership as sim_http. */
int sim_ctl(struct sim *sim, const char *method, const char *path, const char *json_body,
            long *status, char **resp_body);
/* GET url and parse the body as JSON; NULL when the request failed or the body is not JSON.
 * The tree is the caller's (cJSON_Delete). status may be NULL. */
cJSON *sim_get_json(const char *url, long *status);
/* GET /sim/state parsed, or NULL. */
cJSON *sim_state(struct sim *sim);
/* The value of header name (case-insensitive) in a raw header block, as a string the caller
 * frees; NULL when absent. */
char *sim_header(const char *headers, const char *name);
/* The server entry named name (or with that IP), or NULL. Borrowed from sim. */
const struct sim_server *sim_server(const struct sim *sim, const char *name);
/* 1 when a TCP connect to the host:port of url ("http://IP:PORT...") is refused, 0 when it
 * connects, -1 on a malformed url or another error. */
int sim_refused(const char *url);
/* Milliseconds on a monotonic clock. */
long long sim_now_ms(void);
/* Sleeps ms milliseconds. */
void sim_sleep_ms(int ms);

/* A TCP port that can be bound on each of the n consecutive addresses from ip_base
 * ("127.0.0.61", 4 → .61–.64), for the exporters of a simulator started with
 * --metrics-port. Returns the port, or -1. */
int sim_free_port(const char *ip_base, int n);

#endif
