/* main: the command line. `consulate serve|user|audit|migrate|backup|restore|cert|version`,
 * each taking --config FILE and --db PATH (version and cert read neither). Exit codes: 0 ok,
 * 1 failure, 2 usage or configuration error. */
#include <errno.h>
#include <libgen.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "audit_verify.h"
#include "auth.h"
#include "cli_audit.h"
#include "cli_backup.h"
#include "cli_cert.h"
#include "cli_version.h"
#include "config.h"
#include "consul.h"
#include "db_lock.h"
#include "events.h"
#include "http.h"
#include "inventory.h"
#include "jobs.h"
#include "slots.h"
#include "store.h"
#include "util.h"
#include "watch.h"

static void
usage(FILE *f)
{
    fputs("usage: consulate COMMAND [--config FILE] [--db PATH]\n"
          "\n"
          "commands:\n"
          "  serve                               run the console\n"
          "  user add NAME --role ROLE [--password-stdin]\n"
          "  user passwd NAME [--password-stdin]\n"
          "  user list\n"
          "  audit verify                        check the audit log: chain, MACs, anchor\n"
          "                                      (exit 1 when it fails)\n"
          "  audit reseal                        start a new anchor (and key, when lost),\n"
          "                                      on the record\n"
          "  audit export --format csv|jsonl [--actor A] [--action PREFIX] [--target T]\n"
          "               [--outcome O] [--since T] [--until T] [--q TEXT] [--output FILE]\n"
          "  migrate                             apply database migrations\n"
          "  backup FILE                         consistent copy of the database, also while\n"
          "                                      the server runs (never overwrites FILE)\n"
          "  restore FILE                        replace the database with a backup (server\n"
          "                                      stopped; audit chain verified; resealed)\n"
          "  cert --self-signed [--host NAME]... [--out FILE]\n"
          "                                      a certificate and key for tls.certificate\n"
          "  version                             print the version, the commit and the\n"
          "                                      libraries' versions\n"
          "\n"
          "environment: CONSULATE_CONFIG, CONSULATE_DB, CONSULATE_LISTEN,\n"
          "             CONSULATE_CONSUL_ADDR (comma-separated), CONSULATE_CONSUL_TOKEN\n",
          f);
}

/* Removes --config FILE and --db PATH (anywhere on the line) from argv. Returns -1 on a
 * missing value. */
static int
take_global_opts(int *argc, char **argv, const char **config, const char **db)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            slot = config;
        } else if (strcmp(argv[i], "--db") == 0) {
            slot = db;
        }
        if (!slot) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc) {
            fprintf(stderr, "consulate: %s needs a value\n", argv[i]);
            return -1;
        }
        *slot = argv[++i];
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

/* Loads the configuration: the file at path (or CONSULATE_CONFIG; *used gets the one read,
 * or NULL), the environment, then --db. Returns 0 or the exit status 2 after printing why. */
static int
load_config(struct config *cfg, const char *path, const char *db, const char **used)
{
    struct config_error err;
    config_defaults(cfg);
    if (!path) {
        path = getenv("CONSULATE_CONFIG");
    }
    *used = path;
    if (path) {
        int rc = config_load_file(cfg, path, &err);
        if (rc != CONFIG_OK) {
            fprintf(stderr, "consulate: %s\n", err.message);
            return 2;
        }
    }
    if (config_apply_env(cfg, &err) != CONFIG_OK) {
        fprintf(stderr, "consulate: %s\n", err.message);
        return 2;
    }
    if (db) {
        free(cfg->database);
        cfg->database = xstrdup(db);
    }
    return 0;
}

/* The audit key and anchor files (newly allocated, the caller frees them): audit.key_file, or
 * audit.key in the directory of the configuration file (of the database without one), so the
 * key is not in the database's directory and its backups by default; audit.anchor_file, or
 * <database>.audit-anchor. */
static void
audit_files(const struct config *cfg, const char *config_path, char **key, char **anchor)
{
    if (cfg->audit_key_file) {
        *key = xstrdup(cfg->audit_key_file);
    } else {
        char *copy = xstrdup(config_path ? config_path : cfg->database);
        *key = xasprintf("%s/audit.key", dirname(copy));
        free(copy);
    }
    *anchor = cfg->audit_anchor_file ? xstrdup(cfg->audit_anchor_file)
                                     : xasprintf("%s.audit-anchor", cfg->database);
}

