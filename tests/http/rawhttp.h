/* rawhttp: HTTP/1.1 over plain sockets, for tests that need what libcurl will not do: hold
 * hundreds of connections, send a request that never ends, pick the source address, or read
 * exactly what the server wrote. Every name is prefixed raw_. */
#ifndef CONSULATE_TESTS_RAWHTTP_H
#define CONSULATE_TESTS_RAWHTTP_H

#include <stddef.h>

/* A TCP connection to 127.0.0.1:port, from the address src when not NULL (e.g. "127.0.0.2").
 * Returns the socket, or -1. */
int raw_connect(int port, const char *src);
/* Writes all of text; 0, or -1. */
int raw_send(int fd, const char *text);
/* connect + send; the socket, or -1. */
int raw_open(int port, const char *src, const char *request);

/* One response as read from a socket. */
struct raw_resp {
    int status; /* 0 when no complete header block arrived */
    char *head; /* the status line and headers, NUL-terminated (owned) */
    char *body; /* what followed the headers (owned, NUL-terminated; may hold NULs) */
    size_t body_len;
    int closed; /* the server closed the connection */
};
void raw_resp_free(struct raw_resp *r);

/* Reads one response: the header block, then the body up to Content-Length (or until the
 * server closes when there is none and want_body is set). Gives up after timeout_ms. Returns
 * the status (0 when the headers did not arrive in time). */
int raw_read(int fd, struct raw_resp *r, int timeout_ms, int want_body);
/* Reads only the header block (a stream's body never ends). Same return. */
int raw_read_head(int fd, struct raw_resp *r, int timeout_ms);
/* Opens a connection from src, sends request, reads the response and closes. */
int raw_exchange(int port, const char *src, const char *request, struct raw_resp *r,
                 int timeout_ms);

/* The value of header name in r->head (case-insensitive), newly allocated, or NULL. */
char *raw_header(const struct raw_resp *r, const char *name);
/* 1 when nothing can be read from fd right now and the peer has not closed it. */
int raw_silent(int fd);
/* 1 when the peer has not closed fd (there may be data to read). */
int raw_not_closed(int fd);
/* 1 when the peer closed fd (or it failed) within timeout_ms, reading and discarding data. */
int raw_wait_closed(int fd, int timeout_ms);

#endif
