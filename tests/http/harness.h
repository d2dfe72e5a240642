/* harness: starts the real consulate binary on port 0 with a temporary database and talks to
 * it with libcurl, as a browser would (cookie jar + CSRF header). For tests/http/test_*.c. */
#ifndef CONSULATE_TEST_HARNESS_H
#define CONSULATE_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

struct srv {
    pid_t pid;
    int port;
    char base[64];      /* "http://127.0.0.1:PORT" (https with tls.certificate) */
    char dir[256];      /* temporary directory (config, database, server.log) */
    char db[320];
    char config[320];
    char log[320];      /* the server's stderr */
    char admin_pw[64];  /* bootstrap admin password */
    char ca_file[320];  /* CA the clients trust for an https base (set by the test) */
};

/* The "threads" srv_start writes into every config (32, since tests start many servers);
 * 0 leaves the key out so the server's own default applies (the exhaustion tests). */
extern int srv_threads;

/* Starts `$CONSULATE_BIN serve` with a config of listen 127.0.0.1:0, a fresh database in a
 * temporary directory, the UI compiled in (no web_root), "threads" (see srv_threads), and
 * extra_config (JSON members without
 * braces, e.g. "\"login\":{\"max_failures\":3}", or NULL). Waits for it to listen. NULL on
 * failure (message on stderr). */
struct srv *srv_start(const char *extra_config);
/* Same, reusing an existing directory (database kept): for restart tests. */
struct srv *srv_start_in(const char *dir, const char *extra_config);
/* Stops the server (SIGTERM, then SIGKILL after 10 s). Removes the directory unless keep.
 * A server that does not exit with status 0 (crash, sanitizer report, hung stop) has its log
 * printed and makes the test binary exit 1. */
void srv_stop_keep(struct srv *s, int keep);
void srv_stop(struct srv *s);

/* Runs `$CONSULATE_BIN args…` (argv NULL-terminated, without the program name) with
 * stdin_text on its stdin; returns its exit status and, when out is not NULL, its stdout and
 * stderr together (caller frees). */
int run_cli(const char *const *args, const char *stdin_text, char **out);

struct resp {
    long status;
    char *body;
    size_t len;
    char *headers;  /* raw response headers */
    cJSON *json;    /* parsed body when it is JSON, else NULL */
};
void resp_free(struct resp *r);
/* Returns the value of a response header (case-insensitive name) newly allocated, or NULL. */
char *resp_header(const struct resp *r, const char *name);

/* error.code and error.message of an error reply ("" when absent; borrowed from r). */
const char *resp_error_code(const struct resp *r);
const char *resp_error_message(const struct resp *r);
/* NULL when r is an error reply {"error":{"code","message"}} with status and code whose
 * message contains what (any message when what is NULL); else a sentence saying how it
 * differs (a static buffer, valid until the next call in the thread). */
const char *resp_error_mismatch(const struct resp *r, long status, const char *code,
                                const char *what);
/* 1 when resp_error_mismatch finds nothing; else prints the difference to stderr and
 * returns 0 (use in assert_true). */
int resp_is_error(const struct resp *r, long status, const char *code, const char *what);
/* The cmocka assertion of resp_error_mismatch (for files that include cmocka.h). */
#define assert_error_reply(r, status, code, what)                                              \
    do {                                                                                       \
        const char *why_ = resp_error_mismatch((r), (status), (code), (what));                 \
        if (why_) {                                                                            \
            fail_msg("%s", why_);                                                              \
        }                                                                                      \
    } while (0)

/* A client: its own cookie jar and CSRF token, like one browser. */
struct client;
struct client *client_new(struct srv *s);
void client_free(struct client *c);
/* POST /api/session; on 200 keeps the CSRF token. Returns the HTTP status. */
long client_login(struct client *c, const char *user, const char *pw);
/* The same, returning the whole response (the caller frees it). */
struct resp client_login_resp(struct client *c, const char *user, const char *pw);
/* A JSON request (Content-Type application/json), with X-CSRF-Token when known. */
struct resp client_req(struct client *c, const char *method, const char *path, const char *body);
/* Full control: raw body of len bytes and extra headers ("Name: value", NULL-terminated list;
 * may be NULL). csrf: send the token when 1. */
struct resp client_req_raw(struct client *c, const char *method, const char *path,
                           const void *body, size_t len, const char *const *headers, int csrf);
/* Sends this client's requests from another loopback address (e.g. "127.0.0.2"; the whole of
 * 127.0.0.0/8 reaches the server), so the server sees a second client address. */
void client_set_source(struct client *c, const char *ip);
/* GETs path every 50 ms until it answers with status want or timeout_ms has passed; returns
 * the last status and, in *elapsed_ms, how long it took. */
long client_get_until(struct client *c, const char *path, long want, int timeout_ms,
                      int64_t *elapsed_ms);
/* Forgets the CSRF token (to test its absence) or sets another. */
void client_set_csrf(struct client *c, const char *token);
const char *client_csrf(struct client *c);

/* Creates a user through the admin API using the bootstrap admin. Returns the status. */
long srv_add_user(struct srv *s, const char *name, const char *role, const char *pw);
/* A logged-in client for name/pw; NULL when the login fails. */
struct client *srv_login(struct srv *s, const char *name, const char *pw);

/* Runs SQL on the server's database through a second connection (the tests' way to age a
 * session or tamper with a row). Returns 0, or -1 after printing the SQLite error. */
int db_exec(struct srv *s, const char *sql);

/* One integer from a query on the server's database (read-only), or -1 on error. */
long long db_int(struct srv *s, const char *sql);

/* Counts audit entries matching action (prefix) and outcome through SQL on the database. */
long db_count_audit(struct srv *s, const char *action, const char *outcome);

#endif
