/* The packages (make dist, make deb) and the Dockerfile, checked as a site gets them.
 *
 * The bundle: extracted into a temporary directory, every object the binary and each library
 * in lib/ need must resolve, by the loader's own answer (the binary's PT_INTERP in --list
 * mode, as ldd runs it), inside the bundle or to glibc
 * (a file of Debian's libc6, asked of dpkg); then it serves with TLS (so that civetweb
 * dlopens lib/libssl.so, the shim) and admin logs in, and every shared object the running
 * server has mapped (/proc/PID/maps) is the bundle's or glibc's. install.sh into a staging
 * root: modes, the installed config accepted by the installed binary, a login, and a second
 * run that keeps the config, the audit key and the database. And both installed for real as
 * root (tests/dist/site.sh: user, owners, first admin, serve, upgrade, remove, purge) in a
 * private mount namespace over overlays, so that the machine is not changed.
 *
 * The .deb: fields, Depends against the libraries the binary and the shim need (dpkg -S),
 * conffiles, modes, maintainer scripts (sh -n), and the extracted binary run (version, serve,
 * login) with its shim found through the /usr/bin symlink.
 *
 * The Dockerfile: parsed (stages, packages, USER, VOLUME, HEALTHCHECK, EXPOSE); Docker itself
 * cannot run here. */
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

#include <cmocka.h>

#include "app.h"
#include "harness.h"
#include "util.h"

static char build_dir[4096]; /* the directory of $CONSULATE_BIN */
static char src_dir[4096];   /* $CONSULATE_SRC */
static char arch[32];        /* dpkg --print-architecture */
static char tmp_dir[64];     /* everything this test makes */
static char bundle[700];     /* the extracted bundle: tmp/consulate-VERSION */
static char debx[700];       /* the extracted .deb */
static char orig_bin[4096];  /* $CONSULATE_BIN as started */
static char interp[256];     /* the bundle binary's PT_INTERP: its loader */

/* Runs a shell command (printf-style); returns its exit status and, when out is not NULL,
 * its stdout (stderr goes to the test's stderr; caller frees). */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
sh(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct buf cmd;
    buf_init(&cmd, 1 << 16);
    buf_vprintf(&cmd, fmt, ap);
    va_end(ap);
    char *c = buf_steal(&cmd);
    FILE *p = popen(c, "r");
    free(c);
    if (!p) {
        return -1;
    }
    struct buf b;
    buf_init(&b, 16 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        buf_append(&b, chunk, n);
    }
    int st = pclose(p);
    char *text = buf_steal(&b);
    if (out) {
        *out = text ? text : xstrdup("");
    } else {
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static unsigned
mode_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return 07777 + 1; /* no such file: never a valid mode */
    }
    return (unsigned)(st.st_mode & 07777);
}

static char *
path_in(const char *dir, const char *rel)
{
    return xasprintf("%s/%s", dir, rel);
}

static char *glibc_files; /* "\n<path>\n<path>\n…" from dpkg -L libc6, /usr stripped */

/* A path as dpkg may know it on a merged /usr: resolved, without a leading /usr. */
static void
norm_path(const char *path, char *out, size_t cap)
{
    char real[4096];
    const char *p = realpath(path, real) ? real : path;
    if (str_starts_with(p, "/usr/")) {
        p += 4;
    }
    snprintf(out, cap, "%s", p);
}

/* 1 when path is a file of Debian's glibc package (libc6), by dpkg's own record. */
static int
is_glibc_file(const char *path)
{
    if (!glibc_files) {
        char *list = NULL;
        if (sh(&list, "dpkg -L libc6:%s", arch) != 0) {
            fail_msg("dpkg -L libc6:%s failed", arch);
        }
        struct buf b;
        buf_init(&b, 16 << 20);
        buf_puts(&b, "\n");
        char *save = NULL;
        for (char *l = strtok_r(list, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char n[4096];
            norm_path(l, n, sizeof(n));
            buf_printf(&b, "%s\n", n);
        }
        free(list);
        glibc_files = buf_steal(&b);
    }
    char n[4096], key[4200];
    norm_path(path, n, sizeof(n));
    snprintf(key, sizeof(key), "\n%s\n", n);
    return strstr(glibc_files, key) != NULL;
}

/* Checks ldd's lines (cmd's output): each "name => path" must be under inside/ or glibc's;
 * "not found" fails. Returns the number of problems (printed). */
static int
ldd_check(const char *what, const char *cmd, const char *inside)
{
    char *out = NULL;
    int rc = sh(&out, "%s", cmd);
    int problems = 0;
    if (rc != 0) {
        fprintf(stderr, "%s: `%s` exited %d\n", what, cmd, rc);
        problems++;
    }
    char *save = NULL;
    int resolved = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, "not found")) {
            fprintf(stderr, "%s: %s\n", what, line);
            problems++;
            continue;
        }
        char *arrow = strstr(line, " => /");
        if (!arrow) {
            continue; /* linux-vdso, the interpreter line */
        }
        char path[1024];
        if (sscanf(arrow + 4, "%1023s", path) != 1) {
            continue;
        }
        resolved++;
        if (str_starts_with(path, inside)) {
            continue;
        }
        if (!is_glibc_file(path)) {
            fprintf(stderr, "%s: needs %s from outside the bundle and not glibc's\n", what, path);
            problems++;
        }
    }
    if (resolved == 0) {
        fprintf(stderr, "%s: ldd resolved nothing\n", what);
        problems++;
    }
    free(out);
    return problems;
}

