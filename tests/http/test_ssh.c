/* Tests of the libssh2 runner (server/ssh.c) against real OpenSSH servers started by
 * tests/nodes/sshd.c on 127.0.0.x: host key probe and pinning (unknown, changed, changed to
 * another type), authentication failures and key file checks, exec streaming, exit statuses
 * and signals, timeout and cancellation that really end the remote process, atomic file
 * writes (interrupted, and read while being replaced), size limits, five nodes in parallel,
 * the connect timeout against a blackhole, and hostile values through the quoting. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../nodes/sshd.h"
#include "ssh.h"
#include "util.h"

#define PASSPHRASE "correct-horse-battery-9"

struct fx {
    char dir[256];       /* client keys and scratch files */
    char key[320];       /* authorized, no passphrase */
    char key_pass[320];  /* authorized, encrypted with PASSPHRASE */
    char key_other[320]; /* not authorized */
    struct sshd_node node;
    struct sshd_fp fp;
};

static struct fx *F;

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/consulate-ssh-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    snprintf(f->key, sizeof(f->key), "%s/id_ed25519", f->dir);
    snprintf(f->key_pass, sizeof(f->key_pass), "%s/id_pass", f->dir);
    snprintf(f->key_other, sizeof(f->key_other), "%s/id_other", f->dir);
    char pub[400];
    snprintf(pub, sizeof(pub), "%s.pub", f->key);
    if (sshd_keygen(f->key, "ed25519", NULL) != 0 ||
        sshd_keygen(f->key_pass, "ed25519", PASSPHRASE) != 0 ||
        sshd_keygen(f->key_other, "ed25519", NULL) != 0) {
        return -1;
    }
    struct sshd_opts o = {.addr = "127.0.0.21", .authorized_key = pub};
    if (sshd_start(&f->node, &o) != 0 || sshd_fingerprint(f->node.host_key_pub, &f->fp) != 0) {
        return -1;
    }
    /* the passphrase key may log in too */
    char pass_pub[400], *line = NULL;
    snprintf(pass_pub, sizeof(pass_pub), "%s.pub", f->key_pass);
    line = file_read_all(pass_pub, 16384, NULL);
    FILE *ak = fopen(f->node.authorized_keys, "a");
    if (!line || !ak) {
        return -1;
    }
    fputs(line, ak);
    fclose(ak);
    free(line);
    F = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    sshd_stop(&f->node);
    const char *argv[] = {"rm", "-rf", f->dir, NULL};
    sshd_run(argv, NULL);
    free(f);
    return 0;
}

/* A target for node n with the fixture's key, pinned to fp (NULL = no pin). */
static struct ssh_target
target(const struct sshd_node *n, const char *key, const struct sshd_fp *fp)
{
    return (struct ssh_target){
        .host = n->addr,
        .port = (uint16_t)n->port,
        .user = "root",
        .key_path = key,
        .host_key_type = fp ? fp->type : NULL,
        .host_key_fingerprint = fp ? fp->fingerprint : NULL,
    };
}

static struct ssh_conn *
connect_ok(const struct sshd_node *n, const struct sshd_fp *fp)
{
    struct ssh_target t = target(n, F->key, fp);
    struct ssh_conn *c = NULL;
    struct ssh_error err;
    int rc = ssh_connect(&t, &c, &err);
    if (rc != SSH_OK) {
        fprintf(stderr, "connect: %s (%s)\n", err.message, ssh_rc_name(rc));
    }
    assert_int_equal(rc, SSH_OK);
    assert_non_null(c);
    return c;
}

/* Builds a command from argv; fails the test when the builder refuses. */
static void
build(struct sh_cmd *cmd, const struct sh_arg *argv, size_t argc)
{
    sh_cmd_init(cmd);
    struct sh_error e;
    assert_int_equal(sh_cmd_add(cmd, argv, argc, &e), SH_OK);
}

/* Runs `sh -c script` (script is a value, quoted by the builder). */
static int
run_sh(struct ssh_conn *c, const char *script, const struct ssh_exec_opts *o,
       struct ssh_exec_result *res, struct ssh_error *err)
{
    struct sh_cmd cmd;
    struct sh_arg argv[] = {SH_W("sh"), SH_W("-c"), SH_V(script)};
    build(&cmd, argv, ARRAY_LEN(argv));
    int rc = ssh_exec(c, &cmd, o, res, err);
    if (rc != SSH_OK) {
        fprintf(stderr, "exec: %s (%s)\n", err->message, ssh_rc_name(rc));
    }
    sh_cmd_free(&cmd);
    return rc;
}

/* ------------------------------------------------------------------ host keys */

static void
check_probe(const struct sshd_node *n)
{
    struct sshd_fp want;
    assert_int_equal(sshd_fingerprint(n->host_key_pub, &want), 0);
    struct ssh_host_key k;
    struct ssh_error err;
    int rc = ssh_probe(n->addr, (uint16_t)n->port, NULL, 0, &k, &err);
    if (rc != SSH_OK) {
        fprintf(stderr, "probe: %s\n", err.message);
    }
    assert_int_equal(rc, SSH_OK);
    assert_string_equal(k.fingerprint, want.fingerprint);
    assert_string_equal(k.type, want.type);
    assert_int_equal(k.bits, want.bits);
}

