/* The operations commands: `consulate version`, `backup`, `restore`, `cert --self-signed`,
 * and the upgrade path (a copy before migrating, a newer database refused). Each runs the
 * real binary, most of them beside a running server. */
#include <ctype.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glob.h>

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <libssh2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <sqlite3.h>
#include <yaml.h>

#include "app.h"
#include "harness.h"
#include "store.h"
#include "util.h"

static int
sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "test_ops: `%s` failed\n", cmd);
    }
    return rc;
}

/* A line of text starting with prefix, newly allocated without the newline, or NULL. */
static char *
line_of(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0) {
            return xstrndup(p, strcspn(p, "\n"));
        }
    }
    return NULL;
}

static void
expect_line(const char *out, const char *want)
{
    char *l = line_of(out, want);
    if (!l || strcmp(l, want) != 0) {
        fail_msg("no line '%s' in:\n%s", want, out);
    }
    free(l);
}

static void
test_version(void **state)
{
    (void)state;
    const char *args[] = {"version", NULL};
    char *out = NULL;
    assert_int_equal(run_cli(args, NULL, &out), 0);
    expect_line(out, "consulate " CONSULATE_VERSION);
    /* the libraries as loaded: the same as this test process loads */
    char want[512];
    snprintf(want, sizeof(want), "civetweb %s", mg_version());
    expect_line(out, want);
    snprintf(want, sizeof(want), "sqlite %s", sqlite3_libversion());
    expect_line(out, want);
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    snprintf(want, sizeof(want), "libcurl %s (%s)", cv->version, cv->ssl_version);
    expect_line(out, want);
    snprintf(want, sizeof(want), "libssh2 %s", libssh2_version(0));
    expect_line(out, want);
    snprintf(want, sizeof(want), "cjson %s", cJSON_Version());
    expect_line(out, want);
    snprintf(want, sizeof(want), "libsodium %s", sodium_version_string());
    expect_line(out, want);
    snprintf(want, sizeof(want), "libyaml %s", yaml_get_version_string());
    expect_line(out, want);
    snprintf(want, sizeof(want), "libcrypto %s", OpenSSL_version(OPENSSL_VERSION));
    expect_line(out, want);
    /* HTTPS through the shim in lib/ beside the binary */
    char *https = line_of(out, "https ");
    assert_non_null(https);
    snprintf(want, sizeof(want), "https %s (", OpenSSL_version(OPENSSL_VERSION));
    assert_true(str_starts_with(https, want));
    assert_true(str_ends_with(https, "/lib/libssl.so)"));
    free(https);
    /* the commit: a commit of the checkout it was built in, or "unknown" outside one */
    char *commit = line_of(out, "commit ");
    assert_non_null(commit);
    const char *id = commit + strlen("commit ");
    if (strcmp(id, "unknown") != 0) {
        assert_int_equal(strlen(id), 12);
        for (const char *p = id; *p; p++) {
            assert_true(isxdigit((unsigned char)*p));
        }
        const char *src = getenv("CONSULATE_SRC");
        char *cmd = xasprintf("git -C %s cat-file -e %s^{commit}", src ? src : ".", id);
        assert_int_equal(sh(cmd), 0);
        free(cmd);
    }
    free(commit);
    free(out);
    /* built outside a git checkout (a tarball): the Makefile says "unknown" */
    char tree[] = "/tmp/consulate-nogit-XXXXXX";
    assert_non_null(mkdtemp(tree));
    const char *src = getenv("CONSULATE_SRC");
    char *mk =
        /* a make of its own: not the SANITIZE=… (build/san) of a make that runs this test,
         * which reaches it through MAKEFLAGS and the environment */
        xasprintf("cp %s/Makefile %s/ && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
                  "make -s -C %s SANITIZE= build/gen/commit.c >/dev/null 2>&1 && "
                  "grep -q 'consulate_commit\\[\\] = \"unknown\";' %s/build/gen/commit.c",
                  src ? src : ".", tree, tree, tree);
    assert_int_equal(sh(mk), 0);
    free(mk);
    mk = xasprintf("rm -rf %s", tree);
    sh(mk);
    free(mk);

    /* the binary without its lib/: HTTPS would not work, and version says so */
    char dir[] = "/tmp/consulate-version-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *bin = getenv("CONSULATE_BIN");
    char *cmd = xasprintf("cp %s %s/consulate", bin ? bin : "build/consulate", dir);
    assert_int_equal(sh(cmd), 0);
    free(cmd);
    char *alone = xasprintf("%s/consulate", dir);
    char *saved = xstrdup(bin ? bin : "build/consulate");
    setenv("CONSULATE_BIN", alone, 1);
    assert_int_equal(run_cli(args, NULL, &out), 0);
    setenv("CONSULATE_BIN", saved, 1);
    https = line_of(out, "https ");
    assert_non_null(https);
    assert_null(strstr(https, "/lib/libssl.so)"));
    assert_true(str_starts_with(https, "https broken") ||
                str_starts_with(https, "https unavailable"));
    free(https);
    free(out);
    free(alone);
    free(saved);
    cmd = xasprintf("rm -rf %s", dir);
    sh(cmd);
    free(cmd);
}

