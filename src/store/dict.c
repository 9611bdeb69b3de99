/* The string dictionary: dense ids for event names, field values, property keys and values,
 * and (in the identity map) distinct ids. Strings live in chunks that never move, so tl_str
 * slices handed to readers stay valid; the hash table stores ids and 32 hash bits.
 *
 * File format (append-only, covered by the checkpoint's recorded length):
 *   repeated: varint length, bytes            entry k is id k (from 1)
 * A crash may leave bytes past the checkpointed length; load cuts them off.
 *
 * Dead entries: physical erasure (tl_dict__scrub) overwrites an entry's bytes in place with
 * 0xFF (same length, so offsets, ids and the checkpointed length stay). 0xFF never occurs in
 * UTF-8, and every string stored is UTF-8, so an all-0xFF entry is unambiguous. A dead id is
 * never handed out again and is not in the hash table. */
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"
#include "util/bigmem.h"
#include "util/hash.h"
#include "util/io.h"

#define CHUNK (1u << 20)

void tl_dict__init(tl_dict *d)
{
    memset(d, 0, sizeof *d);
    d->mask = 1023;
    d->slots = tl_big_zalloc((d->mask + 1) * sizeof *d->slots);
    d->slot_hash = tl_big_zalloc((d->mask + 1) * sizeof *d->slot_hash);
    d->cap = 1024;
    d->strs = tl_xcalloc(d->cap, sizeof *d->strs);
}

void tl_dict__fini(tl_dict *d)
{
    for (uint32_t i = 0; i < d->n_chunks; i++)
        free(d->chunks[i]);
    free(d->chunks);
    free(d->strs);
    tl_big_free(d->slots, ((size_t)d->mask + 1) * sizeof *d->slots);
    tl_big_free(d->slot_hash, ((size_t)d->mask + 1) * sizeof *d->slot_hash);
    if (d->map) munmap(d->map, d->map_len);
    memset(d, 0, sizeof *d);
}

uint32_t tl_dict__find(const tl_dict *d, tl_str s)
{
    uint64_t h = tl_hash_str(s);
    uint32_t h32 = (uint32_t)h;
    for (uint32_t i = (uint32_t)(h >> 32) & d->mask;; i = (i + 1) & d->mask) {
        uint32_t id = d->slots[i];
        if (!id) return 0;
        if (d->slot_hash[i] == h32 && tl_str_eq(d->strs[id], s)) return id;
    }
}

/* Tables from bigmem: huge pages, so a table of millions of slots is a few page faults, not
 * thousands (each costs microseconds on a virtual machine). */
static void rehash(tl_dict *d, uint32_t nmask)
{
    uint32_t *slots = tl_big_zalloc(((size_t)nmask + 1) * sizeof *slots);
    uint32_t *sh = tl_big_zalloc(((size_t)nmask + 1) * sizeof *sh);
    for (uint32_t id = 1; id <= d->n; id++) {
        if (!d->strs[id].p) continue; /* dead */
        uint64_t h = tl_hash_str(d->strs[id]);
        uint32_t i = (uint32_t)(h >> 32) & nmask;
        while (slots[i])
            i = (i + 1) & nmask;
        slots[i] = id;
        sh[i] = (uint32_t)h;
    }
    tl_big_free(d->slots, ((size_t)d->mask + 1) * sizeof *d->slots);
    tl_big_free(d->slot_hash, ((size_t)d->mask + 1) * sizeof *d->slot_hash);
    d->slots = slots;
    d->slot_hash = sh;
    d->mask = nmask;
}

static void grow_table(tl_dict *d)
{
    rehash(d, d->mask * 2 + 1);
}

static void grow_strs(tl_dict *d)
{
    if (d->n + 1 >= d->cap) {
        d->cap *= 2;
        d->strs = tl_xrealloc(d->strs, d->cap * sizeof *d->strs);
    }
}

static bool all_ff(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xFF) return false;
    return n > 0;
}