static void
test_probe_matches_ssh_keygen(void **state)
{
    struct fx *f = *state;
    check_probe(&f->node);
    /* other key types, bit sizes read from the key blob. libssh2 1.10 verifies RSA host keys
     * with ssh-rsa (SHA-1) signatures only, which OpenSSH >= 8.8 no longer makes unless told */
    static const char *const types[] = {"ecdsa", "rsa"};
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        struct sshd_node n;
        struct sshd_opts o = {.addr = "127.0.0.22",
                              .host_key_type = types[i],
                              .extra_config = "HostKeyAlgorithms +ssh-rsa"};
        assert_int_equal(sshd_start(&n, &o), 0);
        check_probe(&n);
        sshd_stop(&n);
    }
    /* a bracketed IPv6-style literal is accepted as a host form; a bad host is refused */
    struct ssh_host_key k;
    struct ssh_error err;
    assert_int_equal(ssh_probe("-oProxyCommand=x", 22, NULL, 0, &k, &err), SSH_ERR_INVALID);
    assert_int_equal(ssh_probe(f->node.addr, (uint16_t)f->node.port, "NOPE", 0, &k, &err),
                     SSH_ERR_INVALID);
}

static void
test_connect_pinned_and_unknown(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    assert_string_equal(ssh_conn_host_key(c)->fingerprint, f->fp.fingerprint);
    struct ssh_exec_result res;
    struct ssh_error err;
    assert_int_equal(run_sh(c, "exit 0", NULL, &res, &err), SSH_OK);
    assert_int_equal(res.exit_status, 0);
    ssh_close(c);

    /* no pin: never accepted, the presented key is reported for a person to confirm */
    struct ssh_target t = target(&f->node, f->key, NULL);
    c = (struct ssh_conn *)1;
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_HOST_KEY_UNKNOWN);
    assert_null(c);
    assert_int_equal(err.code, SSH_ERR_HOST_KEY_UNKNOWN);
    assert_string_equal(err.presented.fingerprint, f->fp.fingerprint);
    assert_non_null(strstr(err.message, f->fp.fingerprint));
    t.host_key_fingerprint = "";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_HOST_KEY_UNKNOWN);
    /* a malformed pin is a caller error */
    t.host_key_fingerprint = "SHA256:short";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_INVALID);
    assert_non_null(strstr(err.message, "SHA256:"));
}

/* 1 when the sshd log mentions any authentication attempt. */
static int
log_has_auth(const struct sshd_node *n)
{
    char *log = file_read_all(n->log, 1 << 20, NULL);
    int yes = log && (strstr(log, "publickey") || strstr(log, "Accepted") ||
                      strstr(log, "Starting session"));
    free(log);
    return yes;
}

static void
test_host_key_changed(void **state)
{
    struct fx *f = *state;
    char pub[400];
    snprintf(pub, sizeof(pub), "%s.pub", f->key);
    struct sshd_node n;
    struct sshd_opts o = {.addr = "127.0.0.24", .authorized_key = pub};
    assert_int_equal(sshd_start(&n, &o), 0);
    struct sshd_fp old;
    assert_int_equal(sshd_fingerprint(n.host_key_pub, &old), 0);
    ssh_close(connect_ok(&n, &old));

    /* same type, new key */
    assert_int_equal(sshd_restart(&n, "ed25519"), 0);
    struct sshd_fp now;
    assert_int_equal(sshd_fingerprint(n.host_key_pub, &now), 0);
    assert_string_not_equal(now.fingerprint, old.fingerprint);
    struct ssh_target t = target(&n, f->key, &old);
    struct ssh_conn *c = NULL;
    struct ssh_error err;
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_HOST_KEY_CHANGED);
    assert_null(c);
    assert_string_equal(ssh_rc_name(err.code), "host_key_changed");
    assert_string_equal(err.expected.fingerprint, old.fingerprint);
    assert_string_equal(err.presented.fingerprint, now.fingerprint);
    assert_string_equal(err.presented.type, "ED25519");
    assert_non_null(strstr(err.message, old.fingerprint));
    assert_non_null(strstr(err.message, now.fingerprint));
    assert_non_null(strstr(err.message, "changed"));
    /* refused before authentication: the server saw no login attempt */
    assert_false(log_has_auth(&n));

    /* another type: the pinned kind of key is gone, the host offers an ECDSA key */
    assert_int_equal(sshd_restart(&n, "ecdsa"), 0);
    assert_int_equal(sshd_fingerprint(n.host_key_pub, &now), 0);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_HOST_KEY_CHANGED);
    assert_string_equal(err.expected.fingerprint, old.fingerprint);
    assert_string_equal(err.presented.fingerprint, now.fingerprint);
    assert_string_equal(err.presented.type, "ECDSA");
    assert_non_null(strstr(err.message, old.fingerprint));
    assert_non_null(strstr(err.message, now.fingerprint));
    assert_false(log_has_auth(&n));

    /* pinned to the new key, it works again */
    ssh_close(connect_ok(&n, &now));
    sshd_stop(&n);
}

/* ------------------------------------------------------------------ authentication */