/* ---- backup and restore ---- */

/* A child process that logs in and out as admin until killed: audit rows keep coming. */
static pid_t
start_writer(struct srv *s)
{
    pid_t pid = fork();
    if (pid == 0) {
        int64_t end = time_mono_ms() + 30000; /* whatever happens to the test */
        while (time_mono_ms() < end) {
            struct client *c = srv_login(s, "admin", s->admin_pw);
            if (c) {
                struct resp r = client_req(c, "DELETE", "/api/session", NULL);
                resp_free(&r);
                client_free(c);
            }
        }
        _exit(0);
    }
    return pid;
}

static void
stop_writer(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* One integer from sql on the database file at path, or -1. */
static long long
file_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static int
file_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc =
        sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK
            ? 0
            : -1;
    sqlite3_close(db);
    return rc;
}

static int
file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* `consulate args… --config <s's config>`; out as run_cli. */
static int
cli(struct srv *s, char **out, const char *a1, const char *a2)
{
    const char *args[] = {a1, a2, "--config", s->config, NULL};
    if (!a2) {
        args[1] = "--config";
        args[2] = s->config;
        args[3] = NULL;
    }
    return run_cli(args, NULL, out);
}

static void
test_backup_restore(void **state)
{
    (void)state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    assert_int_equal(srv_add_user(s, "before-backup", "viewer", "correct-horse-1"), 201);
    pid_t writer = start_writer(s);
    /* let the writer get going */
    long long n0 = db_count_audit(s, "auth.login", "ok");
    for (int i = 0; i < 100 && db_count_audit(s, "auth.login", "ok") < n0 + 5; i++) {
        usleep(50000);
    }
    char *b1 = xasprintf("%s/backup-1.db", s->dir);
    char *out = NULL;
    /* a consistent copy while the server runs and writes */
    int rc = cli(s, &out, "backup", b1);
    if (rc != 0) {
        fail_msg("backup: %s", out);
    }
    assert_non_null(strstr(out, "backed up"));
    free(out);
    assert_int_equal(file_mode(b1), 0600);
    long long in_backup = file_int(b1, "SELECT count(*) FROM audit_log");
    assert_true(in_backup > n0);
    assert_int_equal(file_int(b1, "SELECT count(*) FROM users WHERE name='before-backup'"), 1);
    char *wal = xasprintf("%s-wal", b1);
    assert_int_equal(access(wal, F_OK), -1); /* one self-contained file */
    free(wal);
    /* the writer kept writing past the copy */
    for (int i = 0; i < 100 && db_count_audit(s, "auth.login", NULL) <= in_backup; i++) {
        usleep(50000);
    }
    stop_writer(writer);
    assert_true(file_int(s->db, "SELECT count(*) FROM audit_log") > in_backup);
    /* the copy's chain and MACs verify; only its anchor (there is none for it) is missing */
    const char *verify[] = {"audit", "verify", "--config", s->config, "--db", b1, NULL};
    run_cli(verify, NULL, &out);
    char *macs = xasprintf("MACs: %lld verified, 0 invalid, 0 missing", in_backup);
    if (!strstr(out, macs) || !strstr(out, "(anchor_missing)")) {
        fail_msg("verify of the backup: %s", out);
    }
    free(macs);
    for (const char *p = strstr(out, "problem: "); p; p = strstr(p + 1, "problem: ")) {
        char *line = xstrndup(p, strcspn(p, "\n"));
        if (!str_ends_with(line, "(anchor_missing)")) {
            fail_msg("verify of the backup: %s", out);
        }
        free(line);
    }
    assert_null(strstr(out, "(chain_broken)"));
    assert_null(strstr(out, "(mac_invalid)"));
    assert_null(strstr(out, "(mac_missing)"));
    free(out);
    /* never overwrites */
    char *before = file_read_all(b1, 64 << 20, NULL);
    assert_int_equal(cli(s, &out, "backup", b1), 1);
    assert_non_null(strstr(out, "File exists"));
    free(out);
    char *after = file_read_all(b1, 64 << 20, NULL);
    assert_string_equal(before, after); /* (the header at least) */
    free(before);
    free(after);
    /* usage */
    assert_int_equal(cli(s, &out, "backup", NULL), 2);
    free(out);

    /* a change after the backup, which the restore takes back */
    assert_int_equal(srv_add_user(s, "after-backup", "viewer", "correct-horse-2"), 201);
    /* a tampered copy of the backup: one entry's detail changed */
    char *bad = xasprintf("%s/tampered.db", s->dir);
    char *cmd = xasprintf("cp %s %s", b1, bad);
    assert_int_equal(sh(cmd), 0);
    free(cmd);
    assert_int_equal(file_exec(bad, "DROP TRIGGER audit_log_no_update; "
                                    "UPDATE audit_log SET target='someone-else' WHERE id=2"),
                     0);

    /* refused while the server runs: nothing changes */
    long long live = file_int(s->db, "SELECT count(*) FROM audit_log");
    assert_int_equal(cli(s, &out, "restore", b1), 1);
    char *pid = xasprintf("pid %d", (int)s->pid);
    if (!strstr(out, pid) || !strstr(out, "is serving") || !strstr(out, "stop it")) {
        fail_msg("restore while running said: %s", out);
    }
    free(pid);
    free(out);
    /* a second server on the same database does not start either */
    const char *serve[] = {"serve", "--config", s->config, NULL};
    assert_int_equal(run_cli(serve, NULL, &out), 1);
    assert_non_null(strstr(out, "is serving database"));
    free(out);
    char *dir = xstrdup(s->dir);
    char *admin_pw = xstrdup(s->admin_pw);
    char *config = xstrdup(s->config);
    char *db = xstrdup(s->db);
    srv_stop_keep(s, 1);
    assert_true(file_int(db, "SELECT count(*) FROM audit_log") >= live);
    live = file_int(db, "SELECT count(*) FROM audit_log");

    /* the lock protocol (include/db_lock.h), with this process in the other role: a command
     * with the database open (byte 1 shared) keeps a restore out ... */
    char *lockfile = xasprintf("%s.lock", db);
    int lfd = open(lockfile, O_RDWR);
    assert_true(lfd >= 0);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
    assert_int_equal(fcntl(lfd, F_SETLK, &fl), 0);
    const char *restore_b1[] = {"restore", b1, "--config", config, NULL};
    assert_int_equal(run_cli(restore_b1, NULL, &out), 1);
    pid = xasprintf("pid %d) has open", (int)getpid());
    if (!strstr(out, pid) || !strstr(out, "nothing was changed")) {
        fail_msg("restore beside a command said: %s", out);
    }
    free(pid);
    free(out);
    /* ... and a restore under way (byte 1 exclusive) keeps every command out */
    fl.l_type = F_WRLCK;
    assert_int_equal(fcntl(lfd, F_SETLK, &fl), 0);
    const char *list[] = {"user", "list", "--config", config, NULL};
    assert_int_equal(run_cli(list, NULL, &out), 1);
    assert_non_null(strstr(out, "a restore"));
    free(out);
    const char *serve_again[] = {"serve", "--config", config, NULL};
    assert_int_equal(run_cli(serve_again, NULL, &out), 1);
    assert_non_null(strstr(out, "is replacing"));
    free(out);
    char *b2 = xasprintf("%s/backup-2.db", dir);
    const char *backup2[] = {"backup", b2, "--config", config, NULL};
    assert_int_equal(run_cli(backup2, NULL, &out), 1);
    assert_non_null(strstr(out, "a restore"));
    free(out);
    assert_int_equal(access(b2, F_OK), -1);
    free(b2);
    close(lfd);
    free(lockfile);
    assert_int_equal(run_cli(list, NULL, &out), 0); /* free again */
    free(out);

    /* the tampered copy is refused: the chain breaks at entry 2 */
    const char *restore_bad[] = {"restore", bad, "--config", config, NULL};
    assert_int_equal(run_cli(restore_bad, NULL, &out), 1);
    if (!strstr(out, "chain_broken") || !strstr(out, "nothing was changed")) {
        fail_msg("tampered restore said: %s", out);
    }
    free(out);
    assert_int_equal(file_int(db, "SELECT count(*) FROM audit_log"), live);
    assert_int_equal(file_int(db, "SELECT count(*) FROM users WHERE name='after-backup'"), 1);
    char *tmp = xasprintf("%s.restoring", db);
    assert_int_equal(access(tmp, F_OK), -1);
    free(tmp);

    /* the good copy: restored, the previous database and anchor kept beside it */
    const char *restore[] = {"restore", b1, "--config", config, NULL};
    rc = run_cli(restore, NULL, &out);
    if (rc != 0) {
        fail_msg("restore: %s", out);
    }
    const char *kept = strstr(out, "previous database is kept as ");
    assert_non_null(kept);
    char *kept_path = xstrndup(kept + 29, strcspn(kept + 29, "\n"));
    assert_non_null(strstr(out, "previous audit anchor is kept as "));
    free(out);
    assert_int_equal(file_mode(kept_path), 0600);
    /* the replaced database and its anchor, kept together, still verify */
    char *kept_anchor = xasprintf("%s.audit-anchor", kept_path);
    assert_int_equal(file_mode(kept_anchor), 0600);
    free(kept_anchor);
    const char *verify_kept[] = {"audit", "verify", "--config", config, "--db", kept_path, NULL};
    rc = run_cli(verify_kept, NULL, &out);
    if (rc != 0) {
        fail_msg("verify of the kept database: %s", out);
    }
    free(out);
    assert_int_equal(file_int(kept_path, "SELECT count(*) FROM audit_log"), live);
    assert_int_equal(file_int(kept_path, "SELECT count(*) FROM users WHERE name='after-backup'"),
                     1);
    assert_int_equal(file_mode(db), 0600);
    /* the restored log: the backup's entries, then the reseal that records the restore */
    assert_int_equal(file_int(db, "SELECT count(*) FROM audit_log"), in_backup + 1);
    assert_int_equal(file_int(db, "SELECT count(*) FROM audit_log WHERE action='audit.reseal' "
                                  "AND detail LIKE '%anchor_entry_missing%'"),
                     1);
    /* its chain verifies, anchor included */
    const char *verify_live[] = {"audit", "verify", "--config", config, NULL};
    rc = run_cli(verify_live, NULL, &out);
    if (rc != 0) {
        fail_msg("verify after restore: %s", out);
    }
    free(out);
    /* the server starts on the restored data */
    s = srv_start_in(dir, NULL);
    assert_non_null(s);
    snprintf(s->admin_pw, sizeof(s->admin_pw), "%s", admin_pw);
    struct client *c = srv_login(s, "before-backup", "correct-horse-1");
    assert_non_null(c);
    client_free(c);
    c = client_new(s);
    assert_int_equal(client_login(c, "after-backup", "correct-horse-2"), 401);
    client_free(c);
    c = srv_login(s, "admin", admin_pw);
    assert_non_null(c);
    struct resp r = client_req(c, "GET", "/api/audit/verify", NULL);
    assert_int_equal(r.status, 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "ok")));
    resp_free(&r);
    client_free(c);
    srv_stop(s);
    free(kept_path);
    free(dir);
    free(admin_pw);
    free(config);
    free(db);
    free(bad);
    free(b1);
}

