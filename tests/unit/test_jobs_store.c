/* Unit tests for the SQL of the inventory and of jobs (server/store_jobs.c): nodes (unique
 * name and address, update with unpin, pin, busy while an unfinished job involves them),
 * jobs (insert, compare-and-set updates, the list filters with keyset paging, the queue),
 * steps, the log (numbering, reading after a line) and the undo records (bytes kept
 * exactly, NUL included). Each test uses its own database in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_jobs.h"
#include "util.h"

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
};

static int
fx_setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/consulate-test-jobs-store-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    char err[256];
    fx->s = store_open(fx->path, err, sizeof(err));
    if (!fx->s || store_migrate(fx->s, NULL, NULL) != STORE_OK) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *fx = *state;
    store_close(fx->s);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", fx->path, suffix[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static struct store_node
node_of(const char *name, const char *addr)
{
    return (struct store_node){
        .name = (char *)name,
        .address = (char *)addr,
        .ssh_port = 22,
        .ssh_user = "root",
        .ssh_key_path = "/etc/consulate/id",
        .compose_dir = "/mnt/opt/docker-compose/consul",
        .data_dir = "/mnt/var/lib/container/consul",
        .server_state = "server",
    };
}

static int
count_cb(const struct store_node *n, void *ctx)
{
    (void)n;
    (*(int *)ctx)++;
    return 0;
}

static void
test_nodes(void **state)
{
    struct fx *fx = *state;
    struct store *s = fx->s;
    struct store_node a = node_of("consul-1", "10.0.0.1"), b = node_of("consul-2", "10.0.0.2");
    assert_int_equal(store_node_insert(s, &a, 1000), STORE_OK);
    assert_int_equal(store_node_insert(s, &b, 1000), STORE_OK);
    struct store_node dup = node_of("consul-1", "10.0.0.9");
    assert_int_equal(store_node_insert(s, &dup, 1000), STORE_CONFLICT);
    dup = node_of("consul-9", "10.0.0.1");
    assert_int_equal(store_node_insert(s, &dup, 1000), STORE_CONFLICT);
    dup = node_of("consul-9", "HOST.example");
    assert_int_equal(store_node_insert(s, &dup, 1000), STORE_OK);
    dup = node_of("consul-10", "host.EXAMPLE"); /* a DNS name is the same in any case */
    assert_int_equal(store_node_insert(s, &dup, 1000), STORE_CONFLICT);
    int n = 0;
    assert_int_equal(store_node_each(s, count_cb, &n), STORE_OK);
    assert_int_equal(n, 3);

    assert_int_equal(store_node_pin(s, "consul-1", "ED25519", 256, "SHA256:abc", "admin", 2000),
                     STORE_OK);
    struct store_node got;
    assert_int_equal(store_node_get(s, "consul-1", &got), STORE_OK);
    assert_string_equal(got.host_key_type, "ED25519");
    assert_int_equal(got.host_key_bits, 256);
    assert_string_equal(got.host_key_fingerprint, "SHA256:abc");
    assert_string_equal(got.host_key_pinned_by, "admin");
    assert_int_equal(got.host_key_pinned_at, 2000);
    /* an update without unpin keeps the key; with unpin clears it */
    free(got.ssh_user);
    got.ssh_user = xstrdup("consul");
    assert_int_equal(store_node_update(s, &got, 0, 3000), STORE_OK);
    store_node_clear(&got);
    assert_int_equal(store_node_get(s, "consul-1", &got), STORE_OK);
    assert_string_equal(got.ssh_user, "consul");
    assert_non_null(got.host_key_fingerprint);
    assert_int_equal(store_node_update(s, &got, 1, 4000), STORE_OK);
    store_node_clear(&got);
    assert_int_equal(store_node_get(s, "consul-1", &got), STORE_OK);
    assert_null(got.host_key_type);
    assert_null(got.host_key_fingerprint);
    assert_int_equal(got.updated_at, 4000);
    /* the address of another node is refused */
    free(got.address);
    got.address = xstrdup("10.0.0.2");
    assert_int_equal(store_node_update(s, &got, 0, 5000), STORE_CONFLICT);
    store_node_clear(&got);

    assert_int_equal(store_node_set_server_state(s, "consul-2", "removed", 6000), STORE_OK);
    assert_int_equal(store_node_set_server_state(s, "nope", "removed", 6000), STORE_NOT_FOUND);
    assert_int_equal(store_node_get(s, "nope", &got), STORE_NOT_FOUND);
    assert_int_equal(store_node_delete(s, "consul-9"), STORE_OK);
    assert_int_equal(store_node_delete(s, "consul-9"), STORE_NOT_FOUND);

    /* busy while an unfinished job involves the node */
    int64_t busy = -1;
    assert_int_equal(store_node_busy(s, "consul-2", &busy), STORE_OK);
    assert_int_equal(busy, 0);
    struct store_job j = {.type = "node-add", .state = "awaiting_approval", .strategy = "rolling"};
    j.node = "consul-5";
    j.reason = "grow";
    j.requested_by = "op";
    j.requested_at = 7000;
    const char *nodes[] = {"consul-5", "consul-1", "consul-2"};
    int64_t id = 0;
    assert_int_equal(store_job_insert(s, &j, nodes, 3, &id), STORE_OK);
    assert_int_equal(store_node_busy(s, "consul-2", &busy), STORE_OK);
    assert_int_equal(busy, id);
    struct store_job_change done = {.state = "succeeded", .cancel_requested = -1};
    assert_int_equal(store_job_update(s, id, NULL, &done), STORE_OK);
    assert_int_equal(store_node_busy(s, "consul-2", &busy), STORE_OK);
    assert_int_equal(busy, 0);
}

