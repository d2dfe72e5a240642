/* watch: see include/watch.h.
 *
 * Threads and what they own:
 *   - three blocking-query watchers (raft configuration, autopilot health, check states),
 *     each looping on one resource with ?index=&wait=;
 *   - the poller: /v1/agent/members and /v1/status/leader every WATCH_POLL_MS (or at once
 *     when a watcher pokes it), /v1/agent/self until the datacenter is known; its answers
 *     (or their absence) decide when Consul is unreachable;
 *   - the scraper: consul_exporter on every server host every exporter_interval_s (and at
 *     once when the set of server hosts changes).
 * They share the inputs under w->mu, and every change rebuilds the pure model under that
 * lock, so snapshots and events come out in order. Readers only touch w->snap (its own lock).
 *
 * Stopping: every Consul request carries the stop flag as its cancel flag, so a blocking
 * query (consul.watch_wait_s long) is abandoned within about a second of a stop; naps wait
 * on w->cond, which a stop broadcasts; the scraper's transfers check the stop flag too.
 *
 * While every agent is unreachable the blocking watchers park and only the poller probes
 * (with back-off), so a missing Consul costs one probe every few seconds. */
#include "watch.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "config.h"
#include "consul.h"
#include "events.h"
#include "scrape.h"
#include "util.h"

/* A blocking query that came back faster than this with nothing new did not block (failover,
 * no leader, an agent that ignores index): the next one is paced. */
#define WATCH_FAST_MS 500
#define WATCH_PACE_MIN_MS 250
#define WATCH_PACE_MAX_MS 750
/* Never two requests of one watcher closer than this. */
#define WATCH_MIN_GAP_MS 200
#define WATCH_MAX_HOSTS 64
#define WATCH_HOST_MAX 64
#define WATCH_SCRAPE_CONNECT_MS 1000
#define WATCH_SCRAPE_TIMEOUT_MS 3000

enum slot { SLOT_RAFT = 0, SLOT_AUTOPILOT, SLOT_HEALTH, SLOT_MEMBERS, SLOT_LEADER, SLOT_COUNT };

struct bw_spec {
    const char *name;
    const char *path; /* with "?stale", so the index goes after '&' */
    enum slot slot;
    int want_array;
    int accept_429;     /* autopilot health: 429 = unhealthy, same JSON */
    int clear_on_error; /* an error answer makes the input unknown (else the last is kept) */
    int pokes_poller;   /* a change also refreshes the leader and the members at once */
};

static const struct bw_spec bw_specs[] = {
    {"raft", "/v1/operator/raft/configuration?stale", SLOT_RAFT, 0, 0, 0, 1},
    {"autopilot", "/v1/operator/autopilot/health?stale", SLOT_AUTOPILOT, 0, 1, 1, 1},
    {"health", "/v1/health/state/any?stale", SLOT_HEALTH, 1, 0, 0, 0},
};
#define N_BW (sizeof(bw_specs) / sizeof(bw_specs[0]))

struct watch;

struct bw_arg {
    struct watch *w;
    const struct bw_spec *spec;
};

struct watch {
    const struct config *cfg;
    struct consul_client *consul;
    struct events *bus;
    atomic_int stop;
    int slice_s;
    int64_t started_mono;
    _Atomic int64_t last_ok_ms; /* last answer from any agent, UTC ms; 0 never */
    atomic_int ever_answered;

    pthread_mutex_t mu;   /* everything below up to the snapshot */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC: stop, pokes, reachability */
    char *in[SLOT_COUNT]; /* bodies as received (leader unquoted), NULL = unknown */
    char *datacenter;
    int reachable;
    int down; /* the last probe found no agent: blocking watchers park */
    int poke_poller;
    int poke_scrape;
    char hosts[WATCH_MAX_HOSTS][WATCH_HOST_MAX]; /* server hosts, from the last model */
    size_t n_hosts;
    struct cluster_exporter exp[WATCH_MAX_HOSTS];
    char exp_host[WATCH_MAX_HOSTS][WATCH_HOST_MAX];
    size_t n_exp;
    struct cluster_expected *expected; /* from the inventory; strings owned */
    size_t n_expected;
    int64_t log_last_mono;
    unsigned log_suppressed;
    int logged_down;

