/* bench_audit: the audit log at scale. Builds (once, cached under $BUILD/bench/) a database of
 * 1,000,000 chained entries with a realistic spread of actors, actions and times, then
 * measures audited writes, filtered pages, the CSV export (speed and memory) and the chain
 * verification, and prints a table with the targets. A program, not a test: a missed target
 * prints MISSED; a wrong answer (rows lost by a write, a page or an export, a broken chain)
 * prints FAILED and the exit status is 1 (tests/bench/verdict.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "audit.h"
#include "audit_seal.h"
#include "store.h"
#include "util.h"
#include "verdict.h"

#define N_ROWS 1000000
#define N_WRITES 2000
#define WRITE_ROUNDS 10 /* alternately without and with the seal */
#define N_PAGES 200
#define PAGE_LIMIT 100
#define T0 1735689600000LL          /* 2025-01-01T00:00:00Z */
#define SPAN (180LL * 86400 * 1000) /* the entries spread over 180 days */
#define EXPORT_CHUNK (64 * 1024)

static const char *const actors[20] = {
    "admin", "alice",   "bob",  "carol",  "dave",  "erin",   "frank", "grace", "heidi",  "ivan",
    "judy",  "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "cli",
};
static const char *const roles[4] = {"admin", "operator", "approver", "viewer"};

struct prefix {
    const char *name; /* with the trailing dot, as a user filters */
    int weight;
    const char *actions[5];
};
/* 30 actions under 8 prefixes. */
static const struct prefix prefixes[8] = {
    {"auth.", 30, {"auth.login", "auth.logout", "auth.login_failed", "auth.login_throttled"}},
    {"user.", 3, {"user.create", "user.update", "user.delete", "user.passwd"}},
    {"kv.", 25, {"kv.put", "kv.delete", "kv.cas", "kv.import", "kv.export"}},
    {"node.", 8, {"node.maintenance_on", "node.maintenance_off", "node.restart", "node.drain"}},
    {"service.", 10, {"service.register", "service.deregister", "service.maintenance"}},
    {"job.", 15, {"job.create", "job.approve", "job.reject", "job.run", "job.cancel"}},
    {"acl.", 5, {"acl.token_create", "acl.token_delete", "acl.policy_update"}},
    {"audit.", 4, {"audit.export", "audit.verify"}},
};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* VmRSS or VmHWM of this process in KiB. */
static long
proc_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return v;
}

static const struct prefix *
pick_prefix(void)
{
    int total = 0;
    for (int i = 0; i < 8; i++) {
        total += prefixes[i].weight;
    }
    int r = (int)(rnd() % (uint64_t)total);
    for (int i = 0; i < 8; i++) {
        if (r < prefixes[i].weight) {
            return &prefixes[i];
        }
        r -= prefixes[i].weight;
    }
    return &prefixes[0];
}

static int
n_actions(const struct prefix *p)
{
    int n = 0;
    while (n < 5 && p->actions[n]) {
        n++;
    }
    return n;
}

