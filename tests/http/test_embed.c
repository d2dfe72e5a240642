/* The binary carries its UI: build/consulate and build/lib copied into an empty folder, run
 * there without web_root, serve every file of web/ byte for byte, with ETags and 304, gzip
 * to clients that take it, versioned assets cached for good, and nothing outside them. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../nodes/harness.h"
#include "harness.h"
#include "rawhttp.h"
#include "util.h"

struct fx {
    char dir[64];
    char src[4096]; /* the source tree, to compare with */
    char version[64];
    struct srv *srv;
};

static struct fx *the_fx;

static int
sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "test_embed: `%s` failed\n", cmd);
    }
    return rc;
}

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    const char *src = getenv("CONSULATE_SRC");
    const char *bin = getenv("CONSULATE_BIN");
    char bin_real[4096];
    if (!realpath(src ? src : ".", f->src) || !realpath(bin ? bin : "build/consulate", bin_real)) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/consulate-embed-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    /* the binary and its lib/ (the OpenSSL shim), nothing else; run from an empty folder */
    char *bindir = xstrdup(bin_real);
    *strrchr(bindir, '/') = '\0';
    char *cmd = xasprintf("mkdir -p %s/app %s/run && cp %s %s/app/consulate && "
                          "cp -r %s/lib %s/app/lib",
                          f->dir, f->dir, bin_real, f->dir, bindir, f->dir);
    free(bindir);
    int rc = sh(cmd);
    free(cmd);
    if (rc != 0) {
        return -1;
    }
    char *copy = xasprintf("%s/app/consulate", f->dir);
    setenv("CONSULATE_BIN", copy, 1);
    free(copy);
    char *run = xasprintf("%s/run", f->dir);
    rc = chdir(run);
    free(run);
    if (rc != 0) {
        return -1;
    }
    f->srv = srv_start(NULL);
    if (!f->srv) {
        return -1;
    }
    the_fx = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    srv_stop(f->srv);
    int rc = chdir("/");
    (void)rc;
    char *cmd = xasprintf("rm -rf %s", f->dir);
    sh(cmd);
    free(cmd);
    free(f);
    return 0;
}

/* GET (or method) path with extra header lines ("Name: value\r\n…", may be NULL). */
static int
get(struct fx *f, const char *method, const char *path, const char *headers, struct raw_resp *r)
{
    char *req = xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
                          method, path, headers ? headers : "");
    memset(r, 0, sizeof(*r));
    int st = raw_exchange(f->srv->port, NULL, req, r, 10000);
    free(req);
    return st;
}

static char *
web_file(struct fx *f, const char *rel, size_t *len)
{
    char *p = xasprintf("%s/web/%s", f->src, rel);
    char *body = file_read_all(p, 16 << 20, len);
    free(p);
    return body;
}

/* 1 when header name of r contains want. */
static int
header_has(const struct raw_resp *r, const char *name, const char *want)
{
    char *v = raw_header(r, name);
    int ok = v && strstr(v, want);
    if (!ok) {
        fprintf(stderr, "%s: '%s', wanted '%s'\n%s\n", name, v ? v : "(none)", want, r->head);
    }
    free(v);
    return ok;
}

/* The body of a gzip response, decompressed by gzip(1). */
static char *
gunzip(struct fx *f, const struct raw_resp *r, size_t *len)
{
    char *gz = xasprintf("%s/body.gz", f->dir);
    char *out = xasprintf("%s/body", f->dir);
    FILE *fp = fopen(gz, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(r->body, 1, r->body_len, fp), r->body_len);
    fclose(fp);
    char *cmd = xasprintf("gzip -dc < %s > %s", gz, out);
    assert_int_equal(sh(cmd), 0);
    char *body = file_read_all(out, 16 << 20, len);
    free(cmd);
    free(gz);
    free(out);
    return body;
}

