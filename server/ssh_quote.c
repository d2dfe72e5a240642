/* ssh_quote: POSIX single-quote quoting and the argv command builder (see ssh_quote.h). */
#include "ssh_quote.h"

#include <stdio.h>
#include <string.h>

int
sh_quote(struct buf *out, const char *s, size_t len)
{
    if (memchr(s, '\0', len)) {
        return SH_NUL;
    }
    size_t start = out->len;
    int rc = buf_append(out, "'", 1);
    size_t i = 0;
    while (rc == BUF_OK && i < len) {
        const char *q = memchr(s + i, '\'', len - i);
        size_t n = q ? (size_t)(q - (s + i)) : len - i;
        rc = buf_append(out, s + i, n);
        i += n;
        if (rc == BUF_OK && q) {
            /* close the quote, an escaped quote, reopen */
            rc = buf_append(out, "'\\''", 4);
            i++;
        }
    }
    if (rc == BUF_OK) {
        rc = buf_append(out, "'", 1);
    }
    if (rc != BUF_OK) {
        out->len = start;
        if (out->data) {
            out->data[start] = '\0';
        }
        return SH_TOO_LONG;
    }
    return SH_OK;
}

void
sh_cmd_init(struct sh_cmd *cmd)
{
    buf_init(&cmd->text, SH_CMD_MAX);
    cmd->need_cmd = 1;
}

void
sh_cmd_free(struct sh_cmd *cmd)
{
    buf_free(&cmd->text);
    cmd->need_cmd = 1;
}

const char *
sh_cmd_text(const struct sh_cmd *cmd)
{
    return cmd->text.data ? cmd->text.data : "";
}

int
sh_cmd_complete(const struct sh_cmd *cmd)
{
    return !cmd->need_cmd && cmd->text.len > 0;
}

/* 1 when the constant word w may be written without quotes. */
static int
word_safe(const char *w, size_t len)
{
    static const char extra[] = "_@%+=:,./-";
    if (len == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)w[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 (ch != '\0' && strchr(extra, ch) != NULL);
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int
fail(struct sh_error *err, size_t arg, int rc, const char *msg)
{
    if (err) {
        err->arg = arg;
        snprintf(err->message, sizeof(err->message), "argument %zu: %s", arg, msg);
    }
    return rc;
}

int
sh_cmd_add(struct sh_cmd *cmd, const struct sh_arg *argv, size_t argc, struct sh_error *err)
{
    if (argc == 0 || argv[0].kind != SH_WORD || (argv[0].s && argv[0].s[0] == '-')) {
        return fail(err, 0, SH_EMPTY, "a command starts with a constant program name");
    }
    if (!cmd->need_cmd) {
        return fail(err, 0, SH_EMPTY, "two simple commands need an operator between them");
    }
    size_t start = cmd->text.len;
    int dashdash = 0;
    int rc = SH_OK;
    for (size_t i = 0; i < argc && rc == SH_OK; i++) {
        const struct sh_arg *a = &argv[i];
        if (!a->s) {
            rc = fail(err, i, SH_EMPTY, "missing value");
            break;
        }
        if (i > 0 || start > 0) {
            if (buf_append(&cmd->text, " ", 1) != BUF_OK) {
                rc = fail(err, i, SH_TOO_LONG, "the command is too long");
                break;
            }
        }
        if (a->kind == SH_WORD) {
            if (!word_safe(a->s, a->len)) {
                rc = fail(err, i, SH_BAD_WORD,
                          "a constant word holds a character that needs quoting");
            } else if (buf_append(&cmd->text, a->s, a->len) != BUF_OK) {
                rc = fail(err, i, SH_TOO_LONG, "the command is too long");
            } else if (a->len == 2 && memcmp(a->s, "--", 2) == 0) {
                dashdash = 1;
            }
        } else if (a->kind == SH_VALUE) {
            if (a->len > 0 && a->s[0] == '-' && !dashdash) {
                rc = fail(err, i, SH_OPTION,
                          "a value that begins with '-' would be read as an option");
            } else {
                int q = sh_quote(&cmd->text, a->s, a->len);
                if (q == SH_NUL) {
                    rc = fail(err, i, SH_NUL, "a value holds a NUL byte");
                } else if (q != SH_OK) {
                    rc = fail(err, i, SH_TOO_LONG, "the command is too long");
                }
            }
        } else {
            rc = fail(err, i, SH_BAD_WORD, "unknown argument kind");
        }
    }
    if (rc != SH_OK) {
        cmd->text.len = start;
        if (cmd->text.data) {
            cmd->text.data[start] = '\0';
        }
        return rc;
    }
    cmd->need_cmd = 0;
    return SH_OK;
}

int
sh_cmd_op(struct sh_cmd *cmd, enum sh_op op)
{
    static const char *const ops[] = {
        [SH_AND] = " &&",
        [SH_OR] = " ||",
        [SH_SEQ] = ";",
        [SH_PIPE] = " |",
    };
    if (cmd->need_cmd || op < SH_AND || op > SH_PIPE) {
        return SH_EMPTY;
    }
    if (buf_puts(&cmd->text, ops[op]) != BUF_OK) {
        return SH_TOO_LONG;
    }
    cmd->need_cmd = 1;
    return SH_OK;
}
