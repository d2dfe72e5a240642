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
#include "audit_export.h"
#include "audit_verify.h"
#include "store.h"
#include "util.h"

static const char usage_text[] =
    "usage: consulate audit verify\n"
    "       consulate audit reseal\n"
    "       consulate audit export --format csv|jsonl [--actor A] [--action PREFIX]\n"
    "                              [--target T] [--outcome O] [--since T] [--until T]\n"
    "                              [--q TEXT] [--output FILE]\n"
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

static void
print_finding(const char *code, const char *message, int problem, void *ctx)
{
    (void)ctx;
    printf("%s: %s (%s)\n", problem ? "problem" : "note", message, code);
}

/* Prints the report: the summary line, the first bad entry of a broken chain, the MAC counts
 * and every finding. */
static void
report_print(const struct audit_verify_report *r, const char *key_path, const char *anchor_path)
{
    int ok = audit_verify_ok(r);
    if (ok) {
        printf("audit chain intact: %lld entries checked\n", (long long)r->checked);
    } else {
        printf("audit log NOT intact: %lld entries checked\n", (long long)r->checked);
    }
    if (r->first_bad_id != 0) {
        printf("first bad entry: %lld\n", (long long)r->first_bad_id);
    }
    printf("MACs: %lld verified, %lld invalid, %lld missing, %lld before the seal\n",
           (long long)r->macs_ok, (long long)r->macs_bad, (long long)r->macs_missing,
           (long long)r->unsealed);
    if (r->anchor == AUDIT_FILE_OK) {
        printf("anchor: entry %lld, %lld entries after it\n", (long long)r->at.id,
               (long long)r->after_anchor);
    }
    printf("key file %s, anchor file %s\n", key_path, anchor_path);
    audit_verify_findings(r, print_finding, NULL);
}

static int
cmd_verify(struct store *s, const char *key_path, const char *anchor_path)
{
    /* Read-only: nothing is created, whatever is missing is reported. */
    struct audit_seal *seal = audit_seal_open(key_path, anchor_path, 0);
    struct audit_verify_report r;
    int rc = 1;
    if (audit_verify(s, seal, &r) != STORE_OK) {
        fprintf(stderr, "consulate audit: cannot read the audit log: %s\n", store_errmsg(s));
        goto out;
    }
    report_print(&r, key_path, anchor_path);
    if (!audit_verify_ok(&r)) {
        fprintf(stderr,
                "consulate audit: the audit log failed verification (%lld entries checked)\n",
                (long long)r.checked);
        goto out;
    }
    rc = 0;
out:
    audit_seal_free(seal);
    return rc;
}

static int
cmd_reseal(struct store *s, const char *key_path, const char *anchor_path)
{
    struct audit_actor cli = {.name = "cli", .role = "", .ip = "local"};
    struct audit_verify_report before;
    int64_t id = 0;
    char err[1024];
    if (audit_reseal(s, key_path, anchor_path, &cli, &before, &id, err, sizeof(err)) != 0) {
        fprintf(stderr, "consulate audit: %s\n", err);
        return 1;
    }
    printf("before the reseal:\n");
    report_print(&before, key_path, anchor_path);
    printf("resealed: recorded as entry %lld (audit.reseal); the anchor names it\n", (long long)id);
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
    enum audit_export_format fmt;
    if (audit_export_format_parse(o->format, &fmt) != 0) {
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

/* The export's sink: a FILE. */
static int
file_sink(void *ctx, const void *data, size_t len)
{
    return fwrite(data, 1, len, ctx) == len ? 0 : -1;
}

/* Records the export in the log itself, as the server does. A failure is only a warning:
 * whoever runs the CLI already holds the database file. */
static void
export_record(struct store *s, const struct export_opts *o, const char *key_path,
              const char *anchor_path)
{
    struct audit_actor cli = {.name = "cli", .role = "", .ip = "local"};
    struct audit_seal *seal = NULL;
    char err[1024];
    if (audit_seal_start(s, key_path, anchor_path, &cli, &seal, err, sizeof(err)) != 0) {
        fprintf(stderr, "consulate audit: warning: could not record the export: %s\n", err);
        return;
    }
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
    if (audit_record(s, &cli, "audit.export", "", d, "ok", NULL) != STORE_OK) {
        fprintf(stderr, "consulate audit: warning: could not record the export: %s\n",
                store_errmsg(s));
    }
    audit_seal_stop(s, seal);
}

static int
cmd_export(struct store *s, const char *key_path, const char *anchor_path, int argc, char **argv)
{
    struct export_opts o;
    int rc = export_opts_parse(argc, argv, &o);
    if (rc) {
        return rc;
    }
    enum audit_export_format fmt;
    audit_export_format_parse(o.format, &fmt); /* checked by export_opts_parse */
    FILE *out = stdout;
    rc = 1;
    if (o.output) {
        int fd = open(o.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        out = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!out) {
            fprintf(stderr, "consulate audit: cannot write %s: %s\n", o.output, strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return 1;
        }
    }
    export_record(s, &o, key_path, anchor_path);
    int erc = audit_export(s, &o.f, fmt, file_sink, out, NULL);
    if (erc == AUDIT_EXPORT_OK && fflush(out) != 0) {
        erc = AUDIT_EXPORT_SINK;
    }
    if (erc != AUDIT_EXPORT_OK) {
        fprintf(stderr, "consulate audit: export failed: %s%s%s\n", audit_export_strerror(erc),
                erc == AUDIT_EXPORT_SINK ? ": " : "",
                erc == AUDIT_EXPORT_SINK ? strerror(errno) : "");
        goto out;
    }
    rc = 0;
out:
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "consulate audit: cannot write %s: %s\n", o.output, strerror(errno));
        rc = 1;
    }
    if (rc != 0 && o.output) {
        unlink(o.output); /* an incomplete export must not pass for a complete one */
    }
    return rc;
}

int
cli_audit_main(struct store *s, const char *key_path, const char *anchor_path, int argc,
               char **argv)
{
    if (argc < 2) {
        return usage_error("missing subcommand (verify, export or reseal)");
    }
    int verify = strcmp(argv[1], "verify") == 0, reseal = strcmp(argv[1], "reseal") == 0;
    if (verify || reseal) {
        if (argc > 2) {
            return usage_error("unexpected argument '%s'", argv[2]);
        }
        return verify ? cmd_verify(s, key_path, anchor_path) : cmd_reseal(s, key_path, anchor_path);
    }
    if (strcmp(argv[1], "export") == 0) {
        return cmd_export(s, key_path, anchor_path, argc, argv);
    }
    return usage_error("unknown subcommand '%s'", argv[1]);
}
