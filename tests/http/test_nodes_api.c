/* Black-box tests of the inventory API (/api/nodes) against the real server, the simulator
 * and a real sshd: validation (status, error.code, the field named, nothing created), roles
 * (denials audited), create / read / update / delete with their audit entries, 409s
 * (node_exists, node_busy; an address taken in another spelling is taken: the inventory stores
 * the canonical form), host keys (probe as ssh-keygen -l prints it, trust only what the
 * node presents now, mismatch refused with both fingerprints, a new port unpins), import from
 * the raft configuration, and the expected servers: an imported server that leaves is the
 * problem server_missing. Simulated servers on 127.0.0.81…84, the sshd on 127.0.0.86. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../nodes/sshd.h"
#include "harness.h"
#include "simctl.h"
#include "util.h"

#define IP_BASE "127.0.0.81"
#define SSHD_IP "127.0.0.86"

struct ctx {
    struct sim *sim;
    struct srv *srv;
    struct client *admin, *op, *viewer;
    char dir[128];
    char key[256];      /* 0600 */
    char key_open[256]; /* 0644 */
    struct sshd_node node;
    struct sshd_fp fp;
};

static int
group_setup(void **state)
{
    struct ctx *c = xcalloc(1, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/consulate-nodes-api-XXXXXX");
    if (!mkdtemp(c->dir)) {
        return -1;
    }
    snprintf(c->key, sizeof(c->key), "%s/id_ed25519", c->dir);
    snprintf(c->key_open, sizeof(c->key_open), "%s/id_open", c->dir);
    if (sshd_keygen(c->key, "ed25519", NULL) || sshd_keygen(c->key_open, "ed25519", NULL)) {
        return -1;
    }
    chmod(c->key_open, 0644);
    char pub[300];
    snprintf(pub, sizeof(pub), "%s.pub", c->key);
    struct sshd_opts o = {.addr = SSHD_IP, .authorized_key = pub};
    if (sshd_start(&c->node, &o) || sshd_fingerprint(c->node.host_key_pub, &c->fp)) {
        return -1;
    }
    c->sim = sim_start("--servers 4 --speed 20 --ip-base " IP_BASE);
    if (!c->sim) {
        return -1;
    }
    char extra[1024];
    size_t o2 = (size_t)snprintf(extra, sizeof(extra), "\"consul\":{\"addresses\":[");
    for (int i = 0; i < c->sim->n_servers; i++) {
        o2 += (size_t)snprintf(extra + o2, sizeof(extra) - o2, "%s\"%s\"", i ? "," : "",
                               c->sim->servers[i].http);
    }
    snprintf(extra + o2, sizeof(extra) - o2, "],\"connect_timeout_ms\":500}");
    c->srv = srv_start(extra);
    if (!c->srv) {
        return -1;
    }
    c->admin = srv_login(c->srv, "admin", c->srv->admin_pw);
    if (!c->admin || srv_add_user(c->srv, "olga", "operator", "operator-pw-1") != 201 ||
        srv_add_user(c->srv, "vera", "viewer", "viewer-pw-12") != 201) {
        return -1;
    }
    c->op = srv_login(c->srv, "olga", "operator-pw-1");
    c->viewer = srv_login(c->srv, "vera", "viewer-pw-12");
    *state = c;
    return c->op && c->viewer ? 0 : -1;
}

static int
group_teardown(void **state)
{
    struct ctx *c = *state;
    client_free(c->admin);
    client_free(c->op);
    client_free(c->viewer);
    srv_stop(c->srv);
    int rc = sim_stop_rc(c->sim);
    sshd_stop(&c->node);
    const char *argv[] = {"rm", "-rf", c->dir, NULL};
    sshd_run(argv, NULL);
    free(c);
    return rc;
}

static long long
node_count(struct ctx *c)
{
    return db_int(c->srv, "SELECT count(*) FROM nodes");
}

/* Sends body as the admin and expects status and code with what in the message (and, for
 * 409 node_exists, the word "address"), the inventory unchanged. */
static void
expect_refused(struct ctx *c, const char *method, const char *path, const char *body, long status,
               const char *code, const char *what)
{
    long long before = node_count(c);
    struct resp r = client_req(c->admin, method, path, body);
    assert_error_reply(&r, status, code, what);
    if (strcmp(code, "node_exists") == 0) {
        assert_non_null(strstr(resp_error_message(&r), "address"));
    }
    resp_free(&r);
    assert_int_equal(node_count(c), before);
}

/* POSTs body and expects 400 invalid_field naming field, with nothing created. */
static void
expect_invalid(struct ctx *c, const char *method, const char *path, const char *body,
               const char *field)
{
    expect_refused(c, method, path, body, 400, "invalid_field", field);
}

static void
test_validation(void **state)
{
    struct ctx *c = *state;
    char body[2048];
#define NODE_BODY(name, addr, extra)                                                               \
    (snprintf(body, sizeof(body),                                                                  \
              "{\"name\":%s,\"address\":%s,\"ssh_user\":\"root\",\"ssh_key_path\":\"%s\"%s}",      \
              name, addr, c->key, extra),                                                          \
     body)
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"-x\"", "\"10.0.0.1\"", ""), "'name'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"\"", "\"10.0.0.1\"", ""), "'name'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"a b\"", "\"10.0.0.1\"", ""), "'name'");
    expect_invalid(
        c, "POST", "/api/nodes",
        NODE_BODY("\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                  "\"10.0.0.1\"", ""),
        "'name'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("1", "\"10.0.0.1\"", ""), "'name'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"n1\"", "\"10.0.0.1:22\"", ""),
                   "'address'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"n1\"", "\"[fd00::1]\"", ""), "'address'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"n1\"", "\"a;rm -rf /\"", ""), "'address'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"n1\"", "\"$(id)\"", ""), "'address'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"n1\"", "\"999.1.1.1\"", ""), "'address'");
    expect_invalid(c, "POST", "/api/nodes", NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"ssh_port\":0"),
                   "'ssh_port'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"ssh_port\":70000"), "'ssh_port'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"ssh_port\":\"22\""), "'ssh_port'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"compose_dir\":\"relative/dir\""),
                   "'compose_dir'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"compose_dir\":\"/mnt/../etc\""),
                   "'compose_dir'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"data_dir\":\"/mnt/x\\ny\""),
                   "'data_dir'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"data_dir\":\"/mnt/x/\""), "'data_dir'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"server_state\":\"leader\""),
                   "'server_state'");
    expect_invalid(c, "POST", "/api/nodes",
                   NODE_BODY("\"n1\"", "\"10.0.0.1\"", ",\"password\":\"x\""), "'password'");
    /* the key file: relative, missing, readable by others, a directory */
    const char *bad_keys[] = {"id_rsa", "/nonexistent/key", c->key_open, c->dir};
    for (size_t i = 0; i < ARRAY_LEN(bad_keys); i++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"n1\",\"address\":\"10.0.0.1\",\"ssh_user\":\"root\","
                 "\"ssh_key_path\":\"%s\"}",
                 bad_keys[i]);
        expect_invalid(c, "POST", "/api/nodes", body, "'ssh_key_path'");
    }
    snprintf(body, sizeof(body),
             "{\"name\":\"n1\",\"address\":\"10.0.0.1\",\"ssh_user\":\"root\","
             "\"ssh_key_path\":\"%s\"}",
             c->key_open);
    struct resp r = client_req(c->admin, "POST", "/api/nodes", body);
    assert_non_null(strstr(resp_error_message(&r), "0644"));
    resp_free(&r);
    r = client_req(c->admin, "POST", "/api/nodes", "{\"name\":\"n1\",\"address\":\"10.0.0.1\"}");
    assert_error_reply(&r, 400, "invalid_field", "'ssh_user'");
    resp_free(&r);
    snprintf(body, sizeof(body),
             "{\"name\":\"n1\",\"address\":\"10.0.0.1\",\"ssh_user\":\"-oProxyCommand=x\","
             "\"ssh_key_path\":\"%s\"}",
             c->key);
    expect_invalid(c, "POST", "/api/nodes", body, "'ssh_user'");
    r = client_req(c->admin, "POST", "/api/nodes", "[1]");
    assert_error_reply(&r, 400, "invalid_json", NULL);
    resp_free(&r);
    /* each refusal is in the audit log as a failed node.create */
    assert_true(db_count_audit(c->srv, "node.create", "error") >= 20);
    assert_int_equal(db_count_audit(c->srv, "node.create", "ok"), 0);