/* Starts the audit seal for a command that appends to the log (see audit_seal_start).
 * Returns the seal, or NULL after printing why. */
static struct audit_seal *
seal_start(struct store *s, const char *key, const char *anchor, const char *actor_name)
{
    struct audit_actor actor = {.name = actor_name, .role = "", .ip = "local"};
    struct audit_seal *seal = NULL;
    char err[1024];
    if (audit_seal_start(s, key, anchor, &actor, &seal, err, sizeof(err)) != 0) {
        fprintf(stderr, "consulate: %s\n", err);
        return NULL;
    }
    return seal;
}

/* Opens and migrates the database after taking its lock (include/db_lock.h) in mode, held in
 * *lock_fd. Returns NULL after printing why. */
static struct store *
open_db(const struct config *cfg, enum db_lock_mode mode, int *lock_fd)
{
    char err[512];
    pid_t holder = 0;
    int serving = 0;
    int lrc = db_lock_take(cfg->database, mode, lock_fd, &holder, &serving, err, sizeof(err));
    if (lrc == DB_LOCK_HELD) {
        fprintf(stderr, "consulate: %s (pid %ld) %s database %s; %s\n",
                serving ? "a consulate server" : "a restore", (long)holder,
                serving ? "is serving" : "is replacing", cfg->database,
                mode == DB_LOCK_SERVE ? "not starting" : "try again when it is done");
        return NULL;
    }
    if (lrc != DB_LOCK_OK) {
        fprintf(stderr, "consulate: %s\n", err);
        return NULL;
    }
    struct store *s = store_open(cfg->database, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "consulate: %s\n", err);
        return NULL;
    }
    /* an upgrade: the database as it was is kept before the first migration touches it */
    int cur = 0;
    if (store_schema_version(s, &cur) == STORE_OK && cur > 0 && cur < store_latest_version()) {
        char *copy =
            backup_before_migration(cfg->database, cur, store_latest_version(), err, sizeof(err));
        if (!copy) {
            fprintf(stderr,
                    "consulate: cannot keep a copy of %s before migrating it: %s; not "
                    "migrating\n",
                    cfg->database, err);
            store_close(s);
            return NULL;
        }
        printf("consulate: migrating %s from schema version %d to %d; the database as it was "
               "is kept as %s\n",
               cfg->database, cur, store_latest_version(), copy);
        fflush(stdout);
        free(copy);
    }
    int from, to;
    int rc = store_migrate(s, &from, &to);
    if (rc == STORE_TOO_NEW) {
        fprintf(stderr,
                "consulate: database %s has schema version %d, newer than this consulate "
                "(%d); refusing to use it — upgrade consulate\n",
                cfg->database, from, store_latest_version());
        store_close(s);
        return NULL;
    }
    if (rc != STORE_OK) {
        fprintf(stderr, "consulate: migrating %s failed: %s\n", cfg->database,
                store_errmsg(s));
        store_close(s);
        return NULL;
    }
    return s;
}

/* Reads a password without echo from the terminal, or one line from stdin. The result is
 * newly allocated (wipe and free it) or NULL. */
