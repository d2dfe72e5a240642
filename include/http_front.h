/* http_front: what consulate decides about a connection before the route table sees it —
 * whether the Host header names this console (DNS rebinding), who the client is behind a
 * trusted reverse proxy, the TCP options of accepted sockets, and finding the socket of a
 * long-lived stream to notice a client that went away. The pure checks take plain strings
 * so they are unit-tested without a server; http.c applies them. */
#ifndef CONSULATE_HTTP_FRONT_H
#define CONSULATE_HTTP_FRONT_H

#include <stddef.h>

struct mg_connection;

/* TCP keepalive of accepted connections: first probe after this much silence, then every
 * FRONT_KEEPINTVL_S, FRONT_KEEPCNT times; data left unacknowledged for FRONT_USER_TIMEOUT_MS
 * also ends the connection (a live-update stream to a machine that vanished). */
#define FRONT_KEEPIDLE_S 60
#define FRONT_KEEPINTVL_S 10
#define FRONT_KEEPCNT 6
#define FRONT_USER_TIMEOUT_MS 120000

/* Pure: 1 when host — the value of a Host header, port included — names this console: an
 * IPv4 address in dotted-quad form, an IPv6 address in brackets, "localhost", or one of the
 * names in allowed (NULL-terminated, lower case; may be NULL). Names compare without regard
 * to case; the port, when present, must be 1–5 digits and is otherwise not checked. */
int front_host_allowed(const char *host, char *const *allowed);

/* Pure: 1 when peer (an address as civetweb formats it) is one of trusted (NULL-terminated
 * IP addresses; may be NULL). Addresses compare by value, so "::1" matches "0::1". */
int front_peer_trusted(const char *peer, char *const *trusted);

/* Pure: what a trusted proxy says about the client. xfp and xff are the last
 * X-Forwarded-Proto and X-Forwarded-For header values (either may be NULL). *https is set to
 * 1 when the last protocol listed is "https", 0 when it is "http", and left alone otherwise;
 * ip (iplen ≥ 48) receives the last X-Forwarded-For hop when it is an IP address and is left
 * alone otherwise. */
void front_forwarded(const char *xfp, const char *xff, int *https, char *ip, size_t iplen);

/* Sets SO_KEEPALIVE (with the FRONT_KEEP* timers), TCP_USER_TIMEOUT and TCP_DEFER_ACCEPT
 * (defer_s seconds: a connection that sends nothing does not reach a worker thread) on every
 * listening socket of this process bound to port; accepted sockets inherit them. Returns the
 * number of listening sockets changed. */
int front_tune_listeners(int port, int defer_s);
/* Shuts down every listening socket of this process bound to port, so that civetweb's accept
 * loop wakes now instead of at the end of its 2 s poll (mg_stop waits for that loop; with
 * TCP_DEFER_ACCEPT a connection cannot wake it). Should the loop wake before mg_stop sets its
 * stop flag, its accept fails and it polls again until the flag is set: a few turns at most.
 * Returns the number of sockets shut down. */
int front_stop_listeners(int port);

/* The file descriptor of conn's socket, found by its two addresses among the process's open
 * sockets, or -1. Borrowed: civetweb closes it after the handler returns. */
int front_conn_socket(const struct mg_connection *conn);
/* 1 when the peer of fd has closed or reset the connection (nothing is read). */
int front_peer_gone(int fd);

#endif