/* ---- cert --self-signed ---- */

/* The "AB:CD:…" SHA-256 fingerprint of the first certificate in pem (text). */
static char *
pem_fingerprint(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!x) {
        return NULL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(x, EVP_sha256(), md, &n);
    X509_free(x);
    char *out = xcalloc(1, n * 3 + 1);
    for (unsigned int i = 0; i < n; i++) {
        sprintf(out + i * 3, "%02X%s", md[i], i + 1 < n ? ":" : "");
    }
    return out;
}

static size_t
discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* GET url over HTTPS trusting ca (the certificate file); returns the HTTP status (0 when the
 * connection or verification failed) and the fingerprint of the certificate the server
 * presented (caller frees). */
static long
https_get(const char *url, const char *ca, char **fp)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long status = 0;
    *fp = NULL;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        struct curl_certinfo *ci = NULL;
        if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci && ci->num_of_certs) {
            for (struct curl_slist *l = ci->certinfo[0]; l; l = l->next) {
                if (str_starts_with(l->data, "Cert:")) {
                    *fp = pem_fingerprint(l->data + 5);
                }
            }
        }
    } else {
        fprintf(stderr, "test_ops: %s: %s\n", url, curl_easy_strerror(rc));
    }
    curl_easy_cleanup(c);
    return status;
}

