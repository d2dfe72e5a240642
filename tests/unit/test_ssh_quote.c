/* Unit tests for the shell quoting and the argv command builder (server/ssh_quote.c): exact
 * output for hostile values, a round trip through the local /bin/sh and bash (printf %s of
 * the quoted value gives back exactly the bytes), refusal of NUL bytes, of values that would
 * act as options, of unsafe constant words, and of over-long commands. The same round trip
 * over SSH against a real sshd is in tests/http/test_ssh.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ssh_quote.h"

struct hostile {
    const char *s;
    size_t len;
    const char *quoted;
};

#define H(lit, q)                                                                                  \
    {                                                                                              \
        lit, sizeof(lit) - 1, q                                                                    \
    }

static const struct hostile hostile[] = {
    H("; rm -rf /", "'; rm -rf /'"),
    H("$(touch /tmp/pwned)", "'$(touch /tmp/pwned)'"),
    H("`id`", "'`id`'"),
    H("it's", "'it'\\''s'"),
    H("'", "''\\'''"),
    H("\"double\" \\ back", "'\"double\" \\ back'"),
    H("line1\nline2\n", "'line1\nline2\n'"),
    H("-rf", "'-rf'"),
    H("", "''"),
    H("\xff\xfe\x80 latin1 \xe9", "'\xff\xfe\x80 latin1 \xe9'"),
    H("$HOME ${IFS} * ? [a] ~ & | < > ( ) { } # !", "'$HOME ${IFS} * ? [a] ~ & | < > ( ) { } # !'"),
    H("tab\there\rcr", "'tab\there\rcr'"),
};

static void
test_quote_exact(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(hostile); i++) {
        struct buf b;
        buf_init(&b, 4096);
        assert_int_equal(sh_quote(&b, hostile[i].s, hostile[i].len), SH_OK);
        assert_string_equal(b.data, hostile[i].quoted);
        buf_free(&b);
    }
}

/* Runs `shell -c "printf %s <quoted>"` and returns its stdout (caller frees), *len its size. */
static char *
shell_printf(const char *shell, const char *quoted, size_t *len)
{
    char *script = xasprintf("printf %%s %s", quoted);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(shell, shell, "-c", script, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    struct buf out;
    buf_init(&out, 1 << 20);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0) {
        assert_int_equal(buf_append(&out, chunk, (size_t)n), BUF_OK);
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(script);
    *len = out.len;
    if (!out.data) {
        return xstrdup("");
    }
    return buf_steal(&out);
}

static void
test_quote_round_trip(void **state)
{
    (void)state;
    static const char *const shells[] = {"/bin/sh", "/bin/bash"};
    for (size_t s = 0; s < ARRAY_LEN(shells); s++) {
        if (access(shells[s], X_OK) != 0) {
            continue;
        }
        for (size_t i = 0; i < ARRAY_LEN(hostile); i++) {
            struct buf b;
            buf_init(&b, 4096);
            assert_int_equal(sh_quote(&b, hostile[i].s, hostile[i].len), SH_OK);
            size_t len = 0;
            char *got = shell_printf(shells[s], b.data, &len);
            assert_int_equal(len, hostile[i].len);
            assert_memory_equal(got, hostile[i].s, len);
            free(got);
            buf_free(&b);
        }
        /* every byte value but NUL in one value */
        char all[255];
        for (int c = 1; c < 256; c++) {
            all[c - 1] = (char)c;
        }
        struct buf b;
        buf_init(&b, 4096);
        assert_int_equal(sh_quote(&b, all, sizeof(all)), SH_OK);
        size_t len = 0;
        char *got = shell_printf(shells[s], b.data, &len);
        assert_int_equal(len, sizeof(all));
        assert_memory_equal(got, all, sizeof(all));
        free(got);
        buf_free(&b);
    }
}

static void
test_quote_refuses_nul(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(buf_puts(&b, "x"), BUF_OK);
    assert_int_equal(sh_quote(&b, "a\0b", 3), SH_NUL);
    assert_string_equal(b.data, "x"); /* unchanged */
    assert_int_equal(sh_quote(&b, "\0", 1), SH_NUL);
    assert_int_equal(b.len, 1);
    buf_free(&b);
}

static void
test_quote_limit(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(sh_quote(&b, "abcdef", 6), SH_OK); /* 'abcdef' = 8 */
    buf_reset(&b);
    assert_int_equal(sh_quote(&b, "abcdefg", 7), SH_TOO_LONG);
    assert_int_equal(b.len, 0);
    assert_int_equal(sh_quote(&b, "ab'c", 4), SH_TOO_LONG); /* 'ab'\''c' = 9 */
    assert_int_equal(b.len, 0);
    buf_free(&b);
    buf_init(&b, 0);
    assert_int_equal(sh_quote(&b, "", 0), SH_TOO_LONG);
    buf_free(&b);
}

static void
test_build_argv(void **state)
{
    (void)state;
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    assert_false(sh_cmd_complete(&cmd));
    const char *dir = "/mnt/opt/docker-compose/consul";
    struct sh_arg a[] = {SH_W("docker-compose"), SH_W("--project-directory"), SH_V(dir), SH_W("up"),
                         SH_W("-d")};
    struct sh_error err = {0};
    assert_int_equal(sh_cmd_add(&cmd, a, ARRAY_LEN(a), &err), SH_OK);
    assert_string_equal(
        sh_cmd_text(&cmd),
        "docker-compose --project-directory '/mnt/opt/docker-compose/consul' up -d");
    assert_true(sh_cmd_complete(&cmd));
    /* two simple commands need an operator */
    struct sh_arg b[] = {SH_W("true")};
    assert_int_equal(sh_cmd_add(&cmd, b, 1, &err), SH_EMPTY);
    assert_int_equal(sh_cmd_op(&cmd, SH_AND), SH_OK);
    assert_false(sh_cmd_complete(&cmd));
    assert_int_equal(sh_cmd_op(&cmd, SH_SEQ), SH_EMPTY); /* no operator after an operator */
    struct sh_arg c[] = {SH_W("cat"), SH_W("--"), SH_V("-weird name; rm -rf /")};
    assert_int_equal(sh_cmd_add(&cmd, c, ARRAY_LEN(c), &err), SH_OK);
    assert_string_equal(sh_cmd_text(&cmd),
                        "docker-compose --project-directory '/mnt/opt/docker-compose/consul' up -d "
                        "&& cat -- '-weird name; rm -rf /'");
    assert_true(sh_cmd_complete(&cmd));
    sh_cmd_free(&cmd);
}

static void
test_build_refusals(void **state)
{
    (void)state;
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_error err = {0};

    /* a value that would be an option, without "--" before it */
    struct sh_arg opt[] = {SH_W("rm"), SH_V("-rf"), SH_W("--"), SH_V("x")};
    assert_int_equal(sh_cmd_add(&cmd, opt, ARRAY_LEN(opt), &err), SH_OPTION);
    assert_int_equal(err.arg, 1);
    assert_non_null(strstr(err.message, "argument 1"));
    assert_non_null(strstr(err.message, "option"));
    assert_null(strstr(err.message, "-rf")); /* the value itself is not echoed */
    assert_int_equal(cmd.text.len, 0);

    /* "--" given as a value is itself refused: it cannot end the options */
    struct sh_arg fake[] = {SH_W("rm"), SH_V("--"), SH_V("-rf")};
    assert_int_equal(sh_cmd_add(&cmd, fake, ARRAY_LEN(fake), &err), SH_OPTION);
    assert_int_equal(err.arg, 1);

    /* embedded NUL, given with its length */
    struct sh_arg nul[] = {SH_W("printf"), SH_W("%s"), SH_VN("ab\0; rm -rf /", 13)};
    assert_int_equal(sh_cmd_add(&cmd, nul, ARRAY_LEN(nul), &err), SH_NUL);
    assert_int_equal(err.arg, 2);
    assert_non_null(strstr(err.message, "NUL"));

    /* unsafe constant words: data passed as a word by mistake */
    static const char *const bad_words[] = {"",     "a b", "x;y",   "$(id)", "`id`", "a'b", "a\"b",
                                            "a\nb", "*",   "~root", "a|b",   "a&b",  "\xff"};
    for (size_t i = 0; i < ARRAY_LEN(bad_words); i++) {
        struct sh_arg w[] = {SH_W("echo"), SH_W(bad_words[i])};
        assert_int_equal(sh_cmd_add(&cmd, w, 2, &err), SH_BAD_WORD);
        assert_int_equal(err.arg, 1);
    }
    /* the program name must be a constant word */
    struct sh_arg prog[] = {SH_V("sh")};
    assert_int_equal(sh_cmd_add(&cmd, prog, 1, &err), SH_EMPTY);
    assert_int_equal(sh_cmd_add(&cmd, prog, 0, &err), SH_EMPTY);
    struct sh_arg dash[] = {SH_W("-c")}; /* `sh -c '-c'` would be an option to sh */
    assert_int_equal(sh_cmd_add(&cmd, dash, 1, &err), SH_EMPTY);
    struct sh_arg missing[] = {SH_W("echo"), {.kind = SH_VALUE, .s = NULL, .len = 0}};
    assert_int_equal(sh_cmd_add(&cmd, missing, 2, &err), SH_EMPTY);
    assert_int_equal(cmd.text.len, 0);
    assert_false(sh_cmd_complete(&cmd));

    /* empty values are kept as '' (an argument, not nothing) */
    struct sh_arg empty[] = {SH_W("printf"), SH_W("%s."), SH_V("")};
    assert_int_equal(sh_cmd_add(&cmd, empty, ARRAY_LEN(empty), &err), SH_OK);
    assert_string_equal(sh_cmd_text(&cmd), "printf %s. ''");
    assert_int_equal(sh_cmd_op(&cmd, 0), SH_EMPTY);
    assert_int_equal(sh_cmd_op(&cmd, 99), SH_EMPTY);

    /* too long: refused whole, the command before it unchanged */
    size_t big = SH_CMD_MAX;
    char *huge = xmalloc(big);
    memset(huge, 'a', big);
    assert_int_equal(sh_cmd_op(&cmd, SH_SEQ), SH_OK);
    struct sh_arg h[] = {SH_W("echo"), SH_VN(huge, big)};
    assert_int_equal(sh_cmd_add(&cmd, h, 2, &err), SH_TOO_LONG);
    assert_string_equal(sh_cmd_text(&cmd), "printf %s. '';");
    free(huge);
    sh_cmd_free(&cmd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_exact),       cmocka_unit_test(test_quote_round_trip),
        cmocka_unit_test(test_quote_refuses_nul), cmocka_unit_test(test_quote_limit),
        cmocka_unit_test(test_build_argv),        cmocka_unit_test(test_build_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