static void
test_auth_and_key_files(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = NULL;
    struct ssh_error err;
    char port[16];
    snprintf(port, sizeof(port), "%d", f->node.port);

    /* a key the server does not know */
    struct ssh_target t = target(&f->node, f->key_other, &f->fp);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_AUTH);
    assert_null(c);
    assert_non_null(strstr(err.message, "root@127.0.0.21"));
    assert_non_null(strstr(err.message, port));
    assert_non_null(strstr(err.message, f->key_other));

    /* a user that does not exist */
    t = target(&f->node, f->key, &f->fp);
    t.user = "nosuchuser";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_AUTH);
    assert_non_null(strstr(err.message, "nosuchuser@"));
    t.user = "root;id";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_INVALID);
    t.user = "-oProxyCommand";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_INVALID);

    /* an encrypted key: the right passphrase works, a wrong one or none fails, and the
     * passphrase appears in no message */
    t = target(&f->node, f->key_pass, &f->fp);
    t.passphrase = PASSPHRASE;
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_OK);
    ssh_close(c);
    c = NULL;
    t.passphrase = "wrong-passphrase-77";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_FILE);
    assert_null(strstr(err.message, "wrong-passphrase-77"));
    assert_non_null(strstr(err.message, f->key_pass));
    assert_non_null(strstr(err.message, "passphrase"));
    t.passphrase = NULL;
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_FILE);

    /* mode 0644 is refused before any network I/O, with the mode and the fix named */
    char loose[400];
    snprintf(loose, sizeof(loose), "%s/id_loose", f->dir);
    assert_int_equal(sshd_keygen(loose, "ed25519", NULL), 0);
    assert_int_equal(chmod(loose, 0644), 0);
    t = target(&f->node, loose, &f->fp);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_MODE);
    assert_string_equal(ssh_rc_name(err.code), "key_file_mode");
    assert_non_null(strstr(err.message, "0644"));
    assert_non_null(strstr(err.message, "0600"));
    assert_non_null(strstr(err.message, loose));
    assert_int_equal(chmod(loose, 0640), 0);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_MODE);
    assert_int_equal(chmod(loose, 0400), 0);
    t.host = "127.0.0.99"; /* nothing there: the key check comes first anyway */
    assert_int_equal(chmod(loose, 0604), 0);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_MODE);

    /* missing and non-key files */
    char missing[400];
    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    t = target(&f->node, missing, &f->fp);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_FILE);
    assert_non_null(strstr(err.message, missing));
    char junk[400];
    snprintf(junk, sizeof(junk), "%s/junk", f->dir);
    FILE *j = fopen(junk, "w");
    fputs("not a key\n", j);
    fclose(j);
    chmod(junk, 0600);
    t.key_path = junk;
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_KEY_FILE);
    assert_non_null(strstr(err.message, junk));
}

/* ------------------------------------------------------------------ exec */

struct seen_line {
    enum ssh_stream stream;
    char text[256];
    size_t len;
    unsigned flags;
    int64_t at;
};

struct seen {
    struct seen_line lines[64];
    size_t n;
};

static void
on_line(void *arg, enum ssh_stream stream, const char *line, size_t len, unsigned flags)
{
    struct seen *s = arg;
    if (s->n < ARRAY_LEN(s->lines)) {
        struct seen_line *l = &s->lines[s->n++];
        l->stream = stream;
        l->len = len;
        snprintf(l->text, sizeof(l->text), "%.*s", (int)len, line);
        l->flags = flags;
        l->at = time_mono_ms();
    }
}

static void
expect_line(const struct seen *s, size_t i, enum ssh_stream stream, const char *text,
            unsigned flags)
{
    assert_true(i < s->n);
    assert_int_equal(s->lines[i].stream, stream);
    assert_string_equal(s->lines[i].text, text);
    assert_int_equal(s->lines[i].flags, flags);
}

static void
test_exec_streams_lines(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    struct seen s = {0};
    struct ssh_exec_opts o = {.on_line = on_line, .arg = &s};
    struct ssh_exec_result res;
    struct ssh_error err;
    int64_t t0 = time_mono_ms();
    assert_int_equal(run_sh(c,
                            "printf 'one\\n'; sleep 0.4; printf 'two\\n' >&2; sleep 0.4; "
                            "printf 'three\\r\\nfour\\n\\nlast-no-eol'; printf 'err-no-eol' >&2",
                            &o, &res, &err),
                     SSH_OK);
    int64_t t1 = time_mono_ms();
    assert_int_equal(res.exit_status, 0);
    assert_int_equal(s.n, 7);
    expect_line(&s, 0, SSH_STDOUT, "one", 0);
    expect_line(&s, 1, SSH_STDERR, "two", 0);
    expect_line(&s, 2, SSH_STDOUT, "three", 0); /* \r\n */
    expect_line(&s, 3, SSH_STDOUT, "four", 0);
    expect_line(&s, 4, SSH_STDOUT, "", 0);
    /* the two last lines without newline, in stream order (stdout's flushed first) */
    expect_line(&s, 5, SSH_STDOUT, "last-no-eol", SSH_LINE_NO_EOL);
    expect_line(&s, 6, SSH_STDERR, "err-no-eol", SSH_LINE_NO_EOL);
    /* streamed as they came, not at the end */
    fprintf(stderr, "first line after %lld ms, last %lld ms before the end, gap %lld ms\n",
            (long long)(s.lines[0].at - t0), (long long)(t1 - s.lines[0].at),
            (long long)(s.lines[1].at - s.lines[0].at));
    assert_true(t1 - s.lines[0].at > 600);
    assert_true(s.lines[1].at - s.lines[0].at >= 300);

    /* long lines are cut at line_max, the rest of the line dropped; raw stdout captured */
    memset(&s, 0, sizeof(s));
    struct buf out;
    buf_init(&out, 1 << 20);
    o = (struct ssh_exec_opts){.on_line = on_line, .arg = &s, .line_max = 100, .out = &out};
    assert_int_equal(
        run_sh(c, "head -c 10000 /dev/zero | tr '\\0' x; echo; echo after", &o, &res, &err),
        SSH_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.lines[0].len, 100);
    assert_int_equal(s.lines[0].flags, SSH_LINE_CUT);
    assert_int_equal(strspn(s.lines[0].text, "x"), 100);
    expect_line(&s, 1, SSH_STDOUT, "after", 0);
    assert_int_equal(out.len, 10000 + 1 + 6); /* the marker line is not in it */
    assert_int_equal(res.out_truncated, 0);
    buf_free(&out);

    /* the capture buffer's limit */
    buf_init(&out, 10);
    o = (struct ssh_exec_opts){.out = &out};
    assert_int_equal(run_sh(c, "printf '0123456789abcdef'", &o, &res, &err), SSH_OK);
    assert_int_equal(res.out_truncated, 1);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.data, "0123456789", 10);
    buf_free(&out);

    /* an incomplete command is refused */
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    assert_int_equal(ssh_exec(c, &cmd, NULL, &res, &err), SSH_ERR_INVALID);
    struct sh_arg t[] = {SH_W("true")};
    assert_int_equal(sh_cmd_add(&cmd, t, 1, NULL), SH_OK);
    assert_int_equal(sh_cmd_op(&cmd, SH_AND), SH_OK);
    assert_int_equal(ssh_exec(c, &cmd, NULL, &res, &err), SSH_ERR_INVALID);
    sh_cmd_free(&cmd);
    ssh_close(c);
}