static void
test_cert(void **state)
{
    (void)state;
    char dir[] = "/tmp/consulate-cert-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *pem = xasprintf("%s/console.pem", dir);
    const char *args[] = {"cert",   "--self-signed",       "--host", "127.0.0.1",
                          "--host", "console.example.com", "--out",  pem,
                          NULL};
    char *out = NULL;
    int rc = run_cli(args, NULL, &out);
    if (rc != 0) {
        fail_msg("cert: %s", out);
    }
    assert_int_equal(file_mode(pem), 0600);
    char *printed = line_of(out, "SHA-256 fingerprint: ");
    assert_non_null(printed);
    free(out);
    const char *fp = printed + strlen("SHA-256 fingerprint: ");
    assert_int_equal(strlen(fp), 32 * 3 - 1);
    /* the file: the certificate, then its key, in the form tls.certificate reads */
    char *text = file_read_all(pem, 1 << 20, NULL);
    assert_non_null(text);
    const char *key = strstr(text, "-----BEGIN PRIVATE KEY-----");
    assert_true(str_starts_with(text, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(key);
    char *in_file = pem_fingerprint(text);
    assert_string_equal(in_file, fp);
    free(in_file);
    /* the server serves it; a client trusting it connects and sees the same fingerprint */
    char *cfg = xasprintf("\"tls\":{\"certificate\":\"%s\"}", pem);
    struct srv *s = srv_start(cfg);
    free(cfg);
    assert_non_null(s);
    assert_true(str_starts_with(s->base, "https://"));
    char *cert_only = xasprintf("%s/cert-only.pem", dir);
    FILE *f = fopen(cert_only, "w");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(key - text), f);
    fclose(f);
    char *url = xasprintf("%s/healthz", s->base);
    char *seen = NULL;
    assert_int_equal(https_get(url, cert_only, &seen), 200);
    assert_non_null(seen);
    assert_string_equal(seen, fp);
    free(seen);
    free(url);
    /* by name too (the second --host) */
    char *by_name = xasprintf("https://console.example.com:%d/healthz", s->port);
    CURL *c = curl_easy_init();
    char *entry = xasprintf("console.example.com:%d:127.0.0.1", s->port);
    struct curl_slist *resolve = curl_slist_append(NULL, entry);
    free(entry);
    curl_easy_setopt(c, CURLOPT_URL, by_name);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_CAINFO, cert_only);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK); /* the Host check answers 421: fine */
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    free(by_name);
    srv_stop(s);

    /* never overwrites */
    assert_int_equal(run_cli(args, NULL, &out), 1);
    assert_non_null(strstr(out, "never overwrites"));
    free(out);
    char *again = file_read_all(pem, 1 << 20, NULL);
    assert_string_equal(again, text);
    free(again);
    /* usage: no --self-signed, a name that is neither */
    const char *no_kind[] = {"cert", "--out", pem, NULL};
    assert_int_equal(run_cli(no_kind, NULL, &out), 2);
    free(out);
    const char *bad_host[] = {"cert", "--self-signed", "--host", "a b", "--out", "x.pem", NULL};
    assert_int_equal(run_cli(bad_host, NULL, &out), 2);
    assert_non_null(strstr(out, "'a b'"));
    free(out);
    /* the default: consulate.pem in the current directory, for localhost and 127.0.0.1 */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    const char *bin = getenv("CONSULATE_BIN");
    char bin_abs[4096];
    assert_non_null(realpath(bin ? bin : "build/consulate", bin_abs));
    char *saved = xstrdup(bin ? bin : "build/consulate");
    setenv("CONSULATE_BIN", bin_abs, 1);
    assert_int_equal(chdir(dir), 0);
    const char *plain[] = {"cert", "--self-signed", NULL};
    rc = run_cli(plain, NULL, &out);
    assert_int_equal(chdir(cwd), 0);
    setenv("CONSULATE_BIN", saved, 1);
    free(saved);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "names: localhost 127.0.0.1"));
    free(out);
    char *dflt = xasprintf("%s/consulate.pem", dir);
    assert_int_equal(file_mode(dflt), 0600);
    char *cmd = xasprintf("openssl x509 -in %s -noout -ext subjectAltName | "
                          "grep -q 'DNS:localhost, IP Address:127.0.0.1'",
                          dflt);
    assert_int_equal(sh(cmd), 0);
    free(cmd);
    free(dflt);
    free(text);
    free(cert_only);
    free(printed);
    free(pem);
    cmd = xasprintf("rm -rf %s", dir);
    sh(cmd);
    free(cmd);
}

