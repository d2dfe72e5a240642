/* harness: see harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "util.h"

int srv_threads = 32;

/* Servers that did not exit cleanly; at exit they turn the test binary's status into 1. */
static int server_failures;

static void
exit_check(void)
{
    if (server_failures) {
        fprintf(stderr, "harness: %d server(s) did not exit cleanly\n", server_failures);
        fflush(NULL);
        _exit(1);
    }
}

static const char *
bin_path(void)
{
    const char *b = getenv("CONSULATE_BIN");
    return b ? b : "build/consulate";
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Reads one line from fd with a deadline; returns length or -1. */
static int
read_line(int fd, char *line, size_t cap, int64_t deadline)
{
    size_t n = 0;
    while (n + 1 < cap) {
        if (time_mono_ms() > deadline) {
            return -1;
        }
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r == 0) {
            return -1;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                usleep(10000);
                continue;
            }
            return -1;
        }
        if (c == '\n') {
            break;
        }
        line[n++] = c;
    }
    line[n] = '\0';
    return (int)n;
}

struct srv *
srv_start_in(const char *dir, const char *extra_config)
{
    static int registered;
    if (!registered) {
        atexit(exit_check);
        registered = 1;
    }
    struct srv *s = xcalloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(s->db, sizeof(s->db), "%s/consulate.db", dir);
    snprintf(s->config, sizeof(s->config), "%s/config.json", dir);
    snprintf(s->log, sizeof(s->log), "%s/server.log", dir);
    FILE *f = fopen(s->config, "w");
    if (!f) {
        free(s);
        return NULL;
    }
    char threads[32] = "";
    if (srv_threads > 0) {
        snprintf(threads, sizeof(threads), ",\"threads\":%d", srv_threads);
    }
    fprintf(f, "{\"listen\":\"127.0.0.1:0\",\"database\":\"%s\"%s%s%s}\n", s->db, threads,
            extra_config ? "," : "", extra_config ? extra_config : "");
    fclose(f);

    int out[2];
    if (pipe(out) != 0) {
        free(s);
        return NULL;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(out[1], 1);
        if (logfd >= 0) {
            dup2(logfd, 2);
        }
        close(out[0]);
        close(out[1]);
        execl(bin_path(), bin_path(), "serve", "--config", s->config, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    s->pid = pid;
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    int64_t deadline = time_mono_ms() + 30000;
    char line[512];
    while (read_line(out[0], line, sizeof(line), deadline) >= 0) {
        const char *pw = strstr(line, "with password: ");
        if (pw) {
            snprintf(s->admin_pw, sizeof(s->admin_pw), "%s", pw + 15);
        }
        const char *lis = strstr(line, "listening on http");
        if (lis) {
            const char *colon = strrchr(lis, ':');
            s->port = atoi(colon + 1);
            snprintf(s->base, sizeof(s->base), "%s://127.0.0.1:%d",
                     strstr(lis, "https://") ? "https" : "http", s->port);
            break;
        }
    }
    close(out[0]);
    if (!s->port) {
        fprintf(stderr, "harness: server did not start; log %s\n", s->log);
        char *log = file_read_all(s->log, 1 << 16, NULL);
        if (log) {
            fprintf(stderr, "%s\n", log);
            free(log);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        free(s);
        return NULL;
    }
    return s;
}

struct srv *
srv_start(const char *extra_config)
{
    char tmpl[] = "/tmp/consulate-test-XXXXXX";
    if (!mkdtemp(tmpl)) {
        return NULL;
    }
    struct srv *s = srv_start_in(tmpl, extra_config);
    if (!s) {
        nftw(tmpl, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    }
    return s;
}

void
srv_stop_keep(struct srv *s, int keep)
{
    if (!s) {
        return;
    }
    kill(s->pid, SIGTERM);
    int status;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            goto reaped;
        }
        usleep(10000);
    }
    fprintf(stderr, "harness: server did not stop within 10 s; killing\n");
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
reaped:
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* a crash, a sanitizer report or a hung shutdown fails the test binary */
        fprintf(stderr, "harness: the server exited with %s %d; its log %s:\n",
                WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), s->log);
        char *log = file_read_all(s->log, 1 << 20, NULL);
        if (log) {
            size_t len = strlen(log);
            fputs(len > 8000 ? log + len - 8000 : log, stderr);
            free(log);
        }
        server_failures++;
        keep = 1;
    }
    if (!keep && !getenv("KEEP_TEST_DIRS")) {
        nftw(s->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    }
    free(s);
}

void
srv_stop(struct srv *s)
{
    srv_stop_keep(s, 0);
}

int
run_cli(const char *const *args, const char *stdin_text, char **out)
{
    int in[2], o[2];
    if (pipe(in) || pipe(o)) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        dup2(o[1], 2);
        close(in[1]);
        close(o[0]);
        const char *argv[32];
        int n = 0;
        argv[n++] = bin_path();
        for (int i = 0; args[i] && n < 31; i++) {
            argv[n++] = args[i];
        }
        argv[n] = NULL;
        execv(bin_path(), (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    if (stdin_text) {
        ssize_t w = write(in[1], stdin_text, strlen(stdin_text));
        (void)w;
    }
    close(in[1]);
    struct buf b;
    buf_init(&b, 64 << 20);
    char chunk[4096];
    ssize_t n;
    while ((n = read(o[0], chunk, sizeof(chunk))) > 0) {
        buf_append(&b, chunk, (size_t)n);
    }
    close(o[0]);
    int status;
    waitpid(pid, &status, 0);
    if (out) {
        *out = buf_steal(&b);
    } else {
        buf_free(&b);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct client {
    struct srv *srv;
    CURL *curl;
    char csrf[128];
};

void
resp_free(struct resp *r)
{
    free(r->body);
    free(r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

char *
resp_header(const struct resp *r, const char *name)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            return xstrndup(v, ll - (size_t)(v - p));
        }
        p = eol ? eol + 2 : NULL;
    }
    return NULL;
}

const char *
resp_error_code(const struct resp *r)
{
    return json_get_str(cJSON_GetObjectItem(r->json, "error"), "code", "");
}

const char *
resp_error_message(const struct resp *r)
{
    return json_get_str(cJSON_GetObjectItem(r->json, "error"), "message", "");
}

const char *
resp_error_mismatch(const struct resp *r, long status, const char *code, const char *what)
{
    static __thread char why[1024];
    const char *c = resp_error_code(r);
    const char *msg = resp_error_message(r);
    if (r->status != status) {
        snprintf(why, sizeof(why), "status %ld, expected %ld: %.300s", r->status, status,
                 r->body ? r->body : "");
    } else if (strcmp(c, code) != 0) {
        snprintf(why, sizeof(why), "error code '%s', expected '%s' (%.300s)", c, code, msg);
    } else if (what && !strstr(msg, what)) {
        snprintf(why, sizeof(why), "message '%.300s' does not name '%s'", msg, what);
    } else {
        return NULL;
    }
    return why;
}

int
resp_is_error(const struct resp *r, long status, const char *code, const char *what)
{
    const char *why = resp_error_mismatch(r, status, code, what);
    if (why) {
        fprintf(stderr, "harness: %s\n", why);
    }
    return why == NULL;
}

struct client *
client_new(struct srv *s)
{
    struct client *c = xcalloc(1, sizeof(*c));
    c->srv = s;
    c->curl = curl_easy_init();
    curl_easy_setopt(c->curl, CURLOPT_COOKIEFILE, "");
    curl_easy_setopt(c->curl, CURLOPT_PATH_AS_IS, 1L);
    if (s->ca_file[0]) {
        curl_easy_setopt(c->curl, CURLOPT_CAINFO, s->ca_file);
    }
    return c;
}

void
client_free(struct client *c)
{
    if (c) {
        curl_easy_cleanup(c->curl);
        free(c);
    }
}

static size_t
collect(char *data, size_t size, size_t n, void *ud)
{
    buf_append(ud, data, size * n);
    return size * n;
}

struct resp
client_req_raw(struct client *c, const char *method, const char *path, const void *body,
               size_t len, const char *const *headers, int csrf)
{
    struct resp r = {0};
    struct buf b, h;
    buf_init(&b, 256 << 20);
    buf_init(&h, 1 << 20);
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", c->srv->base, path);
    CURL *cu = c->curl;
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        curl_easy_setopt(cu, CURLOPT_HTTPGET, strcmp(method, "GET") == 0 ? 1L : 0L);
        curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    }
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "Expect:");
    char csrfh[200];
    if (csrf && c->csrf[0]) {
        snprintf(csrfh, sizeof(csrfh), "X-CSRF-Token: %s", c->csrf);
        hl = curl_slist_append(hl, csrfh);
    }
    for (int i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
    }
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hl);
    CURLcode rc = curl_easy_perform(cu);
    curl_slist_free_all(hl);
    if (rc != CURLE_OK) {
        fprintf(stderr, "harness: %s %s: %s\n", method, path, curl_easy_strerror(rc));
        r.status = -1;
    } else {
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r.status);
    }
    r.len = b.len;
    r.body = buf_steal(&b);
    r.headers = buf_steal(&h);
    char *ct = resp_header(&r, "Content-Type");
    if (ct && strstr(ct, "json") && !strstr(ct, "ndjson")) {
        r.json = cJSON_ParseWithLength(r.body, r.len);
    }
    free(ct);
    return r;
}