static void
test_exec_exit_status_and_signal(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    struct ssh_exec_result res;
    struct ssh_error err;
    assert_int_equal(run_sh(c, "exit 3", NULL, &res, &err), SSH_OK);
    assert_int_equal(res.exit_status, 3);
    assert_string_equal(res.signal, "");
    assert_int_equal(run_sh(c, "true", NULL, &res, &err), SSH_OK);
    assert_int_equal(res.exit_status, 0);
    /* stdin is closed: a command that reads it ends at once (no hang until the timeout) */
    struct ssh_exec_opts o = {.timeout_ms = 5000};
    int64_t t0 = time_mono_ms();
    assert_int_equal(run_sh(c, "read answer; echo \"[$answer]\"; cat; exit 5", &o, &res, &err),
                     SSH_OK);
    assert_int_equal(res.exit_status, 5);
    assert_true(time_mono_ms() - t0 < 3000);
    /* the command runs under the session's sh (sh -c '<command>'): $PPID is that process */
    assert_int_equal(run_sh(c, "kill -KILL $PPID", NULL, &res, &err), SSH_OK);
    assert_int_equal(res.exit_status, -1);
    assert_string_equal(res.signal, "KILL");
    /* the connection stays usable after all of that, and NULL opts/result are fine */
    struct sh_cmd cmd;
    struct sh_arg argv[] = {SH_W("true")};
    build(&cmd, argv, 1);
    assert_int_equal(ssh_exec(c, &cmd, NULL, NULL, NULL), SSH_OK);
    sh_cmd_free(&cmd);
    ssh_close(c);
}

/* Reads a pid from the file, waiting up to 3 s for it to appear. */
static pid_t
read_pid(const char *path)
{
    for (int i = 0; i < 300; i++) {
        char *s = file_read_all(path, 64, NULL);
        if (s && s[0]) {
            pid_t p = (pid_t)atol(s);
            free(s);
            return p;
        }
        free(s);
        usleep(10000);
    }
    return 0;
}