static void
test_index_and_its_assets(void **state)
{
    struct fx *f = *state;
    struct raw_resp r;
    assert_int_equal(get(f, "GET", "/", NULL, &r), 200);
    assert_true(header_has(&r, "Content-Type", "text/html"));
    assert_true(header_has(&r, "Cache-Control", "no-cache"));
    assert_true(header_has(&r, "ETag", "\""));
    assert_null(strstr(r.head, "Content-Encoding"));
    /* the references of index.html are versioned: v/<version>/… */
    const char *v = strstr(r.body, "src=\"v/");
    assert_non_null(v);
    v += strlen("src=\"v/");
    size_t vl = strcspn(v, "/");
    assert_true(vl >= 8 && vl < sizeof(f->version));
    memcpy(f->version, v, vl);
    f->version[vl] = '\0';
    /* one script: the bundle of every module (scripts/bundle-web.sh), not js/app.js and the
     * modules it imports one by one */
    char *prefix = xasprintf("v/%s/", f->version);
    char *script = xasprintf("<script type=\"module\" src=\"%sjs/bundle.js\"></script>", prefix);
    assert_non_null(strstr(r.body, script));
    free(script);
    assert_null(strstr(r.body, "js/app.js"));
    /* with the prefix taken out and js/app.js for the bundle, index.html is the file in web/ */
    struct buf un;
    buf_init(&un, 1 << 20);
    int refs = 0;
    for (const char *p = r.body; *p;) {
        const char *hit = strstr(p, prefix);
        if (!hit) {
            buf_puts(&un, p);
            break;
        }
        buf_append(&un, p, (size_t)(hit - p));
        p = hit + strlen(prefix);
        if (strncmp(p, "js/bundle.js\"", 13) == 0) {
            buf_puts(&un, "js/app.js");
            p += strlen("js/bundle.js");
        }
        refs++;
    }
    size_t len;
    char *want = web_file(f, "index.html", &len);
    assert_non_null(want);
    assert_int_equal(un.len, len);
    assert_memory_equal(un.data, want, len);
    free(want);
    buf_free(&un);
    assert_true(refs >= 3); /* favicon, stylesheet, the bundle */
    /* every asset index.html references: the file in web/, cached for a year */
    for (const char *p = r.body; (p = strstr(p, prefix)); p += strlen(prefix)) {
        const char *rel = p + strlen(prefix);
        char *path = xstrndup(rel, strcspn(rel, "\""));
        char *url = xasprintf("/%s%s", prefix, path);
        struct raw_resp a;
        assert_int_equal(get(f, "GET", url, NULL, &a), 200);
        assert_true(header_has(&a, "Cache-Control", "max-age=31536000"));
        assert_true(header_has(&a, "Cache-Control", "immutable"));
        if (strcmp(path, "js/bundle.js") == 0) {
            /* what scripts/bundle-web.sh makes of web/ now */
            char *cmd = xasprintf("%s/scripts/bundle-web.sh %s/web > %s/bundle.js", f->src, f->src,
                                  f->dir);
            assert_int_equal(sh(cmd), 0);
            free(cmd);
            char *bp = xasprintf("%s/bundle.js", f->dir);
            want = file_read_all(bp, 16 << 20, &len);
            free(bp);
        } else {
            want = web_file(f, path, &len);
        }
        assert_non_null(want);
        assert_int_equal(a.body_len, len);
        assert_memory_equal(a.body, want, len);
        if (str_ends_with(path, ".js")) {
            assert_true(header_has(&a, "Content-Type", "text/javascript"));
        } else if (str_ends_with(path, ".css")) {
            assert_true(header_has(&a, "Content-Type", "text/css"));
        }
        free(want);
        free(url);
        free(path);
        raw_resp_free(&a);
    }
    free(prefix);
    raw_resp_free(&r);
}

/* ---- every file of web/, plain and gzipped, versioned and not ---- */

/* what a first visit transfers at most: every file (a zh-CN browser loads both languages) */
static size_t first_load_gz;
static int files_seen;

static int
check_file(const char *fpath, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    struct fx *f = the_fx;
    if (flag != FTW_F) {
        return 0;
    }
    const char *rel = fpath + strlen(f->src) + strlen("/web/");
    if (strcmp(rel, "index.html") == 0) {
        return 0;
    }
    size_t len;
    char *want = web_file(f, rel, &len);
    assert_non_null(want);
    char *plain = xasprintf("/%s", rel);
    char *versioned = xasprintf("/v/%s/%s", f->version, rel);
    struct raw_resp r;
    assert_int_equal(get(f, "GET", plain, NULL, &r), 200);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, want, len);
    assert_true(header_has(&r, "Cache-Control", "no-cache"));
    raw_resp_free(&r);
    assert_int_equal(get(f, "GET", versioned, "Accept-Encoding: gzip, deflate, br\r\n", &r), 200);
    assert_true(header_has(&r, "Vary", "Accept-Encoding"));
    char *ce = raw_header(&r, "Content-Encoding");
    if (ce) {
        assert_string_equal(ce, "gzip");
        assert_true(r.body_len < len);
        size_t glen;
        char *got = gunzip(f, &r, &glen);
        assert_int_equal(glen, len);
        assert_memory_equal(got, want, len);
        free(got);
    } else {
        assert_memory_equal(r.body, want, len);
    }
    first_load_gz += r.body_len + strlen(r.head);
    free(ce);
    raw_resp_free(&r);
    free(plain);
    free(versioned);
    free(want);
    files_seen++;
    return 0;
}

