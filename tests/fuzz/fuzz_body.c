/* libFuzzer entry for the request-body path every JSON handler takes: json_body_parse()
 * (UTF-8 check, the depth-limited json_parse, the object check — what http_json_body does)
 * and what the handlers then do with the object (read fields, print it for the audit log,
 * delete it). Each input runs on a thread with a 100 KiB stack, the size Debian's civetweb
 * gives its workers, so input that recurses too deep crashes here as it would the server.
 *
 * Built and run by `make fuzz` (scripts/fuzz.sh: clang, -fsanitize=fuzzer,address,undefined,
 * corpus tests/fuzz/corpus/body). `make test` replays the corpus through
 * tests/unit/test_fuzz_body.c, which includes this file. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_body.h"
#include "util.h"

#define FUZZ_STACK_BYTES (100 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_input {
    const char *text; /* NUL-terminated copy of the input */
    size_t len;
};

/* Visits every member the way handlers and the audit detail builder do. */
static void
walk(const cJSON *j, int depth)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (it->string) {
            (void)json_get_str(j, it->string, NULL);
            (void)json_get_num(j, it->string, 0);
            (void)json_get_bool(j, it->string, 0);
        }
        if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
            walk(it, depth + 1);
        }
    }
}

static void *
fuzz_body_thread(void *arg)
{
    const struct fuzz_input *in = arg;
    cJSON *j = NULL;
    char msg[200];
    int rc = json_body_parse(in->text, in->len, &j, msg, sizeof(msg));
    if (rc == JSON_BODY_OK) {
        /* the fields the login, users and kv handlers read */
        static const char *const fields[] = {"username", "password", "name",     "role",
                                             "disabled", "key",      "audit_id", "which"};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            (void)cJSON_GetObjectItemCaseSensitive(j, fields[i]);
            (void)json_get_str(j, fields[i], "");
        }
        walk(j, 0);
        char *text = json_print(j);
        cJSON *again = NULL;
        if (json_parse(text, strlen(text), &again, NULL) != JSON_OK) {
            fprintf(stderr, "fuzz_body: printed JSON does not parse back: %s\n", text);
            abort();
        }
        cJSON_Delete(again);
        free(text);
        cJSON_Delete(j);
    } else if (j) {
        abort(); /* a refusal must not hand out a tree */
    } else if (msg[0] == '\0') {
        abort(); /* every refusal says why */
    }
    /* any JSON value, not only objects, through the shared parser */
    cJSON *any = NULL;
    if (json_parse(in->text, in->len, &any, NULL) == JSON_OK) {
        char *text = json_print(any);
        free(text);
    }
    cJSON_Delete(any);
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {.len = size};
    char *copy = xmalloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    in.text = copy;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FUZZ_STACK_BYTES);
    pthread_t t;
    if (pthread_create(&t, &attr, fuzz_body_thread, &in) != 0) {
        abort();
    }
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
    free(copy);
    return 0;
}
