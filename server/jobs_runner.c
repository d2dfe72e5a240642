/* jobs_runner: see include/jobs_runner.h. */
#include "jobs_runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "config.h"
#include "ssh.h"
#include "store_jobs.h"
#include "util.h"
#include "watch.h"

#define RUNNER_NODES 64
#define LEADER_SAMPLE_MS 100

/* A cached connection, valid for one node as it was in the inventory when it was opened. */
struct rconn {
    char key[1400]; /* name, address, port, user, key path and pin */
    struct ssh_conn *c;
    pthread_mutex_t use; /* one command at a time on a connection */
};

struct jobs_runner {
    const struct config *cfg;
    struct watch *w;
    pthread_mutex_t mu;
    struct rconn conns[RUNNER_NODES];
    size_t n;
    /* the leader sampler */
    pthread_t sampler;
    int sampling;
    atomic_int sample_stop;
    double leaderless_ms;
    int samples;
};

static void
conn_key(const struct store_node *n, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s\n%s\n%d\n%s\n%s\n%s", n->name, n->address, n->ssh_port, n->ssh_user,
             n->ssh_key_path, n->host_key_fingerprint ? n->host_key_fingerprint : "");
}

/* The connection slot of n (created empty when new), locked for use. NULL when full. */
static struct rconn *
slot_take(struct jobs_runner *r, const struct store_node *n)
{
    char key[sizeof(r->conns[0].key)];
    conn_key(n, key, sizeof(key));
    pthread_mutex_lock(&r->mu);
    struct rconn *s = NULL;
    for (size_t i = 0; i < r->n && !s; i++) {
        if (strcmp(r->conns[i].key, key) == 0) {
            s = &r->conns[i];
        }
    }
    if (!s && r->n < RUNNER_NODES) {
        s = &r->conns[r->n++];
        snprintf(s->key, sizeof(s->key), "%s", key);
        s->c = NULL;
        pthread_mutex_init(&s->use, NULL);
    }
    pthread_mutex_unlock(&r->mu);
    if (s) {
        pthread_mutex_lock(&s->use);
    }
    return s;
}

/* Connects the slot when it has no connection. Returns an ssh_rc. */
static int
slot_connect(struct jobs_runner *r, struct rconn *s, const struct store_node *n,
             const atomic_int *cancel, struct ssh_error *err)
{
    if (s->c) {
        return SSH_OK;
    }
    const char *pass = NULL;
    if (r->cfg->jobs_ssh_passphrase_env) {
        pass = getenv(r->cfg->jobs_ssh_passphrase_env);
    }
    struct ssh_target t = {
        .host = n->address,
        .port = (uint16_t)n->ssh_port,
        .user = n->ssh_user,
        .key_path = n->ssh_key_path,
        .passphrase = pass && *pass ? pass : NULL,
        .host_key_type = n->host_key_fingerprint ? n->host_key_type : NULL,
        .host_key_fingerprint = n->host_key_fingerprint,
        .connect_timeout_ms = r->cfg->jobs_ssh_connect_timeout_ms,
        .cancel = cancel,
    };
    return ssh_connect(&t, &s->c, err);
}

/* After an error that may have broken the session, the connection is dropped (the next call
 * connects again). */
static void
slot_release(struct rconn *s, int rc)
{
    if (rc == SSH_ERR_CHANNEL || rc == SSH_ERR_COMMAND_TIMEOUT || rc == SSH_ERR_CANCELLED ||
        rc == SSH_ERR_SFTP) {
        ssh_close(s->c);
        s->c = NULL;
    }
    pthread_mutex_unlock(&s->use);
}

static int
full(const struct store_node *n, struct ssh_error *err)
{
    memset(err, 0, sizeof(*err));
    err->code = SSH_ERR_INVALID;
    snprintf(err->message, sizeof(err->message), "too many nodes in one job (%s)", n->name);
    return SSH_ERR_INVALID;
}

struct line_adapter {
    proc_line_fn fn;
    void *arg;
};

static void
line_adapt(void *arg, enum ssh_stream stream, const char *line, size_t len, unsigned flags)
{
    struct line_adapter *a = arg;
    if (!(flags & SSH_LINE_CUT)) {
        a->fn(a->arg, stream, line, len);
        return;
    }
    char *t = xasprintf("%.*s … (line cut)", (int)len, line);
    a->fn(a->arg, stream, t, strlen(t));
    free(t);
}

static int
r_exec(void *ctx, const struct store_node *n, const struct sh_cmd *cmd, int timeout_ms,
       const atomic_int *cancel, proc_line_fn line, void *arg, struct buf *out, int *exit_status,
       struct ssh_error *err)
{
    struct jobs_runner *r = ctx;
    *exit_status = -1;
    struct rconn *s = slot_take(r, n);
    if (!s) {
        return full(n, err);
    }
    int rc = slot_connect(r, s, n, cancel, err);
    if (rc == SSH_OK) {
        struct line_adapter la = {line, arg};
        struct ssh_exec_opts o = {.timeout_ms = timeout_ms,
                                  .on_line = line ? line_adapt : NULL,
                                  .arg = &la,
                                  .cancel = cancel,
                                  .out = out};
        struct ssh_exec_result res;
        memset(&res, 0, sizeof(res));
        rc = ssh_exec(s->c, cmd, &o, &res, err);
        *exit_status = res.exit_status;
    }
    slot_release(s, rc);
    return rc;
}