struct resp
client_req(struct client *c, const char *method, const char *path, const char *body)
{
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    return client_req_raw(c, method, path, body, body ? strlen(body) : 0, json_ct, 1);
}

void
client_set_source(struct client *c, const char *ip)
{
    char opt[80];
    snprintf(opt, sizeof(opt), "host!%s", ip);
    curl_easy_setopt(c->curl, CURLOPT_INTERFACE, opt);
}

long
client_get_until(struct client *c, const char *path, long want, int timeout_ms,
                 int64_t *elapsed_ms)
{
    int64_t t0 = time_mono_ms();
    long st;
    for (;;) {
        struct resp r = client_req(c, "GET", path, NULL);
        st = r.status;
        resp_free(&r);
        if (st == want || time_mono_ms() - t0 >= timeout_ms) {
            break;
        }
        usleep(50000);
    }
    *elapsed_ms = time_mono_ms() - t0;
    return st;
}

void
client_set_csrf(struct client *c, const char *token)
{
    snprintf(c->csrf, sizeof(c->csrf), "%s", token ? token : "");
}

const char *
client_csrf(struct client *c)
{
    return c->csrf;
}

struct resp
client_login_resp(struct client *c, const char *user, const char *pw)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "username", user);
    cJSON_AddStringToObject(j, "password", pw);
    char *body = json_print(j);
    cJSON_Delete(j);
    struct resp r = client_req(c, "POST", "/api/session", body);
    free(body);
    if (r.status == 200 && r.json) {
        client_set_csrf(c, json_get_str(r.json, "csrf_token", ""));
    }
    return r;
}