#undef NODE_BODY
}

static void
test_roles(void **state)
{
    struct ctx *c = *state;
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"r1\",\"address\":\"10.9.0.1\",\"ssh_user\":\"root\",\"ssh_key_path\":"
             "\"%s\"}",
             c->key);
    long denied = db_count_audit(c->srv, "node.create", "denied");
    struct resp r = client_req(c->op, "POST", "/api/nodes", body);
    assert_error_reply(&r, 403, "forbidden", "admin");
    resp_free(&r);
    r = client_req(c->viewer, "POST", "/api/nodes", body);
    assert_error_reply(&r, 403, "forbidden", "admin");
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "node.create", "denied"), denied + 2);
    r = client_req(c->op, "POST", "/api/nodes/import", "{}");
    assert_error_reply(&r, 403, "forbidden", NULL);
    resp_free(&r);
    r = client_req(c->op, "GET", "/api/nodes/x/hostkey", NULL);
    assert_error_reply(&r, 403, "forbidden", NULL);
    resp_free(&r);
    r = client_req(c->viewer, "GET", "/api/nodes", NULL);
    assert_int_equal(r.status, 200);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(r.json, "nodes")));
    resp_free(&r);
    assert_int_equal(node_count(c), 0);
}

static const cJSON *
node_of(const struct resp *r)
{
    return cJSON_GetObjectItem(r->json, "node");
}