/* 1 when the process is gone (or a zombie about to be reaped) within ms. */
static int
gone_within(pid_t pid, int ms)
{
    for (int i = 0; i <= ms / 10; i++) {
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            return 1;
        }
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        char *st = file_read_all(path, 4096, NULL);
        const char *rp = st ? strrchr(st, ')') : NULL;
        int zombie = rp && rp[1] == ' ' && rp[2] == 'Z';
        free(st);
        if (zombie) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

static void
test_exec_timeout_kills(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    char pidfile[400], script[600];
    snprintf(pidfile, sizeof(pidfile), "%s/timeout.pid", f->dir);
    unlink(pidfile);
    snprintf(script, sizeof(script), "sleep 60 & echo $! > '%s'; wait", pidfile);
    struct seen s = {0};
    /* timeouts long enough for the command to have started (and written its pid file) even
     * on a loaded machine, where a new session can take most of a second */
    struct ssh_exec_opts o = {.timeout_ms = 2000, .on_line = on_line, .arg = &s};
    struct ssh_exec_result res;
    struct ssh_error err;
    int64_t t0 = time_mono_ms();
    assert_int_equal(run_sh(c, script, &o, &res, &err), SSH_ERR_COMMAND_TIMEOUT);
    int64_t took = time_mono_ms() - t0;
    assert_true(took >= 2000 && took < 4000);
    assert_string_equal(ssh_rc_name(err.code), "command_timeout");
    assert_non_null(strstr(err.message, "2 s"));
    pid_t pid = read_pid(pidfile);
    assert_true(pid > 1);
    assert_true(gone_within(pid, 1000)); /* the sleep, a child of the command, is gone too */

    /* a command that ignores SIGTERM gets SIGKILL a second later */
    unlink(pidfile);
    snprintf(script, sizeof(script), "trap '' TERM; sleep 60 & echo $! > '%s'; wait; wait",
             pidfile);
    o.timeout_ms = 2000;
    t0 = time_mono_ms();
    assert_int_equal(run_sh(c, script, &o, &res, &err), SSH_ERR_COMMAND_TIMEOUT);
    took = time_mono_ms() - t0;
    fprintf(stderr, "timeout 2 s, TERM, then KILL: %lld ms\n", (long long)took);
    assert_true(took >= 3000 && took < 5500);
    pid = read_pid(pidfile);
    assert_true(pid > 1);
    assert_true(gone_within(pid, 1000));
    /* the session's own shell did not ignore TERM and died of it; its children needed KILL */
    assert_string_equal(res.signal, "TERM");

    /* a command that writes without pause is stopped on time too */
    memset(&s, 0, sizeof(s));
    o.timeout_ms = 1000;
    t0 = time_mono_ms();
    assert_int_equal(run_sh(c, "yes", &o, &res, &err), SSH_ERR_COMMAND_TIMEOUT);
    took = time_mono_ms() - t0;
    assert_true(took >= 1000 && took < 3000);
    assert_int_equal(s.n, ARRAY_LEN(s.lines));
    expect_line(&s, 0, SSH_STDOUT, "y", 0);

    /* and the connection still works */
    assert_int_equal(run_sh(c, "exit 7", NULL, &res, &err), SSH_OK);
    assert_int_equal(res.exit_status, 7);
    ssh_close(c);
}

struct canceller {
    atomic_int *flag;
    int after_ms;
    const char *wait_for; /* a file to appear first (may be NULL) */
    int64_t raised_at;
};

static void *
cancel_later(void *arg)
{
    struct canceller *k = arg;
    for (int i = 0; k->wait_for && i < 1000 && access(k->wait_for, F_OK) != 0; i++) {
        usleep(10000);
    }
    usleep((useconds_t)k->after_ms * 1000);
    k->raised_at = time_mono_ms();
    atomic_store(k->flag, 1);
    return NULL;
}

static void
test_exec_cancel_kills(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    char pidfile[400], script[600];
    snprintf(pidfile, sizeof(pidfile), "%s/cancel.pid", f->dir);
    unlink(pidfile);
    snprintf(script, sizeof(script), "echo started; echo $$ > '%s'; exec sleep 60", pidfile);
    atomic_int flag;
    atomic_init(&flag, 0);
    struct canceller k = {.flag = &flag, .after_ms = 200, .wait_for = pidfile};
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, &k);
    struct seen s = {0};
    struct ssh_exec_opts o = {.cancel = &flag, .on_line = on_line, .arg = &s};
    struct ssh_exec_result res;
    struct ssh_error err;
    assert_int_equal(run_sh(c, script, &o, &res, &err), SSH_ERR_CANCELLED);
    int64_t took = time_mono_ms() - k.raised_at;
    pthread_join(th, NULL);
    fprintf(stderr, "cancelled %lld ms after the flag\n", (long long)took);
    /* ended within a second of the flag (about 100 ms: the kill goes to the connection's
     * control shell, no new session on the host) */
    assert_true(took < 1000);
    assert_string_equal(ssh_rc_name(err.code), "cancelled");
    expect_line(&s, 0, SSH_STDOUT, "started", 0);
    assert_string_equal(res.signal, "TERM");
    pid_t pid = read_pid(pidfile);
    assert_true(pid > 1);
    assert_true(gone_within(pid, 1000));

    /* a flag raised before the start: nothing is started, the connection stays usable */
    unlink(pidfile);
    assert_int_equal(run_sh(c, script, &o, &res, &err), SSH_ERR_CANCELLED);
    usleep(300000);
    assert_int_not_equal(access(pidfile, F_OK), 0);
    assert_int_equal(run_sh(c, "exit 4", NULL, &res, &err), SSH_OK);
    assert_int_equal(res.exit_status, 4);
    ssh_close(c);
}

/* ------------------------------------------------------------------ hostile values */

static void
test_hostile_values_arrive_literally(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    static const struct {
        const char *s;
        size_t len;
    } values[] = {
#define V(lit) {lit, sizeof(lit) - 1}
        V("; rm -rf /"),
        V("$(touch /tmp/consulate-pwned)"),
        V("`touch /tmp/consulate-pwned`"),
        V("it's \"quoted\" \\ both"),
        V("'"),
        V("line1\nline2\n"),
        V("-rf"),
        V("--help"),
        V(""),
        V("\xff\xfe\x80 \xe9t\xe9"),
        V("$HOME ${IFS} * ? ~ & | < > ( ) { } # ! %s %n"),
        V("\r\n\t"),
#undef V
    };
    unlink("/tmp/consulate-pwned");
    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        struct sh_cmd cmd;
        struct sh_arg argv[] = {SH_W("printf"), SH_W("--"), SH_W("%s"),
                                SH_VN(values[i].s, values[i].len)};
        build(&cmd, argv, ARRAY_LEN(argv));
        struct buf out;
        buf_init(&out, 4096);
        struct ssh_exec_opts o = {.out = &out};
        struct ssh_exec_result res;
        struct ssh_error err;
        assert_int_equal(ssh_exec(c, &cmd, &o, &res, &err), SSH_OK);
        assert_int_equal(res.exit_status, 0);
        assert_int_equal(out.len, values[i].len);
        if (values[i].len) {
            assert_memory_equal(out.data, values[i].s, values[i].len);
        }
        buf_free(&out);
        sh_cmd_free(&cmd);
    }
    assert_int_not_equal(access("/tmp/consulate-pwned", F_OK), 0);
    /* a value with a NUL never becomes a command */
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_arg nul[] = {SH_W("printf"), SH_W("--"), SH_W("%s"), SH_VN("a\0; reboot", 10)};
    assert_int_equal(sh_cmd_add(&cmd, nul, ARRAY_LEN(nul), NULL), SH_NUL);
    assert_false(sh_cmd_complete(&cmd));
    assert_int_equal(ssh_exec(c, &cmd, NULL, NULL, NULL), SSH_ERR_INVALID);
    /* a value that would be an option without "--" is refused */
    struct sh_arg opt[] = {SH_W("rm"), SH_V("-rf"), SH_V("/")};
    assert_int_equal(sh_cmd_add(&cmd, opt, ARRAY_LEN(opt), NULL), SH_OPTION);
    sh_cmd_free(&cmd);
    ssh_close(c);
}

