/* inventory: the rules of an inventory node (validation of each field), its JSON as the API
 * shows it (with what the live cluster model knows of its address), and the link from the
 * inventory to the model: the nodes that should run a server are the model's expected
 * servers (the problem server_missing). No HTTP and no SQL beyond store_jobs.h. */
#ifndef CONSULATE_INVENTORY_H
#define CONSULATE_INVENTORY_H

#include <stddef.h>

#include <cjson/cJSON.h>

struct cluster_model;
struct store;
struct store_node;
struct watch;

#define INVENTORY_DEFAULT_SSH_PORT 22
#define INVENTORY_DEFAULT_COMPOSE_DIR "/mnt/opt/docker-compose/consul"
#define INVENTORY_DEFAULT_DATA_DIR "/mnt/var/lib/container/consul"
#define INVENTORY_PATH_MAX 1024
/* Room for a canonical address (inventory_address_canonical) and its NUL. */
#define INVENTORY_ADDRESS_MAX 256

/* Each returns NULL when the value is acceptable, else a sentence saying why not (static
 * text; the caller names the field). */
/* 1–64 of [A-Za-z0-9_.-], starting with a letter or digit. */
const char *inventory_name_problem(const char *name);
/* An IPv4 or IPv6 literal (bare, no brackets) or a DNS name; no port. */
const char *inventory_address_problem(const char *address);
/* inventory_address_problem, then the one form the inventory stores and compares, written to
 * out (outlen at least INVENTORY_ADDRESS_MAX): an IPv4 address as inet_ntop prints it; an
 * IPv6 address in RFC 5952 form (lower-case hex, the longest run of two or more zero groups
 * as "::", no dotted quad), as Consul (Go) prints it, except that an IPv4-mapped address
 * (::ffff:a.b.c.d) becomes the IPv4 address a.b.c.d; a DNS name lower-cased without its
 * trailing dot. So two spellings of one host give one string. Returns NULL, or the sentence
 * of inventory_address_problem (out is then ""). */
const char *inventory_address_canonical(const char *address, char *out, size_t outlen);
/* At start-up: every stored node address not in the canonical form (stored by a version that
 * kept the spelling given) is rewritten in it, one transaction each with a node.update entry
 * by "system" (the pinned host key stays); one whose canonical form another node has already
 * is left and logged (two nodes name the same host). Returns how many were rewritten, or -1
 * when the nodes cannot be read. */
int inventory_canonicalize_stored(struct store *db);
/* 1–32 of [A-Za-z0-9._-], not starting with '-'. */
const char *inventory_user_problem(const char *user);
/* Absolute, without "." or ".." components, "//", a trailing '/' or control characters, at
 * most INVENTORY_PATH_MAX bytes. */
const char *inventory_path_problem(const char *path);
/* inventory_path_problem, then: exists, is a regular file readable by this process, and has
 * no permission bits for group or others (0600 or stricter). why (at least 256 bytes) gets
 * the sentence, which may include the mode found. Returns 0 or -1. */
int inventory_key_file_check(const char *path, char *why, size_t whylen);
/* unknown, server, spare or removed. */
int inventory_server_state_valid(const char *state);

/* The API's node object. m (may be NULL: "consul" is then null) is the live model. The caller
 * owns the result. */
cJSON *inventory_node_json(const struct store_node *n, const struct cluster_model *m);

/* Reads the nodes whose server_state is "server" and hands them to the watcher as the
 * expected servers. A NULL watcher or a database error does nothing (logged). */
void inventory_publish_expected(struct store *db, struct watch *w);

#endif
