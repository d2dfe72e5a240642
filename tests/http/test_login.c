/* Black-box tests of logging in under attack, against the real server: the login throttle
 * under a burst of parallel attempts, the lockout policy (an attacker cannot lock the real
 * user out), the per-address budget of anonymous refusals, and the in-memory session cache.
 * Each test sends from its own loopback address (127.0.0.x), so the per-address counters of
 * one test do not spill into another. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "util.h"

#define PW "correct-horse-42"
#define MAX_FAILURES 3
#define METRICS_TOKEN "scrape-token-0123456789"

static int
setup(void **state)
{
    struct srv *s = srv_start("\"login\":{\"max_failures\":3,\"window_s\":900},"
                              "\"metrics_token\":\"" METRICS_TOKEN "\"");
    if (!s) {
        return -1;
    }
    *state = s;
    return 0;
}

static int
teardown(void **state)
{
    srv_stop(*state);
    return 0;
}

/* ---- helpers ---- */

#define ASSERT_ERROR(r, st, code, what) assert_true(resp_is_error(&(r), (st), (code), (what)))

/* A client whose requests come from the loopback address ip. */
static struct client *
client_at(struct srv *s, const char *ip)
{
    struct client *c = client_new(s);
    client_set_source(c, ip);
    return c;
}

static void db_execf(struct srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
db_execf(struct srv *s, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    assert_int_equal(db_exec(s, sql), 0);
}

static long
audit_rows(struct srv *s)
{
    return db_count_audit(s, "", NULL);
}

/* Audit rows with exactly this action and outcome. */
static long long
audit_exact(struct srv *s, const char *action, const char *outcome)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit_log WHERE action = '%s' AND outcome = '%s'", action,
             outcome);
    return db_int(s, sql);
}

/* The value of a metric from GET /metrics (bearer token), or -1 when it is absent. */
static long long
metric(struct srv *s, const char *name)
{
    struct client *c = client_new(s);
    static const char *const auth[] = {"Authorization: Bearer " METRICS_TOKEN, NULL};
    struct resp r = client_req_raw(c, "GET", "/metrics", NULL, 0, auth, 0);
    long long v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = atoll(p + n + 1);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    resp_free(&r);
    client_free(c);
    return v;
}

/* The Retry-After header as a number, or -1. */
static long
retry_after(const struct resp *r)
{
    char *h = resp_header(r, "Retry-After");
    long v = h ? atol(h) : -1;
    free(h);
    return v;
}

/* ---- 1. the throttle holds under a burst ---- */

#define BURST 30

struct burst_arg {
    struct srv *srv;
    pthread_barrier_t *go;
    long status;
    char code[32];
};

static void *
burst_one(void *p)
{
    struct burst_arg *a = p;
    struct client *c = client_at(a->srv, "127.0.0.21");
    pthread_barrier_wait(a->go);
    struct resp r = client_login_resp(c, "burst", "not-the-password");
    a->status = r.status;
    snprintf(a->code, sizeof(a->code), "%s", resp_error_code(&r));
    resp_free(&r);
    client_free(c);
    return NULL;
}

/* 30 wrong passwords for one user at once: the failure is counted before the slow password
 * check, so only login.max_failures checks happen; the rest are refused with 429 at once. */
static void
test_burst_of_wrong_passwords(void **state)
{
    struct srv *s = *state;
    assert_int_equal(srv_add_user(s, "burst", "viewer", PW), 201);
    long long failed0 = audit_exact(s, "auth.login_failed", "denied");
    long long throttled0 = audit_exact(s, "auth.login_throttled", "denied");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, BURST);
    struct burst_arg args[BURST];
    pthread_t th[BURST];
    for (int i = 0; i < BURST; i++) {
        args[i] = (struct burst_arg){.srv = s, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, burst_one, &args[i]), 0);
    }
    int n401 = 0, n429 = 0;
    for (int i = 0; i < BURST; i++) {
        pthread_join(th[i], NULL);
        if (args[i].status == 401 && strcmp(args[i].code, "invalid_credentials") == 0) {
            n401++;
        } else if (args[i].status == 429 && strcmp(args[i].code, "too_many_attempts") == 0) {
            n429++;
        } else {
            fail_msg("attempt %d: %ld %s", i, args[i].status, args[i].code);
        }
    }
    pthread_barrier_destroy(&go);
    if (n401 != MAX_FAILURES || n429 != BURST - MAX_FAILURES) {
        fail_msg("%d × 401 and %d × 429; expected %d and %d", n401, n429, MAX_FAILURES,
                 BURST - MAX_FAILURES);
    }
    /* the audit log agrees: one entry per attempt, under what happened to it */
    assert_int_equal(audit_exact(s, "auth.login_failed", "denied"), failed0 + MAX_FAILURES);
    assert_int_equal(audit_exact(s, "auth.login_throttled", "denied"),
                     throttled0 + BURST - MAX_FAILURES);
    assert_int_equal(db_int(s, "SELECT count(*) FROM login_failures WHERE username = 'burst'"),
                     MAX_FAILURES);
    assert_int_equal(db_int(s, "SELECT count(*) FROM sessions s JOIN users u ON u.id = "
                               "s.user_id WHERE u.name = 'burst'"),
                     0);
}

