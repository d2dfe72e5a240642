/* compose: reads and edits the Consul server's docker-compose.yaml. Membership is the list of
 * `-retry-join` arguments in services.consul.command (the seed document's procedure); this
 * module finds that command with libyaml, reads it the way docker-compose and the agent do
 * (YAML value, then shlex.split for a string, then Go's flag rules), and adds or removes one
 * address while keeping every other byte of the file. Every edit is re-read and checked
 * before it is returned; anything that cannot be edited with certainty is refused with an
 * error code, a message and a line number. Pure: text in, text out; no I/O, no globals.
 * Depends only on util and libyaml. */
#ifndef CONSULATE_COMPOSE_H
#define CONSULATE_COMPOSE_H

#include <stddef.h>

/* Inputs larger than this are refused whole (COMPOSE_TOO_BIG). */
#define COMPOSE_MAX_TEXT (1024u * 1024u)
/* Deeper YAML nesting than this is refused (compose files nest about 5 deep). */
#define COMPOSE_MAX_DEPTH 64
/* A command with more arguments than this is refused. */
#define COMPOSE_MAX_ARGS 4096
/* The service whose command is edited. */
#define COMPOSE_SERVICE "consul"
/* The Serf LAN port a retry-join address without a port means. */
#define COMPOSE_SERF_LAN_PORT 8301
/* compose_diff gives up (COMPOSE_TOO_BIG) beyond this many lines or differing lines. */
#define COMPOSE_DIFF_MAX_LINES 100000
#define COMPOSE_DIFF_MAX_EDITS 2000

enum compose_rc {
    COMPOSE_OK = 0,
    COMPOSE_UNCHANGED = 1,   /* nothing to do: the output is the input, byte for byte */
    COMPOSE_TOO_BIG = 2,     /* input over COMPOSE_MAX_TEXT, or a diff too large to compute */
    COMPOSE_BAD_TEXT = 3,    /* NUL byte, invalid UTF-8, a line break other than LF / CRLF */
    COMPOSE_NOT_YAML = 4,    /* libyaml cannot parse it */
    COMPOSE_NO_SERVICE = 5,  /* no services.consul mapping */
    COMPOSE_NO_COMMAND = 6,  /* services.consul has no (or an empty) command */
    COMPOSE_AMBIGUOUS = 7,   /* several candidates: duplicate keys, anchors and aliases, merge
                                keys, several documents, retry-join written somewhere else */
    COMPOSE_UNSUPPORTED = 8, /* a form this editor cannot change with certainty */
    COMPOSE_BAD_ADDRESS = 9, /* an address or node name argument fails validation */
    COMPOSE_BROKEN = 10,     /* the agent does not read the command as written (see the
                                diagnostics of compose_read); fix the file first */
    COMPOSE_UNSAFE = 11,     /* compose_new_node: the copy would not be a correct new server */
    COMPOSE_VERIFY = 12,     /* the edited text did not re-read as intended; nothing returned */
};

/* The error of every fallible call. line is 1-based in the input text (0: not tied to a
 * line). The message is one sentence naming the problem, without secrets. */
struct compose_error {
    int code;
    int line;
    char message[400];
};

/* A stable lower-case name of a code ("not_yaml", "ambiguous", …) for error.code in JSON;
 * never NULL. */
const char *compose_rc_name(int rc);

enum compose_form {
    COMPOSE_FORM_STRING = 1, /* command: "agent …" (any scalar style) */
    COMPOSE_FORM_LIST = 2,   /* command: [agent, …] or a block sequence */
};

/* How the command is written in the file. */
enum compose_style {
    COMPOSE_STYLE_PLAIN = 1,
    COMPOSE_STYLE_SINGLE = 2,  /* '…' */
    COMPOSE_STYLE_DOUBLE = 3,  /* "…" */
    COMPOSE_STYLE_LITERAL = 4, /* | */
    COMPOSE_STYLE_FOLDED = 5,  /* > */
    COMPOSE_STYLE_BLOCK_SEQ = 6,
    COMPOSE_STYLE_FLOW_SEQ = 7, /* read, never edited */
};