/* Waits until GET /api/nodes/name shows consul.server (the model has the address). */
static cJSON *
node_when_matched(struct ctx *c, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/nodes/%s", name);
    for (int i = 0; i < 100; i++) {
        struct resp r = client_req(c->viewer, "GET", path, NULL);
        assert_int_equal(r.status, 200);
        const cJSON *consul = cJSON_GetObjectItem(node_of(&r), "consul");
        if (cJSON_IsObject(consul) && json_get_bool(consul, "server", 0)) {
            cJSON *n = cJSON_Duplicate(node_of(&r), 1);
            resp_free(&r);
            return n;
        }
        resp_free(&r);
        sim_sleep_ms(100);
    }
    fail_msg("node %s never matched a server of the model", name);
    return NULL;
}

static void
test_crud_and_hostkey(void **state)
{
    struct ctx *c = *state;
    char body[1024];
    /* a node on the sshd, another on a simulated server's address */
    snprintf(body, sizeof(body),
             "{\"name\":\"ssh-1\",\"address\":\"%s\",\"ssh_port\":%d,\"ssh_user\":\"root\","
             "\"ssh_key_path\":\"%s\",\"server_state\":\"spare\"}",
             c->node.addr, c->node.port, c->key);
    struct resp r = client_req(c->admin, "POST", "/api/nodes", body);
    assert_int_equal(r.status, 201);
    const cJSON *n = node_of(&r);
    assert_string_equal(json_get_str(n, "name", ""), "ssh-1");
    assert_string_equal(json_get_str(n, "compose_dir", ""), "/mnt/opt/docker-compose/consul");
    assert_string_equal(json_get_str(n, "data_dir", ""), "/mnt/var/lib/container/consul");
    assert_string_equal(json_get_str(n, "server_state", ""), "spare");
    const cJSON *hk = cJSON_GetObjectItem(n, "host_key");
    assert_false(json_get_bool(hk, "pinned", 1));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(hk, "fingerprint")));
    assert_non_null(cJSON_GetObjectItem(n, "created_at"));
    resp_free(&r);
    r = client_req(c->admin, "POST", "/api/nodes", body);
    assert_error_reply(&r, 409, "node_exists", "ssh-1");
    resp_free(&r);
    snprintf(
        body, sizeof(body),
        "{\"name\":\"other\",\"address\":\"%s\",\"ssh_user\":\"root\",\"ssh_key_path\":\"%s\"}",
        c->node.addr, c->key);
    r = client_req(c->admin, "POST", "/api/nodes", body);
    assert_error_reply(&r, 409, "node_exists", c->node.addr);
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "node.create", "ok"), 1);

    snprintf(body, sizeof(body),
             "{\"name\":\"c1\",\"address\":\"%s\",\"ssh_user\":\"root\",\"ssh_key_path\":\"%s\"}",
             c->sim->servers[0].ip, c->key);
    r = client_req(c->admin, "POST", "/api/nodes", body);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    cJSON *c1 = node_when_matched(c, "c1");
    const cJSON *consul = cJSON_GetObjectItem(c1, "consul");
    assert_true(json_get_bool(consul, "in_raft", 0));
    assert_true(json_get_bool(consul, "voter", 0));
    assert_true(json_get_bool(consul, "member", 0));
    assert_string_equal(json_get_str(consul, "serf_status", ""), "alive");
    assert_string_equal(json_get_str(consul, "node", ""), "consul-1");
    cJSON_Delete(c1);

    /* the host key as ssh-keygen -l prints it */
    r = client_req(c->admin, "GET", "/api/nodes/ssh-1/hostkey", NULL);
    assert_int_equal(r.status, 200);
    const cJSON *pres = cJSON_GetObjectItem(r.json, "presented");
    assert_string_equal(json_get_str(pres, "fingerprint", ""), c->fp.fingerprint);
    assert_string_equal(json_get_str(pres, "type", ""), c->fp.type);
    assert_int_equal((int)json_get_num(pres, "bits", 0), c->fp.bits);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r.json, "pinned")));
    assert_false(json_get_bool(r.json, "matches", 1));
    resp_free(&r);
    /* a fingerprint that is not the presented one: refused with both, nothing pinned */
    const char *wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    snprintf(body, sizeof(body), "{\"fingerprint\":\"%s\"}", wrong);
    r = client_req(c->admin, "POST", "/api/nodes/ssh-1/trust-hostkey", body);
    assert_error_reply(&r, 409, "host_key_mismatch", wrong);
    assert_non_null(strstr(resp_error_message(&r), c->fp.fingerprint));
    resp_free(&r);
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM nodes WHERE host_key_fingerprint IS "
                                    "NOT NULL"),
                     0);
    r = client_req(c->admin, "POST", "/api/nodes/ssh-1/trust-hostkey",
                   "{\"fingerprint\":\"MD5:aa\"}");
    assert_error_reply(&r, 400, "invalid_field", "'fingerprint'");
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"fingerprint\":\"%s\"}", c->fp.fingerprint);
    r = client_req(c->op, "POST", "/api/nodes/ssh-1/trust-hostkey", body);
    assert_error_reply(&r, 403, "forbidden", NULL);
    resp_free(&r);
    r = client_req(c->admin, "POST", "/api/nodes/ssh-1/trust-hostkey", body);
    assert_int_equal(r.status, 200);
    hk = cJSON_GetObjectItem(node_of(&r), "host_key");
    assert_true(json_get_bool(hk, "pinned", 0));
    assert_string_equal(json_get_str(hk, "fingerprint", ""), c->fp.fingerprint);
    assert_string_equal(json_get_str(hk, "pinned_by", ""), "admin");
    assert_string_equal(json_get_str(hk, "type", ""), c->fp.type);
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "node.trust_hostkey", "ok"), 1);
    assert_true(db_count_audit(c->srv, "node.trust_hostkey", "error") >= 2);
    r = client_req(c->admin, "GET", "/api/nodes/ssh-1/hostkey", NULL);
    assert_true(json_get_bool(r.json, "matches", 0));
    resp_free(&r);

    /* a field change keeps the pin; a new port unpins it, on the record */
    r = client_req(c->admin, "PATCH", "/api/nodes/ssh-1", "{\"compose_dir\":\"/srv/consul\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(node_of(&r), "compose_dir", ""), "/srv/consul");
    assert_true(json_get_bool(cJSON_GetObjectItem(node_of(&r), "host_key"), "pinned", 0));
    resp_free(&r);
    r = client_req(c->admin, "PATCH", "/api/nodes/ssh-1", "{\"name\":\"x\"}");
    assert_error_reply(&r, 400, "invalid_field", "'name'");
    resp_free(&r);
    r = client_req(c->admin, "PATCH", "/api/nodes/ssh-1", "{\"ssh_port\":-1}");
    assert_error_reply(&r, 400, "invalid_field", "'ssh_port'");
    resp_free(&r);
    r = client_req(c->admin, "PATCH", "/api/nodes/ssh-1", "{}");
    assert_error_reply(&r, 400, "invalid_field", NULL);
    resp_free(&r);
    r = client_req(c->admin, "PATCH", "/api/nodes/nope", "{\"data_dir\":\"/x\"}");
    assert_error_reply(&r, 404, "not_found", "nope");
    resp_free(&r);
    r = client_req(c->admin, "PATCH", "/api/nodes/ssh-1", "{\"ssh_port\":1}");
    assert_int_equal(r.status, 200);
    assert_false(json_get_bool(cJSON_GetObjectItem(node_of(&r), "host_key"), "pinned", 1));
    resp_free(&r);
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM audit_log WHERE action = "
                                    "'node.update' AND outcome = 'ok' AND detail LIKE "
                                    "'%host_key_unpinned%' AND detail LIKE '%ssh_port changed%'"),
                     1);
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM audit_log WHERE action = "
                                    "'node.update' AND detail LIKE "
                                    "'%\"compose_dir\":{\"from\":\"/mnt/opt/docker-compose/"
                                    "consul\",\"to\":\"/srv/consul\"}%'"),
                     1);
    /* nothing listens on port 1: 502 naming host and port */
    r = client_req(c->admin, "GET", "/api/nodes/ssh-1/hostkey", NULL);
    assert_error_reply(&r, 502, "ssh_unreachable", c->node.addr);
    assert_non_null(strstr(resp_error_message(&r), "port 1"));
    resp_free(&r);

    /* busy while an unfinished job involves it */
    assert_int_equal(db_exec(c->srv, "INSERT INTO jobs (id, type, node, state, reason, "
                                     "requested_by, requested_at) VALUES (900, 'node-add', "
                                     "'ssh-1', 'queued', 'r', 'olga', 1);"
                                     "INSERT INTO job_nodes (node, job_id) VALUES ('ssh-1', 900)"),
                     0);
    r = client_req(c->admin, "PATCH", "/api/nodes/ssh-1", "{\"ssh_user\":\"consul\"}");
    assert_error_reply(&r, 409, "node_busy", "900");
    resp_free(&r);
    r = client_req(c->admin, "DELETE", "/api/nodes/ssh-1", NULL);
    assert_error_reply(&r, 409, "node_busy", "900");
    resp_free(&r);
    assert_int_equal(db_exec(c->srv, "UPDATE jobs SET state = 'failed' WHERE id = 900"), 0);
    r = client_req(c->admin, "DELETE", "/api/nodes/ssh-1", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(c->admin, "DELETE", "/api/nodes/ssh-1", NULL);
    assert_error_reply(&r, 404, "not_found", "ssh-1");
    resp_free(&r);
    r = client_req(c->admin, "DELETE", "/api/nodes/c1", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "node.delete", "ok"), 2);
    assert_int_equal(node_count(c), 0);
}