/* ---- 2. the lockout cannot be used against the real user ---- */

/* Moves every failure for name to now + offset_ms (the tests' clock is the server's). */
static void
failures_at(struct srv *s, const char *name, int64_t offset_ms)
{
    db_execf(s, "UPDATE login_failures SET at = %lld WHERE username = '%s'",
             (long long)(time_now_ms() + offset_ms), name);
}

static void
test_lockout_spares_the_real_user(void **state)
{
    struct srv *s = *state;
    assert_int_equal(srv_add_user(s, "victim", "admin", PW), 201);
    struct client *a1 = client_at(s, "127.0.0.31"), *a2 = client_at(s, "127.0.0.32");
    struct client *c1 = client_at(s, "127.0.0.33"), *c2 = client_at(s, "127.0.0.34");
    struct resp r;
    /* the attacker's two addresses lock the name (3 failures, neither address at 3) */
    for (int i = 0; i < 3; i++) {
        r = client_login_resp(i < 2 ? a1 : a2, "victim", "guessed-password");
        ASSERT_ERROR(r, 401, "invalid_credentials", NULL);
        resp_free(&r);
    }
    /* from an address with failures of its own, even the right password is refused */
    long long throttled0 = audit_exact(s, "auth.login_throttled", "denied");
    r = client_login_resp(a1, "victim", PW);
    ASSERT_ERROR(r, 429, "too_many_attempts", "this address has failed too");
    assert_true(retry_after(&r) > 800); /* until the address's own failures age out */
    resp_free(&r);
    r = client_login_resp(a2, "victim", PW);
    ASSERT_ERROR(r, 429, "too_many_attempts", "this address has failed too");
    resp_free(&r);
    assert_int_equal(audit_exact(s, "auth.login_throttled", "denied"), throttled0 + 2);

    /* a clean address gets one check per delay: none within 1 s of the last failure */
    failures_at(s, "victim", 5000);
    r = client_login_resp(c1, "victim", PW);
    ASSERT_ERROR(r, 429, "too_many_attempts", "one password check every 1 s");
    long ra = retry_after(&r);
    if (ra < 5 || ra > 7) {
        fail_msg("Retry-After %ld, expected about 6", ra);
    }
    resp_free(&r);
    /* once the delay has passed it is checked: a wrong password now doubles the delay */
    failures_at(s, "victim", -1100);
    r = client_login_resp(c1, "victim", "another-guess-1");
    ASSERT_ERROR(r, 401, "invalid_credentials", NULL);
    resp_free(&r);
    failures_at(s, "victim", -1100);
    r = client_login_resp(c2, "victim", PW);
    ASSERT_ERROR(r, 429, "too_many_attempts", "one password check every 2 s");
    assert_int_equal(retry_after(&r), 1);
    resp_free(&r);
    /* and the real user on a clean address gets in with the right password */
    failures_at(s, "victim", -2100);
    long long ok0 = audit_exact(s, "auth.login", "ok");
    r = client_login_resp(c2, "victim", PW);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(audit_exact(s, "auth.login", "ok"), ok0 + 1);
    r = client_req(c2, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* the success forgave the name, not the addresses: a1's failures still count for it */
    assert_int_equal(db_int(s, "SELECT count(*) FROM login_failures WHERE username = 'victim'"), 0);
    assert_int_equal(db_int(s, "SELECT count(*) FROM login_failures WHERE ip = '127.0.0.31'"), 2);
    r = client_login_resp(a1, "victim", "third-guess-123");
    ASSERT_ERROR(r, 401, "invalid_credentials", NULL);
    resp_free(&r);
    r = client_login_resp(a1, "victim", PW);
    ASSERT_ERROR(r, 429, "too_many_attempts", "from this address");
    resp_free(&r);

    /* the per-address throttle still holds for names that are not locked */
    struct client *a3 = client_at(s, "127.0.0.35");
    static const char *const names[] = {"ghost-x", "ghost-y", "ghost-z"};
    for (int i = 0; i < 3; i++) {
        r = client_login_resp(a3, names[i], "whatever-123");
        ASSERT_ERROR(r, 401, "invalid_credentials", NULL);
        resp_free(&r);
    }
    r = client_login_resp(a3, "admin", s->admin_pw);
    ASSERT_ERROR(r, 429, "too_many_attempts", "from this address");
    resp_free(&r);
    client_free(a1);
    client_free(a2);
    client_free(a3);
    client_free(c1);
    client_free(c2);
}

/* ---- 3. every anonymous refusal goes through the per-address budget ---- */

static void
test_anonymous_login_flood(void **state)
{
    struct srv *s = *state;
    struct client *c = client_at(s, "127.0.0.41");
    long rows0 = audit_rows(s);
    long long suppressed0 = metric(s, "consulate_anonymous_writes_suppressed_total");
    long long throttled0 = audit_exact(s, "auth.anonymous_throttled", "denied");
    static const char *const evil[] = {"Content-Type: application/json",
                                       "Origin: http://evil.example", NULL};
    static const char good[] = "{\"username\":\"admin\",\"password\":\"not-the-password\"}";
    enum { N = 1500 };
    int refused = 0, n429 = 0;
    for (int i = 0; i < N; i++) {
        struct resp r;
        const char *want_code;
        switch (i % 3) {
        case 0:
            r = client_req_raw(c, "POST", "/api/session", good, strlen(good), evil, 0);
            want_code = "csrf";
            break;
        case 1:
            r = client_req(c, "POST", "/api/session", "{\"username\":\"admin\",");
            want_code = "invalid_json";
            break;
        default:
            r = client_req(c, "POST", "/api/session", "{\"user\":\"admin\",\"password\":\"x\"}");
            want_code = "invalid_field";
            break;
        }
        if (r.status == 429) {
            ASSERT_ERROR(r, 429, "too_many_requests", "without a session from this address");
            n429++;
        } else if (r.status != 400 && r.status != 403) {
            fail_msg("request %d: %ld %s", i, r.status, r.body);
        } else {
            if (strcmp(resp_error_code(&r), want_code) != 0) {
                fail_msg("request %d: %s, expected %s", i, r.body, want_code);
            }
            if (n429) {
                fail_msg("request %d refused as usual after the budget was spent", i);
            }
            refused++;
        }
        resp_free(&r);
    }
    assert_int_equal(refused, 60);
    assert_int_equal(n429, N - 60);
    /* 60 entries and one auth.anonymous_throttled, the rest only counted */
    long added = audit_rows(s) - rows0;
    if (added > 61) {
        fail_msg("%ld audit rows for %d anonymous refusals", added, N);
    }
    assert_int_equal(added, 61);
    assert_int_equal(audit_exact(s, "auth.anonymous_throttled", "denied"), throttled0 + 1);
    assert_int_equal(metric(s, "consulate_anonymous_writes_suppressed_total"),
                     suppressed0 + N - 61);
    assert_int_equal(db_int(s, "SELECT count(*) FROM login_failures WHERE ip = '127.0.0.41'"), 0);
    /* each recorded refusal says what it was */
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND "
                               "ip = '127.0.0.41' AND outcome = 'denied' AND detail LIKE "
                               "'%cross-origin%'"),
                     20);

    /* a wrong password is still audited (the login throttle bounds those) and the right one
     * still logs in: the budget refuses only what would be refused anyway */
    long long failed0 = audit_exact(s, "auth.login_failed", "denied");
    struct resp r = client_login_resp(c, "admin", "not-the-password");
    ASSERT_ERROR(r, 401, "invalid_credentials", NULL);
    resp_free(&r);
    assert_int_equal(audit_exact(s, "auth.login_failed", "denied"), failed0 + 1);
    r = client_login_resp(c, "admin", s->admin_pw);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);
}

