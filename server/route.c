/* route: pure path-pattern matching for the route table, and the one percent-decoder of
 * the HTTP layer. See include/http.h. */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    } else if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *
http_pct_decode(const char *s, size_t n, int plus_is_space)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 2 < n ? hexval(s[i + 1]) : -1;
            int b = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(a * 16 + b);
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out[o++] = ' ';
        } else if (s[i] == '\0') {
            free(out);
            return NULL;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void
free_params(char **params, int n)
{
    for (int i = 0; i < n; i++) {
        free(params[i]);
        params[i] = NULL;
    }
}

int
route_match(const char *pattern, const char *path, char **params, int maxparams, int *nparams)
{
    const char *p = pattern, *s = path;
    int n = 0;
    while (*p) {
        if (p[0] == '*' && p[1] == '\0') {
            /* the tail, possibly empty, kept raw (the proxy forwards it as is) */
            if (n == maxparams) {
                goto fail;
            }
            params[n++] = xstrdup(s);
            s += strlen(s);
            p++;
            break;
        }
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close || n == maxparams) {
                goto fail;
            }
            size_t seg = strcspn(s, "/");
            if (seg == 0) {
                goto fail;
            }
            char *v = http_pct_decode(s, seg, 0);
            if (!v || strchr(v, '/')) {
                free(v);
                goto fail;
            }
            params[n++] = v;
            s += seg;
            p = close + 1;
            continue;
        }
        if (*p != *s) {
            goto fail;
        }
        p++;
        s++;
    }
    if (*s != '\0') {
        goto fail;
    }
    *nparams = n;
    return 1;
fail:
    free_params(params, n);
    *nparams = 0;
    return 0;
}

const struct route *
route_find(const struct route *table, size_t n, const char *method, const char *path, char **params,
           int *nparams, int *path_matched)
{
    *path_matched = 0;
    for (size_t i = 0; i < n; i++) {
        if (!route_match(table[i].pattern, path, params, HTTP_MAX_PARAMS, nparams)) {
            continue;
        }
        if (strcmp(table[i].method, "*") == 0 || strcmp(table[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(table[i].method, "GET") == 0)) {
            return &table[i];
        }
        *path_matched = 1;
        free_params(params, *nparams);
        *nparams = 0;
    }
    return NULL;
}
