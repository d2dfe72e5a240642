/* cli_audit: see include/cli_audit.h. */
#include "cli_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "store.h"
#include "util.h"

#define CLI_CHUNK (64 * 1024)
#define CLI_BUF_MAX (16 * 1024 * 1024)

static const char usage_text[] =
    "usage: consulate audit verify\n"
    "       consulate audit export --format csv|jsonl [--actor A] [--action PREFIX]\n"
    "                              [--outcome O] [--since T] [--until T] [--q TEXT]\n"
    "                              [--output FILE]\n"
    "T is an RFC 3339 time (2026-01-31T12:00:00Z) or epoch milliseconds.\n";

/* Prints the problem and the usage on stderr; returns the usage exit status 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("consulate audit: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    fputs(usage_text, stderr);
    return 2;
}

static int
cmd_verify(struct store *s)
{
    int64_t checked = 0, first_bad = 0;
    if (store_audit_verify(s, &checked, &first_bad) != STORE_OK) {
        fprintf(stderr, "consulate audit: cannot read the audit log: %s\n", store_errmsg(s));
        return 1;
    }
    if (first_bad != 0) {
        printf("first bad entry: %lld\n", (long long)first_bad);
        fprintf(stderr, "consulate audit: the audit chain is broken (%lld entries checked)\n",
                (long long)checked);
        return 1;
    }
    printf("audit chain intact: %lld entries checked\n", (long long)checked);
    return 0;
}

/* The options of `audit export`; strings borrowed from argv. */
struct export_opts {
    const char *format, *output;
    const char *since, *until;
    struct audit_filter f;
};

/* Parses the export options from argv[2..]. Returns 0 or an exit status (2) after printing
 * the problem. */
static int
export_opts_parse(int argc, char **argv, struct export_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 2; i < argc; i++) {
        const char *name = argv[i];
        const char **slot = NULL;
        if (strcmp(name, "--format") == 0) {
            slot = &o->format;
        } else if (strcmp(name, "--output") == 0) {
            slot = &o->output;
        } else if (strcmp(name, "--actor") == 0) {
            slot = &o->f.actor;
        } else if (strcmp(name, "--action") == 0) {
            slot = &o->f.action_prefix;
        } else if (strcmp(name, "--outcome") == 0) {
            slot = &o->f.outcome;
        } else if (strcmp(name, "--target") == 0) {
            slot = &o->f.target;
        } else if (strcmp(name, "--since") == 0) {
            slot = &o->since;
        } else if (strcmp(name, "--until") == 0) {
            slot = &o->until;
        } else if (strcmp(name, "--q") == 0) {
            slot = &o->f.q;
        } else {
            return usage_error("unknown option '%s'", name);
        }
        if (i + 1 >= argc) {
            return usage_error("%s needs a value", name);
        }
        *slot = argv[++i];
    }
    if (!o->format || (strcmp(o->format, "csv") != 0 && strcmp(o->format, "jsonl") != 0)) {
        return usage_error("--format must be csv or jsonl");
    }
    if (o->f.action_prefix && !audit_action_prefix_valid(o->f.action_prefix)) {
        return usage_error("--action '%s' is not an action prefix", o->f.action_prefix);
    }
    if (o->f.outcome && !audit_outcome_valid(o->f.outcome)) {
        return usage_error("--outcome '%s' is not ok, denied, error or pending", o->f.outcome);
    }
    if (o->since && (time_parse(o->since, &o->f.since) || o->f.since < 0)) {
        return usage_error("--since '%s' is not a time", o->since);
    }
    if (o->until && (time_parse(o->until, &o->f.until) || o->f.until <= 0)) {
        return usage_error("--until '%s' is not a time after 1970", o->until);
    }
    return 0;
}

struct sink {
    FILE *out;
    struct buf b;
    int jsonl;
    int failed;
};

static int
sink_flush(struct sink *k)
{
    if (k->b.len && fwrite(k->b.data, 1, k->b.len, k->out) != k->b.len) {
        k->failed = 1;
    }
    buf_reset(&k->b);
    return k->failed ? -1 : 0;
}

static int
sink_row(const struct audit_row *row, void *ctx)
{
    struct sink *k = ctx;
    int rc = k->jsonl ? audit_jsonl_row(&k->b, row) : audit_csv_row(&k->b, row);
    if (rc != BUF_OK) {
        k->failed = 1;
        return 1;
    }
    return k->b.len >= CLI_CHUNK && sink_flush(k) ? 1 : 0;
}

/* Records the export in the log itself, as the server does. A failure is only a warning:
 * whoever runs the CLI already holds the database file. */
static void
export_record(struct store *s, const struct export_opts *o)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "format", o->format);
    cJSON *filters = cJSON_AddObjectToObject(d, "filters");
    const char *names[] = {"actor", "action", "outcome", "target", "since", "until", "q"};
    const char *vals[] = {o->f.actor, o->f.action_prefix, o->f.outcome, o->f.target,
                          o->since,   o->until,           o->f.q};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (vals[i]) {
            cJSON_AddStringToObject(filters, names[i], vals[i]);
        }
    }
    char *detail = json_print(d);
    cJSON_Delete(d);
    struct audit_entry e = {"cli", "", "local", "audit.export", "", detail, "ok"};
    if (store_audit_append(s, &e, NULL) != STORE_OK) {
        fprintf(stderr, "consulate audit: warning: could not record the export: %s\n",
                store_errmsg(s));
    }
    free(detail);
}

static int
cmd_export(struct store *s, int argc, char **argv)
{
    struct export_opts o;
    int rc = export_opts_parse(argc, argv, &o);
    if (rc) {
        return rc;
    }
    struct sink k = {.out = stdout, .jsonl = strcmp(o.format, "jsonl") == 0};
    buf_init(&k.b, CLI_BUF_MAX);
    rc = 1;
    if (o.output) {
        int fd = open(o.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        k.out = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!k.out) {
            fprintf(stderr, "consulate audit: cannot write %s: %s\n", o.output, strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            goto out;
        }
    }
    export_record(s, &o);
    if (!k.jsonl) {
        audit_csv_header(&k.b);
    }
    int qrc = store_audit_query(s, &o.f, sink_row, &k);
    if (qrc == STORE_ERROR) {
        fprintf(stderr, "consulate audit: cannot read the audit log: %s\n", store_errmsg(s));
        goto out;
    }
    if (k.failed || sink_flush(&k) || fflush(k.out) != 0) {
        fprintf(stderr, "consulate audit: write failed: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (k.out && k.out != stdout && fclose(k.out) != 0 && rc == 0) {
        fprintf(stderr, "consulate audit: cannot write %s: %s\n", o.output, strerror(errno));
        rc = 1;
    }
    buf_free(&k.b);
    return rc;
}

int
cli_audit_main(struct store *s, int argc, char **argv)
{
    if (argc < 2) {
        return usage_error("missing subcommand (verify or export)");
    }
    if (strcmp(argv[1], "verify") == 0) {
        if (argc > 2) {
            return usage_error("unexpected argument '%s'", argv[2]);
        }
        return cmd_verify(s);
    }
    if (strcmp(argv[1], "export") == 0) {
        return cmd_export(s, argc, argv);
    }
    return usage_error("unknown subcommand '%s'", argv[1]);
}