/* POSTs, as client a, a node named name at address addr with SSH key key (JSON-safe). */
static struct resp
post_node_as(struct client *a, const char *key, const char *name, const char *addr)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"address\":\"%s\",\"ssh_user\":\"root\",\"ssh_key_path\":"
             "\"%s\"}",
             name, addr, key);
    return client_req(a, "POST", "/api/nodes", body);
}

static struct resp
post_node(struct ctx *c, const char *name, const char *addr)
{
    return post_node_as(c->admin, c->key, name, addr);
}

/* POSTs name at addr and expects 201 answering the address want. */
static void
expect_created(struct ctx *c, const char *name, const char *addr, const char *want)
{
    struct resp r = post_node(c, name, addr);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_get_str(node_of(&r), "address", ""), want);
    resp_free(&r);
}

/* A request expected to be refused with 409 node_exists naming the address taken (canonical),
 * with the inventory unchanged. */
static void
expect_taken(struct ctx *c, const char *method, const char *path, const char *body,
             const char *taken)
{
    expect_refused(c, method, path, body, 409, "node_exists", taken);
}

static void
delete_all_nodes(struct ctx *c)
{
    struct resp r = client_req(c->viewer, "GET", "/api/nodes", NULL);
    assert_int_equal(r.status, 200);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(r.json, "nodes"))
    {
        char path[128];
        snprintf(path, sizeof(path), "/api/nodes/%s", json_get_str(it, "name", ""));
        struct resp d = client_req(c->admin, "DELETE", path, NULL);
        assert_int_equal(d.status, 200);
        resp_free(&d);
    }
    resp_free(&r);
    assert_int_equal(node_count(c), 0);
}