static const char *store_bytes(tl_dict *d, tl_str s)
{
    if (s.len > CHUNK / 4) {
        /* Big strings get their own chunk, inserted before the current one. */
        char *p = tl_xmalloc(s.len ? s.len : 1);
        memcpy(p, s.p, s.len);
        d->chunks = tl_xrealloc(d->chunks, (d->n_chunks + 1) * sizeof *d->chunks);
        if (d->n_chunks) {
            d->chunks[d->n_chunks] = d->chunks[d->n_chunks - 1];
            d->chunks[d->n_chunks - 1] = p;
        } else {
            d->chunks[0] = p;
            d->chunk_used = d->chunk_cap = 0;
        }
        d->n_chunks++;
        return p;
    }
    if (d->chunk_cap - d->chunk_used < s.len || !d->n_chunks) {
        d->chunks = tl_xrealloc(d->chunks, (d->n_chunks + 1) * sizeof *d->chunks);
        d->chunks[d->n_chunks++] = tl_xmalloc(CHUNK);
        d->chunk_used = 0;
        d->chunk_cap = CHUNK;
    }
    char *p = d->chunks[d->n_chunks - 1] + d->chunk_used;
    if (s.len) memcpy(p, s.p, s.len);
    d->chunk_used += s.len;
    return p;
}

/* Interns s, whose hash is h; `stable` when s.p stays valid as long as d (bytes of the loaded
 * file), else it is copied. */
static uint32_t intern_h(tl_dict *d, tl_str s, uint64_t h, bool stable)
{
    uint32_t h32 = (uint32_t)h;
    uint32_t i = (uint32_t)(h >> 32) & d->mask;
    for (;; i = (i + 1) & d->mask) {
        uint32_t id = d->slots[i];
        if (!id) break;
        if (d->slot_hash[i] == h32 && tl_str_eq(d->strs[id], s)) return id;
    }
    grow_strs(d);
    uint32_t id = ++d->n;
    d->strs[id] = (tl_str){stable ? s.p : store_bytes(d, s), s.len};
    d->slots[i] = id;
    d->slot_hash[i] = h32;
    if ((uint64_t)d->n * 10 > (uint64_t)(d->mask + 1) * 7) grow_table(d);
    return id;
}

uint32_t tl_dict__intern(tl_dict *d, tl_str s)
{
    return intern_h(d, s, tl_hash_str(s), false);
}

/* Loading reads the strings where the file is mapped (private: a scrub's memset copies only
 * its page) instead of copying them, and hashes a few entries ahead of the one it inserts,
 * prefetching their slots, so the table's cache misses overlap. */
#define AHEAD 8

int tl_dict__load(tl_dict *d, const char *path, uint64_t len, tl_err *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && len == 0) return 0;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int rc = -errno;
        if (fd >= 0) close(fd);
        return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    }
    if ((uint64_t)st.st_size < len) {
        close(fd);
        return tl_err_set(err, TL_EBADMSG, "%s: shorter (%llu bytes) than checkpointed (%llu)",
                          path, (unsigned long long)st.st_size, (unsigned long long)len);
    }
    const uint8_t *base = NULL;
    if (len) {
        void *m =
            mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            return tl_err_set(err, rc, "%s: mmap: %s", path, tl_strerror(rc));
        }
        base = m;
        if (d->map) munmap(d->map, d->map_len); /* only one load per dictionary */
        d->map = m;
        d->map_len = (size_t)len;
    }
    /* Cut off bytes past the checkpoint (a crash after writing them). */
    int rc = ftruncate(fd, (off_t)len) < 0 && len > 0 ? -errno : 0;
    close(fd);
    if (rc) return tl_err_set(err, rc, "%s: truncate: %s", path, tl_strerror(rc));
    const uint8_t *p = base, *end = base + len;
    /* Size the table and the id array once for every entry (no rehash per doubling). */
    uint64_t entries = 0;
    for (const uint8_t *q = p; q < end; entries++) {
        uint64_t n;
        if (tl_varint_get(&q, end, &n) || n > (uint64_t)(end - q)) break; /* reported below */
        q += n;
    }
    if (entries && entries < UINT32_MAX / 2) {
        uint64_t want = (uint64_t)d->n + entries;
        uint32_t nmask = d->mask;
        while (want * 10 > ((uint64_t)nmask + 1) * 7)
            nmask = nmask * 2 + 1;
        if (nmask != d->mask) rehash(d, nmask);
        if (want + 1 >= d->cap) {
            d->cap = (uint32_t)want + 2;
            d->strs = tl_xrealloc(d->strs, d->cap * sizeof *d->strs);
        }
    }
    /* A ring of the next entries: their strings and hashes (dead ones: p NULL). */
    tl_str ring_s[AHEAD];
    uint64_t ring_h[AHEAD];
    uint32_t head = 0, fill = 0;
    for (;;) {
        while (fill < AHEAD && p < end) {
            uint64_t n;
            if (tl_varint_get(&p, end, &n) || n > (uint64_t)(end - p))
                return tl_err_set(err, TL_EBADMSG, "%s: corrupt entry at byte %zu", path,
                                  (size_t)(p - base));
            uint32_t at = (head + fill++) % AHEAD;
            ring_s[at] = (tl_str){(const char *)p, (size_t)n};
            ring_h[at] = 0;
            if (all_ff(p, n)) {
                ring_s[at].p = NULL;
            } else {
                ring_h[at] = tl_hash_str(ring_s[at]);
                uint32_t i = (uint32_t)(ring_h[at] >> 32) & d->mask;
                __builtin_prefetch(&d->slots[i]);
                __builtin_prefetch(&d->slot_hash[i]);
            }
            p += n;
        }
        if (!fill) break;
        tl_str s = ring_s[head];
        uint64_t h = ring_h[head];
        head = (head + 1) % AHEAD;
        fill--;
        if (!s.p) { /* dead: keeps its id (and length, for offsets) */
            grow_strs(d);
            d->strs[++d->n] = (tl_str){NULL, s.len};
            continue;
        }
        /* Entry k is id k: a repeated string would shift every later id. */
        uint32_t want = d->n + 1;
        if (intern_h(d, s, h, true) != want)
            return tl_err_set(err, TL_EBADMSG, "%s: repeated entry at byte %zu", path,
                              (size_t)((const uint8_t *)s.p - base));
    }
    d->n_synced = d->n;
    d->file_len = len;
    return 0;
}