    pthread_mutex_t snap_mu;
    struct watch_snap *snap;
    uint64_t version;
    int published;     /* the current snapshot went out as events (the start-up one does not) */
    char *cluster_key; /* the published cluster text without volatile fields */

    struct bw_arg bw_args[N_BW];
    pthread_t threads[N_BW + 2];
    size_t n_threads;
};

/* ---- small helpers ---- */

static int
stopping(struct watch *w)
{
    return atomic_load(&w->stop) != 0;
}

static void
deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Options of the watchers' non-blocking requests: cancelled by a stop, failures not logged
 * one by one (the watcher reports an unreachable cluster itself, rate-limited). */
static struct consul_opts
quiet_opts_of(struct watch *w)
{
    struct consul_opts o;
    memset(&o, 0, sizeof(o));
    o.cancel = &w->stop;
    o.quiet = 1;
    return o;
}

/* Sleeps ms unless stopped. */
static void
nap(struct watch *w, int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    struct timespec ts;
    deadline_after(&ts, ms);
    pthread_mutex_lock(&w->mu);
    while (!stopping(w)) {
        if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
}

/* Parks while the poller finds no agent. Returns 0 when stopping. */
static int
wait_not_down(struct watch *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->down && !stopping(w)) {
        pthread_cond_wait(&w->cond, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return !stopping(w);
}

static int64_t
next_backoff(int64_t b)
{
    if (b <= 0) {
        return WATCH_BACKOFF_MIN_MS;
    }
    return b * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : b * 2;
}

/* A warning at most every WATCH_LOG_EVERY_MS; the ones in between are counted. w->mu held. */
static void log_limited(struct watch *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
log_limited(struct watch *w, const char *fmt, ...)
{
    int64_t now = time_mono_ms();
    if (w->log_last_mono && now - w->log_last_mono < WATCH_LOG_EVERY_MS) {
        w->log_suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->log_suppressed) {
        log_warn("watch: %s (%u similar messages suppressed)", msg, w->log_suppressed);
    } else {
        log_warn("watch: %s", msg);
    }
    w->log_last_mono = now;
    w->log_suppressed = 0;
}

/* 1 when text is JSON of the wanted top-level type. */
static int
json_shape_ok(const char *text, int want_array)
{
    cJSON *j = text ? json_parse_str(text) : NULL;
    int ok = j && (want_array ? cJSON_IsArray(j) : cJSON_IsObject(j));
    cJSON_Delete(j);
    return ok;
}

/* Replaces input slot with a copy of body (NULL = unknown). Returns 1 when it changed.
 * w->mu held. */
static int
input_set(struct watch *w, enum slot slot, const char *body)
{
    char *old = w->in[slot];
    if ((!old && !body) || (old && body && strcmp(old, body) == 0)) {
        return 0;
    }
    free(old);
    w->in[slot] = body ? xstrdup(body) : NULL;
    return 1;
}

int
watch_addr_host(const char *addr, char *out, size_t outlen)
{
    const char *start = addr;
    size_t n;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close) {
            return -1;
        }
        start = addr + 1;
        n = (size_t)(close - start);
    } else {
        const char *colon = strchr(addr, ':');
        if (colon && !strchr(colon + 1, ':')) {
            n = (size_t)(colon - addr);
        } else {
            n = strlen(addr);
        }
    }
    if (n == 0 || n >= outlen) {
        return -1;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return 0;
}

/* ---- snapshot ---- */

static void
snap_unref(struct watch *w, struct watch_snap *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&w->snap_mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&w->snap_mu);
    if (last) {
        cluster_model_free((struct cluster_model *)s->model);
        free(s->cluster);
        free(s->health);
        free(s);
    }
}

struct watch_snap *
watch_snapshot(struct watch *w)
{
    pthread_mutex_lock(&w->snap_mu);
    struct watch_snap *s = w->snap;
    if (s) {
        s->refs++;
    }
    pthread_mutex_unlock(&w->snap_mu);
    return s;
}

void
watch_snap_put(struct watch *w, struct watch_snap *s)
{
    snap_unref(w, s);
}

int
watch_ready(struct watch *w)
{
    return atomic_load(&w->ever_answered) || time_mono_ms() - w->started_mono >= WATCH_NOT_READY_MS;
}

int64_t
watch_updated_at_ms(struct watch *w)
{
    return atomic_load(&w->last_ok_ms);
}

char *
watch_render(const struct watch_snap *s, enum watch_doc doc, int64_t updated_at_ms, int64_t now_ms,
             size_t *len)
{
    const char *text = doc == WATCH_DOC_CLUSTER ? s->cluster : s->health;
    size_t tlen = doc == WATCH_DOC_CLUSTER ? s->cluster_len : s->health_len;
    char head[128];
    int n;
    if (updated_at_ms > 0) {
        char ts[40];
        time_format_rfc3339(updated_at_ms, ts, sizeof(ts));
        if (now_ms >= 0) {
            int64_t age = now_ms > updated_at_ms ? now_ms - updated_at_ms : 0;
            n = snprintf(head, sizeof(head), "{\"updated_at\":\"%s\",\"age_ms\":%" PRId64, ts, age);
        } else {
            n = snprintf(head, sizeof(head), "{\"updated_at\":\"%s\"", ts);
        }
    } else {
        n = snprintf(head, sizeof(head), "{\"updated_at\":null%s",
                     now_ms >= 0 ? ",\"age_ms\":null" : "");
    }
    /* text is "{…}": its members follow ours after a comma; "{}" adds nothing */
    int empty = tlen < 2 || text[0] != '{' || strspn(text + 1, " ") + 2 >= tlen;
    size_t rest = empty ? 0 : tlen - 1;
    char *out = xmalloc((size_t)n + 1 + rest + 2);
    memcpy(out, head, (size_t)n);
    size_t o = (size_t)n;
    if (empty) {
        out[o++] = '}';
    } else {
        out[o++] = ',';
        memcpy(out + o, text + 1, rest);
        o += rest;
    }
    out[o] = '\0';
    if (len) {
        *len = o;
    }
    return out;
}

/* Updates the list of server hosts from the model; pokes the scraper when it changed.
 * w->mu held. */
static void
hosts_update(struct watch *w, const struct cluster_model *m)
{
    char hosts[WATCH_MAX_HOSTS][WATCH_HOST_MAX];
    size_t n = 0;
    for (size_t i = 0; i < m->n_servers && n < WATCH_MAX_HOSTS; i++) {
        char h[WATCH_HOST_MAX];
        if (!m->servers[i].address || watch_addr_host(m->servers[i].address, h, sizeof(h))) {
            continue;
        }
        size_t k;
        for (k = 0; k < n && strcmp(hosts[k], h) != 0; k++) {
        }
        if (k == n) {
            memcpy(hosts[n++], h, sizeof(h));
        }
    }
    if (n == w->n_hosts && memcmp(hosts, w->hosts, n * sizeof(hosts[0])) == 0) {
        return;
    }
    memcpy(w->hosts, hosts, n * sizeof(hosts[0]));
    w->n_hosts = n;
    w->poke_scrape = 1;
    pthread_cond_broadcast(&w->cond);
}

/* Publishes doc of s under name, with updated_at (events carry no age_ms: it would go stale
 * in the last-value replay; the browser computes the age). */
static void
publish_doc(struct watch *w, const struct watch_snap *s, enum watch_doc doc, const char *name)
{
    char *text = watch_render(s, doc, atomic_load(&w->last_ok_ms), -1, NULL);
    if (events_publish(w->bus, name, text) != 0) {
        log_limited(w, "could not publish the %s event", name);
    }
    free(text);
}

/* Rebuilds the model from the inputs, renders both documents and, when a text changed,
 * swaps in a new snapshot and (with publish) publishes each changed document. w->mu held. */
static void
rebuild_publish(struct watch *w, int publish)
{
    struct cluster_input in;
    memset(&in, 0, sizeof(in));
    in.reachable = w->reachable;
    in.updated_at_ms = atomic_load(&w->last_ok_ms);
    in.now_ms = time_now_ms();
    in.datacenter = w->datacenter;
    in.raft_json = w->in[SLOT_RAFT];
    in.members_json = w->in[SLOT_MEMBERS];
    in.autopilot_json = w->in[SLOT_AUTOPILOT];
    in.health_json = w->in[SLOT_HEALTH];
    in.leader_addr = w->in[SLOT_LEADER];
    in.exporters = w->n_exp ? w->exp : NULL;
    in.n_exporters = w->n_exp;
    in.expected = w->expected;
    in.n_expected = w->n_expected;
    struct cluster_model *m = NULL;
    struct cluster_error err;
    if (cluster_model_build(&in, &m, &err) != CLUSTER_OK) {
        log_limited(w, "cannot build the cluster model: %s", err.message);
        return;
    }
    hosts_update(w, m);
    cJSON *cj = cluster_model_to_json(m);
    cJSON_DeleteItemFromObjectCaseSensitive(cj, "updated_at");
    cJSON_DeleteItemFromObjectCaseSensitive(cj, "age_ms");
    char *ctext = json_print(cj);
    /* LastContact moves on every autopilot answer: it is served, but alone it is no event */
    cJSON *servers = cJSON_GetObjectItemCaseSensitive(cj, "servers");
    cJSON *sv;
    cJSON_ArrayForEach(sv, servers)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(sv, "last_contact");
    }
    char *ckey = json_print(cj);
    cJSON_Delete(cj);

    cJSON *hj = cluster_health_to_json(w->in[SLOT_HEALTH] ? w->in[SLOT_HEALTH] : "[]", &err);
    if (!hj) {
        hj = cluster_health_to_json("[]", &err);
    }
    cJSON_AddBoolToObject(hj, "reachable", w->reachable);
    cJSON_AddBoolToObject(hj, "known", w->in[SLOT_HEALTH] != NULL);
    char *htext = json_print(hj);
    cJSON_Delete(hj);

    struct watch_snap *old = w->snap; /* only a thread holding w->mu replaces it */
    int c_changed = !old || strcmp(old->cluster, ctext) != 0;
    int h_changed = !old || strcmp(old->health, htext) != 0;
    int c_publish =
        publish && (!w->published || !w->cluster_key || strcmp(w->cluster_key, ckey) != 0);
    int h_publish = publish && (!w->published || h_changed);
    if (!c_changed && !h_changed && !c_publish && !h_publish) {
        cluster_model_free(m);
        free(ctext);
        free(ckey);
        free(htext);
        return;
    }
    struct watch_snap *s = xcalloc(1, sizeof(*s));
    s->refs = 1; /* the watch's own reference */
    s->cluster = ctext;
    s->cluster_len = strlen(ctext);
    s->health = htext;
    s->health_len = strlen(htext);
    s->reachable = w->reachable;
    s->version = ++w->version;
    s->model = m;
    pthread_mutex_lock(&w->snap_mu);
    w->snap = s;
    pthread_mutex_unlock(&w->snap_mu);
    if (c_publish) {
        publish_doc(w, s, WATCH_DOC_CLUSTER, "cluster");
        free(w->cluster_key);
        w->cluster_key = ckey;
        ckey = NULL;
    }
    if (h_publish) {
        publish_doc(w, s, WATCH_DOC_HEALTH, "health");
    }
    w->published |= publish;
    free(ckey);
    snap_unref(w, old);
}