static void
test_address_spellings(void **state)
{
    struct ctx *c = *state;
    char body[512];
    /* alone, each spelling is stored and answered in its canonical form */
    expect_created(c, "s1", "0:0:0:0:0:0:0:1", "::1");
    expect_created(c, "s2", "Node.Example.", "node.example");
    expect_created(c, "s3", "::ffff:127.0.0.71", "127.0.0.71");
    expect_created(c, "s4", "FD00:0:0:0:0:0:0:0A", "fd00::a");
    expect_created(c, "s5", "2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1");
    expect_created(c, "s6", "::1.2.3.4", "::102:304");
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM nodes WHERE address IN ('::1', "
                                    "'node.example', '127.0.0.71', 'fd00::a', "
                                    "'2001:db8:0:1::1', '::102:304')"),
                     6);
    delete_all_nodes(c);

    /* beside a node, every other spelling of its address is taken */
    expect_created(c, "t1", "::1", "::1");
    expect_created(c, "t2", "Node.Example", "node.example");
    expect_created(c, "t3", "127.0.0.71", "127.0.0.71");
    long ok_before = db_count_audit(c->srv, "node.create", "ok");
    static const struct {
        const char *addr, *taken;
    } dup[] = {
        {"0:0:0:0:0:0:0:1", "::1"},
        {"0::0:1", "::1"},
        {"node.example.", "node.example"},
        {"NODE.EXAMPLE", "node.example"},
        {"::ffff:127.0.0.71", "127.0.0.71"},
        {"::FFFF:7f00:47", "127.0.0.71"},
        {"0:0:0:0:0:ffff:127.0.0.71", "127.0.0.71"},
    };
    for (size_t i = 0; i < ARRAY_LEN(dup); i++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"dup%zu\",\"address\":\"%s\",\"ssh_user\":\"root\","
                 "\"ssh_key_path\":\"%s\"}",
                 i, dup[i].addr, c->key);
        expect_taken(c, "POST", "/api/nodes", body, dup[i].taken);
    }
    assert_int_equal(db_count_audit(c->srv, "node.create", "ok"), ok_before);

    /* PATCH to another node's address in another spelling: refused, nothing changed */
    expect_created(c, "t4", "10.5.0.1", "10.5.0.1");
    expect_taken(c, "PATCH", "/api/nodes/t4", "{\"address\":\"0:0::1\"}", "::1");
    expect_taken(c, "PATCH", "/api/nodes/t4", "{\"address\":\"Node.Example.\"}", "node.example");
    expect_taken(c, "PATCH", "/api/nodes/t4", "{\"address\":\"::ffff:127.0.0.71\"}", "127.0.0.71");
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM nodes WHERE name = 't4' AND "
                                    "address = '10.5.0.1'"),
                     1);
    /* its own address in another spelling is no new address (the pin stays), also for a node
     * stored before addresses were canonical: its spelling becomes the canonical one */
    assert_int_equal(db_exec(c->srv, "UPDATE nodes SET address = '0:0:0:0:0:0:0:1', "
                                     "host_key_type = 'ssh-ed25519', "
                                     "host_key_bits = 256, host_key_fingerprint = 'SHA256:x', "
                                     "host_key_pinned_at = 1, host_key_pinned_by = 'admin' "
                                     "WHERE name = 't1'"),
                     0);
    struct resp r = client_req(c->admin, "PATCH", "/api/nodes/t1", "{\"address\":\"0::1\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(node_of(&r), "address", ""), "::1");
    assert_true(json_get_bool(cJSON_GetObjectItem(node_of(&r), "host_key"), "pinned", 0));
    resp_free(&r);
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM audit_log WHERE action = "
                                    "'node.update' AND outcome = 'ok' AND detail LIKE "
                                    "'%\"address\":{\"from\":\"0:0:0:0:0:0:0:1\",\"to\":\"::1\"}%' "
                                    "AND detail NOT LIKE '%host_key_unpinned%'"),
                     1);
    /* a PATCH answers the canonical form too */
    r = client_req(c->admin, "PATCH", "/api/nodes/t4", "{\"address\":\"::FFFF:10.5.0.2\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(node_of(&r), "address", ""), "10.5.0.2");
    resp_free(&r);
    delete_all_nodes(c);

    /* a server's address in another spelling still matches the cluster model's */
    char mapped[64];
    snprintf(mapped, sizeof(mapped), "::ffff:%s", c->sim->servers[1].ip);
    expect_created(c, "m1", mapped, c->sim->servers[1].ip);
    cJSON *m1 = node_when_matched(c, "m1");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(m1, "consul"), "node", ""), "consul-2");
    cJSON_Delete(m1);
    delete_all_nodes(c);
}

