/* config: the JSON configuration file, its defaults and the environment overrides.
 * The table of keys (name, type, bounds, default) lives in server/config.c only. */
#ifndef CONSULATE_CONFIG_H
#define CONSULATE_CONFIG_H

#include <stddef.h>

struct config {
    char *listen;               /* "127.0.0.1:8080" — never all interfaces by default */
    char *database;             /* "./var/consulate.db" */
    char *web_root;             /* directory of the single-page app */
    int threads;                /* civetweb worker threads (every open connection holds one) */
    char **allowed_hosts;       /* NULL-terminated host names (lower case) besides IP literals
                                   and localhost that the Host header may name; NULL = none */
    char **trusted_proxies;     /* NULL-terminated IP addresses whose X-Forwarded-Proto/-For
                                   are believed; NULL = none */
    int sse_streams;            /* live-update streams open at once, all users (128) */
    int sse_streams_per_user;   /* … per user (8) */
    int header_timeout_s;       /* a new connection's request headers must arrive within (10) */
    int keep_alive_s;           /* an idle keep-alive connection is closed after (5) */
    int session_idle_timeout_s; /* 1800 */
    int session_absolute_timeout_s; /* 43200 */
    int login_max_failures;     /* 5 */
    int login_window_s;         /* 900: failures counted over, and lockout length */
    char *metrics_token;        /* bearer token for GET /metrics, NULL = admin session only */
    char *tls_certificate;      /* PEM with certificate chain and private key; NULL = plain HTTP */
    int bootstrap_admin;        /* create "admin" with a random password when no user exists */
    char *audit_key_file;       /* audit MAC key; NULL = audit.key beside the config file
                                   (or beside the database without one) */
    char *audit_anchor_file;    /* audit anchor; NULL = <database>.audit-anchor */
    /* consul */
    char **consul_addresses;    /* NULL-terminated list of agent base URLs */
    size_t n_consul_addresses;
    char *consul_token;         /* ACL token, never logged, never sent to the browser */
    char *consul_ca_file;       /* CA bundle for https agents, NULL = system default */
    int consul_tls_verify;      /* 1 */
    int consul_connect_timeout_ms; /* 2000 */
    int consul_timeout_ms;      /* 10000 */
    int consul_watch_wait_s;    /* blocking query wait, 60 */
    int consul_max_body;        /* response body cap in bytes */
    int consul_proxy_max_wait_s; /* 60: the longest wait of a blocking read through the proxy */
    int blocking_reads_per_user; /* 16: blocking proxied reads one user may hold at once */
    int exporter_port;          /* 9107: consul_exporter on every server host */
    int exporter_interval_s;    /* scrape interval, 15 */
    int watch_enabled;          /* start the Consul watchers (1) */
    /* jobs */
    int approval_required;      /* cluster-changing jobs wait for a second person (1) */
    int jobs_command_timeout_s; /* 120: one remote command */
    int jobs_gate_timeout_s;    /* 180: the verification gate */
    int jobs_ssh_connect_timeout_ms; /* 5000 */
    char *jobs_ssh_passphrase_env; /* name of the variable holding the SSH key passphrase */
};

struct config_error {
    char message[512];
};

enum config_rc { CONFIG_OK = 0, CONFIG_INVALID = 2, CONFIG_IO = 3 };

/* Fills cfg with the defaults. The strings are owned by cfg; free with config_free. */
void config_defaults(struct config *cfg);
/* Loads a JSON file over the current values of cfg. An unknown key, a wrong type or a value
 * out of bounds returns CONFIG_INVALID with err naming the key. */
int config_load_file(struct config *cfg, const char *path, struct config_error *err);
/* Same, from a JSON text already in memory (name is used in messages). */
int config_load_text(struct config *cfg, const char *text, const char *name,
                     struct config_error *err);
/* Applies CONSULATE_DB, CONSULATE_LISTEN, CONSULATE_CONSUL_ADDR (comma-separated) and
 * CONSULATE_CONSUL_TOKEN, validating them like file values. */
int config_apply_env(struct config *cfg, struct config_error *err);
/* Releases every string cfg owns (token wiped) and leaves cfg zeroed. */
void config_free(struct config *cfg);
/* 1 when s is an IPv4 address in dotted-quad form or an IPv6 address (no brackets). */
int ip_literal_valid(const char *s);
/* Splits "host:port" of cfg->listen; returns 0 on success. host is written into hostbuf. */
int config_split_listen(const char *listen, char *hostbuf, size_t hostlen, int *port);

#endif
