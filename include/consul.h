/* consul: the libcurl client for Consul agents' HTTP API. Holds the configured list of agent
 * addresses, fails over to the next one on a connection error (a GET/HEAD also on a 5xx or a
 * timeout), remembers the last good one, sends the ACL token (never logged), caps response
 * bodies, and applies the connect and request timeouts (blocking queries: wait × 17/16 +
 * 5 s). Answers are buffered, or streamed to a sink as they arrive. Thread-safe: each thread
 * reuses its own connections. */
#ifndef CONSULATE_CONSUL_H
#define CONSULATE_CONSUL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct consul_client;

enum consul_rc {
    CONSUL_OK = 0,          /* an HTTP answer arrived (any status; look at status) */
    CONSUL_UNREACHABLE = 1, /* no configured agent answered */
    CONSUL_TOO_BIG = 2,     /* the answer exceeded the body cap */
    CONSUL_ERROR = 3,       /* a local error (bad arguments, out of resources) */
    CONSUL_BROKEN = 4,      /* streaming: the sink had the answer's head when the transfer
                               failed, was too large or the sink gave up; nothing else follows */
};

struct consul_response {
    long status;
    char *body; /* NUL-terminated; owned */
    size_t len;
    char *headers; /* the pass-through headers as "Name: value\r\n…"; owned */
    char content_type[128];
    uint64_t index;       /* X-Consul-Index, 0 when absent */
    int known_leader;     /* X-Consul-KnownLeader: 1 true, 0 false, -1 absent */
    long last_contact_ms; /* X-Consul-LastContact, -1 when absent */
    char address[256];    /* the agent base URL that answered */
    char error[256];      /* when the rc is not CONSUL_OK: the last failure, for messages */
};

struct consul_opts {
    int wait_s;                /* > 0: a blocking query; the timeout becomes wait×17/16+5 s */
    const char *address;       /* ask this agent only (no failover), e.g. per-server queries */
    const char *content_type;  /* of the request body, NULL = none */
    const char *forwarded_for; /* X-Forwarded-For to send, NULL = none */
    const atomic_int *cancel;  /* when it becomes non-zero the request is abandoned within about
                                  a second (CONSUL_UNREACHABLE); NULL = never */
    int quiet;                 /* do not log failed attempts (the caller reports them) */
};

/* Creates a client for cfg's addresses, token, CA file and timeouts (copied). */
struct consul_client *consul_client_new(const struct config *cfg);
void consul_client_free(struct consul_client *c);

/* Sends method path_and_query (starting with "/v1/") with body (may be NULL) to the first
 * working agent. On CONSUL_OK, out holds the answer; free it with consul_response_free.
 * opts may be NULL. Order: the last agent that answered, then the others as configured. A
 * GET/HEAD moves on after a connection error, a timeout or a 5xx (when every agent answered
 * 5xx the last of those answers is returned, CONSUL_OK). Another method moves on only when
 * it could not be sent (connect failure): its answer, whatever the status, is the answer, so
 * a write is never applied twice. On failure out->error says why (out needs no freeing, but
 * consul_response_free is harmless). */
int consul_request(struct consul_client *c, const char *method, const char *path_and_query,
                   const void *body, size_t len, const struct consul_opts *opts,
                   struct consul_response *out);
void consul_response_free(struct consul_response *r);

/* The head of an answer being streamed. Strings are borrowed for the callback only. */
struct consul_head {
    long status;
    const char *headers;      /* the pass-through headers as "Name: value\r\n…" */
    const char *content_type; /* "" when absent */
    long long content_length; /* Content-Length, -1 when the agent gave none */
    uint64_t index;
    int known_leader;
    long last_contact_ms;
    const char *address; /* the agent that answers */
};

/* Where a streamed answer goes. head is called once, when the answer that will be delivered
 * has its status line and headers; data for each piece of its body, as it arrives. Each
 * returns 0 to go on, non-zero to abandon the transfer (the client went away). */
struct consul_sink {
    int (*head)(void *ud, const struct consul_head *h);
    int (*data)(void *ud, const void *data, size_t len);
    void *ud;
};

/* consul_request, but the answer goes to sink as it arrives instead of into memory. Which
 * agent answers is decided at the status line (a 5xx to a GET/HEAD while another agent is
 * left is kept aside and replaced by the next agent's answer), so failover stays possible
 * until the sink has seen a head. CONSUL_OK: the whole answer went to the sink; out holds
 * status, address and the X-Consul figures (no body). CONSUL_BROKEN: the sink saw the head
 * but not the whole body. Other codes: the sink saw nothing; out->error says why. */
int consul_request_stream(struct consul_client *c, const char *method, const char *path_and_query,
                          const void *body, size_t len, const struct consul_opts *opts,
                          const struct consul_sink *sink, struct consul_response *out);

/* One KV entry as GET /v1/kv/<key> returns it, with the value decoded from base64. */
struct consul_kv {
    int exists;           /* 0: the key is absent (404) */
    unsigned char *value; /* owned, NUL-terminated (the value may hold NULs); NULL if absent */
    size_t len;
    uint64_t modify_index;
    uint64_t flags;
};

/* Reads one key with GET path_and_query ("/v1/kv/<percent-encoded key>[?dc=…]"). Returns
 * CONSUL_OK with out filled (exists 0 on a 404); CONSUL_ERROR when the agent answered
 * another status (*status, may be NULL, tells which) or an unparsable body; the transport
 * codes as consul_request. Free out with consul_kv_clear. */
int consul_kv_read(struct consul_client *c, const char *path_and_query,
                   const struct consul_opts *opts, struct consul_kv *out, long *status);
void consul_kv_clear(struct consul_kv *kv);

/* Percent-encodes a KV key for a URL path: everything but unreserved characters and '/'.
 * The result belongs to the caller. */
char *consul_kv_escape(const char *key);

/* The configured addresses (borrowed) and the index of the last one that answered. */
size_t consul_address_count(const struct consul_client *c);
const char *consul_address(const struct consul_client *c, size_t i);

#endif