static void
test_every_file_plain_and_gzip(void **state)
{
    struct fx *f = *state;
    if (!f->version[0]) {
        test_index_and_its_assets(state);
    }
    char *root = xasprintf("%s/web", f->src);
    first_load_gz = 0;
    files_seen = 0;
    assert_int_equal(nftw(root, check_file, 8, FTW_PHYS), 0);
    free(root);
    assert_true(files_seen > 10);
    struct raw_resp r;
    assert_int_equal(get(f, "GET", "/", "Accept-Encoding: gzip\r\n", &r), 200);
    assert_true(header_has(&r, "Content-Encoding", "gzip"));
    first_load_gz += r.body_len + strlen(r.head);
    raw_resp_free(&r);
    fprintf(stderr, "test_embed: first load %zu bytes with gzip\n", first_load_gz);
    assert_true(first_load_gz <= 100 * 1024);
    /* gzip refused with q=0, or not offered: the plain bytes */
    assert_int_equal(get(f, "GET", "/js/app.js", "Accept-Encoding: gzip;q=0, identity\r\n", &r),
                     200);
    assert_null(raw_header(&r, "Content-Encoding"));
    raw_resp_free(&r);
}

static void
test_etag_and_304(void **state)
{
    struct fx *f = *state;
    static const char *const enc[] = {NULL, "Accept-Encoding: gzip\r\n"};
    char *etags[2];
    for (int i = 0; i < 2; i++) {
        struct raw_resp r;
        assert_int_equal(get(f, "GET", "/js/app.js", enc[i], &r), 200);
        etags[i] = raw_header(&r, "ETag");
        assert_non_null(etags[i]);
        assert_true(etags[i][0] == '"' && etags[i][strlen(etags[i]) - 1] == '"'); /* strong */
        raw_resp_free(&r);
        char *h = xasprintf("%sIf-None-Match: \"nope\", %s\r\n", enc[i] ? enc[i] : "", etags[i]);
        assert_int_equal(get(f, "GET", "/js/app.js", h, &r), 304);
        assert_int_equal(r.body_len, 0);
        assert_true(header_has(&r, "ETag", etags[i]));
        assert_true(header_has(&r, "Cache-Control", "no-cache"));
        raw_resp_free(&r);
        free(h);
        h = xasprintf("%sIf-None-Match: \"0000\"\r\n", enc[i] ? enc[i] : "");
        assert_int_equal(get(f, "GET", "/js/app.js", h, &r), 200);
        assert_true(r.body_len > 0);
        raw_resp_free(&r);
        free(h);
    }
    /* the two representations have different tags */
    assert_string_not_equal(etags[0], etags[1]);
    /* the plain one's tag does not validate the gzip one */
    char *h = xasprintf("Accept-Encoding: gzip\r\nIf-None-Match: %s\r\n", etags[0]);
    struct raw_resp r;
    assert_int_equal(get(f, "GET", "/js/app.js", h, &r), 200);
    raw_resp_free(&r);
    free(h);
    /* index.html: revalidated every time, 304 when unchanged */
    assert_int_equal(get(f, "GET", "/", NULL, &r), 200);
    char *tag = raw_header(&r, "ETag");
    raw_resp_free(&r);
    h = xasprintf("If-None-Match: %s\r\n", tag);
    assert_int_equal(get(f, "GET", "/index.html", h, &r), 304);
    raw_resp_free(&r);
    assert_int_equal(get(f, "HEAD", "/", NULL, &r), 200);
    assert_int_equal(r.body_len, 0);
    raw_resp_free(&r);
    free(h);
    free(tag);
    free(etags[0]);
    free(etags[1]);
}