struct ids {
    int64_t id[64];
    int n;
};

static int
ids_cb(const struct store_job *j, void *ctx)
{
    struct ids *ids = ctx;
    ids->id[ids->n++] = j->id;
    return 0;
}

static struct ids
list(struct store *s, const char *state, const char *type, const char *node, int64_t before,
     int limit)
{
    struct ids ids = {{0}, 0};
    struct store_job_filter f = {state, type, node, before, limit};
    assert_int_equal(store_job_list(s, &f, ids_cb, &ids), STORE_OK);
    return ids;
}

static int64_t
add_job(struct store *s, const char *type, const char *node, const char *state)
{
    struct store_job j = {0};
    snprintf(j.type, sizeof(j.type), "%s", type);
    snprintf(j.state, sizeof(j.state), "%s", state);
    j.node = (char *)node;
    j.reason = "r";
    j.requested_by = "op";
    j.requested_at = 1;
    int64_t id = 0;
    const char *nodes[] = {node};
    assert_int_equal(store_job_insert(s, &j, nodes, 1, &id), STORE_OK);
    return id;
}

static void
test_jobs(void **state)
{
    struct fx *fx = *state;
    struct store *s = fx->s;
    int64_t a = add_job(s, "node-add", "n1", "awaiting_approval");
    int64_t b = add_job(s, "diagnose", "n2", "queued");
    int64_t c = add_job(s, "node-remove", "n1", "queued");
    int64_t d = add_job(s, "node-add", "n3", "failed");
    int64_t e = add_job(s, "diagnose", "n1", "succeeded");

    struct store_job got;
    assert_int_equal(store_job_get(s, a, &got), STORE_OK);
    assert_string_equal(got.type, "node-add");
    assert_string_equal(got.strategy, "");
    assert_string_equal(got.plan, "{}");
    assert_string_equal(got.prechecks, "[]");
    assert_string_equal(got.result, "{}");
    assert_string_equal(got.options, "{}");
    assert_null(got.approved_by);
    store_job_clear(&got);
    assert_int_equal(store_job_get(s, 999, &got), STORE_NOT_FOUND);

    /* compare-and-set: only one approval wins */
    struct store_job_change ap = {.state = "queued",
                                  .approved_by = "ann",
                                  .approved_at = 50,
                                  .decision_comment = "ok",
                                  .cancel_requested = -1};
    assert_int_equal(store_job_update(s, a, "awaiting_approval", &ap), STORE_OK);
    ap.approved_by = "bob";
    assert_int_equal(store_job_update(s, a, "awaiting_approval", &ap), STORE_NOT_FOUND);
    assert_int_equal(store_job_get(s, a, &got), STORE_OK);
    assert_string_equal(got.state, "queued");
    assert_string_equal(got.approved_by, "ann");
    assert_int_equal(got.approved_at, 50);
    assert_string_equal(got.decision_comment, "ok");
    store_job_clear(&got);

    /* the list: newest first, each filter, and keyset paging */
    struct ids all = list(s, NULL, NULL, NULL, 0, 0);
    assert_int_equal(all.n, 5);
    assert_true(all.id[0] == e && all.id[4] == a);
    struct ids page = list(s, NULL, NULL, NULL, 0, 2);
    assert_int_equal(page.n, 2);
    assert_true(page.id[0] == e && page.id[1] == d);
    page = list(s, NULL, NULL, NULL, d, 2);
    assert_true(page.n == 2 && page.id[0] == c && page.id[1] == b);
    page = list(s, NULL, NULL, NULL, b, 2);
    assert_true(page.n == 1 && page.id[0] == a);
    struct ids q = list(s, "queued", NULL, NULL, 0, 10);
    assert_true(q.n == 3 && q.id[0] == c && q.id[1] == b && q.id[2] == a);
    q = list(s, "queued", "diagnose", NULL, 0, 10);
    assert_true(q.n == 1 && q.id[0] == b);
    q = list(s, NULL, "node-add", NULL, 0, 10);
    assert_true(q.n == 2 && q.id[0] == d && q.id[1] == a);
    q = list(s, NULL, NULL, "n1", 0, 10);
    assert_true(q.n == 3 && q.id[0] == e && q.id[1] == c && q.id[2] == a);
    q = list(s, "queued", "node-remove", "n1", 0, 10);
    assert_true(q.n == 1 && q.id[0] == c);
    q = list(s, NULL, NULL, "n1", e, 1);
    assert_true(q.n == 1 && q.id[0] == c);

    /* the queues: oldest first, cluster-changing and diagnose apart */
    int64_t next = 0;
    assert_int_equal(store_job_next_queued(s, 0, &next), STORE_OK);
    assert_int_equal(next, a);
    assert_int_equal(store_job_next_queued(s, 1, &next), STORE_OK);
    assert_int_equal(next, b);

    /* a rollback of d */
    struct store_job rb = {.type = "rollback", .state = "awaiting_approval"};
    rb.node = "n3";
    rb.reason = "undo";
    rb.requested_by = "op";
    rb.requested_at = 2;
    rb.target_job = d;
    int64_t rid = 0, found = 0;
    assert_int_equal(store_job_insert(s, &rb, NULL, 0, &rid), STORE_OK);
    assert_int_equal(store_job_rollback_of(s, d, &found), STORE_OK);
    assert_int_equal(found, rid);
    struct store_job_change rej = {.state = "rejected", .cancel_requested = -1};
    assert_int_equal(store_job_update(s, rid, NULL, &rej), STORE_OK);
    assert_int_equal(store_job_rollback_of(s, d, &found), STORE_OK);
    assert_int_equal(found, 0);
}