int tl_dict__sync(tl_dict *d, const char *path, tl_err *err)
{
    if (d->n_synced == d->n) return 0;
    tl_buf b = TL_BUF_INIT;
    for (uint32_t id = d->n_synced + 1; id <= d->n; id++) {
        tl_buf_varint(&b, d->strs[id].len);
        if (d->strs[id].p) {
            tl_buf_addstr(&b, d->strs[id]);
        } else {
            tl_buf_reserve(&b, d->strs[id].len);
            memset(b.p + b.len, 0xFF, d->strs[id].len);
            b.len += d->strs[id].len;
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -errno : 0;
    if (!rc) rc = tl_pwrite_all(fd, b.p, b.len, (off_t)d->file_len);
    if (!rc) rc = tl_fdatasync(fd);
    if (fd >= 0) close(fd);
    if (rc) {
        tl_buf_fini(&b);
        return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    }
    d->file_len += b.len;
    d->n_synced = d->n;
    tl_buf_fini(&b);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int tl_dict__scrub(tl_dict *d, const char *path, const uint32_t *ids, uint32_t n, uint32_t *n_dead,
                   tl_err *err)
{
    if (n_dead) *n_dead = 0;
    uint32_t *v = tl_xmalloc(((size_t)n + 1) * sizeof *v), m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] && ids[i] <= d->n_synced && d->strs[ids[i]].p && d->strs[ids[i]].len)
            v[m++] = ids[i];
    if (!m) {
        free(v);
        return 0;
    }
    qsort(v, m, sizeof *v, cmp_u32);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    uint8_t *ff = NULL;
    size_t ff_cap = 0;
    uint64_t off = 0;
    uint32_t k = 0, killed = 0;
    /* Entry offsets from the lengths (dead entries keep theirs): one pass up to the last. */
    for (uint32_t id = 1; id <= v[m - 1] && !rc; id++) {
        size_t len = d->strs[id].len;
        off += varint_len(len);
        if (k < m && v[k] == id) {
            while (k < m && v[k] == id)
                k++; /* repeats */
            if (len > ff_cap) {
                ff_cap = len;
                free(ff);
                ff = tl_xmalloc(ff_cap);
                memset(ff, 0xFF, ff_cap);
            }
            rc = tl_pwrite_all(fd, ff, len, (off_t)off);
            killed++;
        }
        off += len;
    }
    if (!rc) rc = tl_fdatasync(fd);
    if (fd >= 0) close(fd);
    free(ff);
    if (rc) {
        free(v);
        return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    }
    for (uint32_t i = 0; i < m; i++) {
        if (i && v[i] == v[i - 1]) continue;
        memset((char *)d->strs[v[i]].p, 0, d->strs[v[i]].len); /* not even in memory */
        d->strs[v[i]].p = NULL; /* the length stays: it locates later entries */
    }
    rehash(d, d->mask);
    free(v);
    if (n_dead) *n_dead = killed;
    return 0;
}