static void
test_nothing_else(void **state)
{
    struct fx *f = *state;
    if (!f->version[0]) {
        test_index_and_its_assets(state);
    }
    char *v = f->version;
    char *paths[] = {
        xstrdup("/nope.js"),
        xstrdup("/js/"),
        xstrdup("/js"),
        xstrdup("/v/0000000000000000/js/app.js"),
        xasprintf("/v/%s/", v),
        xasprintf("/v/%s/nope.css", v),
        xasprintf("/v/%s/index.html", v),
        xstrdup("/../etc/passwd"),
        xstrdup("/%2e%2e/%2e%2e/etc/passwd"),
        xstrdup("/%2E%2E%2fMakefile"),
        xasprintf("/v/%s/../../../etc/passwd", v),
        xasprintf("/v/%s/%%2e%%2e/%%2e%%2e/etc/passwd", v),
        xasprintf("/v/%s/js/..%%2f..%%2fREADME.md", v),
        xstrdup("/js/app.js%00.png"),
        xstrdup("/%00"),
        xstrdup("/index.html%00"),
        xstrdup("/web/index.html"),
        xstrdup("/consulate"),
        xstrdup("/lib/libssl.so"),
        xstrdup("/js\\app.js"),
        xstrdup("//js/app.js"),
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct raw_resp r;
        int st = get(f, "GET", paths[i], NULL, &r);
        if (st != 404 && st != 400) {
            fail_msg("%s gave %d", paths[i], st);
        }
        assert_null(strstr(r.body, "root:"));
        raw_resp_free(&r);
        free(paths[i]);
    }
    struct raw_resp r;
    assert_int_equal(get(f, "POST", "/js/app.js", "Content-Length: 0\r\n", &r), 405);
    raw_resp_free(&r);
    /* the server ran from an empty folder, with no web_root */
    char *cfg = file_read_all(f->srv->config, 1 << 16, NULL);
    assert_null(strstr(cfg, "web_root"));
    free(cfg);
}

/* web_root set: the files on disk as they are (developing), the embedded ones not at all */
static void
test_web_root_serves_from_disk(void **state)
{
    struct fx *f = *state;
    char *web = xasprintf("%s/devweb", f->dir);
    char *cmd = xasprintf("mkdir -p %s/js && printf 'console.log(1);' > %s/js/app.js && "
                          "printf '<p>dev</p>' > %s/index.html",
                          web, web, web);
    assert_int_equal(sh(cmd), 0);
    free(cmd);
    char *cfg = xasprintf("\"web_root\":\"%s\"", web);
    struct srv *dev = srv_start(cfg);
    free(cfg);
    assert_non_null(dev);
    struct srv *embedded = f->srv;
    f->srv = dev;
    struct raw_resp r;
    assert_int_equal(get(f, "GET", "/", "Accept-Encoding: gzip\r\n", &r), 200);
    assert_string_equal(r.body, "<p>dev</p>");
    assert_true(header_has(&r, "Cache-Control", "no-cache"));
    raw_resp_free(&r);
    assert_int_equal(get(f, "GET", "/js/app.js", NULL, &r), 200);
    assert_string_equal(r.body, "console.log(1);");
    raw_resp_free(&r);
    assert_int_equal(get(f, "GET", "/css/app.css", NULL, &r), 404);
    raw_resp_free(&r);
    assert_int_equal(get(f, "GET", "/%2e%2e/run/../app/consulate", NULL, &r), 404);
    raw_resp_free(&r);
    f->srv = embedded;
    srv_stop(dev);
    free(web);
}


/* ---- scripts/bundle-web.sh ---- */

/* Writes text to dir/rel (its directories made). */
static void
put(const char *dir, const char *rel, const char *text)
{
    char *path = xasprintf("%s/%s", dir, rel);
    char *cmd = xasprintf("mkdir -p \"$(dirname %s)\"", path);
    assert_int_equal(sh(cmd), 0);
    assert_int_equal(nodes_write_file(path, text), 0);
    free(cmd);
    free(path);
}

/* Runs the bundler on dir: its exit status, *out its stdout and stderr. */
static int
bundle(struct fx *f, const char *dir, char **out)
{
    char *cmd = xasprintf("%s/scripts/bundle-web.sh %s > %s/b.out 2>&1", f->src, dir, f->dir);
    int rc = system(cmd);
    free(cmd);
    char *p = xasprintf("%s/b.out", f->dir);
    size_t len;
    *out = file_read_all(p, 1 << 20, &len);
    free(p);
    return rc;
}