struct steps {
    int n;
    char seen[512];
};

static int
steps_cb(const struct store_job_step *st, void *ctx)
{
    struct steps *x = ctx;
    size_t len = strlen(x->seen);
    snprintf(x->seen + len, sizeof(x->seen) - len, "%d:%s:%s:%s:%s:%d;", st->seq, st->node,
             st->title, st->command ? st->command : "-", st->state,
             st->has_exit ? st->exit_status : -999);
    x->n++;
    return 0;
}

struct lines {
    int n;
    int64_t first, last;
    char text[512];
};

static int
lines_cb(const struct store_log_line *l, void *ctx)
{
    struct lines *x = ctx;
    if (!x->n) {
        x->first = l->line;
    }
    x->last = l->line;
    x->n++;
    size_t len = strlen(x->text);
    snprintf(x->text + len, sizeof(x->text) - len, "%s|%s|%s;", l->node, l->stream, l->text);
    return 0;
}

static void
test_steps_and_log(void **state)
{
    struct fx *fx = *state;
    struct store *s = fx->s;
    int64_t id = add_job(s, "node-add", "n1", "running");
    struct store_job_step st = {.job_id = id,
                                .seq = 1,
                                .node = "n1",
                                .title = "Back up",
                                .command = "cp -p a b",
                                .state = "pending"};
    assert_int_equal(store_job_step_add(s, &st), STORE_OK);
    st.seq = 2;
    st.node = "";
    st.title = "Gate";
    st.command = NULL;
    assert_int_equal(store_job_step_add(s, &st), STORE_OK);
    assert_int_equal(store_job_step_add(s, &st), STORE_CONFLICT);
    assert_int_equal(store_job_step_update(s, id, 1, "succeeded", 1, 0, 10, 20), STORE_OK);
    assert_int_equal(store_job_step_update(s, id, 2, "running", 0, 0, 30, 0), STORE_OK);
    assert_int_equal(store_job_step_update(s, id, 3, "running", 0, 0, 30, 0), STORE_NOT_FOUND);
    struct steps x = {0, ""};
    assert_int_equal(store_job_steps(s, id, steps_cb, &x), STORE_OK);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.seen, "1:n1:Back up:cp -p a b:succeeded:0;2::Gate:-:running:-999;");

    int64_t line = 0;
    assert_int_equal(store_job_log_append(s, id, 100, "n1", "stdout", "hello", &line), STORE_OK);
    assert_int_equal(line, 1);
    assert_int_equal(store_job_log_append(s, id, 101, NULL, "info", "gate", &line), STORE_OK);
    assert_int_equal(line, 2);
    /* inside a caller's transaction it joins it (and rolls back with it) */
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_job_log_append(s, id, 102, "n2", "stderr", "lost", &line), STORE_OK);
    assert_int_equal(line, 3);
    store_rollback(s);
    assert_int_equal(store_job_log_append(s, id, 103, "n2", "error", "kept", &line), STORE_OK);
    assert_int_equal(line, 3);
    assert_int_equal(store_job_log_append(s, 9999, 103, "n2", "error", "x", &line),
                     STORE_NOT_FOUND);
    struct lines l = {0};
    assert_int_equal(store_job_log_read(s, id, 0, 0, lines_cb, &l), STORE_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.text, "n1|stdout|hello;|info|gate;n2|error|kept;");
    memset(&l, 0, sizeof(l));
    assert_int_equal(store_job_log_read(s, id, 1, 1, lines_cb, &l), STORE_OK);
    assert_true(l.n == 1 && l.first == 2);
    struct store_job j;
    assert_int_equal(store_job_get(s, id, &j), STORE_OK);
    assert_int_equal(j.log_lines, 3);
    store_job_clear(&j);
}