static void
rebuild_locked(struct watch *w)
{
    rebuild_publish(w, 1);
}

/* An agent answered (any status). Returns 1 when that changed reachability. w->mu held. */
static int
note_answer(struct watch *w)
{
    atomic_store(&w->last_ok_ms, time_now_ms());
    atomic_store(&w->ever_answered, 1);
    int changed = !w->reachable;
    w->reachable = 1;
    if (w->down) {
        w->down = 0;
        pthread_cond_broadcast(&w->cond);
    }
    if (w->logged_down) {
        log_info("watch: Consul answers again");
        w->logged_down = 0;
        w->log_last_mono = 0;
    }
    return changed;
}

/* No agent answered. Rebuilds when that changed anything (the first time too, so there is a
 * snapshot to serve). w->mu held. */
static void
note_unreachable(struct watch *w, const char *what, const char *why)
{
    int changed = w->reachable || !w->published;
    w->reachable = 0;
    w->down = 1;
    if (!w->logged_down || !w->log_last_mono ||
        time_mono_ms() - w->log_last_mono >= WATCH_LOG_EVERY_MS) {
        log_limited(w, "no Consul agent answers (%s: %s); retrying with back-off", what,
                    why && why[0] ? why : "unreachable");
        w->logged_down = 1;
    }
    if (changed) {
        rebuild_locked(w);
    }
}