long
client_login(struct client *c, const char *user, const char *pw)
{
    struct resp r = client_login_resp(c, user, pw);
    long st = r.status;
    resp_free(&r);
    return st;
}

struct client *
srv_login(struct srv *s, const char *name, const char *pw)
{
    struct client *c = client_new(s);
    if (client_login(c, name, pw) != 200) {
        client_free(c);
        return NULL;
    }
    return c;
}

long
srv_add_user(struct srv *s, const char *name, const char *role, const char *pw)
{
    struct client *admin = srv_login(s, "admin", s->admin_pw);
    if (!admin) {
        return -1;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "role", role);
    cJSON_AddStringToObject(j, "password", pw);
    char *body = json_print(j);
    cJSON_Delete(j);
    struct resp r = client_req(admin, "POST", "/api/users", body);
    free(body);
    long st = r.status;
    resp_free(&r);
    client_free(admin);
    return st;
}

long long
db_int(struct srv *s, const char *sql)
{
    sqlite3 *db;
    long long v = -1;
    if (sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW) {
                v = sqlite3_column_int64(st, 0);
            }
            sqlite3_finalize(st);
        } else {
            fprintf(stderr, "harness: sql %s: %s\n", sql, sqlite3_errmsg(db));
        }
    }
    sqlite3_close(db);
    return v;
}

long
db_count_audit(struct srv *s, const char *action, const char *outcome)
{
    sqlite3 *db;
    if (sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    long n = -1;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM audit_log WHERE substr(action, 1, length(?1)) = "
                           "?1 AND (?2 IS NULL OR outcome = ?2)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, action, -1, SQLITE_TRANSIENT);
        if (outcome) {
            sqlite3_bind_text(st, 2, outcome, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(st, 2);
        }
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

int
db_exec(struct srv *s, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open(s->db, &db) != SQLITE_OK) {
        fprintf(stderr, "harness: cannot open %s\n", s->db);
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    int rc = 0;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "harness: sql %s: %s\n", sql, err ? err : "?");
        sqlite3_free(err);
        rc = -1;
    }
    sqlite3_close(db);
    return rc;
}
