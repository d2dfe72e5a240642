/* audit_seal: see include/audit_seal.h.
 *
 * The anchor file is 768 bytes: slot 0 at offset 0, slot 1 at offset 512 (each in its own
 * 512-byte sector), 256 bytes each, a line of text padded with spaces:
 *   consulate-audit-anchor 1 seq=S since=N id=I hash=<64 hex> mac=<64 hex>
 * mac is hex HMAC-SHA256(key, everything before " mac="). Sequence S is written to slot S % 2,
 * so the slot not being written always holds the previous anchor. */
#include "audit_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util.h"

#define SLOT_SIZE 256
#define SLOT_STRIDE 512
#define ANCHOR_FILE_SIZE (SLOT_STRIDE + SLOT_SIZE)
#define ANCHOR_MAGIC "consulate-audit-anchor 1"

struct audit_seal {
    char *key_path;
    char *anchor_path;
    unsigned char key[AUDIT_KEY_BYTES];
    crypto_auth_hmacsha256_state hmac; /* initialised with the key: copied for each MAC */
    enum audit_file_state key_state;
    char key_err[512];
    int key_created;
    pthread_mutex_t lock; /* guards what follows */
    uint64_t seen_seq;    /* the highest sequence number read or written by this process */
    int rolled_back;
    uint64_t rb_seen, rb_found;
    int logged; /* bit set of the advance problems already logged (each once) */
    /* The newest slot this process wrote or verified, byte for byte: found again in the
     * file, it needs no second MAC check (the anchor is read at every commit). */
    char cache_slot[SLOT_SIZE];
    struct audit_anchor cache;
    int cache_ok;
};

enum { LOG_MISSING = 1, LOG_INVALID = 2, LOG_ROW = 4, LOG_ROLLBACK = 8, LOG_IO = 16 };

/* ---- the key ---- */

/* Syncs the directory holding path, so a new name in it survives a power loss. */
static void
sync_dir_of(const char *path)
{
    char *copy = xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

/* Writes len bytes to a new temporary file beside path (mode 0600, synced) and links it to
 * path. Returns 0 when linked, 1 when path already existed, -1 on error (errno set). */
static int
file_create_atomic(const char *path, const void *data, size_t len)
{
    char rnd[17];
    random_hex(8, rnd);
    char *tmp = xasprintf("%s.tmp-%ld-%s", path, (long)getpid(), rnd);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        goto out;
    }
    close(fd);
    if (link(tmp, path) == 0) {
        rc = 0;
        sync_dir_of(path);
    } else if (errno == EEXIST) {
        rc = 1;
    }
    int e = errno;
    unlink(tmp);
    errno = e;
out:
    free(tmp);
    return rc;
}

/* Reads the key file at path into key. Returns its state; on a problem err gets a sentence
 * naming the file. *mode gets the file's permission bits. */
static enum audit_file_state
key_read(const char *path, unsigned char key[AUDIT_KEY_BYTES], unsigned *mode, char *err,
         size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "the audit key %s %s%s", path,
                 e == ENOENT ? "is missing" : "cannot be read: ", e == ENOENT ? "" : strerror(e));
        return e == ENOENT ? AUDIT_FILE_MISSING : AUDIT_FILE_UNREADABLE;
    }
    struct stat st;
    unsigned char buf[AUDIT_KEY_BYTES + 1];
    ssize_t n = -1;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) {
        why = strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        why = "not a regular file";
    } else if ((n = read(fd, buf, sizeof(buf))) < 0) {
        why = strerror(errno);
    }
    close(fd);
    enum audit_file_state state = AUDIT_FILE_OK;
    if (why) {
        state = AUDIT_FILE_UNREADABLE;
        snprintf(err, errlen, "the audit key %s cannot be read: %s", path, why);
    } else if (n != AUDIT_KEY_BYTES) {
        state = AUDIT_FILE_INVALID;
        snprintf(err, errlen, "the audit key %s holds %zd bytes instead of %d", path, n,
                 AUDIT_KEY_BYTES);
    } else {
        memcpy(key, buf, AUDIT_KEY_BYTES);
        *mode = (unsigned)(st.st_mode & 0777);
        err[0] = '\0';
    }
    secret_wipe(buf, sizeof(buf));
    return state;
}