/* Dependencies first, in import order, each once; imports as constants, exports returned. */
static void
test_bundle_packs_in_order(void **state)
{
    struct fx *f = *state;
    char *d = xasprintf("%s/b1", f->dir);
    put(d, "js/app.js",
        "import { twice as double, ONE } from './lib/x.js';\n"
        "import * as y from './y.js';\n"
        "import {\n  three,\n} from './lib/z.js';\n"
        "document.title = String(double(ONE) + y.base() + three);\n");
    put(d, "js/lib/x.js",
        "import { base } from '../y.js';\nexport const ONE = 1;\n"
        "export function twice(n) {\n  return 2 * n + base();\n}\n");
    put(d, "js/y.js", "// y\nexport async function later() {}\nexport function base() { return 0; }\n");
    put(d, "js/lib/z.js", "export class Three {}\nexport const three = 3;\n");
    char *out = NULL;
    assert_int_equal(bundle(f, d, &out), 0);
    const char *y = strstr(out, "// js/y.js\nconst __m0 = (() => {\n// y\n");
    const char *x = strstr(out, "// js/lib/x.js\nconst __m1 = (() => {\nconst { base } = __m0;\n");
    const char *z = strstr(out, "// js/lib/z.js\nconst __m2 = (() => {\nclass Three {}\nconst three");
    const char *app = strstr(out, "// js/app.js\nconst __m3 = (() => {\n"
                                  "const { twice: double, ONE } = __m1;\nconst y = __m0;\n"
                                  "const { three } = __m2;\n");
    if (!y || !x || !z || !app) {
        fail_msg("unexpected bundle:\n%s", out);
    }
    assert_true(y < x && x < z && z < app);
    assert_non_null(strstr(out, "return { later, base };\n})();\n"));
    assert_non_null(strstr(out, "return { ONE, twice };\n})();\n"));
    assert_non_null(strstr(out, "return { Three, three };\n})();\n"));
    assert_non_null(strstr(out, "document.title = String(double(ONE) + y.base() + three);\n"
                                "return {  };\n})();\n"));
    assert_null(strstr(out, "export "));
    assert_null(strstr(out, "import "));
    free(out);
    free(d);
}

/* What it cannot pack faithfully stops it, naming the file and line; nothing is written. */
static void
test_bundle_refuses(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *app, *other, *says;
    } cases[] = {
        {"export default 1;\n", NULL, "js/app.js:1: only export function"},
        {"let a = 1;\nexport let b = 2;\n", NULL, "js/app.js:2: only export function"},
        {"export { a };\n", NULL, "js/app.js:1: only export function"},
        {"import('./y.js');\n", NULL, "js/app.js:1: dynamic import()"},
        {"import x from './y.js';\n", "export const y = 1;\n", "js/app.js:1: not an import"},
        {"import { y } from 'https://evil.example/y.js';\n", NULL, "only relative paths"},
        {"import { y } from '../../etc/y.js';\n", NULL, "leaves the web directory"},
        {"import { y } from './y.js';\n", "import { a } from './app.js';\nexport const y = 1;\n",
         "import cycle"},
        {"import { y } from './y.js';\n", NULL, "cannot read"},
        {"import { y\n", NULL, "does not end"},
        {"await 1;\n", NULL, "top-level await"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *d = xasprintf("%s/r%zu", f->dir, i);
        put(d, "js/app.js", cases[i].app);
        if (cases[i].other) {
            put(d, "js/y.js", cases[i].other);
        }
        char *out = NULL;
        int rc = bundle(f, d, &out);
        if (rc == 0 || !strstr(out, cases[i].says)) {
            fail_msg("case %zu: exit %d, wanted '%s' in:\n%s", i, rc, cases[i].says, out);
        }
        free(out);
        free(d);
    }
    /* import.meta only where the bundle's own URL resolves the same */
    char *d = xasprintf("%s/meta", f->dir);
    put(d, "js/app.js", "import { u } from './views/v.js';\n");
    put(d, "js/views/v.js", "export const u = new URL('../x.json', import.meta.url);\n");
    char *out = NULL;
    assert_int_not_equal(bundle(f, d, &out), 0);
    assert_non_null(strstr(out, "js/views/v.js:1: import.meta"));
    free(out);
    free(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_and_its_assets),
        cmocka_unit_test(test_every_file_plain_and_gzip),
        cmocka_unit_test(test_etag_and_304),
        cmocka_unit_test(test_nothing_else),
        cmocka_unit_test(test_web_root_serves_from_disk),
        cmocka_unit_test(test_bundle_packs_in_order),
        cmocka_unit_test(test_bundle_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