/* Writes N_ROWS chained rows with direct SQL (real hashes, so verify holds) into path. */
static int
generate(const char *path)
{
    char err[256];
    struct store *s = store_open(path, err, sizeof(err));
    if (!s || store_migrate(s, NULL, NULL) != STORE_OK) {
        fprintf(stderr, "bench: %s\n", s ? store_errmsg(s) : err);
        return 1;
    }
    sqlite3 *db = store_sqlite(s);
    sqlite3_exec(db, "PRAGMA cache_size=-262144", NULL, NULL, NULL);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit_log (id, ts, actor, role, ip, action, target, "
                           "detail, outcome, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                           "?7, ?8, ?9, ?10, ?11)",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    char prev[65] = AUDIT_GENESIS;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int64_t id = 1; id <= N_ROWS; id++) {
        int a = (int)(rnd() % 20);
        const struct prefix *p = pick_prefix();
        const char *action = p->actions[rnd() % (uint64_t)n_actions(p)];
        int64_t ts = T0 + id * (SPAN / N_ROWS) + (int64_t)(rnd() % 4000) - 2000;
        char ip[32], target[64], detail[160];
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", a, (int)(rnd() % 4), 10 + (int)(rnd() % 3));
        uint64_t t = rnd() % 500;
        if (p == &prefixes[0]) {
            snprintf(target, sizeof(target), "%s", actors[a]);
        } else if (p == &prefixes[2]) {
            snprintf(target, sizeof(target), "kv/app-%llu/config/%llu",
                     (unsigned long long)(t % 40), (unsigned long long)t);
        } else {
            snprintf(target, sizeof(target), "%s-%llu", p->name, (unsigned long long)t);
        }
        uint64_t r = rnd() % 100;
        const char *outcome = r < 90 ? "ok" : r < 97 ? "denied" : "error";
        snprintf(detail, sizeof(detail),
                 "{\"method\":\"POST\",\"path\":\"/api/%s\",\"status\":%d,\"n\":%lld}", action,
                 outcome[0] == 'o'   ? 200
                 : outcome[0] == 'd' ? 403
                                     : 500,
                 (long long)id);
        const char *text[AUDIT_NCOLS] = {NULL,   NULL,   actors[a], roles[a % 4], ip,
                                         action, target, detail,    outcome,      prev};
        struct audit_value v[AUDIT_NCOLS] = {{0}};
        v[0].type = AUDIT_INT;
        v[0].i = id;
        v[1].type = AUDIT_INT;
        v[1].i = ts;
        for (int c = 2; c < AUDIT_NCOLS; c++) {
            v[c].type = AUDIT_TEXT;
            v[c].data = text[c];
            v[c].len = strlen(text[c]);
        }
        char hash[65];
        audit_hash_row(v, hash);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, ts);
        for (int c = 2; c < AUDIT_NCOLS; c++) {
            sqlite3_bind_text(st, c + 1, text[c], (int)v[c].len, SQLITE_STATIC);
        }
        sqlite3_bind_text(st, 11, hash, 64, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "bench: insert: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(st);
        memcpy(prev, hash, 65);
        if (id % 50000 == 0) {
            sqlite3_exec(db, "COMMIT; BEGIN", NULL, NULL, NULL);
        }
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    store_close(s);
    return 0;
}

/* Opens the cached database, building it in a child process when absent (so its memory does
 * not count against this process). */
static struct store *
open_cached(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        unlink(tmp);
        fprintf(stderr, "bench: building %d audit entries in %s (once)...\n", N_ROWS, path);
        double t = now_s();
        pid_t pid = fork();
        if (pid == 0) {
            _exit(generate(tmp));
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || rename(tmp, path) != 0) {
            fprintf(stderr, "bench: could not build %s\n", path);
            return NULL;
        }
        fprintf(stderr, "bench: built in %.1f s\n", now_s() - t);
    }
    char err[256];
    struct store *s = store_open(path, err, sizeof(err));
    if (!s || store_migrate(s, NULL, NULL) != STORE_OK) {
        fprintf(stderr, "bench: %s\n", s ? store_errmsg(s) : err);
        store_close(s);
        return NULL;
    }
    return s;
}

/* Appends N_WRITES / WRITE_ROUNDS entries, one per transaction; with sealed, under a throwaway
 * audit key and anchor in a directory beside the database (the server's default layout). Returns
 * the seconds taken, or -1. */