/* Loads the key file into seal->key; sets key_state and key_err. */
static void
key_load(struct audit_seal *seal)
{
    unsigned mode = 0;
    seal->key_state =
        key_read(seal->key_path, seal->key, &mode, seal->key_err, sizeof(seal->key_err));
    if (seal->key_state == AUDIT_FILE_OK) {
        crypto_auth_hmacsha256_init(&seal->hmac, seal->key, sizeof(seal->key));
        if (mode & 077) {
            log_warn("audit: the key file %s is readable by others (mode %03o); chmod 600 it",
                     seal->key_path, mode);
        }
    }
}

enum audit_file_state
audit_seal_key_file(const struct audit_seal *seal, int *changed)
{
    unsigned char now[AUDIT_KEY_BYTES];
    unsigned mode = 0;
    char err[600];
    enum audit_file_state st = key_read(seal->key_path, now, &mode, err, sizeof(err));
    *changed = st == AUDIT_FILE_OK && seal->key_state == AUDIT_FILE_OK &&
               sodium_memcmp(now, seal->key, sizeof(now)) != 0;
    secret_wipe(now, sizeof(now));
    return st;
}

struct audit_seal *
audit_seal_open(const char *key_path, const char *anchor_path, int create)
{
    struct audit_seal *seal = xcalloc(1, sizeof(*seal));
    seal->key_path = xstrdup(key_path);
    seal->anchor_path = xstrdup(anchor_path);
    pthread_mutex_init(&seal->lock, NULL);
    key_load(seal);
    if (seal->key_state == AUDIT_FILE_MISSING && create) {
        unsigned char key[AUDIT_KEY_BYTES];
        randombytes_buf(key, sizeof(key));
        int rc = file_create_atomic(key_path, key, sizeof(key));
        secret_wipe(key, sizeof(key));
        if (rc < 0) {
            snprintf(seal->key_err, sizeof(seal->key_err), "cannot create the audit key %s: %s",
                     key_path, strerror(errno));
            seal->key_state = AUDIT_FILE_UNREADABLE;
            return seal;
        }
        key_load(seal); /* ours, or the one another process linked first */
        seal->key_created = rc == 0 && seal->key_state == AUDIT_FILE_OK;
    }
    return seal;
}

void
audit_seal_free(struct audit_seal *seal)
{
    if (!seal) {
        return;
    }
    sodium_memzero(seal->key, sizeof(seal->key));
    sodium_memzero(&seal->hmac, sizeof(seal->hmac));
    pthread_mutex_destroy(&seal->lock);
    free(seal->key_path);
    free(seal->anchor_path);
    free(seal);
}

enum audit_file_state
audit_seal_key_state(const struct audit_seal *seal)
{
    return seal->key_state;
}

const char *
audit_seal_key_error(const struct audit_seal *seal)
{
    return seal->key_err;
}

int
audit_seal_key_created(const struct audit_seal *seal)
{
    return seal->key_created;
}

const char *
audit_seal_key_path(const struct audit_seal *seal)
{
    return seal->key_path;
}

const char *
audit_seal_anchor_path(const struct audit_seal *seal)
{
    return seal->anchor_path;
}

/* hex HMAC-SHA256(key, data) into out (65 bytes). */
static void
hmac_hex(const struct audit_seal *seal, const void *data, size_t len, char out[65])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st = seal->hmac; /* the key's blocks, already hashed */
    crypto_auth_hmacsha256_update(&st, data, len);
    crypto_auth_hmacsha256_final(&st, mac);
    hex_encode(mac, sizeof(mac), out);
}

void
audit_seal_row_mac(const struct audit_seal *seal, const char *hash, char out[65])
{
    hmac_hex(seal, hash, strlen(hash), out);
}

int
audit_seal_row_mac_ok(const struct audit_seal *seal, const char *hash, const char *mac)
{
    if (seal->key_state != AUDIT_FILE_OK || !hash || !mac || strlen(mac) != 64) {
        return 0;
    }
    char want[65];
    audit_seal_row_mac(seal, hash, want);
    return sodium_memcmp(want, mac, 64) == 0;
}

/* ---- the anchor file ---- */

