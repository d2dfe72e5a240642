/* gate: the verification that replaces "wait about 30 seconds". It passes when the live
 * model shows exactly the expected servers in raft (matched by address), every one a voter,
 * exactly one leader, autopilot healthy where autopilot answers, the model fresh (Consul
 * answered after the gate began), and `consul operator raft list-peers` run over SSH on a
 * node parses to the same picture. It polls (no fixed sleep) until it passes or times out.
 * The checks are pure functions; gate_wait drives them through the procedures' runner. */
#ifndef CONSULATE_GATE_H
#define CONSULATE_GATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

struct cluster_model;
struct proc_ctx;
struct store_node;

/* The servers that must be in raft: address hosts (inventory addresses), with names for
 * messages; peer_node is where list-peers runs (borrowed, must be one of them or NULL to
 * skip that check). */
struct gate_expect {
    const char *const *addrs;
    const char *const *names;
    size_t n;
    const struct store_node *peer_node;
};

/* One row of `consul operator raft list-peers`. */
struct gate_peer {
    char node[128];
    char id[64];
    char address[128];
    char state[16]; /* leader, follower, … */
    int voter;
};

/* Checks the model against e. Returns 1 when it holds; else 0 with why naming the first
 * thing missing ("consul-5 (10.0.0.5) is not in raft", "2 leaders", …). */
int gate_check_model(const struct cluster_model *m, const struct gate_expect *e, char *why,
                     size_t whylen);

/* Parses list-peers output (header `Node ID Address State Voter RaftProtocol`, columns
 * separated by spaces). On 0 *out (caller frees) holds *n rows; -1 with why when the text is
 * not that table. */
int gate_parse_list_peers(const char *text, struct gate_peer **out, size_t *n, char *why,
                          size_t whylen);

/* 1 when the peers show the model's raft picture: the same servers by address, voters, and
 * one leader, the model's leader; else 0 with why. */
int gate_compare_peers(const struct cluster_model *m, const struct gate_peer *p, size_t n,
                       char *why, size_t whylen);

enum gate_rc { GATE_PASSED = 0, GATE_TIMEOUT = 1, GATE_CANCELLED = 2 };

/* Polls until the gate passes, timeout_ms passes, or x->abort is raised; logs
 * progress to the job. *report (may be NULL) gets {"passed","elapsed_ms","rounds",
 * "servers","leader","reason"} (owned by the caller). */
int gate_wait(struct proc_ctx *x, const struct gate_expect *e, int timeout_ms, cJSON **report);

#endif
