/* cli_version: `consulate version`. */
#include "cli_version.h"

#include <dlfcn.h>
#include <link.h>

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libssh2.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <sqlite3.h>
#include <yaml.h>

#include "app.h"

/* The OpenSSL that HTTPS uses: civetweb loads "libssl.so" at run time, found through the
 * binary's RPATH ($ORIGIN/lib: the shim). Looked up the same way; NULL when not found, else
 * its version, with *path the file loaded. */
static const char *
https_openssl(void **handle, const char **path)
{
    *handle = dlopen("libssl.so", RTLD_LAZY | RTLD_LOCAL);
    if (!*handle) {
        return NULL;
    }
    struct link_map *map = NULL;
    *path = dlinfo(*handle, RTLD_DI_LINKMAP, &map) == 0 && map ? map->l_name : "libssl.so";
    const char *(*version)(int) = (const char *(*)(int))dlsym(*handle, "OpenSSL_version");
    return version ? version(OPENSSL_VERSION) : NULL;
}

int
cli_version_main(FILE *out)
{
    fprintf(out, "consulate %s\n", CONSULATE_VERSION);
    fprintf(out, "commit %s\n", consulate_commit);
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    fprintf(out, "civetweb %s\n", mg_version());
    fprintf(out, "sqlite %s\n", sqlite3_libversion());
    fprintf(out, "libcurl %s (%s)\n", curl->version,
            curl->ssl_version ? curl->ssl_version : "no TLS");
    fprintf(out, "libssh2 %s\n", libssh2_version(0));
    fprintf(out, "cjson %s\n", cJSON_Version());
    fprintf(out, "libsodium %s\n", sodium_version_string());
    fprintf(out, "libyaml %s\n", yaml_get_version_string());
    fprintf(out, "libcrypto %s\n", OpenSSL_version(OPENSSL_VERSION));
    void *handle = NULL;
    const char *path = NULL;
    const char *https = https_openssl(&handle, &path);
    if (https && !dlsym(handle, "SSL_get_peer_certificate")) {
        /* OpenSSL 3 itself: civetweb 1.15 would call a NULL pointer (compat/) */
        fprintf(out, "https broken: %s is not the lib/libssl.so shim beside the binary\n", path);
    } else if (https) {
        fprintf(out, "https %s (%s)\n", https, path);
    } else {
        fprintf(out, "https unavailable: libssl.so not found (it belongs in lib/ beside the "
                     "binary)\n");
    }
    if (handle) {
        dlclose(handle);
    }
    return 0;
}