/* Every shared object pid has mapped must be under inside or glibc's (or, with
 * system_ok, anywhere but the build directory); each of must (NULL-terminated) must be among
 * them. Counts those under inside. Returns the problems (printed). */
static int
maps_check(pid_t pid, const char *inside, int system_ok, int *n_inside, const char *const *must)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    char *maps = file_read_all(path, 1 << 22, NULL);
    if (!maps) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    int problems = 0;
    unsigned have = 0;
    *n_inside = 0;
    char *save = NULL;
    char last[1024] = "";
    for (char *line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *file = strchr(line, '/');
        if (!file || !strstr(file, ".so") || strcmp(file, last) == 0) {
            continue;
        }
        snprintf(last, sizeof(last), "%s", file);
        for (unsigned i = 0; must[i]; i++) {
            if (strcmp(file, must[i]) == 0) {
                have |= 1u << i;
            }
        }
        if (inside && str_starts_with(file, inside)) {
            (*n_inside)++;
            continue;
        }
        const char *base = strrchr(file, '/') + 1;
        if (str_starts_with(base, "libnss_") && !str_starts_with(file, build_dir)) {
            continue; /* glibc loads the machine's NSS modules (its nsswitch.conf), not ours */
        }
        if (str_starts_with(file, build_dir) || (!system_ok && !is_glibc_file(file))) {
            fprintf(stderr, "server %d maps %s: neither the package's nor %s\n", (int)pid, file,
                    system_ok ? "the system's" : "glibc's");
            problems++;
        }
    }
    for (unsigned i = 0; must[i]; i++) {
        if (!(have & (1u << i))) {
            fprintf(stderr, "server %d does not map %s\n", (int)pid, must[i]);
            problems++;
        }
    }
    free(maps);
    return problems;
}

/* Makes a self-signed certificate (cert + key in one PEM at pem, cert alone at crt). */
static int
make_cert(const char *pem, const char *crt)
{
    return sh(NULL,
              "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
              "-addext subjectAltName=IP:127.0.0.1 -keyout %s.key -out %s >/dev/null 2>&1 "
              "&& cat %s %s.key > %s",
              pem, crt, crt, pem, pem);
}

/* Serves binary with TLS, logs in as the bootstrap admin, then checks the server's maps
 * (see maps_check): both OpenSSL shims in libdir must be the ones civetweb loaded. */
static void
serve_login_maps(const char *binary, const char *inside, int system_ok, const char *libdir)
{
    char *pem = path_in(tmp_dir, "server.pem"), *crt = path_in(tmp_dir, "cert.pem");
    assert_int_equal(make_cert(pem, crt), 0);
    setenv("CONSULATE_BIN", binary, 1);
    char *cfg = xasprintf("\"tls\":{\"certificate\":\"%s\"}", pem);
    struct srv *s = srv_start(cfg);
    free(cfg);
    setenv("CONSULATE_BIN", orig_bin, 1);
    assert_non_null(s);
    snprintf(s->ca_file, sizeof(s->ca_file), "%s", crt);
    assert_true(str_starts_with(s->base, "https://"));
    assert_true(s->admin_pw[0] != '\0');
    struct client *c = client_new(s);
    assert_int_equal(client_login(c, "admin", s->admin_pw), 200);
    struct resp r = client_req(c, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);
    int n_inside = 0;
    char *ssl = path_in(libdir, "libssl.so"), *crypto = path_in(libdir, "libcrypto.so");
    const char *must[] = {ssl, crypto, NULL};
    assert_int_equal(maps_check(s->pid, inside, system_ok, &n_inside, must), 0);
    free(ssl);
    free(crypto);
    assert_true(n_inside >= 1);
    srv_stop(s);
    free(pem);
    free(crt);
}

