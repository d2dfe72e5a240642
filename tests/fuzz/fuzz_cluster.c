/* libFuzzer entry for the pure cluster model and the Prometheus parser. Built and run by
 * `make fuzz FUZZ_TARGET=cluster` (scripts/fuzz.sh).
 * The input is split on NUL bytes into up to five parts: raft, members, autopilot, health
 * and the leader address; the first byte chooses which parts are passed as NULL. The whole
 * input is also fed to prom_parse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "prom.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_prom(const uint8_t *data, size_t size)
{
    struct prom_sample *s = NULL;
    size_t n = 0, skipped = 0;
    if (prom_parse((const char *)data, size, &s, &n, &skipped) == PROM_OK) {
        struct cluster_exporter e;
        cluster_exporter_fill(&e, "10.0.0.1", 1, s, n);
        for (size_t i = 0; i < n; i++) {
            (void)prom_label_get(&s[i], "member");
        }
        (void)prom_value(s, n, "consul_serf_lan_member_status", "member", "consul-1");
        prom_samples_free(s, n);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_prom(data, size);
    if (size == 0) {
        return 0;
    }
    unsigned mask = data[0];
    char *copy = xstrndup((const char *)data + 1, size - 1); /* stops at the first NUL */
    char *buf = xmalloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *parts[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t k = 0;
    char *p = buf, *end = buf + size - 1;
    while (k < 5 && p <= end) {
        parts[k++] = p;
        p += strlen(p) + 1;
    }
    for (size_t i = 0; i < 5; i++) {
        if (mask & (1u << i)) {
            parts[i] = NULL;
        }
    }
    struct cluster_exporter ex[2] = {
        {"10.0.0.1", 1, 1, 3, 1, 5},
        {parts[4] ? parts[4] : "", (int)(mask >> 7), 0, 0, 0, 0},
    };
    struct cluster_input in = {
        .reachable = (int)((mask >> 5) & 1),
        .updated_at_ms = (int64_t)size * 1000,
        .now_ms = (int64_t)mask * 1000,
        .datacenter = (mask & 0x40) ? "dc1" : NULL,
        .raft_json = parts[0],
        .members_json = parts[1],
        .autopilot_json = parts[2],
        .health_json = parts[3],
        .leader_addr = parts[4],
        .exporters = ex,
        .n_exporters = 2,
    };
    struct cluster_model *m = NULL;
    struct cluster_error err;
    if (cluster_model_build(&in, &m, &err) == CLUSTER_OK) {
        cJSON *j = cluster_model_to_json(m);
        char *text = json_print(j);
        free(text);
        cJSON_Delete(j);
        cluster_model_free(m);
    }
    /* The same single part as each input in turn, so plain JSON seeds reach every parser. */
    struct cluster_input one = {.reachable = 1, .leader_addr = copy};
    const char **slots[4] = {&one.raft_json, &one.members_json, &one.autopilot_json,
                             &one.health_json};
    for (size_t i = 0; i < 4; i++) {
        *slots[i] = copy;
        if (cluster_model_build(&one, &m, &err) == CLUSTER_OK) {
            cJSON *j = cluster_model_to_json(m);
            cJSON_Delete(j);
            cluster_model_free(m);
        }
        *slots[i] = NULL;
    }
    cJSON *h = cluster_health_to_json(copy, &err);
    cJSON_Delete(h);
    free(copy);
    free(buf);
    return 0;
}
