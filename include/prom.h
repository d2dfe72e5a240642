/* prom: a small, bounded parser for the Prometheus text exposition format (version 0.0.4),
 * as served by consul_exporter on :9107. Pure: text in, samples out. */
#ifndef CONSULATE_PROM_H
#define CONSULATE_PROM_H

#include <stddef.h>
#include <stdint.h>

/* Inputs larger than this are refused whole (PROM_TOO_BIG). */
#define PROM_MAX_TEXT (16u * 1024u * 1024u)
/* A sample line with more labels than this is malformed (skipped). */
#define PROM_MAX_LABELS 64

enum prom_rc { PROM_OK = 0, PROM_TOO_BIG = 1 };

struct prom_label {
    char *name;
    char *value; /* unescaped: \\ \" \n become \ " newline */
};

struct prom_sample {
    char *name;
    struct prom_label *labels;
    size_t n_labels;
    double value; /* may be NAN or ±INFINITY */
    int has_timestamp;
    int64_t timestamp_ms;
};

/* Parses len bytes of text (NUL bytes allowed only as malformed content). Comment lines
 * (# HELP, # TYPE and any other #) and blank lines are skipped; a malformed sample line is
 * skipped and counted in *n_skipped (may be NULL). On PROM_OK, *out holds *n samples in
 * input order, owned by the caller (prom_samples_free); *out may be NULL when *n is 0. On
 * PROM_TOO_BIG (len > PROM_MAX_TEXT) nothing is allocated and *out is NULL. */
int prom_parse(const char *text, size_t len, struct prom_sample **out, size_t *n,
               size_t *n_skipped);

/* Frees n samples and the array. NULL is a no-op. */
void prom_samples_free(struct prom_sample *s, size_t n);

/* The value of the first sample called name which, when label_name is not NULL, has that
 * label with exactly label_value (any value when label_value is NULL). NAN when absent. */
double prom_value(const struct prom_sample *s, size_t n, const char *name, const char *label_name,
                  const char *label_value);

/* The value of a label of one sample, borrowed from it; NULL when the sample lacks it. */
const char *prom_label_get(const struct prom_sample *s, const char *label_name);

#endif