/* ---- upgrade ---- */

/* A database as the previous consulate left it: migrations/ up to the last but one applied
 * (from the source tree), a user in it. Returns the schema version it has. */
static int
old_database(const char *path)
{
    const char *src = getenv("CONSULATE_SRC");
    char *pattern = xasprintf("%s/migrations/*.sql", src ? src : ".");
    glob_t g;
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    free(pattern);
    assert_true(g.gl_pathc >= 2);
    int version = (int)g.gl_pathc - 1;
    assert_int_equal(version, store_latest_version() - 1);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (int i = 0; i < version; i++) {
        char *sql = file_read_all(g.gl_pathv[i], 1 << 20, NULL);
        assert_non_null(sql);
        char *msg = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            fail_msg("%s: %s", g.gl_pathv[i], msg);
        }
        free(sql);
    }
    char *pragma = xasprintf("PRAGMA user_version=%d; PRAGMA journal_mode=WAL;", version);
    assert_int_equal(sqlite3_exec(db, pragma, NULL, NULL, NULL), SQLITE_OK);
    free(pragma);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO users(name, role, password_hash, created_at, "
                                  "updated_at) VALUES ('from-before', 'viewer', 'x', 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    chmod(path, 0600);
    globfree(&g);
    return version;
}

/* The copies <db>.pre-migration-* beside db: how many, and the first one's name. */
static int
premigration_copies(const char *db, char **first)
{
    char *pattern = xasprintf("%s.pre-migration-*", db);
    glob_t g;
    int n = glob(pattern, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    if (first) {
        *first = n ? xstrdup(g.gl_pathv[0]) : NULL;
    }
    if (n) {
        globfree(&g);
    }
    free(pattern);
    return n;
}

static void
test_upgrade(void **state)
{
    (void)state;
    char dir[] = "/tmp/consulate-upgrade-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *db = xasprintf("%s/consulate.db", dir);
    int from = old_database(db);
    int to = store_latest_version();
    /* the newer binary migrates on start, keeping the database as it was first */
    struct srv *s = srv_start_in(dir, NULL);
    assert_non_null(s);
    char *copy = NULL;
    assert_int_equal(premigration_copies(db, &copy), 1);
    char *want = xasprintf("%s.pre-migration-%d-%d-", db, from, to);
    assert_true(str_starts_with(copy, want));
    free(want);
    assert_int_equal(file_mode(copy), 0600);
    assert_int_equal(file_int(copy, "PRAGMA user_version"), from);
    assert_int_equal(file_int(copy, "SELECT count(*) FROM users WHERE name='from-before'"), 1);
    assert_int_equal(file_int(db, "PRAGMA user_version"), to);
    struct client *c = client_new(s); /* the server works on the migrated database */
    struct resp r = client_req(c, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);
    srv_stop_keep(s, 1);
    /* the data came along; nothing more to migrate, so no new copy */
    const char *list[] = {"user", "list", "--db", db, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(list, NULL, &out), 0);
    assert_non_null(strstr(out, "from-before"));
    free(out);
    const char *mig[] = {"migrate", "--db", db, NULL};
    assert_int_equal(run_cli(mig, NULL, &out), 0);
    free(out);
    assert_int_equal(premigration_copies(db, NULL), 1);
    /* an older binary refuses a newer database, clearly, for every command, changing nothing */
    char *pragma = xasprintf("PRAGMA user_version=%d", to + 1);
    assert_int_equal(file_exec(db, pragma), 0);
    free(pragma);
    assert_int_equal(run_cli(mig, NULL, &out), 1);
    char *msg = xasprintf("has schema version %d, newer than this consulate (%d)", to + 1, to);
    if (!strstr(out, msg) || !strstr(out, "upgrade consulate")) {
        fail_msg("migrate said: %s", out);
    }
    free(out);
    char *cfg = xasprintf("%s/config.json", dir);
    const char *serve2[] = {"serve", "--config", cfg, NULL};
    assert_int_equal(run_cli(serve2, NULL, &out), 1);
    assert_non_null(strstr(out, msg));
    free(out);
    free(cfg);
    free(msg);
    assert_int_equal(file_int(db, "PRAGMA user_version"), to + 1);
    assert_int_equal(premigration_copies(db, NULL), 1);
    /* a backup made by the previous version restores: brought up to date on the way */
    char *old = xasprintf("%s/old-backup.db", dir);
    assert_int_equal(old_database(old), from);
    char *fresh = xasprintf("%s/fresh/consulate.db", dir);
    const char *restore_old[] = {"restore", old, "--db", fresh, NULL};
    int rc = run_cli(restore_old, NULL, &out);
    if (rc != 0) {
        fail_msg("restore of an older backup: %s", out);
    }
    free(out);
    assert_int_equal(file_int(fresh, "PRAGMA user_version"), to);
    assert_int_equal(file_int(fresh, "SELECT count(*) FROM users WHERE name='from-before'"), 1);
    assert_int_equal(file_int(fresh, "SELECT count(*) FROM audit_log WHERE action='audit.reseal'"),
                     1);
    free(old);
    free(fresh);
    free(copy);
    free(db);
    char *cmd = xasprintf("rm -rf %s", dir);
    sh(cmd);
    free(cmd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_backup_restore),
        cmocka_unit_test(test_cert),
        cmocka_unit_test(test_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