static int
group_setup(void **state)
{
    (void)state;
    const char *bin = getenv("CONSULATE_BIN");
    if (!bin) {
        bin = "build/consulate";
    }
    char real[4096];
    if (!realpath(bin, real)) {
        fprintf(stderr, "test_dist: %s: no such binary\n", bin);
        return -1;
    }
    snprintf(orig_bin, sizeof(orig_bin), "%s", real);
    char *slash = strrchr(real, '/');
    *slash = '\0';
    snprintf(build_dir, sizeof(build_dir), "%s", real);
    const char *src = getenv("CONSULATE_SRC");
    if (!realpath(src ? src : ".", real)) {
        return -1;
    }
    snprintf(src_dir, sizeof(src_dir), "%s", real);
    char *a = NULL;
    if (sh(&a, "dpkg --print-architecture") != 0) {
        free(a);
        return -1;
    }
    a[strcspn(a, "\n")] = '\0';
    snprintf(arch, sizeof(arch), "%s", a);
    free(a);
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/consulate-dist-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        return -1;
    }
    /* Extract both packages once. */
    snprintf(bundle, sizeof(bundle), "%s/consulate-%s", tmp_dir, CONSULATE_VERSION);
    snprintf(debx, sizeof(debx), "%s/deb", tmp_dir);
    if (sh(NULL, "tar -xzf %s/dist/consulate-%s-linux-%s.tar.gz -C %s", build_dir,
           CONSULATE_VERSION, arch, tmp_dir) != 0) {
        fprintf(stderr, "test_dist: the bundle is missing or broken: run make dist\n");
        return -1;
    }
    if (sh(NULL, "dpkg-deb -x %s/consulate_%s_%s.deb %s", build_dir, CONSULATE_VERSION, arch,
           debx) != 0) {
        fprintf(stderr, "test_dist: the .deb is missing or broken: run make deb\n");
        return -1;
    }
    /* The loader the binary names (what ldd runs, without ldd's shell script around it) */
    char *in = NULL;
    if (sh(&in, "readelf -l %s/consulate | sed -n 's/.*program interpreter: \\(.*\\)\\]$/\\1/p'",
           bundle) != 0 ||
        in[0] != '/') {
        fprintf(stderr, "test_dist: the bundle's binary names no loader\n");
        free(in);
        return -1;
    }
    in[strcspn(in, "\n")] = '\0';
    snprintf(interp, sizeof(interp), "%s", in);
    free(in);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    free(glibc_files);
    if (tmp_dir[0] && !getenv("KEEP_TEST_DIRS")) {
        sh(NULL, "rm -rf %s", tmp_dir);
    }
    return 0;
}

/* ---- the bundle ---- */

static void
test_bundle_layout(void **state)
{
    (void)state;
    /* one top directory, owned by root in the archive */
    char *list = NULL;
    assert_int_equal(sh(&list, "tar -tvzf %s/dist/consulate-%s-linux-%s.tar.gz", build_dir,
                        CONSULATE_VERSION, arch),
                     0);
    char *top = xasprintf(" consulate-%s/", CONSULATE_VERSION);
    char *save = NULL;
    int entries = 0;
    for (char *l = strtok_r(list, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        entries++;
        assert_non_null(strstr(l, top));
        assert_non_null(strstr(l, " 0/0 "));
    }
    assert_true(entries > 10);
    free(top);
    free(list);

    struct {
        const char *rel;
        unsigned mode;
    } want[] = {
        {"consulate", 0755},           {"install.sh", 0755},         {"consulate.service", 0644},
        {"config.example.json", 0644}, {"lib/libssl.so", 0644},      {"lib/libssl.so.3", 0644},
        {"lib/libcrypto.so", 0644},    {"lib/libcrypto.so.3", 0644}, {"lib/libcivetweb.so.1", 0644},
        {"lib/libcurl.so.4", 0644},    {"lib/libssh2.so.1", 0644},   {"lib/libsqlite3.so.0", 0644},
        {"lib/libsodium.so.23", 0644}, {"lib/libyaml-0.so.2", 0644}, {"lib/libcjson.so.1", 0644},
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        char *p = path_in(bundle, want[i].rel);
        if (mode_of(p) != want[i].mode) {
            fail_msg("%s: mode %o, want %o", want[i].rel, mode_of(p), want[i].mode);
        }
        free(p);
    }
    /* glibc is never bundled: it must match the machine's loader */
    const char *never[] = {"lib/libc.so.6", "lib/libm.so.6", "lib/ld-linux-x86-64.so.2",
                           "lib/libpthread.so.0", "lib/libresolv.so.2"};
    for (size_t i = 0; i < ARRAY_LEN(never); i++) {
        char *p = path_in(bundle, never[i]);
        assert_int_not_equal(access(p, F_OK), 0);
        free(p);
    }
    /* the shims are the build's, byte for byte */
    assert_int_equal(sh(NULL, "cmp -s %s/lib/libssl.so %s/lib/libssl.so", build_dir, bundle), 0);
    assert_int_equal(sh(NULL, "cmp -s %s/lib/libcrypto.so %s/lib/libcrypto.so", build_dir, bundle),
                     0);
    assert_int_equal(sh(NULL, "cmp -s %s/consulate %s/consulate", build_dir, bundle), 0);

    /* the example config is the packaging one and the unit is hardened */
    assert_int_equal(
        sh(NULL, "cmp -s %s/packaging/config.example.json %s/config.example.json", src_dir, bundle),
        0);
    char *unit_path = path_in(bundle, "consulate.service");
    char *unit = file_read_all(unit_path, 1 << 16, NULL);
    assert_non_null(unit);
    const char *lines[] = {"\nUser=consulate\n",
                           "\nExecStart=/opt/consulate/consulate serve --config "
                           "/etc/consulate/config.json\n",
                           "\nNoNewPrivileges=yes\n",
                           "\nProtectSystem=strict\n",
                           "\nReadWritePaths=/var/lib/consulate\n",
                           "\nPrivateTmp=yes\n",
                           "\nProtectHome=yes\n",
                           "\nCapabilityBoundingSet=\n",
                           "\nWantedBy=multi-user.target\n"};
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        if (!strstr(unit, lines[i])) {
            fail_msg("consulate.service lacks the line %s", lines[i] + 1);
        }
    }
    free(unit);
    free(unit_path);
}