/* ---- the leader (used by the poller and right after a raft change) ---- */

/* GETs /v1/status/leader. Returns 1 and sets *out (newly allocated, "" when there is no
 * leader) on success, 0 on an unusable answer, -1 when unreachable (why in err). */
static int
fetch_leader(struct watch *w, char **out, char *err, size_t errlen)
{
    struct consul_response r;
    struct consul_opts qo = quiet_opts_of(w);
    int rc = consul_request(w->consul, "GET", "/v1/status/leader", NULL, 0, &qo, &r);
    *out = NULL;
    if (rc != CONSUL_OK) {
        snprintf(err, errlen, "%s", r.error);
        consul_response_free(&r);
        return rc == CONSUL_UNREACHABLE ? -1 : 0;
    }
    int ok = 0;
    if (r.status == 200) {
        cJSON *j = json_parse_str(r.body);
        if (cJSON_IsString(j)) {
            *out = xstrdup(j->valuestring);
            ok = 1;
        }
        cJSON_Delete(j);
    }
    if (!ok) {
        snprintf(err, errlen, "/v1/status/leader answered %ld", r.status);
    }
    consul_response_free(&r);
    return ok;
}

/* ---- blocking-query watchers ---- */

static void *
blocking_main(void *arg)
{
    struct bw_arg *a = arg;
    struct watch *w = a->w;
    const struct bw_spec *sp = a->spec;
    uint64_t index = 0;
    int64_t backoff = 0, pace = 0;
    char last_addr[256] = "";
    while (wait_not_down(w)) {
        char path[256];
        struct consul_opts o;
        memset(&o, 0, sizeof(o));
        o.cancel = &w->stop;
        o.quiet = 1;
        if (index > 0) {
            snprintf(path, sizeof(path), "%s&index=%" PRIu64 "&wait=%ds", sp->path, index,
                     w->slice_s);
            o.wait_s = w->slice_s;
        } else {
            snprintf(path, sizeof(path), "%s", sp->path);
        }
        int64_t t0 = time_mono_ms();
        struct consul_response r;
        int rc = consul_request(w->consul, "GET", path, NULL, 0, &o, &r);
        int64_t took = time_mono_ms() - t0;
        if (stopping(w)) {
            consul_response_free(&r);
            break;
        }
        int64_t delay;
        if (rc != CONSUL_OK) {
            pthread_mutex_lock(&w->mu);
            if (rc == CONSUL_UNREACHABLE) {
                note_unreachable(w, sp->name, r.error);
            } else {
                log_limited(w, "%s: %s", sp->path, r.error);
            }
            pthread_mutex_unlock(&w->mu);
            index = 0;
            backoff = next_backoff(backoff);
            delay = backoff;
        } else if ((r.status == 200 || (sp->accept_429 && r.status == 429)) &&
                   json_shape_ok(r.body, sp->want_array)) {
            backoff = 0;
            int moved = strcmp(last_addr, r.address) != 0;
            snprintf(last_addr, sizeof(last_addr), "%s", r.address);
            char *leader = NULL;
            int leader_rc = 0;
            char lerr[256] = "";
            pthread_mutex_lock(&w->mu);
            int reach_changed = note_answer(w);
            int changed = input_set(w, sp->slot, r.body);
            pthread_mutex_unlock(&w->mu);
            if (changed && sp->slot == SLOT_RAFT) {
                /* the leader goes with the raft configuration: fetch it before rebuilding so
                 * no model pairs a new configuration with an old leader */
                leader_rc = fetch_leader(w, &leader, lerr, sizeof(lerr));
            }
            pthread_mutex_lock(&w->mu);
            if (leader_rc == 1) {
                input_set(w, SLOT_LEADER, leader);
            }
            if (changed && sp->pokes_poller) {
                w->poke_poller = 1;
                pthread_cond_broadcast(&w->cond);
            }
            if (changed || reach_changed || leader_rc == 1) {
                rebuild_locked(w);
            }
            pthread_mutex_unlock(&w->mu);
            free(leader);
            int reset = moved || r.index < index;
            if (reset) {
                index = 0; /* another agent, or the index went backwards: start over */
                delay = WATCH_MIN_GAP_MS;
            } else if (r.index == 0) {
                delay = WATCH_POLL_MS; /* no index: this agent cannot block; poll */
            } else if (!changed && took < WATCH_FAST_MS) {
                pace = pace ? pace * 2 : WATCH_PACE_MIN_MS;
                pace = pace > WATCH_PACE_MAX_MS ? WATCH_PACE_MAX_MS : pace;
                delay = pace;
            } else {
                pace = 0;
                delay = took < WATCH_MIN_GAP_MS ? WATCH_MIN_GAP_MS - took : 0;
            }
            if (!reset) {
                index = r.index;
            }
        } else {
            /* an agent answered, but not with the resource: no leader, ACL, bad JSON */
            pthread_mutex_lock(&w->mu);
            int reach_changed = note_answer(w);
            int changed = sp->clear_on_error && input_set(w, sp->slot, NULL);
            if (changed || reach_changed) {
                rebuild_locked(w);
            }
            log_limited(w, "%s on %s answered %ld: %.120s", sp->path, r.address, r.status,
                        r.body ? r.body : "");
            pthread_mutex_unlock(&w->mu);
            index = 0;
            backoff = next_backoff(backoff);
            delay = backoff;
        }
        consul_response_free(&r);
        nap(w, delay);
    }
    return NULL;
}

