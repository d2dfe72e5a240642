/* webfiles: the single-page app (web/) compiled into the binary by scripts/embed-web.sh
 * ($(BUILD)/gen/webfiles.c). server/http.c serves it when web_root is not set. */
#ifndef CONSULATE_WEBFILES_H
#define CONSULATE_WEBFILES_H

#include <stddef.h>

struct web_file {
    const char *path;          /* "/index.html", "/js/app.js" */
    const unsigned char *data; /* the bytes served (index.html: references versioned) */
    size_t len;
    const unsigned char *gz; /* gzip -9n of data, or NULL when that is not smaller */
    size_t gz_len;
    const char *etag;    /* strong ETag of data, quoted */
    const char *gz_etag; /* strong ETag of gz, quoted, or NULL */
};

/* Every embedded file, sorted by path, ended by an entry whose path is NULL. */
extern const struct web_file web_files[];
/* A hash over every file: the assets are also served under /v/<web_version>/, which
 * index.html references, with a long max-age (a new build gets a new prefix). */
extern const char web_version[];

#endif