static int
has_problem_for(const cJSON *model, const char *code, const char *node)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(model, "problems"))
    {
        if (strcmp(json_get_str(p, "code", ""), code) == 0 &&
            (!node || strcmp(json_get_str(p, "node", ""), node) == 0)) {
            return 1;
        }
    }
    return 0;
}

/* Polls /api/cluster until the problem code for node appears (want 1) or is gone (want 0). */
static int
wait_problem(struct ctx *c, const char *code, const char *node, int want, int timeout_ms)
{
    long long deadline = sim_now_ms() + timeout_ms;
    for (;;) {
        struct resp r = client_req(c->viewer, "GET", "/api/cluster", NULL);
        int has = r.status == 200 && has_problem_for(r.json, code, node);
        resp_free(&r);
        if (has == want) {
            return 1;
        }
        if (sim_now_ms() > deadline) {
            return 0;
        }
        sim_sleep_ms(100);
    }
}

static void
test_import_and_server_missing(void **state)
{
    struct ctx *c = *state;
    char body[512];
    /* a node named like a raft server exists already: skipped */
    snprintf(body, sizeof(body),
             "{\"name\":\"consul-2\",\"address\":\"10.77.0.2\",\"ssh_user\":\"root\","
             "\"ssh_key_path\":\"%s\"}",
             c->key);
    struct resp r = client_req(c->admin, "POST", "/api/nodes", body);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    assert_true(wait_problem(c, "no_leader", NULL, 0, 10000));
    r = client_req(c->admin, "POST", "/api/nodes/import", "{\"ssh_user\":\"root\"}");
    assert_error_reply(&r, 400, "invalid_field", "'ssh_key_path'");
    resp_free(&r);
    snprintf(body, sizeof(body),
             "{\"ssh_user\":\"root\",\"ssh_key_path\":\"%s\",\"ssh_port\":2222}", c->key);
    r = client_req(c->admin, "POST", "/api/nodes/import", body);
    assert_int_equal(r.status, 200);
    const cJSON *created = cJSON_GetObjectItem(r.json, "created");
    const cJSON *skipped = cJSON_GetObjectItem(r.json, "skipped");
    assert_int_equal(cJSON_GetArraySize(created), 3);
    assert_int_equal(cJSON_GetArraySize(skipped), 1);
    assert_string_equal(json_get_str(cJSON_GetArrayItem(skipped, 0), "name", ""), "consul-2");
    resp_free(&r);
    r = client_req(c->viewer, "GET", "/api/nodes/consul-3", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(node_of(&r), "address", ""), c->sim->servers[2].ip);
    assert_string_equal(json_get_str(node_of(&r), "server_state", ""), "server");
    assert_int_equal((int)json_get_num(node_of(&r), "ssh_port", 0), 2222);
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "node.import", "ok"), 1);
    assert_true(wait_problem(c, "server_missing", NULL, 0, 5000));

    /* an imported server leaves: it is missing; marked removed, it is not */
    long st = 0;
    char *out = NULL;
    assert_int_equal(sim_ctl(c->sim, "POST", "/sim/servers/consul-4/leave", NULL, &st, &out), 0);
    free(out);
    assert_true(st >= 200 && st < 300);
    assert_true(wait_problem(c, "server_missing", "consul-4", 1, 10000));
    r = client_req(c->admin, "PATCH", "/api/nodes/consul-4", "{\"server_state\":\"removed\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(wait_problem(c, "server_missing", "consul-4", 0, 5000));
    r = client_req(c->viewer, "GET", "/api/cluster", NULL);
    assert_false(has_problem_for(r.json, "server_left", NULL));
    resp_free(&r);
}

