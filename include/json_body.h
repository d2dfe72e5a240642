/* json_body: a request body as the API handlers take it — UTF-8 without NUL (no byte 0, no
 * \u0000 in a string: the handlers' C strings would end there, cutting what they check and
 * store), JSON nested at most JSON_MAX_DEPTH deep, no object with a key twice, an object at
 * the top. Pure (no HTTP), so it is unit-tested and fuzzed
 * (tests/fuzz/fuzz_body.c) without a server; http_json_body() replies with its message. */
#ifndef CONSULATE_JSON_BODY_H
#define CONSULATE_JSON_BODY_H

#include <stddef.h>

#include <cjson/cJSON.h>

enum json_body_rc {
    JSON_BODY_OK = 0,
    JSON_BODY_EMPTY,      /* no body at all */
    JSON_BODY_NOT_UTF8,   /* bytes that are not UTF-8 */
    JSON_BODY_TOO_DEEP,   /* arrays and objects nested more than JSON_MAX_DEPTH */
    JSON_BODY_SYNTAX,     /* not JSON */
    JSON_BODY_NOT_OBJECT, /* JSON, but not an object */
    JSON_BODY_NUL,        /* a NUL byte, or a string with \u0000 (C strings would end there) */
    JSON_BODY_DUP_KEY,    /* an object with a key twice (parsers differ on which one wins) */
};

/* Parses the len bytes of body (body[len] must be '\0'; body may be NULL when len is 0) as a
 * JSON object. On JSON_BODY_OK *out is the object (the caller deletes it); otherwise *out is
 * NULL and msg (msglen bytes) says what is wrong, for the 400 invalid_json reply. */
int json_body_parse(const char *body, size_t len, cJSON **out, char *msg, size_t msglen);

#endif