/* ------------------------------------------------------------------ files */

static int
tmp_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strstr(e->d_name, ".consulate-")) {
            n++;
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void
test_files_read_write(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    char dir[400], path[500];
    snprintf(dir, sizeof(dir), "%s/files", f->dir);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/docker-compose.yaml", dir);
    struct ssh_error err;

    /* a new file gets the given mode */
    const char *v1 = "services:\n  consul:\n    image: consul\n";
    struct ssh_write_opts wo = {.mode = 0640};
    assert_int_equal(ssh_write_file(c, path, v1, strlen(v1), &wo, &err), SSH_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    char *back = NULL;
    size_t len = 0;
    assert_int_equal(ssh_read_file(c, path, 0, &back, &len, &err), SSH_OK);
    assert_int_equal(len, strlen(v1));
    assert_string_equal(back, v1);
    free(back);

    /* an existing file keeps its mode; the content is replaced (a new inode: renamed over) */
    assert_int_equal(chmod(path, 0600), 0);
    ino_t ino = st.st_ino;
    const char *v2 = "services: {}\n";
    assert_int_equal(ssh_write_file(c, path, v2, strlen(v2), NULL, &err), SSH_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_not_equal(st.st_ino, ino);
    char *local = file_read_all(path, 4096, NULL);
    assert_string_equal(local, v2);
    free(local);
    assert_int_equal(tmp_files_in(dir), 0);

    /* limits: reading a file larger than max, writing more than max (target unchanged) */
    assert_int_equal(ssh_read_file(c, path, 5, &back, &len, &err), SSH_ERR_FILE_TOO_LARGE);
    assert_null(back);
    assert_non_null(strstr(err.message, path));
    assert_int_equal(ssh_read_file(c, path, strlen(v2), &back, &len, &err), SSH_OK);
    free(back);
    wo = (struct ssh_write_opts){.max = 8};
    assert_int_equal(ssh_write_file(c, path, v1, strlen(v1), &wo, &err), SSH_ERR_FILE_TOO_LARGE);
    assert_string_equal(ssh_rc_name(err.code), "file_too_large");
    local = file_read_all(path, 4096, NULL);
    assert_string_equal(local, v2);
    free(local);

    /* empty content is a valid file */
    char empty[500];
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    assert_int_equal(ssh_write_file(c, empty, "", 0, NULL, &err), SSH_OK);
    assert_int_equal(ssh_read_file(c, empty, 0, &back, &len, &err), SSH_OK);
    assert_int_equal(len, 0);
    assert_string_equal(back, "");
    free(back);

    /* missing file, relative path, symlink target, directory target, missing directory */
    char missing[500];
    snprintf(missing, sizeof(missing), "%s/absent", dir);
    assert_int_equal(ssh_read_file(c, missing, 0, &back, &len, &err), SSH_ERR_NOT_FOUND);
    assert_int_equal(ssh_read_file(c, "relative/path", 0, &back, &len, &err), SSH_ERR_INVALID);
    assert_int_equal(ssh_write_file(c, "x", "a", 1, NULL, &err), SSH_ERR_INVALID);
    char link[500];
    snprintf(link, sizeof(link), "%s/link.yaml", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(ssh_write_file(c, link, "a", 1, NULL, &err), SSH_ERR_SFTP);
    assert_non_null(strstr(err.message, "not a regular file"));
    assert_int_equal(ssh_write_file(c, dir, "a", 1, NULL, &err), SSH_ERR_SFTP);
    char nodir[500];
    snprintf(nodir, sizeof(nodir), "%s/no/such/dir/file", dir);
    assert_int_not_equal(ssh_write_file(c, nodir, "a", 1, NULL, &err), SSH_OK);
    assert_int_equal(ssh_read_file(c, dir, 0, &back, &len, &err), SSH_ERR_SFTP);
    local = file_read_all(path, 4096, NULL);
    assert_string_equal(local, v2);
    free(local);
    assert_int_equal(tmp_files_in(dir), 0);

    /* a hostile file name arrives literally (the rename goes through the quoting) */
    char hostile[500];
    snprintf(hostile, sizeof(hostile), "%s/-x $(id) 'q' ;.yaml", dir);
    assert_int_equal(ssh_write_file(c, hostile, "h", 1, NULL, &err), SSH_OK);
    local = file_read_all(hostile, 16, NULL);
    assert_string_equal(local, "h");
    free(local);
    ssh_close(c);
}

struct watcher {
    const char *dir;
    atomic_int *flag;
    size_t at_least;
};

/* Raises the flag once a temporary file in dir has at least at_least bytes. */
static void *
watch_tmp(void *arg)
{
    struct watcher *w = arg;
    for (int i = 0; i < 20000 && !atomic_load(w->flag); i++) {
        DIR *d = opendir(w->dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strstr(e->d_name, ".consulate-")) {
                char p[600];
                struct stat st;
                snprintf(p, sizeof(p), "%s/%s", w->dir, e->d_name);
                if (stat(p, &st) == 0 && (size_t)st.st_size >= w->at_least) {
                    atomic_store(w->flag, 1);
                }
            }
        }
        if (d) {
            closedir(d);
        }
        usleep(500);
    }
    return NULL;
}

struct reader {
    const char *path;
    atomic_int stop;
    size_t old_len, new_len;
    int bad;
    int reads;
};

/* Reads the target over and over while it is replaced: only whole old or new contents. */
static void *
read_loop(void *arg)
{
    struct reader *r = arg;
    while (!atomic_load(&r->stop)) {
        size_t len = 0;
        char *s = file_read_all(r->path, 64 << 20, &len);
        if (!s || (len != r->old_len && len != r->new_len)) {
            r->bad++;
        }
        free(s);
        r->reads++;
    }
    return NULL;
}

static void
test_write_interrupted_is_atomic(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = connect_ok(&f->node, &f->fp);
    char dir[400], path[500];
    snprintf(dir, sizeof(dir), "%s/atomic", f->dir);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/docker-compose.yaml", dir);
    const char *old = "old content\n";
    FILE *o = fopen(path, "w");
    fputs(old, o);
    fclose(o);
    chmod(path, 0640);

    size_t big = 48u << 20;
    char *data = xmalloc(big);
    memset(data, 'n', big);

    /* cancelled once 1 MiB of the temporary file is on disk: the target is untouched */
    atomic_int flag;
    atomic_init(&flag, 0);
    struct watcher w = {.dir = dir, .flag = &flag, .at_least = 1u << 20};
    pthread_t th;
    pthread_create(&th, NULL, watch_tmp, &w);
    struct ssh_write_opts wo = {.max = 64u << 20, .cancel = &flag};
    struct ssh_error err;
    int rc = ssh_write_file(c, path, data, big, &wo, &err);
    atomic_store(&flag, 1);
    pthread_join(th, NULL);
    assert_int_equal(rc, SSH_ERR_CANCELLED);
    assert_non_null(strstr(err.message, "cancelled"));
    char *local = file_read_all(path, 64 << 20, NULL);
    assert_string_equal(local, old);
    free(local);
    assert_int_equal(tmp_files_in(dir), 0);

    /* a complete replacement while a reader loops: it sees the old or the new file, whole */
    struct reader r = {.path = path, .old_len = strlen(old), .new_len = 8u << 20};
    atomic_init(&r.stop, 0);
    pthread_create(&th, NULL, read_loop, &r);
    usleep(20000);
    wo = (struct ssh_write_opts){.max = 64u << 20};
    assert_int_equal(ssh_write_file(c, path, data, r.new_len, &wo, &err), SSH_OK);
    usleep(20000);
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(r.bad, 0);
    assert_true(r.reads > 2);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((size_t)st.st_size, r.new_len);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(tmp_files_in(dir), 0);
    free(data);
    ssh_close(c);
}

/* ------------------------------------------------------------------ fan-out */

struct par {
    struct sshd_node nodes[5];
    struct sshd_fp fps[5];
    int rc[5];
    int status[5];
    int64_t start[5], end[5]; /* of each node's `sleep 1` */
};

static void
par_one(void *arg, size_t i)
{
    struct par *p = arg;
    struct ssh_target t = target(&p->nodes[i], F->key, &p->fps[i]);
    struct ssh_conn *c = NULL;
    struct ssh_error err;
    p->rc[i] = ssh_connect(&t, &c, &err);
    if (p->rc[i] != SSH_OK) {
        fprintf(stderr, "node %zu: %s\n", i, err.message);
        return;
    }
    struct sh_cmd cmd;
    struct sh_arg argv[] = {SH_W("sleep"), SH_W("1")};
    sh_cmd_init(&cmd);
    sh_cmd_add(&cmd, argv, 2, NULL);
    struct ssh_exec_result res;
    p->start[i] = time_mono_ms();
    p->rc[i] = ssh_exec(c, &cmd, NULL, &res, &err);
    p->end[i] = time_mono_ms();
    p->status[i] = res.exit_status;
    sh_cmd_free(&cmd);
    ssh_close(c);
}

static void
test_five_nodes_in_parallel(void **state)
{
    struct fx *f = *state;
    char pub[400];
    snprintf(pub, sizeof(pub), "%s.pub", f->key);
    struct par *p = xcalloc(1, sizeof(*p));
    for (int i = 0; i < 5; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.%d", 31 + i);
        struct sshd_opts o = {.addr = addr, .authorized_key = pub};
        assert_int_equal(sshd_start(&p->nodes[i], &o), 0);
        assert_int_equal(sshd_fingerprint(p->nodes[i].host_key_pub, &p->fps[i]), 0);
        p->rc[i] = -1;
    }
    int64_t t0 = time_mono_ms();
    ssh_fan_out(5, 0, par_one, p);
    int64_t took = time_mono_ms() - t0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p->rc[i], SSH_OK);
        assert_int_equal(p->status[i], 0);
    }
    fprintf(stderr, "5 nodes x (connect + sleep 1): %lld ms\n", (long long)took);
    /* the five commands ran at the same time: each started before any had ended */
    int64_t last_start = 0, first_end = INT64_MAX;
    for (int i = 0; i < 5; i++) {
        last_start = p->start[i] > last_start ? p->start[i] : last_start;
        first_end = p->end[i] < first_end ? p->end[i] : first_end;
    }
    assert_true(last_start < first_end);
    assert_true(took < 5000); /* one after the other: more than 5 s of sleep alone */

    /* two threads for five nodes: every index exactly once */
    for (int i = 0; i < 5; i++) {
        p->rc[i] = -1;
    }
    ssh_fan_out(5, 2, par_one, p);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p->rc[i], SSH_OK);
        sshd_stop(&p->nodes[i]);
    }
    free(p);
}