/* ---- poller: members, leader, datacenter ---- */

/* GETs /v1/agent/self until the datacenter is known. */
static void
fetch_datacenter(struct watch *w)
{
    struct consul_response r;
    struct consul_opts qo = quiet_opts_of(w);
    if (consul_request(w->consul, "GET", "/v1/agent/self", NULL, 0, &qo, &r) != CONSUL_OK) {
        return;
    }
    if (r.status == 200) {
        cJSON *j = json_parse_str(r.body);
        const char *dc =
            json_get_str(cJSON_GetObjectItemCaseSensitive(j, "Config"), "Datacenter", NULL);
        if (dc && dc[0]) {
            pthread_mutex_lock(&w->mu);
            free(w->datacenter);
            w->datacenter = xstrdup(dc);
            rebuild_locked(w);
            pthread_mutex_unlock(&w->mu);
        }
        cJSON_Delete(j);
    }
    consul_response_free(&r);
}

/* Waits until poked, stopped, or ms passed. */
static void
poller_wait(struct watch *w, int64_t ms)
{
    struct timespec ts;
    deadline_after(&ts, ms);
    pthread_mutex_lock(&w->mu);
    while (!stopping(w) && !w->poke_poller) {
        if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    w->poke_poller = 0;
    pthread_mutex_unlock(&w->mu);
}

static void *
poller_main(void *arg)
{
    struct watch *w = arg;
    int64_t backoff = 0;
    while (!stopping(w)) {
        int64_t t0 = time_mono_ms();
        pthread_mutex_lock(&w->mu);
        int need_dc = w->datacenter == NULL;
        pthread_mutex_unlock(&w->mu);
        struct consul_response r;
        struct consul_opts qo = quiet_opts_of(w);
        int rc = consul_request(w->consul, "GET", "/v1/agent/members", NULL, 0, &qo, &r);
        if (stopping(w)) {
            consul_response_free(&r);
            break;
        }
        if (rc != CONSUL_OK) {
            pthread_mutex_lock(&w->mu);
            if (rc == CONSUL_UNREACHABLE) {
                note_unreachable(w, "/v1/agent/members", r.error);
            } else {
                log_limited(w, "/v1/agent/members: %s", r.error);
            }
            pthread_mutex_unlock(&w->mu);
            consul_response_free(&r);
            backoff = next_backoff(backoff);
            poller_wait(w, backoff);
            continue;
        }
        backoff = 0;
        char *leader = NULL;
        char lerr[256] = "";
        int leader_rc = fetch_leader(w, &leader, lerr, sizeof(lerr));
        pthread_mutex_lock(&w->mu);
        int changed = note_answer(w);
        if (r.status == 200 && json_shape_ok(r.body, 1)) {
            changed |= input_set(w, SLOT_MEMBERS, r.body);
        } else {
            log_limited(w, "/v1/agent/members on %s answered %ld", r.address, r.status);
        }
        if (leader_rc == 1) {
            changed |= input_set(w, SLOT_LEADER, leader);
        } else if (lerr[0]) {
            log_limited(w, "%s", lerr);
        }
        if (changed) {
            rebuild_locked(w);
        }
        pthread_mutex_unlock(&w->mu);
        free(leader);
        consul_response_free(&r);
        if (need_dc) {
            fetch_datacenter(w);
        }
        /* at least 100 ms between rounds even when poked repeatedly */
        int64_t took = time_mono_ms() - t0;
        if (took < 100) {
            nap(w, 100 - took);
        }
        poller_wait(w, WATCH_POLL_MS);
    }
    return NULL;
}

/* ---- exporter scrape ---- */

static void *
scrape_main(void *arg)
{
    struct watch *w = arg;
    struct scraper *sc = scraper_new(WATCH_SCRAPE_CONNECT_MS, WATCH_SCRAPE_TIMEOUT_MS, &w->stop);
    int64_t interval =
        (int64_t)(w->cfg->exporter_interval_s > 0 ? w->cfg->exporter_interval_s : 15) * 1000;
    int64_t next = 0;
    char hosts[WATCH_MAX_HOSTS][WATCH_HOST_MAX];
    struct cluster_exporter res[WATCH_MAX_HOSTS];
    for (;;) {
        size_t n;
        pthread_mutex_lock(&w->mu);
        for (;;) {
            if (stopping(w)) {
                break;
            }
            int64_t now = time_mono_ms();
            if (w->n_hosts > 0 && (w->poke_scrape || now >= next)) {
                break;
            }
            struct timespec ts;
            deadline_after(&ts, w->n_hosts > 0 ? next - now : 60000);
            pthread_cond_timedwait(&w->cond, &w->mu, &ts);
        }
        w->poke_scrape = 0;
        n = w->n_hosts;
        memcpy(hosts, w->hosts, n * sizeof(hosts[0]));
        pthread_mutex_unlock(&w->mu);
        if (stopping(w)) {
            break;
        }
        int failures = 0;
        char err[256] = "", first_err[300] = "";
        for (size_t i = 0; i < n && !stopping(w); i++) {
            char *url = scrape_url(hosts[i], w->cfg->exporter_port);
            if (scraper_fetch(sc, url, hosts[i], &res[i], err, sizeof(err)) != 0 &&
                failures++ == 0) {
                snprintf(first_err, sizeof(first_err), "%s: %s", url, err);
            }
            free(url);
        }
        if (stopping(w)) {
            break;
        }
        pthread_mutex_lock(&w->mu);
        for (size_t i = 0; i < n; i++) {
            memcpy(w->exp_host[i], hosts[i], sizeof(hosts[i]));
            w->exp[i] = res[i];
            w->exp[i].address = w->exp_host[i];
        }
        w->n_exp = n;
        if (failures) {
            log_limited(w, "%d of %zu exporter scrapes failed (first: %s)", failures, n, first_err);
        }
        rebuild_locked(w);
        pthread_mutex_unlock(&w->mu);
        next = time_mono_ms() + interval;
    }
    scraper_free(sc);
    return NULL;
}

/* ---- start and stop ---- */

static void
expected_clear(struct watch *w)
{
    for (size_t i = 0; i < w->n_expected; i++) {
        free((char *)w->expected[i].name);
        free((char *)w->expected[i].address);
    }
    free(w->expected);
    w->expected = NULL;
    w->n_expected = 0;
}

void
watch_set_expected(struct watch *w, const struct cluster_expected *e, size_t n)
{
    if (!w) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    expected_clear(w);
    if (n) {
        w->expected = xcalloc(n, sizeof(*w->expected));
        for (size_t i = 0; i < n; i++) {
            w->expected[i].name = xstrdup(e[i].name);
            w->expected[i].address = xstrdup(e[i].address);
        }
        w->n_expected = n;
    }
    rebuild_publish(w, w->published);
    pthread_mutex_unlock(&w->mu);
}

void
watch_poke(struct watch *w)
{
    if (!w) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->poke_poller = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void
watch_free(struct watch *w)
{
    expected_clear(w);
    for (size_t i = 0; i < SLOT_COUNT; i++) {
        free(w->in[i]);
    }
    free(w->datacenter);
    free(w->cluster_key);
    snap_unref(w, w->snap);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->snap_mu);
    free(w);
}

static void
stop_threads(struct watch *w)
{
    atomic_store(&w->stop, 1);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < w->n_threads; i++) {
        pthread_join(w->threads[i], NULL);
    }
    w->n_threads = 0;
}