static int
r_read(void *ctx, const struct store_node *n, const char *path, char **data, size_t *len,
       struct ssh_error *err)
{
    struct jobs_runner *r = ctx;
    struct rconn *s = slot_take(r, n);
    if (!s) {
        return full(n, err);
    }
    int rc = slot_connect(r, s, n, NULL, err);
    if (rc == SSH_OK) {
        rc = ssh_read_file(s->c, path, 0, data, len, err);
    }
    slot_release(s, rc);
    return rc;
}

static int
r_write(void *ctx, const struct store_node *n, const char *path, const char *data, size_t len,
        struct ssh_error *err)
{
    struct jobs_runner *r = ctx;
    struct rconn *s = slot_take(r, n);
    if (!s) {
        return full(n, err);
    }
    int rc = slot_connect(r, s, n, NULL, err);
    if (rc == SSH_OK) {
        struct ssh_write_opts o = {.mode = 0644};
        rc = ssh_write_file(s->c, path, data, len, &o, err);
    }
    slot_release(s, rc);
    return rc;
}

static int
r_host_key(void *ctx, const struct store_node *n, struct ssh_host_key *out, struct ssh_error *err)
{
    struct jobs_runner *r = ctx;
    return ssh_probe(n->address, (uint16_t)n->ssh_port, NULL, r->cfg->jobs_ssh_connect_timeout_ms,
                     out, err);
}

static const struct cluster_model *
r_model_get(void *ctx, void **ref, int64_t *answered)
{
    struct jobs_runner *r = ctx;
    *ref = NULL;
    *answered = 0;
    if (!r->w) {
        return NULL;
    }
    struct watch_snap *s = watch_snapshot(r->w);
    if (!s) {
        return NULL;
    }
    int64_t wall = watch_updated_at_ms(r->w);
    if (wall > 0) {
        /* the last answer on the monotonic clock of now_ms */
        *answered = time_mono_ms() - (time_now_ms() - wall);
    }
    *ref = s;
    if (!s->model) {
        watch_snap_put(r->w, s);
        *ref = NULL;
        return NULL;
    }
    return s->model;
}

static void
r_model_put(void *ctx, void *ref)
{
    struct jobs_runner *r = ctx;
    if (ref) {
        watch_snap_put(r->w, ref);
    }
}

static void
r_refresh(void *ctx)
{
    struct jobs_runner *r = ctx;
    watch_poke(r->w);
}

static int64_t
r_now(void *ctx)
{
    (void)ctx;
    return time_mono_ms();
}

static int
r_sleep(void *ctx, int ms, const atomic_int *cancel)
{
    (void)ctx;
    int64_t end = time_mono_ms() + ms;
    for (;;) {
        if (cancel && atomic_load(cancel)) {
            return 1;
        }
        int64_t left = end - time_mono_ms();
        if (left <= 0) {
            return 0;
        }
        struct timespec ts = {0, (left < 50 ? left : 50) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* 1 when the model has a leader (a reachable cluster with a raft leader). */
static int
has_leader(struct jobs_runner *r)
{
    void *ref = NULL;
    int64_t answered = 0;
    const struct cluster_model *m = r_model_get(r, &ref, &answered);
    int yes = m && m->reachable && m->leader_index >= 0;
    r_model_put(r, ref);
    return yes;
}

static void *
sampler_main(void *arg)
{
    struct jobs_runner *r = arg;
    int64_t last = time_mono_ms();
    while (!atomic_load(&r->sample_stop)) {
        watch_poke(r->w);
        r_sleep(r, LEADER_SAMPLE_MS, &r->sample_stop);
        int64_t now = time_mono_ms();
        int leader = has_leader(r);
        pthread_mutex_lock(&r->mu);
        r->samples++;
        if (!leader) {
            r->leaderless_ms += (double)(now - last);
        }
        pthread_mutex_unlock(&r->mu);
        last = now;
    }
    return NULL;
}

static void
r_watch_start(void *ctx)
{
    struct jobs_runner *r = ctx;
    if (r->sampling || !r->w) {
        return;
    }
    atomic_store(&r->sample_stop, 0);
    r->leaderless_ms = 0;
    r->samples = 0;
    r->sampling = pthread_create(&r->sampler, NULL, sampler_main, r) == 0;
}

static void
r_watch_stop(void *ctx, double *leaderless_s, int *samples)
{
    struct jobs_runner *r = ctx;
    if (r->sampling) {
        atomic_store(&r->sample_stop, 1);
        pthread_join(r->sampler, NULL);
        r->sampling = 0;
    }
    *leaderless_s = r->leaderless_ms / 1000;
    *samples = r->samples;
}

struct jobs_runner *
jobs_runner_new(const struct config *cfg, struct watch *w, struct proc_runner *out)
{
    struct jobs_runner *r = xcalloc(1, sizeof(*r));
    r->cfg = cfg;
    r->w = w;
    pthread_mutex_init(&r->mu, NULL);
    *out = (struct proc_runner){
        .ctx = r,
        .exec = r_exec,
        .read_file = r_read,
        .write_file = r_write,
        .host_key = r_host_key,
        .model_get = r_model_get,
        .model_put = r_model_put,
        .model_refresh = r_refresh,
        .leader_watch_start = r_watch_start,
        .leader_watch_stop = r_watch_stop,
        .now_ms = r_now,
        .sleep_ms = r_sleep,
    };
    return r;
}

void
jobs_runner_free(struct jobs_runner *r)
{
    if (!r) {
        return;
    }
    if (r->sampling) {
        double s;
        int n;
        r_watch_stop(r, &s, &n);
    }
    for (size_t i = 0; i < r->n; i++) {
        ssh_close(r->conns[i].c);
        pthread_mutex_destroy(&r->conns[i].use);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}