enum compose_diag_kind {
    COMPOSE_DIAG_TRAP_BACKSLASH = 1,   /* a line-end backslash outside a double-quoted scalar */
    COMPOSE_DIAG_FLAGS_STOPPED,        /* Go's flag parsing stops before the last argument */
    COMPOSE_DIAG_RETRY_JOIN_LOST,      /* a -retry-join written after that stop: never read */
    COMPOSE_DIAG_BAD_FLAG,             /* bad flag syntax, missing value, bad boolean, -help */
    COMPOSE_DIAG_UNKNOWN_FLAG,         /* not a flag of the Consul agent releases known here */
    COMPOSE_DIAG_BAD_ADDRESS,          /* a retry-join value that is not an address */
    COMPOSE_DIAG_LITERAL_QUOTES,       /* a list item with quotes: no shell removes them */
    COMPOSE_DIAG_INTERPOLATION,        /* a $ that docker-compose would substitute */
    COMPOSE_DIAG_SHELL_SYNTAX,         /* shlex.split fails (unclosed quote, final backslash) */
    COMPOSE_DIAG_NOT_AGENT,            /* the command does not start with `agent` */
    COMPOSE_DIAG_DUPLICATE,            /* the same address twice */
    COMPOSE_DIAG_RETRY_JOIN_ELSEWHERE, /* retry-join/retry_join inside another argument or
                                          another value of the file */
    COMPOSE_DIAG_ENTRYPOINT,           /* services.consul.entrypoint replaces the image's */
    COMPOSE_DIAG_NOT_STRING,           /* YAML reads a plain value as a number, boolean, null */
    COMPOSE_DIAG_CLOUD_JOIN, /* a go-discover "provider=…" entry (kept, not an address) */
    COMPOSE_DIAG_COMPOSE_V2, /* docker compose v2 would split the string differently */
};

/* One finding about the command. blocking: edits are refused (COMPOSE_BROKEN) while it
 * holds, because the file does not do what it looks like it does. */
struct compose_diag {
    int kind;
    int blocking;
    int line;
    char *message;
};

/* The command as the agent receives it. argv is what docker passes to the image (the
 * image's entrypoint turns a leading `agent` into `consul agent …`); flags_start is the
 * index after `agent` (or `consul agent`); Go's flag parser reads argv[flags_start ..
 * flags_end) and stops there. retry_join holds the values of the -retry-join flags it reads,
 * in order: what the agent would join (when no blocking diagnostic says it refuses to start).
 * Lines are 1-based lines of the file where each argument / value starts. */
struct compose_command {
    int form;  /* enum compose_form */
    int style; /* enum compose_style */
    int line;  /* where the command value starts */
    size_t argc;
    char **argv;
    int *argv_line;
    size_t flags_start;
    size_t flags_end;
    size_t n_retry_join;
    char **retry_join;
    int *retry_join_line;
    size_t n_diags;
    struct compose_diag *diags;
    int blocking; /* some diagnostic is blocking */
    int editable; /* the add/remove editor can change this file (no flow collections etc.) */
};

/* Reads services.consul.command of the len bytes of text (NUL bytes are refused). On
 * COMPOSE_OK *out is the command, owned by the caller (compose_command_free); a file the agent
 * misreads is still COMPOSE_OK, with diagnostics. On any other code *out is NULL and err says
 * why. */
int compose_read(const char *text, size_t len, struct compose_command **out,
                 struct compose_error *err);

/* Frees a command and everything in it. NULL is a no-op. */
void compose_command_free(struct compose_command *c);

/* Adds one -retry-join address, written like the last existing entry (same spelling,
 * quoting, indentation and continuation) and placed after it. On COMPOSE_OK *out is the new
 * text (NUL-terminated, *out_len bytes, the caller frees it); on COMPOSE_UNCHANGED (the
 * address, or the same host and port, is already listed) *out is a copy of the input and
 * err->message says where it is listed. On any other code *out is NULL. */