/* ---- 4. the session cache ---- */

/* A warm session is answered from memory (one SQLite lookup per second at most), and a
 * change made behind the server's back is still seen within about a second. (Changes made
 * through the API reach open sessions at once: test_users_admin in test_foundation.c.) */
static void
test_session_cache(void **state)
{
    struct srv *s = *state;
    assert_int_equal(srv_add_user(s, "cached", "viewer", PW), 201);
    struct client *c = client_at(s, "127.0.0.51");
    struct resp r = client_login_resp(c, "cached", PW);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    long long hits0 = metric(s, "consulate_session_cache_hits_total");
    long long misses0 = metric(s, "consulate_session_cache_misses_total");
    assert_true(hits0 >= 0 && misses0 >= 0);
    int64_t t0 = time_mono_ms();
    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        r = client_req(c, "GET", "/api/session", NULL);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    int64_t elapsed = time_mono_ms() - t0;
    long long hits = metric(s, "consulate_session_cache_hits_total") - hits0;
    long long misses = metric(s, "consulate_session_cache_misses_total") - misses0;
    assert_int_equal(hits + misses, N);
    if (misses > elapsed / 1000 + 2) {
        fail_msg("%lld of %d lookups read the database in %lld ms", misses, N, (long long)elapsed);
    }

    /* a change behind the server's back (another process) is seen within about a second */
    assert_int_equal(srv_add_user(s, "cached2", "viewer", PW), 201);
    struct client *c2 = client_at(s, "127.0.0.52");
    r = client_login_resp(c2, "cached2", PW);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(db_exec(s, "DELETE FROM sessions WHERE user_id = (SELECT id FROM users "
                                "WHERE name = 'cached2')"),
                     0);
    int64_t took;
    assert_int_equal(client_get_until(c2, "/api/session", 401, 3000, &took), 401);
    if (took > 1500) {
        fail_msg("the deleted session still worked after %lld ms", (long long)took);
    }
    client_free(c);
    client_free(c2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_of_wrong_passwords),
        cmocka_unit_test(test_lockout_spares_the_real_user),
        cmocka_unit_test(test_anonymous_login_flood),
        cmocka_unit_test(test_session_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