static double
bench_writes(struct store *s, const char *db_path, int sealed)
{
    struct audit_seal *seal = NULL;
    char dir[600], key[700], anchor[700];
    snprintf(dir, sizeof(dir), "%s.seal-XXXXXX", db_path);
    if (sealed) {
        char err[800];
        int64_t id = 0;
        char hash[65];
        if (!mkdtemp(dir) || store_audit_tail(s, &id, hash) != STORE_OK) {
            fprintf(stderr, "bench: cannot set up the seal\n");
            return -1;
        }
        snprintf(key, sizeof(key), "%s/audit.key", dir);
        snprintf(anchor, sizeof(anchor), "%s/audit-anchor", dir);
        seal = audit_seal_open(key, anchor, 1);
        if (audit_anchor_create(seal, 1, id + 1, id, hash, 0, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench: %s\n", err);
            return -1;
        }
        store_set_audit_seal(s, seal);
    }
    double t = now_s();
    for (int i = 0; i < N_WRITES / WRITE_ROUNDS; i++) {
        int a = (int)(rnd() % 20);
        const struct prefix *p = pick_prefix();
        struct audit_entry e = {actors[a],
                                roles[a % 4],
                                "127.0.0.1",
                                p->actions[rnd() % (uint64_t)n_actions(p)],
                                "kv/bench/key",
                                "{\"method\":\"PUT\",\"path\":\"/api/kv/bench/key\"}",
                                "ok"};
        if (store_begin(s) != STORE_OK || store_audit_append(s, &e, NULL) != STORE_OK ||
            store_commit(s) != STORE_OK) {
            fprintf(stderr, "bench: append failed: %s\n", store_errmsg(s));
            return -1;
        }
    }
    double el = now_s() - t;
    if (sealed) {
        store_set_audit_seal(s, NULL);
        audit_seal_free(seal);
        unlink(key);
        unlink(anchor);
        rmdir(dir);
    }
    return el;
}

/* The newest real entry, which the anchor's check looks up (see bench_seal_parts). */
struct tail {
    struct store *s;
    int64_t id;
    char hash[65];
};

/* The anchor's check after a commit, at the cost the store pays (a lookup by id); it looks
 * up the real newest entry whatever the anchor names, as the ids advanced to are made up. */
static int
bench_row_check(void *ctx, int64_t id, const char *hash)
{
    (void)id;
    (void)hash;
    struct tail *t = ctx;
    char *have = NULL;
    int rc = store_audit_row_hash(t->s, t->id, &have);
    int ok = rc == STORE_OK && strcmp(have, t->hash) == 0;
    free(have);
    return ok;
}

/* The seal's own costs, measured alone (the writes above are noisy on a shared machine):
 * *advance_us per anchor update after a commit (read both slots, check the anchored entry in
 * the database, MAC and write the other slot), *mac_us per row MAC. Returns 0 or -1. */
static int
bench_seal_parts(struct store *s, const char *db_path, double *advance_us, double *mac_us)
{
    enum { N = 20000 };
    char dir[600], key[700], anchor[700], err[800], mac[65];
    struct tail tail = {.s = s};
    snprintf(dir, sizeof(dir), "%s.seal-XXXXXX", db_path);
    if (!mkdtemp(dir) || store_audit_tail(s, &tail.id, tail.hash) != STORE_OK) {
        return -1;
    }
    snprintf(key, sizeof(key), "%s/audit.key", dir);
    snprintf(anchor, sizeof(anchor), "%s/audit-anchor", dir);
    struct audit_seal *seal = audit_seal_open(key, anchor, 1);
    int rc = -1;
    if (audit_anchor_create(seal, 1, tail.id, tail.id, tail.hash, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    double t = now_s();
    for (int i = 1; i <= N; i++) {
        if (audit_seal_advance(seal, tail.id + i, tail.hash, bench_row_check, &tail) != 0) {
            fprintf(stderr, "bench: anchor advance failed\n");
            goto out;
        }
    }
    *advance_us = (now_s() - t) / N * 1e6;
    t = now_s();
    for (int i = 0; i < N; i++) {
        audit_seal_row_mac(seal, tail.hash, mac);
    }
    *mac_us = (now_s() - t) / N * 1e6;
    rc = 0;
out:
    audit_seal_free(seal);
    unlink(key);
    unlink(anchor);
    rmdir(dir);
    return rc;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int
count_row(const struct audit_row *row, void *ctx)
{
    (void)row;
    (*(long *)ctx)++;
    return 0;
}

struct page_stats {
    double median_ms, p95_ms, max_ms;
    double avg_rows;
};

/* Runs N_PAGES random pages of the given shape and reports their latency. */
static void
bench_pages(struct store *s, int use_actor, int use_prefix, int use_time, const char *q,
            struct page_stats *ps)
{
    double ms[N_PAGES];
    long rows = 0;
    for (int i = 0; i < N_PAGES + 10; i++) {
        struct audit_filter f = {.limit = PAGE_LIMIT, .q = q};
        if (use_actor) {
            f.actor = actors[rnd() % 20];
        }
        if (use_prefix) {
            f.action_prefix = prefixes[rnd() % 8].name;
        }
        if (use_time) {
            int64_t len = (int64_t)(1 + rnd() % 60) * 86400000LL;
            f.since = T0 + (int64_t)(rnd() % (uint64_t)(SPAN - len));
            f.until = f.since + len;
        }
        long n = 0;
        double t = now_s();
        int rc = store_audit_query(s, &f, count_row, &n);
        double el = (now_s() - t) * 1000;
        verdict_check(rc == STORE_OK && n <= PAGE_LIMIT, "an audit page query failed or "
                                                         "returned more rows than its limit");
        if (i >= 10) { /* the first few warm the cache */
            ms[i - 10] = el;
            rows += n;
        }
    }
    qsort(ms, N_PAGES, sizeof(double), cmp_double);
    ps->median_ms = ms[N_PAGES / 2];
    ps->p95_ms = ms[N_PAGES * 95 / 100];
    ps->max_ms = ms[N_PAGES - 1];
    ps->avg_rows = (double)rows / N_PAGES;
}

struct export_sink {
    int fd;
    struct buf b;
    int jsonl;
    long rows;
    long peak_rss_kb;
};

static int
export_row(const struct audit_row *row, void *ctx)
{
    struct export_sink *k = ctx;
    if ((k->jsonl ? audit_jsonl_row(&k->b, row) : audit_csv_row(&k->b, row)) != BUF_OK) {
        return 1;
    }
    k->rows++;
    if (k->b.len >= EXPORT_CHUNK) {
        if (write(k->fd, k->b.data, k->b.len) < 0) {
            return 1;
        }
        buf_reset(&k->b);
    }
    if (k->rows % 100000 == 0) {
        long rss = proc_kb("VmRSS");
        if (rss > k->peak_rss_kb) {
            k->peak_rss_kb = rss;
        }
    }
    return 0;
}

/* Exports every row to /dev/null as the server does; returns rows/s, *growth_kb the RSS
 * growth (peak during the export over the RSS before it). */
static double
bench_export(struct store *s, int jsonl, long *growth_kb, long *rows_out)
{
    struct export_sink k = {.jsonl = jsonl};
    k.fd = open("/dev/null", O_WRONLY);
    buf_init(&k.b, 16 << 20);
    /* Reset the peak so VmHWM covers the export only (Linux: clear_refs 5). */
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
        ssize_t w = write(fd, "5", 1);
        (void)w;
        close(fd);
    }
    long before = proc_kb("VmRSS");
    k.peak_rss_kb = before;
    struct audit_filter all = {0};
    double t = now_s();
    if (!jsonl) {
        audit_csv_header(&k.b);
    }
    if (store_audit_query(s, &all, export_row, &k) != STORE_OK) {
        k.rows = -1; /* the export stopped: reported as a wrong row count */
    }
    if (k.b.len && write(k.fd, k.b.data, k.b.len) < 0) {
        k.rows = -1;
    }
    double el = now_s() - t;
    long hwm = proc_kb("VmHWM");
    if (hwm > k.peak_rss_kb) {
        k.peak_rss_kb = hwm;
    }
    *growth_kb = k.peak_rss_kb - before;
    *rows_out = k.rows;
    buf_free(&k.b);
    close(k.fd);
    return (double)k.rows / el;
}

static void
print_row(const char *metric, const char *value, const char *target, const char *verdict)
{
    printf("  %-44s %16s   %-12s %s\n", metric, value, target, verdict);
}

int
main(void)
{
    const char *build = getenv("BUILD");
    char dir[256], path[512];
    snprintf(dir, sizeof(dir), "%s/bench", build && *build ? build : "build");
    mkdir(build && *build ? build : "build", 0755);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/audit-1m.db", dir);
    log_set_quiet(1);
    struct store *s = open_cached(path);
    if (!s) {
        return 1;
    }
    int64_t total = 0;
    store_audit_count(s, &total);
    printf("audit log benchmark: %lld entries in %s\n", (long long)total, path);
    printf("  %-44s %16s   %-12s\n", "metric", "value", "target");
    char v[64];

    /* Audited writes: one append per transaction, as the server does, with the same spread
     * of actors and actions (the newest rows are what unfiltered pages show); without the
     * seal and with it (each row's MAC, the anchor file advanced after every commit), in
     * alternating rounds so that the machine's noise hits both alike. */
    double wrate[2][WRITE_ROUNDS / 2];
    for (int round = 0; round < WRITE_ROUNDS; round++) {
        double el = bench_writes(s, path, round % 2);
        if (el < 0) {
            return 1;
        }
        wrate[round % 2][round / 2] = (N_WRITES / WRITE_ROUNDS) / el;
    }
    qsort(wrate[0], WRITE_ROUNDS / 2, sizeof(double), cmp_double);
    qsort(wrate[1], WRITE_ROUNDS / 2, sizeof(double), cmp_double);
    double plain = wrate[0][WRITE_ROUNDS / 4], sealed = wrate[1][WRITE_ROUNDS / 4];
    int64_t rows_now = -1;
    int counted = store_audit_count(s, &rows_now) == STORE_OK;
    snprintf(v, sizeof(v), "%.0f /s", plain);
    print_row("audited writes (1 append per transaction)", v, "",
              verdict_check(counted && rows_now == total + N_WRITES,
                            "the audit log does not hold every appended entry"));
    snprintf(v, sizeof(v), "%.0f /s", sealed);
    print_row("  the same with MAC + anchor (the default)", v, "", "");
    double advance_us = 0, mac_us = 0;
    if (bench_seal_parts(s, path, &advance_us, &mac_us) != 0) {
        return 1;
    }
    snprintf(v, sizeof(v), "%.1f us", advance_us);
    print_row("  of which the anchor update per commit", v, "", "");
    snprintf(v, sizeof(v), "%.1f us", mac_us);
    print_row("  of which the MAC per entry", v, "", "");

    struct page_stats ps;
    bench_pages(s, 1, 1, 1, NULL, &ps);
    snprintf(v, sizeof(v), "%.2f ms", ps.median_ms);
    print_row("page: actor + action prefix + time, median", v, "<= 10 ms",
              verdict_target(ps.median_ms <= 10));
    snprintf(v, sizeof(v), "%.2f ms", ps.p95_ms);
    print_row("page: actor + action prefix + time, p95", v, "", "");
    snprintf(v, sizeof(v), "%.1f", ps.avg_rows);
    print_row("page: actor + action prefix + time, rows/page", v, "", "");
    static const struct {
        const char *name;
        int actor, prefix, time;
        const char *q;
    } shapes[] = {
        {"page: newest 100, no filter, median", 0, 0, 0, NULL},
        {"page: actor only, median", 1, 0, 0, NULL},
        {"page: action prefix only, median", 0, 1, 0, NULL},
        {"page: time range only, median", 0, 0, 1, NULL},
        {"page: actor + time range, median", 1, 0, 1, NULL},
        {"page: q substring (\"app-7/\"), median", 0, 0, 0, "app-7/"},
    };
    for (size_t i = 0; i < ARRAY_LEN(shapes); i++) {
        bench_pages(s, shapes[i].actor, shapes[i].prefix, shapes[i].time, shapes[i].q, &ps);
        snprintf(v, sizeof(v), "%.2f ms", ps.median_ms);
        print_row(shapes[i].name, v, "", "");
    }

    long growth = 0, rows = 0;
    double rate = bench_export(s, 0, &growth, &rows);
    snprintf(v, sizeof(v), "%.0f rows/s", rate);
    print_row("export CSV of every row to /dev/null", v, ">= 200000/s",
              verdict_target(rate >= 200000));
    snprintf(v, sizeof(v), "%ld", rows);
    print_row("  rows exported (CSV)", v, "all",
              verdict_check(rows == rows_now, "the CSV export did not write every row"));
    snprintf(v, sizeof(v), "%.1f MB", growth / 1024.0);
    print_row("RSS growth during the CSV export", v, "<= 8 MB", verdict_target(growth <= 8 * 1024));
    rate = bench_export(s, 1, &growth, &rows);
    snprintf(v, sizeof(v), "%.0f rows/s", rate);
    print_row("export JSON Lines of every row", v, "", "");
    snprintf(v, sizeof(v), "%ld", rows);
    print_row("  rows exported (JSON Lines)", v, "all",
              verdict_check(rows == rows_now, "the JSON Lines export did not write every row"));
    snprintf(v, sizeof(v), "%.1f MB", growth / 1024.0);
    print_row("RSS growth during the JSON Lines export", v, "", "");

    int64_t checked = 0, bad = 0;
    double t = now_s();
    int vrc = store_audit_verify(s, &checked, &bad);
    double el = now_s() - t;
    snprintf(v, sizeof(v), "%.0f rows/s", (double)checked / el);
    print_row("verify the whole chain", v, "", "");
    char what[128];
    snprintf(what, sizeof(what), "the audit chain is broken (first bad entry %lld)",
             (long long)bad);
    snprintf(v, sizeof(v), "%lld of %lld", (long long)checked, (long long)rows_now);
    print_row("  entries verified intact", v, "all",
              verdict_check(vrc == STORE_OK && bad == 0 && checked == rows_now,
                            bad ? what : "the chain verification did not check every entry"));
    store_close(s);
    return verdict_exit();
}