int compose_add(const char *text, size_t len, const char *addr, char **out, size_t *out_len,
                struct compose_error *err);

/* Removes every -retry-join entry equal to addr (same host and port, the port defaulting to
 * COMPOSE_SERF_LAN_PORT); an entry alone on its line(s) takes its whole line(s) with it, and
 * the continuation backslashes stay consistent. Outputs as compose_add; COMPOSE_UNCHANGED
 * when the address is not listed. */
int compose_remove(const char *text, size_t len, const char *addr, char **out, size_t *out_len,
                   struct compose_error *err);

/* Makes the retry-join list exactly the n addresses (adds the missing ones in the given
 * order, then removes the others). Outputs as compose_add. */
int compose_set(const char *text, size_t len, const char *const *addrs, size_t n, char **out,
                size_t *out_len, struct compose_error *err);

/* What the new server's own file is made from: a healthy server's file (source_addr is that
 * server's address, as written in its -bind / -advertise / -client), the new server's
 * address, its node name (required only when the file sets -node), and the cluster's full
 * retry-join list, which must include new_addr. All strings are borrowed. */
struct compose_node {
    const char *source_addr;
    const char *new_addr;
    const char *node_name;
    const char *const *join;
    size_t n_join;
};

/* The new server's docker-compose.yaml: the source text with the -bind, -advertise,
 * -advertise-wan, -client, -serf-lan-bind and -serf-wan-bind values that name the source host
 * rewritten to new_addr (0.0.0.0, templates and other values stay), -node renamed when set,
 * and the retry-join list made exactly node->join; every other byte identical. Refuses
 * (COMPOSE_UNSAFE) a file with -bootstrap, -node-id, a hostname key, a bind address of a third
 * host, or the source address in any other value of the file. Outputs as compose_add. */
int compose_new_node(const char *text, size_t len, const struct compose_node *node, char **out,
                     size_t *out_len, struct compose_error *err);

/* Rewrites a command that falls into the plain-scalar backslash trap (a plain, single-quoted
 * or block scalar whose lines end in `\`, see COMPOSE_DIAG_TRAP_BACKSLASH) into a
 * double-quoted scalar with `\` continuations, one source line per line, whose arguments are
 * the ones the author meant: the lines joined as a shell would join them. Everything outside
 * the scalar is byte-identical (a comment after a block indicator moves after the closing
 * quote). Outputs as compose_add; COMPOSE_UNCHANGED when there is no trap. */
int compose_fix_trap(const char *text, size_t len, char **out, size_t *out_len,
                     struct compose_error *err);

/* A unified diff of old_text and new_text in `diff -u` format with 3 lines of context:
 * "--- label_old" / "+++ label_new" headers (no timestamps), hunks as GNU diff writes them,
 * "\ No newline at end of file" where it applies. Identical inputs give "" (COMPOSE_OK). On
 * COMPOSE_OK *out is the text (the caller frees it); COMPOSE_TOO_BIG beyond
 * COMPOSE_DIFF_MAX_LINES lines or COMPOSE_DIFF_MAX_EDITS differing lines. */
int compose_diff(const char *old_text, size_t old_len, const char *new_text, size_t new_len,
                 const char *label_old, const char *label_new, char **out,
                 struct compose_error *err);

/* Validates one retry-join address: an IPv4 address, an IPv6 address (bare or in brackets),
 * or a DNS name, optionally with :port (an IPv6 address takes a port only in brackets).
 * Nothing else: no spaces, quotes, shell metacharacters, zones or "provider=" strings.
 * Returns COMPOSE_OK or COMPOSE_BAD_ADDRESS with a message. */
int compose_addr_valid(const char *addr, struct compose_error *err);

/* 1 when a and b are valid addresses naming the same host and port (case-insensitive names,
 * IPv6 compared as numbers, a missing port meaning COMPOSE_SERF_LAN_PORT), else 0. */
int compose_addr_equal(const char *a, const char *b);

#endif