static char *
read_password(int from_stdin, const char *prompt)
{
    char line[AUTH_PASSWORD_MAX + 2];
    FILE *in = stdin;
    FILE *tty = NULL;
    struct termios old, quiet;
    int restore = 0;
    if (!from_stdin) {
        tty = fopen("/dev/tty", "r+");
        if (!tty) {
            fputs("consulate: no terminal to ask for a password; use --password-stdin\n",
                  stderr);
            return NULL;
        }
        in = tty;
        fputs(prompt, tty);
        fflush(tty);
        if (tcgetattr(fileno(tty), &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            restore = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
        }
    }
    char *got = fgets(line, sizeof(line), in);
    if (restore) {
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
        fputs("\n", tty);
    }
    if (tty) {
        fclose(tty);
    }
    if (!got) {
        fputs("consulate: no password given\n", stderr);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    char *pw = xstrdup(line);
    secret_wipe(line, sizeof(line));
    return pw;
}

/* Records a user change made from the command line (actor "cli") in the open transaction;
 * detail is consumed. Returns STORE_OK or STORE_ERROR (then the change must not commit). */
static int
audit_cli(struct store *s, const char *action, const char *target, cJSON *detail)
{
    struct audit_actor cli = {.name = "cli", .role = "", .ip = "local"};
    return audit_record(s, &cli, action, target, detail, "ok", NULL);
}

static int user_change(struct store *s, int add, const char *name, const char *role,
                       int from_stdin);

static int
cmd_user(struct store *s, const char *audit_key, const char *audit_anchor, int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "passwd") != 0)) {
        usage(stderr);
        return 2;
    }
    int add = strcmp(argv[1], "add") == 0;
    const char *name = argv[2], *role = NULL;
    int from_stdin = 0;
    for (int i = 3; i < argc; i++) {
        if (add && strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
            role = argv[++i];
        } else if (strcmp(argv[i], "--password-stdin") == 0) {
            from_stdin = 1;
        } else {
            fprintf(stderr, "consulate: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!auth_name_valid(name)) {
        fprintf(stderr, "consulate: invalid user name '%s'\n", name);
        return 2;
    }
    if (add && role_parse(role) == ROLE_NONE) {
        fputs("consulate: --role must be one of viewer, operator, approver, admin\n", stderr);
        return 2;
    }
    struct store_user u = {0};
    int exists = store_user_get(s, name, &u) == STORE_OK;
    store_user_clear(&u);
    if (add && exists) {
        fprintf(stderr, "consulate: user '%s' already exists\n", name);
        return 1;
    }
    if (!add && !exists) {
        fprintf(stderr, "consulate: no user named '%s'\n", name);
        return 1;
    }
    struct audit_seal *seal = seal_start(s, audit_key, audit_anchor, "cli");
    if (!seal) {
        return 1;
    }
    int rc = user_change(s, add, name, role, from_stdin);
    audit_seal_stop(s, seal);
    return rc;
}

/* Sets the password of a new (add) or existing user, read from the terminal or stdin, and
 * records the change; both commit together or not at all. Returns the exit status. */
static int
user_change(struct store *s, int add, const char *name, const char *role, int from_stdin)
{
    struct store_user u = {0};
    char *pw = read_password(from_stdin, "Password: ");
    if (!pw) {
        return 1;
    }
    const char *problem = auth_password_problem(pw);
    char hash[AUTH_HASH_MAX];
    int rc = 1;
    if (problem) {
        fprintf(stderr, "consulate: %s\n", problem);
        goto out;
    }
    if (auth_password_hash(pw, hash) != 0 || store_begin(s) != STORE_OK) {
        fputs("consulate: cannot store the password\n", stderr);
        goto out;
    }
    int src;
    if (add) {
        src = store_user_insert(s, name, role, hash, time_now_ms(), NULL);
    } else {
        src = store_user_update(s, name, NULL, hash, -1, time_now_ms());
        if (src == STORE_OK && store_user_get(s, name, &u) == STORE_OK) {
            src = store_session_delete_user(s, u.id);
            store_user_clear(&u);
        }
    }
    /* The change and its audit entry commit together or not at all. */
    const char *failed = NULL;
    if (src == STORE_CONFLICT) {
        failed = "a user of that name in another case already exists (names are compared "
                 "without case)";
    } else if (src != STORE_OK) {
        failed = "database error";
    } else {
        cJSON *d = cJSON_CreateObject();
        if (add) {
            cJSON_AddStringToObject(d, "role", role);
        } else {
            cJSON_AddBoolToObject(d, "password_changed", 1);
        }
        if (audit_cli(s, add ? "user.create" : "user.update", name, d) != STORE_OK) {
            failed = "cannot record the change in the audit log";
        } else if (store_commit(s) != STORE_OK) {
            failed = "database error";
        }
    }
    if (failed) {
        char why[512];
        snprintf(why, sizeof(why), "%s", store_errmsg(s));
        store_rollback(s);
        fprintf(stderr, "consulate: %s (%s); nothing was changed\n", failed, why);
        goto out;
    }
    printf("consulate: %s user %s\n", add ? "created" : "changed the password of", name);
    rc = 0;
out:
    secret_wipe(hash, sizeof(hash));
    secret_free_str(pw);
    return rc;
}

static int
print_user(const struct store_user *u, void *ctx)
{
    (void)ctx;
    char ts[40] = "never";
    if (u->last_login_at) {
        time_format_rfc3339(u->last_login_at, ts, sizeof(ts));
    }
    printf("%-24s %-9s %-9s last login %s\n", u->name, u->role,
           u->disabled ? "disabled" : "enabled", ts);
    return 0;
}

/* Creates "admin" with a random password when the database has no user, printing the
 * password once. Audited as user.bootstrap. */
static int
bootstrap_admin(struct store *s)
{
    int64_t n = 0;
    if (store_user_count(s, &n) != STORE_OK) {
        return -1;
    }
    if (n > 0) {
        return 0;
    }
    char pw[21], hash[AUTH_HASH_MAX];
    auth_password_generate(pw);
    int rc = -1;
    if (auth_password_hash(pw, hash) != 0 || store_begin(s) != STORE_OK) {
        goto out;
    }
    struct audit_actor sys = {.name = "system", .role = "", .ip = "local"};
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", "admin");
    if (store_user_insert(s, "admin", "admin", hash, time_now_ms(), NULL) != STORE_OK) {
        cJSON_Delete(d);
        store_rollback(s);
        goto out;
    }
    if (audit_record(s, &sys, "user.bootstrap", "admin", d, "ok", NULL) != STORE_OK ||
        store_commit(s) != STORE_OK) {
        store_rollback(s);
        goto out;
    }
    printf("consulate: created user admin with password: %s\n", pw);
    printf("consulate: (shown only this once; change it under Users)\n");
    fflush(stdout);
    rc = 0;
out:
    secret_wipe(pw, sizeof(pw));
    secret_wipe(hash, sizeof(hash));
    return rc;
}

static int serve_sealed(struct config *cfg, struct store *s, sigset_t *set);

static int
cmd_serve(struct config *cfg, struct store *s, const char *audit_key, const char *audit_anchor)
{
    /* SIGINT and SIGTERM are taken by sigtimedwait below; blocked from the start (before any
     * thread exists, so every thread inherits the mask) a stop during start-up is not lost. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Every connection the server opens (one per worker thread) seals what it appends. */
    struct audit_seal *seal = seal_start(s, audit_key, audit_anchor, "system");
    if (!seal) {
        return 1;
    }
    int rc = serve_sealed(cfg, s, &set);
    audit_seal_stop(s, seal);
    return rc;
}

/* cmd_serve once the audit seal is on; set holds the signals that stop it. */
static int
serve_sealed(struct config *cfg, struct store *s, sigset_t *set)
{
    if (cfg->bootstrap_admin && bootstrap_admin(s) != 0) {
        fprintf(stderr, "consulate: cannot create the first admin: %s\n", store_errmsg(s));
        return 1;
    }
    /* Two malloc arenas instead of one per busy thread: the server's threads mostly wait,
     * and every arena keeps its own touched pages (idle RSS). */
    mallopt(M_ARENA_MAX, 2);

    struct app app = {.cfg = cfg, .started_at_ms = time_now_ms()};
    app.consul = consul_client_new(cfg);
    app.events = events_new(0);
    /* blocking proxied reads: per user, and a quarter of the worker threads in all */
    app.blocking_reads = slots_new(cfg->blocking_reads_per_user, cfg->threads / 4);
    /* every stream holds a worker thread: at most half of them, whatever limits.sse_streams */
    int sse_total = cfg->sse_streams < cfg->threads / 2 ? cfg->sse_streams : cfg->threads / 2;
    if (sse_total < cfg->sse_streams) {
        log_info("limits.sse_streams is %d but threads is %d: at most %d live-update streams",
                 cfg->sse_streams, cfg->threads, sse_total);
    }
    app.sse_slots = slots_new(cfg->sse_streams_per_user, sse_total);
    if (cfg->watch_enabled) {
        app.watch = watch_start(cfg, app.consul, app.events);
        if (!app.watch) {
            fprintf(stderr, "consulate: cannot start the Consul watchers\n");
            slots_free(app.blocking_reads);
            events_free(app.events);
            slots_free(app.sse_slots);
            consul_client_free(app.consul);
            return 1;
        }
        inventory_publish_expected(s, app.watch);
    }
    /* the job engine: jobs cut off by a crash become interrupted before anything runs */
    app.jobs = jobs_start(&app);
    if (!app.jobs) {
        fprintf(stderr, "consulate: cannot start the job engine\n");
        slots_free(app.blocking_reads);
        watch_stop(app.watch);
        events_free(app.events);
        consul_client_free(app.consul);
        return 1;
    }
    char err[512];
    int port = 0;
    struct mg_context *ctx = http_start(&app, &port, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "consulate: %s\n", err);
        jobs_stop(app.jobs);
        slots_free(app.blocking_reads);
        watch_stop(app.watch);
        events_free(app.events);
        slots_free(app.sse_slots);
        consul_client_free(app.consul);
        return 1;
    }
    char host[256];
    int cfg_port;
    config_split_listen(cfg->listen, host, sizeof(host), &cfg_port);
    printf("consulate: listening on %s://%s:%d\n", cfg->tls_certificate ? "https" : "http", host,
           port);
    fflush(stdout);
    log_info("consulate %s serving on %s:%d, database %s", CONSULATE_VERSION, host, port,
             cfg->database);

    for (;;) {
        struct timespec tick = {60, 0};
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            break;
        }
        auth_purge(s, cfg);
    }
    log_info("shutting down");
    events_close(app.events); /* ends the SSE streams, so http_stop need not wait for them */
    http_stop(ctx);
    jobs_stop(app.jobs); /* a running job is interrupted: its remote command is ended */
    watch_stop(app.watch);
    events_free(app.events);
    slots_free(app.sse_slots);
    consul_client_free(app.consul);
    slots_free(app.blocking_reads);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *config_path = NULL, *db = NULL;
    if (take_global_opts(&argc, argv, &config_path, &db) != 0) {
        return 2;
    }
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        return cli_version_main(stdout);
    }
    if (strcmp(cmd, "cert") == 0) {
        return cli_cert_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "serve") && strcmp(cmd, "user") && strcmp(cmd, "audit") &&
        strcmp(cmd, "migrate") && strcmp(cmd, "backup") && strcmp(cmd, "restore")) {
        fprintf(stderr, "consulate: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "serve") == 0 && argc > 2) {
        fprintf(stderr, "consulate: unexpected argument '%s'\n", argv[2]);
        return 2;
    }
    struct config cfg;
    const char *config_used = NULL;
    int rc = load_config(&cfg, config_path, db, &config_used);
    if (rc) {
        config_free(&cfg);
        return rc;
    }
    char *audit_key = NULL, *audit_anchor = NULL;
    audit_files(&cfg, config_used, &audit_key, &audit_anchor);
    if (strcmp(cmd, "backup") == 0 || strcmp(cmd, "restore") == 0) {
        rc = cmd[0] == 'b'
                 ? cli_backup_main(cfg.database, argc - 1, argv + 1)
                 : cli_restore_main(cfg.database, audit_key, audit_anchor, argc - 1, argv + 1);
        free(audit_key);
        free(audit_anchor);
        config_free(&cfg);
        return rc;
    }
    int lock_fd = -1;
    struct store *s =
        open_db(&cfg, strcmp(cmd, "serve") == 0 ? DB_LOCK_SERVE : DB_LOCK_USE, &lock_fd);
    if (!s) {
        db_lock_release(lock_fd);
        free(audit_key);
        free(audit_anchor);
        config_free(&cfg);
        return 1;
    }
    if (strcmp(cmd, "migrate") == 0) {
        int v = 0;
        store_schema_version(s, &v);
        printf("consulate: database %s is at schema version %d\n", cfg.database, v);
        rc = 0;
    } else if (strcmp(cmd, "serve") == 0) {
        rc = cmd_serve(&cfg, s, audit_key, audit_anchor);
    } else if (strcmp(cmd, "user") == 0) {
        if (argc >= 3 && strcmp(argv[2], "list") == 0) {
            rc = store_user_each(s, print_user, NULL) == STORE_ERROR;
        } else {
            rc = cmd_user(s, audit_key, audit_anchor, argc - 1, argv + 1);
        }
    } else {
        rc = cli_audit_main(s, audit_key, audit_anchor, argc - 1, argv + 1);
    }
    store_close(s);
    db_lock_release(lock_fd);
    free(audit_key);
    free(audit_anchor);
    config_free(&cfg);
    return rc;
}