/* Formats one slot (SLOT_SIZE bytes, space-padded, ending in a newline) for a. */
static void
slot_format(const struct audit_seal *seal, const struct audit_anchor *a, char slot[SLOT_SIZE])
{
    char body[SLOT_SIZE];
    int n = snprintf(body, sizeof(body),
                     ANCHOR_MAGIC " seq=%" PRIu64 " since=%" PRId64 " id=%" PRId64 " hash=%s",
                     a->seq, a->since, a->id, a->hash);
    char mac[65];
    hmac_hex(seal, body, (size_t)n, mac);
    memset(slot, ' ', SLOT_SIZE);
    n = snprintf(slot, SLOT_SIZE, "%s mac=%s", body, mac);
    slot[n] = ' ';
    slot[SLOT_SIZE - 1] = '\n';
}

static int
is_hex64(const char *s)
{
    if (strlen(s) != 64) {
        return 0;
    }
    for (int i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Parses one slot into *a (a->verified 0). Returns 1 when it is well-formed, 0 otherwise. */
static int
slot_scan(const char *slot, struct audit_anchor *a)
{
    char text[SLOT_SIZE + 1];
    memcpy(text, slot, SLOT_SIZE);
    text[SLOT_SIZE] = '\0';
    char hash[65] = "", mac[65] = "";
    uint64_t seq;
    int64_t since, id;
    if (sscanf(text,
               ANCHOR_MAGIC " seq=%" SCNu64 " since=%" SCNd64 " id=%" SCNd64 " hash=%64s mac=%64s",
               &seq, &since, &id, hash, mac) != 5 ||
        !is_hex64(hash) || !is_hex64(mac) || id < 0 || since < 0) {
        return 0;
    }
    memset(a, 0, sizeof(*a));
    a->seq = seq;
    a->since = since;
    a->id = id;
    memcpy(a->hash, hash, sizeof(a->hash));
    return 1;
}

/* 1 when slot is byte for byte what slot_format writes for a under the key (its MAC
 * verifies, and nothing else in it was touched). */
static int
slot_verify(const struct audit_seal *seal, const char *slot, const struct audit_anchor *a)
{
    char want[SLOT_SIZE];
    slot_format(seal, a, want);
    return sodium_memcmp(want, slot, SLOT_SIZE) == 0;
}

/* Remembers a verified slot (caller holds seal->lock). */
static void
cache_set(struct audit_seal *seal, const char *slot, const struct audit_anchor *a)
{
    memcpy(seal->cache_slot, slot, SLOT_SIZE);
    seal->cache = *a;
    seal->cache.verified = 1;
    seal->cache_ok = 1;
}

/* The sequence number of a slot, read without parsing the rest. Returns 1, or 0 when the
 * slot does not even start like one. */
static int
slot_seq(const char *slot, uint64_t *seq)
{
    static const char prefix[] = ANCHOR_MAGIC " seq=";
    if (memcmp(slot, prefix, sizeof(prefix) - 1) != 0) {
        return 0;
    }
    const char *p = slot + sizeof(prefix) - 1;
    uint64_t v = 0;
    int digits = 0;
    for (; digits < 20 && *p >= '0' && *p <= '9'; p++, digits++) {
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *seq = v;
    return digits > 0 && *p == ' ';
}

/* Picks the best slot of the file image buf (len bytes, the rest read as zeros): the highest
 * sequence number among the slots that verify under the key (without a key: that parse).
 * Returns 1 with *a, or 0 when no slot is valid. Caller holds seal->lock. */
static int
image_best(struct audit_seal *seal, const char *buf, size_t len, struct audit_anchor *a)
{
    char slot[2][SLOT_SIZE];
    uint64_t seq[2];
    int ok[2];
    for (int i = 0; i < 2; i++) {
        memset(slot[i], 0, SLOT_SIZE);
        size_t off = (size_t)i * SLOT_STRIDE;
        if (len > off) {
            memcpy(slot[i], buf + off, len - off < SLOT_SIZE ? len - off : SLOT_SIZE);
        }
        ok[i] = slot_seq(slot[i], &seq[i]);
    }
    /* the higher sequence number first; the rest is only parsed and checked where it
     * decides, and not again for the slot this process last wrote or checked */
    int order[2] = {0, 1};
    if (ok[1] && (!ok[0] || seq[1] > seq[0])) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int k = 0; k < 2; k++) {
        int i = order[k];
        struct audit_anchor cand;
        if (!ok[i]) {
            continue;
        }
        if (seal->key_state == AUDIT_FILE_OK && seal->cache_ok &&
            memcmp(slot[i], seal->cache_slot, SLOT_SIZE) == 0) {
            *a = seal->cache;
            return 1;
        }
        if (!slot_scan(slot[i], &cand)) {
            continue;
        }
        if (seal->key_state != AUDIT_FILE_OK) {
            *a = cand; /* parsed, unverified */
            return 1;
        }
        if (slot_verify(seal, slot[i], &cand)) {
            cand.verified = 1;
            cache_set(seal, slot[i], &cand);
            *a = cand;
            return 1;
        }
    }
    return 0;
}

/* Notes a sequence number read from the file (caller holds seal->lock). */
static void
note_seq(struct audit_seal *seal, uint64_t seq)
{
    if (seq < seal->seen_seq) {
        if (!seal->rolled_back || seq < seal->rb_found) {
            seal->rb_seen = seal->seen_seq;
            seal->rb_found = seq;
        }
        seal->rolled_back = 1;
        if (!(seal->logged & LOG_ROLLBACK)) {
            seal->logged |= LOG_ROLLBACK;
            log_error("audit: the anchor file %s went back from sequence %" PRIu64 " to %" PRIu64
                      ": an older copy was put in its place",
                      seal->anchor_path, seal->seen_seq, seq);
        }
    } else {
        seal->seen_seq = seq;
    }
}

/* Reads the file image through fd. Returns the bytes read or -1. */
static ssize_t
image_read(int fd, char buf[ANCHOR_FILE_SIZE])
{
    size_t got = 0;
    while (got < ANCHOR_FILE_SIZE) {
        ssize_t n = pread(fd, buf + got, ANCHOR_FILE_SIZE - got, (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Reads and judges the image (caller holds seal->lock). */
static enum audit_file_state
anchor_judge(struct audit_seal *seal, const char *buf, ssize_t len, struct audit_anchor *a,
             char *err, size_t errlen)
{
    if (!image_best(seal, buf, (size_t)len, a)) {
        if (err) {
            snprintf(err, errlen,
                     "the audit anchor %s holds no anchor valid under the key %s (replaced "
                     "key, or a forged or damaged anchor)",
                     seal->anchor_path, seal->key_path);
        }
        return AUDIT_FILE_INVALID;
    }
    if (a->verified) {
        note_seq(seal, a->seq);
    }
    return AUDIT_FILE_OK;
}

enum audit_file_state
audit_anchor_read(struct audit_seal *seal, struct audit_anchor *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    int fd = open(seal->anchor_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int missing = errno == ENOENT;
        if (err) {
            snprintf(err, errlen, "the audit anchor %s %s%s", seal->anchor_path,
                     missing ? "is missing" : "cannot be read: ", missing ? "" : strerror(errno));
        }
        return missing ? AUDIT_FILE_MISSING : AUDIT_FILE_UNREADABLE;
    }
    char buf[ANCHOR_FILE_SIZE];
    /* a shared lock: a writer's slot is complete before it is read */
    flock(fd, LOCK_SH);
    ssize_t len = image_read(fd, buf);
    int e = errno;
    close(fd);
    if (len < 0) {
        if (err) {
            snprintf(err, errlen, "the audit anchor %s cannot be read: %s", seal->anchor_path,
                     strerror(e));
        }
        return AUDIT_FILE_UNREADABLE;
    }
    pthread_mutex_lock(&seal->lock);
    enum audit_file_state st = anchor_judge(seal, buf, len, a, err, errlen);
    pthread_mutex_unlock(&seal->lock);
    return st;
}

int
audit_anchor_create(struct audit_seal *seal, uint64_t seq, int64_t since, int64_t id,
                    const char *hash, int replace, char *err, size_t errlen)
{
    if (seal->key_state != AUDIT_FILE_OK) {
        snprintf(err, errlen, "cannot write the audit anchor without the key: %s", seal->key_err);
        return -1;
    }
    struct audit_anchor a = {.seq = seq, .since = since, .id = id};
    snprintf(a.hash, sizeof(a.hash), "%s", hash);
    char image[ANCHOR_FILE_SIZE];
    memset(image, ' ', sizeof(image));
    image[SLOT_SIZE - 1] = '\n';
    image[SLOT_STRIDE - 1] = '\n';
    image[ANCHOR_FILE_SIZE - 1] = '\n';
    char *slot = image + (seq % 2) * SLOT_STRIDE;
    slot_format(seal, &a, slot);
    pthread_mutex_lock(&seal->lock);
    int rc;
    if (!replace) {
        rc = file_create_atomic(seal->anchor_path, image, sizeof(image));
    } else {
        char rnd[17];
        random_hex(8, rnd);
        char *tmp = xasprintf("%s.tmp-%ld-%s", seal->anchor_path, (long)getpid(), rnd);
        rc = file_create_atomic(tmp, image, sizeof(image));
        if (rc == 0 && rename(tmp, seal->anchor_path) != 0) {
            int e = errno;
            unlink(tmp);
            errno = e;
            rc = -1;
        } else if (rc == 0) {
            sync_dir_of(seal->anchor_path);
        }
        free(tmp);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot write the audit anchor %s: %s", seal->anchor_path,
                 strerror(errno));
    } else if (rc == 0) {
        seal->seen_seq = seq;
        seal->logged = 0;
        cache_set(seal, slot, &a);
    }
    pthread_mutex_unlock(&seal->lock);
    return rc;
}

/* Logs an advance problem once per kind (caller holds seal->lock). */
static void
advance_problem(struct audit_seal *seal, int kind, const char *msg)
{
    if (!(seal->logged & kind)) {
        seal->logged |= kind;
        log_error("audit: the anchor %s is not advanced: %s", seal->anchor_path, msg);
    }
}

int
audit_seal_advance(struct audit_seal *seal, int64_t id, const char *hash, audit_row_check_fn check,
                   void *ctx)
{
    if (seal->key_state != AUDIT_FILE_OK) {
        return -1;
    }
    int rc = -1;
    char msg[600];
    pthread_mutex_lock(&seal->lock);
    int fd = open(seal->anchor_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, sizeof(msg), "%s", strerror(errno));
        advance_problem(seal, errno == ENOENT ? LOG_MISSING : LOG_IO, msg);
        goto out;
    }
    if (flock(fd, LOCK_EX) != 0) {
        snprintf(msg, sizeof(msg), "flock: %s", strerror(errno));
        advance_problem(seal, LOG_IO, msg);
        goto out;
    }
    char buf[ANCHOR_FILE_SIZE];
    ssize_t len = image_read(fd, buf);
    struct audit_anchor cur;
    if (len < 0) {
        snprintf(msg, sizeof(msg), "read: %s", strerror(errno));
        advance_problem(seal, LOG_IO, msg);
        goto out;
    }
    if (anchor_judge(seal, buf, len, &cur, msg, sizeof(msg)) != AUDIT_FILE_OK) {
        advance_problem(seal, LOG_INVALID, msg);
        goto out;
    }
    if (cur.id > 0) {
        int ok = check(ctx, cur.id, cur.hash);
        if (ok != 1) {
            if (ok == 0) {
                snprintf(msg, sizeof(msg),
                         "the anchored entry %" PRId64 " is no longer in the log as anchored "
                         "(the log was truncated or rewritten)",
                         cur.id);
                advance_problem(seal, LOG_ROW, msg);
            }
            goto out;
        }
    }
    if (cur.id >= id) {
        rc = 0; /* another process anchored a newer entry first */
        goto out;
    }
    struct audit_anchor next = {.seq = cur.seq + 1, .since = cur.since, .id = id};
    snprintf(next.hash, sizeof(next.hash), "%s", hash);
    char slot[SLOT_SIZE];
    slot_format(seal, &next, slot);
    if (pwrite(fd, slot, SLOT_SIZE, (off_t)((next.seq % 2) * SLOT_STRIDE)) != SLOT_SIZE) {
        snprintf(msg, sizeof(msg), "write: %s", strerror(errno));
        advance_problem(seal, LOG_IO, msg);
        goto out;
    }
    seal->seen_seq = next.seq;
    cache_set(seal, slot, &next);
    rc = 0;
out:
    if (fd >= 0) {
        close(fd); /* releases the flock */
    }
    pthread_mutex_unlock(&seal->lock);
    return rc;
}

int
audit_seal_rolled_back(struct audit_seal *seal, uint64_t *seen, uint64_t *found)
{
    pthread_mutex_lock(&seal->lock);
    int rb = seal->rolled_back;
    if (seen) {
        *seen = seal->rb_seen;
    }
    if (found) {
        *found = seal->rb_found;
    }
    pthread_mutex_unlock(&seal->lock);
    return rb;
}