/* ------------------------------------------------------------------ connect failures */

static int
listen_on(const char *addr, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void
test_connect_timeout_blackhole(void **state)
{
    struct fx *f = *state;
    /* TCP connects (the kernel completes it), but no SSH banner ever comes */
    int port = 0;
    int fd = listen_on("127.0.0.40", &port);
    struct sshd_node hole = {.port = port};
    snprintf(hole.addr, sizeof(hole.addr), "127.0.0.40");
    struct ssh_target t = target(&hole, f->key, &f->fp);
    struct ssh_conn *c = NULL;
    struct ssh_error err;
    int64_t t0 = time_mono_ms();
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_CONNECT_TIMEOUT);
    int64_t took = time_mono_ms() - t0;
    assert_true(took >= 4900 && took < 6500);
    assert_string_equal(ssh_rc_name(err.code), "connect_timeout");
    assert_non_null(strstr(err.message, "127.0.0.40"));

    /* the probe has the same bound; a shorter one is honoured */
    struct ssh_host_key k;
    t0 = time_mono_ms();
    assert_int_equal(ssh_probe("127.0.0.40", (uint16_t)port, NULL, 700, &k, &err),
                     SSH_ERR_CONNECT_TIMEOUT);
    took = time_mono_ms() - t0;
    assert_true(took >= 650 && took < 1500);

    /* a cancel flag ends the wait early */
    atomic_int flag;
    atomic_init(&flag, 0);
    struct canceller k2 = {.flag = &flag, .after_ms = 300, .wait_for = NULL};
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, &k2);
    t.cancel = &flag;
    t0 = time_mono_ms();
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_CANCELLED);
    assert_true(time_mono_ms() - t0 < 1000);
    pthread_join(th, NULL);
    close(fd);
}

