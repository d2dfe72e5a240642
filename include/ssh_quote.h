/* ssh_quote: the one way a shell command for a remote node is built. A command is a list of
 * simple commands, each built from an argv in which every word is either a constant from the
 * code (SH_WORD: a fixed safe alphabet, written as is) or a value (SH_VALUE: anything but a
 * NUL byte, written through sh_quote in POSIX single quotes, so the remote shell sees exactly
 * its bytes). Simple commands are joined only by constant operators (sh_cmd_op). ssh_exec
 * takes nothing but a struct sh_cmd, so no remote command is ever pasted together with
 * printf. Pure: depends on util only. */
#ifndef CONSULATE_SSH_QUOTE_H
#define CONSULATE_SSH_QUOTE_H

#include <stddef.h>
#include <string.h>

#include "util.h"

/* The most a built command may hold: a compose file is written over SFTP, never as a
 * command argument, so commands stay small. */
#define SH_CMD_MAX (64 * 1024)

enum sh_rc {
    SH_OK = 0,
    SH_NUL = 1,      /* a value holds a NUL byte (given with its length) */
    SH_OPTION = 2,   /* a value begins with '-' and no "--" word came before it */
    SH_BAD_WORD = 3, /* a constant word is empty or holds a character outside the safe set */
    SH_TOO_LONG = 4, /* the command would exceed its limit */
    SH_EMPTY = 5,    /* no argv, argv[0] not a constant word or begins with -, no operand */
};

enum sh_kind {
    SH_WORD = 1,  /* a constant written by the programmer: [A-Za-z0-9_@%+=:,./-]+ */
    SH_VALUE = 2, /* data from outside (a user, a node, a database): quoted */
};

struct sh_arg {
    enum sh_kind kind;
    const char *s;
    size_t len;
};

/* Argument constructors: SH_W("docker-compose"), SH_V(path), SH_VN(bytes, n). */
#define SH_W(w) ((struct sh_arg){.kind = SH_WORD, .s = (w), .len = strlen(w)})
#define SH_V(v) ((struct sh_arg){.kind = SH_VALUE, .s = (v), .len = strlen(v)})
#define SH_VN(v, n) ((struct sh_arg){.kind = SH_VALUE, .s = (v), .len = (n)})

/* A command under construction. text is NUL-terminated and bounded by SH_CMD_MAX. */
struct sh_cmd {
    struct buf text;
    int need_cmd; /* 1 when empty or after an operator: a simple command must follow */
};

enum sh_op {
    SH_AND = 1,  /* && */
    SH_OR = 2,   /* || */
    SH_SEQ = 3,  /* ; */
    SH_PIPE = 4, /* | */
};

struct sh_error {
    size_t arg; /* index of the offending argument in the argv of the failed call */
    char message[200];
};

/* Appends the len bytes of s to out as one single-quoted POSIX shell word: the bytes stand for
 * themselves (newlines, $, `, ", \ and non-UTF-8 bytes included), a ' is written as '\'', an
 * empty value as ''. Returns SH_OK, SH_NUL when s holds a NUL byte, or SH_TOO_LONG when out's
 * limit is reached; on failure out is unchanged. */
int sh_quote(struct buf *out, const char *s, size_t len);

void sh_cmd_init(struct sh_cmd *cmd);
void sh_cmd_free(struct sh_cmd *cmd);
/* The command text (borrowed, valid until the next change or sh_cmd_free). */
const char *sh_cmd_text(const struct sh_cmd *cmd);

/* Appends one simple command built from argv (argc words, separated by single spaces). argv[0]
 * must be an SH_WORD not beginning with '-'. An SH_VALUE that begins with '-' is refused unless an
 * SH_WORD "--" came before it in this argv, so a value can never be read as an option. On any error
 * nothing is appended and err (may be NULL) names the argument and the problem without quoting the
 * value (it may be a secret). */
int sh_cmd_add(struct sh_cmd *cmd, const struct sh_arg *argv, size_t argc, struct sh_error *err);
/* Appends a constant operator after a simple command; SH_EMPTY when none is there to join. */
int sh_cmd_op(struct sh_cmd *cmd, enum sh_op op);
/* 1 when cmd holds at least one simple command and does not end with an operator. */
int sh_cmd_complete(const struct sh_cmd *cmd);

#endif