struct watch *
watch_start(const struct config *cfg, struct consul_client *consul, struct events *bus)
{
    struct watch *w = xcalloc(1, sizeof(*w));
    w->cfg = cfg;
    w->consul = consul;
    w->bus = bus;
    w->slice_s = cfg->consul_watch_wait_s;
    if (w->slice_s < 1) {
        w->slice_s = 1;
    }
    w->started_mono = time_mono_ms();
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->snap_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);

    /* the unreachable model, served once WATCH_NOT_READY_MS passed without an answer */
    pthread_mutex_lock(&w->mu);
    rebuild_publish(w, 0);
    pthread_mutex_unlock(&w->mu);

    int rc = pthread_create(&w->threads[w->n_threads], NULL, poller_main, w);
    if (rc == 0) {
        w->n_threads++;
    }
    for (size_t i = 0; rc == 0 && i < N_BW; i++) {
        w->bw_args[i].w = w;
        w->bw_args[i].spec = &bw_specs[i];
        rc = pthread_create(&w->threads[w->n_threads], NULL, blocking_main, &w->bw_args[i]);
        if (rc == 0) {
            w->n_threads++;
        }
    }
    if (rc == 0) {
        rc = pthread_create(&w->threads[w->n_threads], NULL, scrape_main, w);
        if (rc == 0) {
            w->n_threads++;
        }
    }
    if (rc != 0) {
        log_error("watch: cannot start a watcher thread: %s", strerror(rc));
        stop_threads(w);
        watch_free(w);
        return NULL;
    }
    log_info("watch: watching %zu Consul address(es), blocking waits of %d s, exporter port %d "
             "every %d s",
             consul_address_count(consul), w->slice_s, cfg->exporter_port,
             cfg->exporter_interval_s);
    return w;
}

void
watch_stop(struct watch *w)
{
    if (!w) {
        return;
    }
    stop_threads(w);
    watch_free(w);
}