struct undos {
    int n;
    int seqs[8];
    size_t lens[8];
    char bytes[8][16];
    char kinds[8][8];
};

static int
undo_cb(const struct store_undo *u, void *ctx)
{
    struct undos *x = ctx;
    x->seqs[x->n] = u->seq;
    x->lens[x->n] = u->content ? u->content_len : (size_t)-1;
    if (u->content) {
        memcpy(x->bytes[x->n], u->content, u->content_len < 16 ? u->content_len : 16);
    }
    snprintf(x->kinds[x->n], sizeof(x->kinds[0]), "%s", u->kind);
    x->n++;
    return 0;
}

static void
test_undo(void **state)
{
    struct fx *fx = *state;
    struct store *s = fx->s;
    int64_t id = add_job(s, "node-add", "n1", "running");
    int64_t other = add_job(s, "node-add", "n1", "running");
    struct store_undo u = {.job_id = id,
                           .kind = "file",
                           .node = "n1",
                           .path = "/x/docker-compose.yaml",
                           .flag = 1,
                           .content = "a\0b\r\n",
                           .content_len = 5};
    int seq = 0;
    assert_int_equal(store_job_undo_add(s, &u, &seq), STORE_OK);
    assert_int_equal(seq, 1);
    u.kind = "move";
    u.content = NULL;
    u.path2 = "/x.bak-1";
    assert_int_equal(store_job_undo_add(s, &u, &seq), STORE_OK);
    assert_int_equal(seq, 2);
    u.kind = "file";
    u.content = "";
    u.content_len = 0;
    assert_int_equal(store_job_undo_add(s, &u, &seq), STORE_OK);
    u.job_id = other;
    assert_int_equal(store_job_undo_add(s, &u, &seq), STORE_OK);
    assert_int_equal(seq, 1);
    u.kind = "bogus";
    assert_int_not_equal(store_job_undo_add(s, &u, &seq), STORE_OK);
    struct undos x = {0};
    assert_int_equal(store_job_undo_each(s, id, undo_cb, &x), STORE_OK);
    assert_int_equal(x.n, 3);
    assert_true(x.seqs[0] == 1 && x.seqs[1] == 2 && x.seqs[2] == 3);
    assert_int_equal(x.lens[0], 5);
    assert_memory_equal(x.bytes[0], "a\0b\r\n", 5);
    assert_int_equal(x.lens[1], (size_t)-1);
    assert_int_equal(x.lens[2], 0);
    assert_string_equal(x.kinds[1], "move");
}

int
main(void)
{
    log_set_quiet(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nodes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_jobs, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_steps_and_log, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_undo, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