static void
test_connect_errors(void **state)
{
    struct fx *f = *state;
    struct ssh_conn *c = NULL;
    struct ssh_error err;
    /* refused: a port nobody listens on */
    int port = 0;
    int fd = listen_on("127.0.0.41", &port);
    close(fd);
    struct sshd_node n = {.port = port};
    snprintf(n.addr, sizeof(n.addr), "127.0.0.41");
    struct ssh_target t = target(&n, f->key, &f->fp);
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_CONNECT_REFUSED);
    assert_string_equal(ssh_rc_name(err.code), "connect_refused");
    char want[64];
    snprintf(want, sizeof(want), "root@127.0.0.41:%d", port);
    assert_non_null(strstr(err.message, want));

    /* a name that resolves (through the resolver, not a literal) to where nobody listens */
    t.host = "localhost";
    t.port = (uint16_t)port;
    int rc = ssh_connect(&t, &c, &err);
    assert_true(rc == SSH_ERR_CONNECT_REFUSED || rc == SSH_ERR_CONNECT);
    /* a name that does not resolve */
    t.host = "no-such-host.invalid";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_DNS);
    assert_non_null(strstr(err.message, "no-such-host.invalid"));
    /* an IPv6 literal, bare and bracketed (loopback, nobody listening) */
    int v6 = socket(AF_INET6, SOCK_STREAM, 0);
    if (v6 >= 0) {
        close(v6);
        t.host = "::1";
        rc = ssh_connect(&t, &c, &err);
        assert_true(rc == SSH_ERR_CONNECT_REFUSED || rc == SSH_ERR_CONNECT);
        assert_non_null(strstr(err.message, "[::1]"));
        t.host = "[::1]";
        rc = ssh_connect(&t, &c, &err);
        assert_true(rc == SSH_ERR_CONNECT_REFUSED || rc == SSH_ERR_CONNECT);
    }
    t.host = "bad host";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_INVALID);
    t.host = "";
    assert_int_equal(ssh_connect(&t, &c, &err), SSH_ERR_INVALID);
    assert_null(c);
    assert_string_equal(ssh_rc_name(999), "unknown");
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_matches_ssh_keygen),
        cmocka_unit_test(test_connect_pinned_and_unknown),
        cmocka_unit_test(test_host_key_changed),
        cmocka_unit_test(test_auth_and_key_files),
        cmocka_unit_test(test_exec_streams_lines),
        cmocka_unit_test(test_exec_exit_status_and_signal),
        cmocka_unit_test(test_exec_timeout_kills),
        cmocka_unit_test(test_exec_cancel_kills),
        cmocka_unit_test(test_hostile_values_arrive_literally),
        cmocka_unit_test(test_files_read_write),
        cmocka_unit_test(test_write_interrupted_is_atomic),
        cmocka_unit_test(test_five_nodes_in_parallel),
        cmocka_unit_test(test_connect_timeout_blackhole),
        cmocka_unit_test(test_connect_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