/* Addresses stored before they were canonical (by an older version, planted here in SQL) are
 * rewritten at the next start, on the record, the pinned key kept; one whose canonical form
 * another node has is left and logged. */
static void
test_stored_addresses_made_canonical(void **state)
{
    struct ctx *c = *state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    struct client *a = srv_login(s, "admin", s->admin_pw);
    assert_non_null(a);
    static const char *const nodes[][2] = {
        {"r1", "10.9.0.1"}, {"r2", "10.9.0.2"}, {"r3", "10.9.0.3"}, {"r4", "10.9.0.9"}};
    for (size_t i = 0; i < ARRAY_LEN(nodes); i++) {
        struct resp r = post_node_as(a, c->key, nodes[i][0], nodes[i][1]);
        assert_int_equal(r.status, 201);
        resp_free(&r);
    }
    client_free(a);
    assert_int_equal(db_exec(s, "UPDATE nodes SET address = '0:0:0:0:0:0:a:1', "
                                "host_key_type = 'ssh-ed25519', host_key_bits = 256, "
                                "host_key_fingerprint = 'SHA256:x', host_key_pinned_at = 1, "
                                "host_key_pinned_by = 'admin' WHERE name = 'r1'"),
                     0);
    assert_int_equal(db_exec(s, "UPDATE nodes SET address = 'Host-A.Example.' WHERE name = 'r2'"),
                     0);
    assert_int_equal(db_exec(s, "UPDATE nodes SET address = '::FFFF:10.9.0.9' WHERE name = 'r3'"),
                     0);
    char dir[sizeof(s->dir)];
    snprintf(dir, sizeof(dir), "%s", s->dir);
    srv_stop_keep(s, 1);
    s = srv_start_in(dir, NULL);
    assert_non_null(s);
    assert_int_equal(db_int(s, "SELECT count(*) FROM nodes WHERE name = 'r1' AND address = "
                               "'::a:1' AND host_key_fingerprint = 'SHA256:x'"),
                     1);
    assert_int_equal(db_int(s, "SELECT count(*) FROM nodes WHERE name = 'r2' AND address = "
                               "'host-a.example'"),
                     1);
    /* r3 is r4's host: left as it was, and said */
    assert_int_equal(db_int(s, "SELECT count(*) FROM nodes WHERE name = 'r3' AND address = "
                               "'::FFFF:10.9.0.9'"),
                     1);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE action = 'node.update' "
                               "AND actor = 'system' AND outcome = 'ok' AND detail LIKE "
                               "'%\"to\":\"::a:1\"%'"),
                     1);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE action = 'node.update' "
                               "AND actor = 'system'"),
                     2);
    char *log = file_read_all(s->log, 1 << 20, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "node r3 (::FFFF:10.9.0.9) names the same host as another node"));
    free(log);
    srv_stop(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_crud_and_hostkey),
        cmocka_unit_test(test_address_spellings),
        cmocka_unit_test(test_stored_addresses_made_canonical),
        cmocka_unit_test(test_import_and_server_missing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
