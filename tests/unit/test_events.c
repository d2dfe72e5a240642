/* Unit tests for server/events.c: fan-out to several subscribers, last-value replay, a slow
 * subscriber stays bounded and resyncs, unsubscribe, timeouts, close wakes waiters, and a
 * threaded publisher/subscriber run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "util.h"

/* Takes the next event (without waiting) and checks its name and data. */
static void
expect_event(struct events *b, struct events_sub *s, const char *name, const char *data)
{
    struct event *e = NULL;
    assert_int_equal(events_next(b, s, 0, &e), EVENTS_OK);
    assert_non_null(e);
    assert_string_equal(e->name, name);
    if (data) {
        assert_string_equal(e->data, data);
        char frame[256];
        snprintf(frame, sizeof(frame), "event: %s\ndata: %s\n\n", name, data);
        assert_string_equal(e->frame, frame);
        assert_int_equal(e->frame_len, strlen(frame));
    }
    events_event_put(b, e);
}

static void
expect_empty(struct events *b, struct events_sub *s)
{
    struct event *e = NULL;
    assert_int_equal(events_next(b, s, 0, &e), EVENTS_TIMEOUT);
    assert_null(e);
}

static void
test_fanout(void **state)
{
    (void)state;
    struct events *b = events_new(8);
    struct events_sub *s1 = events_subscribe(b);
    struct events_sub *s2 = events_subscribe(b);
    struct events_sub *s3 = events_subscribe(b);
    assert_int_equal(events_subscriber_count(b), 3);
    assert_int_equal(events_publish(b, "cluster", "{\"a\":1}"), 0);
    assert_int_equal(events_publish(b, "health", "{\"b\":2}"), 0);
    struct events_sub *subs[] = {s1, s2, s3};
    for (size_t i = 0; i < 3; i++) {
        expect_event(b, subs[i], "cluster", "{\"a\":1}");
        expect_event(b, subs[i], "health", "{\"b\":2}");
        expect_empty(b, subs[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        events_unsubscribe(b, subs[i]);
    }
    assert_int_equal(events_subscriber_count(b), 0);
    events_free(b);
}

static void
test_last_value_replay(void **state)
{
    (void)state;
    struct events *b = events_new(8);
    assert_null(events_last(b, "cluster"));
    events_publish(b, "cluster", "{\"v\":1}");
    events_publish(b, "health", "{\"h\":1}");
    events_publish(b, "cluster", "{\"v\":2}");
    char *last = events_last(b, "cluster");
    assert_string_equal(last, "{\"v\":2}");
    free(last);

    /* A new subscriber gets the newest value of each name, in first-publication order. */
    struct events_sub *s = events_subscribe(b);
    expect_event(b, s, "cluster", "{\"v\":2}");
    expect_event(b, s, "health", "{\"h\":1}");
    expect_empty(b, s);
    events_publish(b, "cluster", "{\"v\":3}");
    expect_event(b, s, "cluster", "{\"v\":3}");
    events_unsubscribe(b, s);
    events_free(b);
}

/* A transient event (a job log line) goes to the subscribers of the moment and is never
 * replayed: not to a new subscriber, not after a resync; it does not disturb the last value
 * of a kept event of another name. */
static void
test_transient_not_replayed(void **state)
{
    (void)state;
    struct events *b = events_new(4);
    struct events_sub *s = events_subscribe(b);
    events_publish(b, "job", "{\"id\":1,\"state\":\"running\"}");
    assert_int_equal(events_publish_transient(b, "job_log", "{\"line\":1}"), 0);
    assert_int_equal(events_publish_transient(b, "job_log", "{\"line\":2}"), 0);
    assert_int_equal(events_publish_transient(b, "bad name", "{}"), -1);
    expect_event(b, s, "job", "{\"id\":1,\"state\":\"running\"}");
    expect_event(b, s, "job_log", "{\"line\":1}");
    expect_event(b, s, "job_log", "{\"line\":2}");
    expect_empty(b, s);
    assert_null(events_last(b, "job_log"));
    struct events_sub *late = events_subscribe(b);
    expect_event(b, late, "job", "{\"id\":1,\"state\":\"running\"}");
    expect_empty(b, late);
    /* overflow: the resync replays the kept job state, never a log line */
    for (int i = 3; i < 20; i++) {
        char d[32];
        snprintf(d, sizeof(d), "{\"line\":%d}", i);
        events_publish_transient(b, "job_log", d);
    }
    struct event *e = NULL;
    assert_int_equal(events_next(b, late, 0, &e), EVENTS_OK);
    assert_string_equal(e->name, "resync");
    events_event_put(b, e);
    expect_event(b, late, "job", "{\"id\":1,\"state\":\"running\"}");
    expect_empty(b, late);
    events_unsubscribe(b, s);
    events_unsubscribe(b, late);
    events_free(b);
}

static void
test_slow_subscriber_bounded(void **state)
{
    (void)state;
    struct events *b = events_new(4);
    struct events_sub *fast = events_subscribe(b);
    struct events_sub *slow = events_subscribe(b);
    char data[64];
    for (int i = 1; i <= 100; i++) {
        snprintf(data, sizeof(data), "{\"n\":%d}", i);
        assert_int_equal(events_publish(b, "cluster", data), 0);
        if (i % 2 == 0) {
            events_publish(b, "health", "{\"h\":0}");
        }
        /* the fast one keeps up */
        struct event *e;
        while (events_next(b, fast, 0, &e) == EVENTS_OK) {
            events_event_put(b, e);
        }
    }
    /* The slow one never read: it gets a resync marker, then only the current state. */
    struct event *e = NULL;
    assert_int_equal(events_next(b, slow, 0, &e), EVENTS_OK);
    assert_string_equal(e->name, "resync");
    cJSON *j = cJSON_Parse(e->data);
    assert_non_null(j);
    assert_true(json_get_num(j, "dropped", 0) > 0);
    cJSON_Delete(j);
    events_event_put(b, e);
    expect_event(b, slow, "cluster", "{\"n\":100}");
    expect_event(b, slow, "health", "{\"h\":0}");
    expect_empty(b, slow);

    /* After the resync it is a normal subscriber again. */
    events_publish(b, "cluster", "{\"n\":101}");
    expect_event(b, slow, "cluster", "{\"n\":101}");
    expect_event(b, fast, "cluster", "{\"n\":101}");
    events_unsubscribe(b, fast);
    events_unsubscribe(b, slow);
    events_free(b);
}

static void
test_unsubscribe_and_refs(void **state)
{
    (void)state;
    struct events *b = events_new(8);
    struct events_sub *a = events_subscribe(b);
    struct events_sub *c = events_subscribe(b);
    events_publish(b, "x", "{}");
    events_publish(b, "y", "[1,2]");
    /* Unsubscribing with events still queued releases them (ASan checks the refcounts). */
    events_unsubscribe(b, a);
    assert_int_equal(events_subscriber_count(b), 1);
    events_publish(b, "x", "{\"again\":true}");
    struct event *e = NULL;
    assert_int_equal(events_next(b, c, 0, &e), EVENTS_OK);
    /* An event taken out stays valid after later publishes replace the last value. */
    events_publish(b, "x", "{\"third\":true}");
    assert_string_equal(e->data, "{}");
    events_event_put(b, e);
    expect_event(b, c, "y", "[1,2]");
    expect_event(b, c, "x", "{\"again\":true}");
    expect_event(b, c, "x", "{\"third\":true}");
    events_unsubscribe(b, c);
    events_unsubscribe(b, NULL);
    events_free(b);
}

static void
test_invalid_publish(void **state)
{
    (void)state;
    struct events *b = events_new(0);
    assert_int_equal(events_publish(b, "", "{}"), -1);
    assert_int_equal(events_publish(b, "bad name", "{}"), -1);
    assert_int_equal(events_publish(b, "bad\nname", "{}"), -1);
    assert_int_equal(events_publish(b, "ok", "{\n}"), -1);
    assert_int_equal(events_publish(b, "ok", "{\r}"), -1);
    assert_int_equal(events_publish(b, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "{}"), -1);
    assert_int_equal(events_publish(b, "job.step-1_ok", "{}"), 0);
    events_free(b);
}

static void
test_timeout_waits(void **state)
{
    (void)state;
    struct events *b = events_new(8);
    struct events_sub *s = events_subscribe(b);
    struct event *e = NULL;
    int64_t t0 = time_mono_ms();
    assert_int_equal(events_next(b, s, 150, &e), EVENTS_TIMEOUT);
    int64_t took = time_mono_ms() - t0;
    assert_true(took >= 140);
    assert_true(took < 1000);
    events_unsubscribe(b, s);
    events_free(b);
}

struct waiter {
    struct events *b;
    struct events_sub *s;
    int rc;
    int got;
    int64_t took_ms;
    char first[64];
};

static void *
waiter_main(void *arg)
{
    struct waiter *w = arg;
    int64_t t0 = time_mono_ms();
    for (;;) {
        struct event *e = NULL;
        w->rc = events_next(w->b, w->s, 10000, &e);
        if (w->rc != EVENTS_OK) {
            break;
        }
        if (w->got++ == 0) {
            snprintf(w->first, sizeof(w->first), "%s", e->data);
        }
        events_event_put(w->b, e);
    }
    w->took_ms = time_mono_ms() - t0;
    return NULL;
}

/* A publish wakes waiting subscribers at once; close ends them promptly, and subscribing or
 * publishing on a closed bus fails. */
static void
test_wakeup_and_close(void **state)
{
    (void)state;
    struct events *b = events_new(1024);
    enum { N = 8 };
    struct waiter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].b = b;
        w[i].s = events_subscribe(b);
        assert_int_equal(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    usleep(50 * 1000);
    for (int i = 0; i < 500; i++) {
        char d[32];
        snprintf(d, sizeof(d), "{\"i\":%d}", i);
        events_publish(b, "cluster", d);
    }
    usleep(100 * 1000);
    int64_t t0 = time_mono_ms();
    events_close(b);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].rc, EVENTS_CLOSED);
        assert_string_equal(w[i].first, "{\"i\":0}");
        assert_int_equal(w[i].got, 500);
        events_unsubscribe(b, w[i].s);
    }
    assert_true(time_mono_ms() - t0 < 1000);
    assert_null(events_subscribe(b));
    assert_int_equal(events_publish(b, "cluster", "{}"), -1);
    events_close(b);
    events_free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_last_value_replay),
        cmocka_unit_test(test_transient_not_replayed),
        cmocka_unit_test(test_slow_subscriber_bounded),
        cmocka_unit_test(test_unsubscribe_and_refs),
        cmocka_unit_test(test_invalid_publish),
        cmocka_unit_test(test_timeout_waits),
        cmocka_unit_test(test_wakeup_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