/* systemd's own check of the unit (unknown keys, bad values), with ExecStart pointing at the
 * extracted binary since /opt/consulate does not exist here. */
static void
test_bundle_unit_verifies(void **state)
{
    (void)state;
    if (sh(NULL, "command -v systemd-analyze >/dev/null") != 0) {
        skip();
    }
    char *out = NULL;
    int rc = sh(&out,
                "d=%s/unit && mkdir -p $d && sed 's|^ExecStart=/opt/consulate/consulate|"
                "ExecStart=%s/consulate|' %s/consulate.service > $d/consulate.service && "
                "systemd-analyze verify $d/consulate.service 2>&1",
                tmp_dir, bundle, bundle);
    if (rc != 0 || out[0] != '\0') {
        fail_msg("systemd-analyze verify: exit %d: %s", rc, out);
    }
    free(out);
}

static void
test_bundle_needs_nothing_but_glibc(void **state)
{
    (void)state;
    char *inside = xasprintf("%s/lib/", bundle);
    char *cmd = xasprintf("%s --list %s/consulate", interp, bundle);
    assert_int_equal(ldd_check("consulate", cmd, inside), 0);
    free(cmd);
    /* every library, with lib/ first as the binary's DT_RPATH makes it for them (also for
     * the shim civetweb dlopens) */
    char *libs = NULL;
    assert_int_equal(sh(&libs, "ls %s/lib", bundle), 0);
    char *save = NULL;
    int n = 0;
    for (char *l = strtok_r(libs, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cmd = xasprintf("%s --library-path %s/lib --list %s/lib/%s", interp, bundle, bundle, l);
        assert_int_equal(ldd_check(l, cmd, inside), 0);
        free(cmd);
        /* a DT_RUNPATH would make its needs skip the binary's RPATH */
        assert_int_not_equal(sh(NULL, "readelf -d %s/lib/%s | grep -q RUNPATH", bundle, l), 0);
        n++;
    }
    assert_true(n >= 10);
    free(libs);
    free(inside);
}

static void
test_bundle_serves_and_logs_in(void **state)
{
    (void)state;
    char *binary = path_in(bundle, "consulate");
    char *inside = xasprintf("%s/", bundle);
    char *shim = path_in(bundle, "lib");
    serve_login_maps(binary, inside, 0, shim);
    free(shim);
    free(inside);
    free(binary);
}

/* Starts `binary serve` with the given config and db (listen 127.0.0.1:0 from the
 * environment); fills s (pid, port, base); 0 or -1. */
static int
serve_installed(struct srv *s, const char *binary, const char *config, const char *db)
{
    snprintf(s->log, sizeof(s->log), "%s/installed.log", tmp_dir);
    int out[2];
    if (pipe(out) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(out[1], 1);
        if (logfd >= 0) {
            dup2(logfd, 2);
        }
        close(out[0]);
        close(out[1]);
        setenv("CONSULATE_LISTEN", "127.0.0.1:0", 1);
        execl(binary, binary, "serve", "--config", config, "--db", db, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    s->pid = pid;
    FILE *f = fdopen(out[0], "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        const char *lis = strstr(line, "listening on http://");
        if (lis) {
            s->port = atoi(strrchr(lis, ':') + 1);
            snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return s->port ? 0 : -1;
}

static void
test_install_sh(void **state)
{
    (void)state;
    char *root = path_in(tmp_dir, "root");
    char *out = NULL;
    assert_int_equal(sh(&out, "%s/install.sh --prefix %s 2>&1", bundle, root), 0);
    assert_non_null(strstr(out, "wrote"));
    assert_non_null(strstr(out, "Next steps"));
    free(out);

    struct {
        const char *rel;
        unsigned mode;
    } want[] = {
        {"opt/consulate/consulate", 0755},
        {"opt/consulate/lib/libssl.so", 0644},
        {"opt/consulate/lib/libcrypto.so.3", 0644},
        {"etc/consulate", 0750},
        {"etc/consulate/config.json", 0640},
        {"etc/consulate/audit.key", 0600},
        {"var/lib/consulate", 0700},
        {"etc/systemd/system/consulate.service", 0644},
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        char *p = path_in(root, want[i].rel);
        if (mode_of(p) != want[i].mode) {
            fail_msg("%s: mode %o, want %o", want[i].rel, mode_of(p), want[i].mode);
        }
        free(p);
    }
    char *config = path_in(root, "etc/consulate/config.json");
    char *key = path_in(root, "etc/consulate/audit.key");
    char *db = path_in(root, "var/lib/consulate/consulate.db");
    char *binary = path_in(root, "opt/consulate/consulate");
    size_t keylen = 0;
    char *k = file_read_all(key, 1024, &keylen);
    assert_int_equal(keylen, 32);
    free(k);
    assert_int_equal(sh(NULL, "cmp -s %s/packaging/config.example.json %s", src_dir, config), 0);

    /* The site's flow with the installed config: the first administrator from the command
     * line (the example config creates none by itself), then serve and log in. The audit
     * key is the one install.sh made (the config's directory), the anchor beside the db. */
    setenv("CONSULATE_BIN", binary, 1);
    const char *add[] = {"--config", config,  "--db",   db,      "user",
                         "add",      "admin", "--role", "admin", "--password-stdin",
                         NULL};
    char *cli = NULL;
    int rc = run_cli(add, "site-password-1234\n", &cli);
    setenv("CONSULATE_BIN", orig_bin, 1);
    if (rc != 0) {
        fail_msg("user add with the installed config: exit %d: %s", rc, cli);
    }
    free(cli);
    struct srv *s = xcalloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", tmp_dir);
    assert_int_equal(serve_installed(s, binary, config, db), 0);
    struct client *c = client_new(s);
    assert_int_equal(client_login(c, "admin", "site-password-1234"), 200);
    client_free(c);
    srv_stop_keep(s, 1);
    assert_int_equal(mode_of(db), 0600);
    char *anchor = xasprintf("%s.audit-anchor", db);
    assert_int_equal(mode_of(anchor), 0600);

    /* A second run (an upgrade) keeps the site's config, key and database byte for byte. */
    assert_int_equal(sh(NULL, "printf ' \\n' >> %s", config), 0);
    const char *kept[] = {config, key, db, anchor};
    for (size_t i = 0; i < ARRAY_LEN(kept); i++) {
        assert_int_equal(sh(NULL, "cp -p %s %s.before", kept[i], kept[i]), 0);
    }
    assert_int_equal(sh(&out, "%s/install.sh --prefix %s 2>&1", bundle, root), 0);
    assert_non_null(strstr(out, "kept the existing"));
    assert_null(strstr(out, "wrote"));
    assert_null(strstr(out, "made a new audit key"));
    free(out);
    for (size_t i = 0; i < ARRAY_LEN(kept); i++) {
        if (sh(NULL, "cmp -s %s %s.before", kept[i], kept[i]) != 0) {
            fail_msg("the second install.sh changed %s", kept[i]);
        }
    }
    assert_int_equal(mode_of(config), 0640);
    assert_int_equal(mode_of(key), 0600);
    assert_int_equal(mode_of(db), 0600);
    /* and the data still works with the upgraded binary */
    setenv("CONSULATE_BIN", binary, 1);
    const char *verify[] = {"--config", config, "--db", db, "audit", "verify", NULL};
    rc = run_cli(verify, NULL, &cli);
    setenv("CONSULATE_BIN", orig_bin, 1);
    if (rc != 0) {
        fail_msg("audit verify after the second install: exit %d: %s", rc, cli);
    }
    free(cli);

    /* An unknown option is refused and changes nothing. */
    assert_int_equal(sh(NULL, "%s/install.sh --bogus >/dev/null 2>&1", bundle), 2);

    free(anchor);
    free(config);
    free(key);
    free(db);
    free(binary);
    free(root);
}

/* Runs tests/dist/site.sh (a real install as root in a private mount namespace over
 * overlays: the machine is not changed); skips where it cannot make one. */
static void
site_install(const char *mode, const char *what)
{
    char *out = NULL;
    int rc = sh(&out, "%s/tests/dist/site.sh %s %s 2>&1", src_dir, mode, what);
    if (rc == 77) {
        fprintf(stderr, "%s", out);
        free(out);
        skip();
    }
    if (rc != 0) {
        fail_msg("tests/dist/site.sh %s: exit %d:\n%s", mode, rc, out);
    }
    free(out);
}

static void
test_bundle_site_install(void **state)
{
    (void)state;
    site_install("bundle", bundle);
}

/* ---- the .deb ---- */

static char *
deb_path(void)
{
    return xasprintf("%s/consulate_%s_%s.deb", build_dir, CONSULATE_VERSION, arch);
}

static char *
deb_field(const char *field)
{
    char *deb = deb_path();
    char *out = NULL;
    int rc = sh(&out, "dpkg-deb --field %s %s", deb, field);
    free(deb);
    assert_int_equal(rc, 0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* 1 when the Depends list names package p (as a whole name). */
static int
depends_on(const char *depends, const char *p)
{
    size_t n = strlen(p);
    for (const char *s = depends; (s = strstr(s, p)) != NULL; s += n) {
        int start = s == depends || s[-1] == ' ' || s[-1] == ',';
        int end = s[n] == '\0' || s[n] == ',' || s[n] == ' ';
        if (start && end) {
            return 1;
        }
    }
    return 0;
}

static void
test_deb_fields_and_depends(void **state)
{
    (void)state;
    char *v = deb_field("Package");
    assert_string_equal(v, "consulate");
    free(v);
    v = deb_field("Version");
    assert_string_equal(v, CONSULATE_VERSION);
    free(v);
    v = deb_field("Architecture");
    assert_string_equal(v, arch);
    free(v);
    v = deb_field("Maintainer");
    assert_true(v[0] != '\0');
    free(v);
    char *dep = deb_field("Depends");
    assert_true(depends_on(dep, "libc6"));
    /* the one list: every runtime-deps.txt package, and nothing with -dev */
    char *list = NULL;
    assert_int_equal(
        sh(&list, "grep -v '^[[:space:]]*#' %s/packaging/runtime-deps.txt | awk 'NF {print $1}'",
           src_dir),
        0);
    char *save = NULL;
    int n = 0;
    for (char *p = strtok_r(list, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        if (!depends_on(dep, p)) {
            fail_msg("Depends (%s) lacks %s from runtime-deps.txt", dep, p);
        }
        /* a real Debian 12 package (installed here, as the -dev packages pull it in) */
        if (sh(NULL, "dpkg-query -W -f='${db:Status-Status}' %s 2>/dev/null | grep -qx installed",
               p) != 0) {
            fail_msg("runtime-deps.txt names %s, which is no package installed here", p);
        }
        n++;
    }
    assert_true(n >= 8);
    assert_null(strstr(dep, "-dev"));
    free(list);
    /* and the list is right: the package of every library the binary and the shims need
     * (DT_NEEDED), by dpkg's record, is in Depends */
    char *needed = NULL;
    assert_int_equal(sh(&needed,
                        "readelf -d %s/usr/lib/consulate/consulate "
                        "%s/usr/lib/consulate/lib/libssl.so %s/usr/lib/consulate/lib/libcrypto.so "
                        "| sed -n 's/.*(NEEDED).*\\[\\(.*\\)\\]/\\1/p' | sort -u",
                        debx, debx, debx),
                     0);
    save = NULL;
    int libs = 0;
    for (char *so = strtok_r(needed, "\n", &save); so; so = strtok_r(NULL, "\n", &save)) {
        if (str_starts_with(so, "libasan.") || str_starts_with(so, "libubsan.") ||
            str_starts_with(so, "liblsan.") || str_starts_with(so, "libtsan.")) {
            continue; /* make SANITIZE=…: the sanitizers' runtime, not the product's */
        }
        char *owner = NULL;
        int rc = sh(&owner,
                    "dpkg -S '*/%s' | grep -v -e '-i386' -e ':i386' | head -1 | cut -d: -f1", so);
        owner[strcspn(owner, "\n")] = '\0';
        if (rc != 0 || owner[0] == '\0') {
            fail_msg("no Debian package holds %s", so);
        }
        if (!depends_on(dep, owner)) {
            fail_msg("the binary needs %s from %s, which Depends (%s) lacks", so, owner, dep);
        }
        free(owner);
        libs++;
    }
    assert_true(libs >= 8);
    free(needed);
    free(dep);
}

static void
test_deb_control_files(void **state)
{
    (void)state;
    char *deb = deb_path();
    char *ctl = path_in(tmp_dir, "DEBIAN");
    assert_int_equal(sh(NULL, "dpkg-deb -e %s %s", deb, ctl), 0);
    char *p = path_in(ctl, "conffiles");
    char *conffiles = file_read_all(p, 4096, NULL);
    assert_non_null(conffiles);
    assert_string_equal(conffiles, "/etc/consulate/config.json\n");
    free(conffiles);
    free(p);
    const char *scripts[] = {"postinst", "prerm", "postrm"};
    for (size_t i = 0; i < ARRAY_LEN(scripts); i++) {
        p = path_in(ctl, scripts[i]);
        assert_int_equal(mode_of(p), 0755);
        if (sh(NULL, "sh -n %s", p) != 0) {
            fail_msg("%s is not valid sh", scripts[i]);
        }
        free(p);
    }
    /* the user in postinst, purge in postrm */
    assert_int_equal(sh(NULL, "grep -q 'useradd --system' %s/postinst", ctl), 0);
    assert_int_equal(sh(NULL, "grep -q '^purge)' %s/postrm", ctl), 0);

    /* the files: owners, modes, the symlink, the unit */
    char *contents = NULL;
    char *listing = path_in(tmp_dir, "deb-contents.txt");
    assert_int_equal(sh(NULL, "dpkg-deb --contents %s > %s", deb, listing), 0);
    assert_int_equal(sh(&contents, "cat %s", listing), 0);
    const char *want[] = {
        "-rwxr-xr-x root/root .* ./usr/lib/consulate/consulate$",
        "-rw-r--r-- root/root .* ./usr/lib/consulate/lib/libssl.so$",
        "-rw-r--r-- root/root .* ./usr/lib/consulate/lib/libcrypto.so$",
        "lrwxrwxrwx root/root .* ./usr/bin/consulate -> ../lib/consulate/consulate$",
        "-rw-r--r-- root/root .* ./lib/systemd/system/consulate.service$",
        "-rw-r----- root/root .* ./etc/consulate/config.json$",
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        if (sh(NULL, "grep -q -e '%s' %s", want[i], listing) != 0) {
            fail_msg("the .deb lacks %s:\n%s", want[i], contents);
        }
    }
    /* owned by root throughout, and no bundled copy of Debian's libraries */
    assert_int_equal(sh(NULL, "grep -v ' root/root ' %s | grep -q .", listing), 1);
    assert_int_equal(sh(NULL, "grep -q -e libssl.so.3 -e libcrypto.so.3 -e libcurl %s", listing),
                     1);
    free(contents);
    free(listing);
    assert_int_equal(sh(NULL,
                        "cmp -s %s/packaging/config.example.json %s/etc/consulate/config.json",
                        src_dir, debx),
                     0);
    assert_int_equal(sh(NULL,
                        "grep -qx 'ExecStart=/usr/bin/consulate serve --config "
                        "/etc/consulate/config.json' %s/lib/systemd/system/consulate.service",
                        debx),
                     0);
    free(ctl);
    free(deb);
}

static void
test_deb_binary_runs(void **state)
{
    (void)state;
    char *binary = path_in(debx, "usr/bin/consulate");
    char *out = NULL;
    assert_int_equal(sh(&out, "%s version", binary), 0);
    assert_non_null(strstr(out, CONSULATE_VERSION));
    free(out);
    /* Serving with TLS: the shim comes from the package's /usr/lib/consulate/lib through the
     * symlink ($ORIGIN is the real directory); the rest from the system. */
    char *shim = path_in(debx, "usr/lib/consulate/lib");
    char *inside = xasprintf("%s/", debx);
    serve_login_maps(binary, inside, 1, shim);
    free(inside);
    free(shim);
    free(binary);
}

static void
test_deb_site_install(void **state)
{
    (void)state;
    char *deb = deb_path();
    site_install("deb", deb);
    free(deb);
}

/* ---- the Dockerfile (Docker cannot run here) ---- */

static void
test_dockerfile(void **state)
{
    (void)state;
    char *path = path_in(src_dir, "Dockerfile");
    char *text = file_read_all(path, 1 << 20, NULL);
    assert_non_null(text);
    /* join continuation lines, drop comments: one instruction per line */
    struct buf b;
    buf_init(&b, 1 << 20);
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        while (*l == ' ') {
            l++;
        }
        if (*l == '#' || *l == '\0') {
            continue;
        }
        size_t n = strlen(l);
        if (n && l[n - 1] == '\\') {
            buf_append(&b, l, n - 1);
            buf_puts(&b, " ");
        } else {
            buf_puts(&b, l);
            buf_puts(&b, "\n");
        }
    }
    char *ins = buf_steal(&b);
    free(text);
    /* stages */
    char *build = strstr(ins, "FROM debian:12-slim AS build\n");
    assert_non_null(build);
    char *runtime = strstr(build + 1, "FROM debian:12-slim AS runtime\n");
    assert_non_null(runtime);
    assert_null(strstr(runtime + 1, "\nFROM "));
    *runtime = '\0'; /* build is now the build stage alone */
    char *rt = runtime + 1;
    /* build: deps.txt without the test packages, then make */
    assert_non_null(strstr(build, "COPY deps.txt"));
    assert_non_null(strstr(build, "awk 'NF == 1 {print $1}'")); /* no test-only package */
    /* make, with the commit from the build argument (checked to be hex or "unknown") */
    assert_non_null(strstr(build, "\nARG CONSULATE_COMMIT=unknown\n"));
    assert_non_null(strstr(build, "''|*[!0-9a-f]*) echo"));
    assert_non_null(strstr(build, "&& make GIT_COMMIT=\"$CONSULATE_COMMIT\"\n"));
    /* runtime: runtime-deps.txt, no -dev packages, the build's binary and shim */
    assert_non_null(strstr(rt, "COPY packaging/runtime-deps.txt"));
    assert_null(strstr(rt, "COPY deps.txt"));
    assert_null(strstr(rt, "-dev"));
    assert_non_null(
        strstr(rt, "COPY --from=build /src/build/consulate /usr/lib/consulate/consulate"));
    assert_non_null(
        strstr(rt, "COPY --from=build /src/build/lib/libssl.so /usr/lib/consulate/lib/libssl.so"));
    assert_non_null(strstr(
        rt, "COPY --from=build /src/build/lib/libcrypto.so /usr/lib/consulate/lib/libcrypto.so"));
    assert_non_null(strstr(rt, "COPY packaging/docker-config.json /etc/consulate/config.json"));
    /* a non-root USER, created in the image */
    char *user = strstr(rt, "\nUSER ");
    assert_non_null(user);
    char uid[64] = "";
    sscanf(user + 6, "%63[^: \n]", uid);
    assert_true(uid[0] != '\0');
    assert_string_not_equal(uid, "root");
    assert_string_not_equal(uid, "0");
    char *made = xasprintf("--uid %s ", uid);
    assert_non_null(strstr(rt, made));
    free(made);
    assert_non_null(strstr(rt, "\nVOLUME [\"/var/lib/consulate\""));
    assert_non_null(strstr(rt, "\nEXPOSE 8080\n"));
    char *hc = strstr(rt, "\nHEALTHCHECK ");
    assert_non_null(hc);
    assert_non_null(strstr(hc, "CMD curl "));
    assert_non_null(strstr(hc, "http://127.0.0.1:8080/healthz"));
    /* the health check's tool is installed in the runtime stage */
    assert_non_null(strstr(rt, "echo curl;"));
    assert_non_null(strstr(rt, "ENTRYPOINT [\"consulate\"]"));
    assert_non_null(strstr(rt, "ENV CONSULATE_CONFIG=/etc/consulate/config.json"));
    free(ins);
    free(path);

    /* The image's default config: valid for this binary, all interfaces (inside the
     * container), port 8080 as EXPOSE and HEALTHCHECK say. */
    char *cfgp = path_in(src_dir, "packaging/docker-config.json");
    char *cfg = file_read_all(cfgp, 1 << 16, NULL);
    assert_non_null(cfg);
    cJSON *j = cJSON_Parse(cfg);
    assert_non_null(j);
    assert_string_equal(json_get_str(j, "listen", ""), "0.0.0.0:8080");
    assert_true(str_starts_with(json_get_str(j, "database", ""), "/var/lib/consulate/"));
    cJSON_Delete(j);
    free(cfg);
    char *db = path_in(tmp_dir, "docker-config.db");
    const char *list[] = {"--config", cfgp, "--db", db, "user", "list", NULL};
    char *out = NULL;
    int rc = run_cli(list, NULL, &out);
    if (rc != 0) {
        fail_msg("the image's config is refused: exit %d: %s", rc, out);
    }
    free(out);
    free(db);
    free(cfgp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bundle_layout),
        cmocka_unit_test(test_bundle_unit_verifies),
        cmocka_unit_test(test_bundle_needs_nothing_but_glibc),
        cmocka_unit_test(test_bundle_serves_and_logs_in),
        cmocka_unit_test(test_install_sh),
        cmocka_unit_test(test_bundle_site_install),
        cmocka_unit_test(test_deb_fields_and_depends),
        cmocka_unit_test(test_deb_control_files),
        cmocka_unit_test(test_deb_binary_runs),
        cmocka_unit_test(test_deb_site_install),
        cmocka_unit_test(test_dockerfile),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
