/* The dedup set: every (project, event_id) key the store holds, over the whole retention, in
 * bounded memory, and a restart that reads a few megabytes instead of every event-id column.
 *
 * A log-structured merge set of 128-bit keys (index_int.h says which). New keys go to a
 * memtable (open addressing, 16 bytes a slot); each checkpoint writes the memtable as a
 * sorted, immutable run file with a blocked Bloom filter and a page index beside it; runs of
 * a size tier are merged into one by a background thread (size-tiered: FANOUT runs of tier t
 * make one of tier t+1, so each key is rewritten about log4(n / TIER0) times and a lookup
 * probes at most ~3 runs per tier). A lookup tries the memtable, then each run's filter (in
 * memory, one cache line), then reads the one 4 KiB page that the page index (the first key
 * of every page, in memory) points at, with pread: run files are not mapped, so their pages
 * are page cache, never this process's resident memory.
 *
 * Memory: per stored key, the filter's 10 bits and 16 bytes per 256 keys of page index, about
 * 1.31 bytes, plus the memtable (16 bytes a slot at most 70% full; the indexer checkpoints
 * once it holds seal_rows keys, so at most 32 MiB at the default 1 M). docs/dedup.md.
 * Keys: 111 bits of XXH3-128 identify a key; with 10^10 keys the chance of any false
 * duplicate is about n^2 / 2^112 = 2e-14, negligible. Bits 1..16 of lo hold the event's UTC
 * day (for expiry past the retention: runs count their keys per day, merges leave out the
 * expired ones, and a run that is all expired is dropped whole), bit 0 is always 1.
 *
 * Run file "run-<id, 16 hex>", version 1, little-endian:
 *
 *   0   "TLDDRUN1"            8   u32 version (1)       12  u32 page_keys (256)
 *   16  u64 n_keys            24  u64 n_blocks (filter, 64-byte blocks)
 *   32  u64 keys_hash: XXH3-64 of the keys region
 *   40  u64 meta_hash: XXH3-64 of bytes 0..40 and 48..64, the page index, filter and days
 *   48  u32 n_days        52  zero to 64
 *   64  keys:       n_keys × (u64 lo, u64 hi), sorted by (hi, lo without the day), unique
 *                   without the day
 *       page index: ceil(n_keys / 256) × 16 bytes, the first key of each page
 *       filter:     n_blocks × 64 bytes; a key sets 7 bits (9 bits each of lo >> 17, then
 *                   hi's low bits) in the 512-bit block (hi × n_blocks) >> 64
 *       days:       n_days × (u32 day, u32 keys), ascending days, the counts sum to n_keys
 *
 * Opening checks the header, the size and meta_hash (what is read into memory); keys_hash is
 * checked whenever a merge reads the keys, and by tl_dedup__check_run.
 *
 * Manifest "manifest-<gen, 16 hex>", version 1: "TLDDMAN1", u32 version, u32 n_runs, u64 gen,
 * u64 next_id, n_runs × (u64 id, u64 n_keys), u64 XXH3-64 of everything before it. Written
 * atomically (tmp, fsync, rename, fsync of the directory, which also makes the new runs'
 * names durable).
 *
 * Crash consistency, invariants:
 *  1. The store's checkpoint records aux = TAG | gen, atomically with its log position, so
 *     manifest-<gen> names exactly the runs holding the keys of the log before that position.
 *  2. A run is named by a manifest only after its file is fsynced; a run merged away is
 *     deleted only after a checkpoint naming a manifest without it is durable.
 *  3. Anything in the directory that the named manifest does not name was written after the
 *     checkpoint (a crash came first), and is deleted at open; the log replay re-inserts its
 *     keys.
 *  4. Run ids only grow (next_id is in the manifest); an orphan's id is >= next_id. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "index/index_int.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/io.h"

#define RUN_MAGIC  "TLDDRUN1"
#define MAN_MAGIC  "TLDDMAN1"
#define HDR_LEN    64
#define KEY_LEN    16
#define BLOCK_LEN  64
#define BLOOM_K    7
#define MEM_MIN    (1u << 16) /* memtable slots at least */
#define WRITE_BUF  (1u << 20)
#define READ_BUF   (1u << 16)
#define CANCEL_CHK (1u << 16) /* keys between checks for a stop during a merge */
#define DAY_BITS   0x1FFFFull /* lo bits 1..16: the event's day; bit 0: always 1 */
#define N_DAYS     65536

typedef struct run {
    uint64_t id, n_keys, n_pages, n_blocks;
    int fd;
    tl_h128 *fences; /* first key of each page */
    uint64_t *bloom; /* n_blocks × 8 words, 64-byte aligned */
    uint32_t *days;  /* n_days × (day, keys of that day), ascending days */
    uint32_t n_days;
    bool busy; /* an input of the running merge */
} run;

typedef struct memtable {
    tl_h128 *slots; /* zero lo = empty */
    uint64_t cap;   /* power of two */
    unsigned shift; /* home slot = hi >> shift */
    uint64_t n;
} memtable;

typedef struct job {
    run *in[TL_DEDUP_FANOUT];
    int n_in;
    uint64_t out_id;
    uint32_t horizon; /* keys of earlier days are left out */
    uint64_t expired; /* keys left out */
    run *out;
    int rc;
    bool running, done;
} job;

struct tl_dedup {
    char *dir;
    pthread_rwlock_t lock; /* mem and runs: the writer's changes vs lookups */
    memtable mem;
    run **runs; /* by id, oldest first */
    size_t n_runs, cap_runs;
    uint64_t gen;         /* manifest the store's checkpoint names */
    uint64_t gen_written; /* newest manifest written */
    uint64_t next_id;
    bool changed;     /* runs differ from manifest gen_written */
    uint32_t horizon; /* keys of earlier event days have expired (0: none) */
    uint64_t *doomed; /* ids of runs merged away, deleted after the next commit */
    size_t n_doomed, cap_doomed;
    /* the merge thread */
    pthread_mutex_t mmu;
    pthread_cond_t mcv;
    pthread_t thread;
    bool thread_started;
    job *job; /* under mmu */
    atomic_bool mstop;
    _Atomic uint64_t flushes, merges, page_reads, expired;
};

/* ---- keys ---- */

tl_h128 tl_dedup__key(tl_str project, tl_str event_id, int64_t ts_ms)
{
    /* One-shot over a copy when it fits (the common case, a few times faster than the
     * streaming state); both give the same hash of the same bytes. */
    XXH128_hash_t h;
    char cat[256];
    if (project.len + 1 + event_id.len <= sizeof cat) {
        memcpy(cat, project.p, project.len);
        cat[project.len] = 0;
        memcpy(cat + project.len + 1, event_id.p, event_id.len);
        h = XXH3_128bits(cat, project.len + 1 + event_id.len);
    } else {
        XXH3_state_t st;
        XXH3_128bits_reset(&st);
        XXH3_128bits_update(&st, project.p, project.len);
        XXH3_128bits_update(&st, "", 1);
        XXH3_128bits_update(&st, event_id.p, event_id.len);
        h = XXH3_128bits_digest(&st);
    }
    int64_t day = ts_ms < 0 ? 0 : ts_ms / 86400000;
    if (day > 0xFFFF) day = 0xFFFF;
    return (tl_h128){(h.low64 & ~DAY_BITS) | (uint64_t)day << 1 | 1, h.high64};
}

static inline uint32_t key_day(tl_h128 k)
{
    return (uint32_t)(k.lo >> 1) & 0xFFFF;
}

/* Identity and order ignore the day: a retry whose corrected time differs is the same key. */
static inline int key_cmp(tl_h128 a, tl_h128 b)
{
    if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
    uint64_t x = a.lo & ~DAY_BITS, y = b.lo & ~DAY_BITS;
    return x < y ? -1 : x > y;
}

static inline bool key_eq(tl_h128 a, tl_h128 b)
{
    return a.hi == b.hi && !((a.lo ^ b.lo) & ~DAY_BITS);
}

static inline void key_put(uint8_t *p, tl_h128 k)
{
    tl_put64(p, k.lo);
    tl_put64(p + 8, k.hi);
}

static inline tl_h128 key_get(const uint8_t *p)
{
    return (tl_h128){tl_le64(p), tl_le64(p + 8)};
}

/* ---- blocked Bloom filter ---- */

static uint64_t bloom_blocks(uint64_t n_keys)
{
    uint64_t b = (n_keys * TL_DEDUP_BLOOM_BITS + BLOCK_LEN * 8 - 1) / (BLOCK_LEN * 8);
    return b ? b : 1;
}

static inline const uint64_t *bloom_block(const uint64_t *bloom, uint64_t n_blocks, tl_h128 k)
{
    return bloom + (uint64_t)(((unsigned __int128)k.hi * n_blocks) >> 64) * 8;
}

/* 63 hash bits for the 7 probes: lo above the day, then the low bits of hi (the block index
 * comes from hi's high bits). */
static inline uint64_t bloom_bits(tl_h128 k)
{
    return k.lo >> 17 | k.hi << 47;
}

static void bloom_add(uint64_t *bloom, uint64_t n_blocks, tl_h128 k)
{
    uint64_t *b = (uint64_t *)bloom_block(bloom, n_blocks, k), h = bloom_bits(k);
    for (int i = 0; i < BLOOM_K; i++, h >>= 9)
        b[(h & 511) >> 6] |= 1ull << (h & 63);
}

static bool bloom_maybe(const uint64_t *bloom, uint64_t n_blocks, tl_h128 k)
{
    const uint64_t *b = bloom_block(bloom, n_blocks, k);
    uint64_t h = bloom_bits(k);
    for (int i = 0; i < BLOOM_K; i++, h >>= 9)
        if (!(b[(h & 511) >> 6] & (1ull << (h & 63)))) return false;
    return true;
}

static uint64_t *bloom_new(uint64_t n_blocks)
{
    uint64_t *b = aligned_alloc(BLOCK_LEN, n_blocks * BLOCK_LEN);
    TL_ASSERT(b);
    memset(b, 0, n_blocks * BLOCK_LEN);
    return b;
}

/* ---- memtable ---- */

/* A block of n bytes (zeroed when zero is set) on transparent huge pages where the kernel
 * allows them: the memtable is probed at random over up to 32 MiB, and with 4 KiB pages
 * nearly every probe missed the TLB and every first touch faulted (a fault costs 10-30 us
 * on a VM). Plain malloc underneath (large blocks are their own mappings), so free gives the
 * memory back. */
static void *huge_alloc(size_t n, bool zero)
{
    void *p = zero ? tl_xcalloc(1, n) : tl_xmalloc(n);
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (n >= 2 * huge) {
        uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), b = ((uintptr_t)p + n) & ~(huge - 1);
        if (b > a) (void)madvise((void *)a, b - a, MADV_HUGEPAGE);
    }
#endif
    return p;
}

static void mem_init(memtable *m, uint64_t cap)
{
    m->cap = cap;
    m->shift = 64;
    while ((1ull << (64 - m->shift)) < cap)
        m->shift--;
    m->slots = huge_alloc(cap * sizeof *m->slots, true);
    m->n = 0;
}

static void mem_fini(memtable *m)
{
    free(m->slots);
    m->slots = NULL;
}

static void mem_prefetch(const memtable *m, tl_h128 k)
{
    __builtin_prefetch(&m->slots[m->shift == 64 ? 0 : k.hi >> m->shift]);
}

/* Linear probing from the key's top bits: slot order is then nearly key order, so a flush
 * sorts in about linear time (see mem_sorted). */
static bool mem_find(const memtable *m, tl_h128 k, uint64_t *slot)
{
    uint64_t mask = m->cap - 1;
    for (uint64_t i = m->shift == 64 ? 0 : k.hi >> m->shift;; i = (i + 1) & mask) {
        if (!m->slots[i].lo) {
            *slot = i;
            return false;
        }
        if (key_eq(m->slots[i], k)) {
            *slot = i;
            return true;
        }
    }
}

static void mem_grow(memtable *m)
{
    memtable g;
    mem_init(&g, m->cap * 2);
    for (uint64_t i = 0; i < m->cap; i++) {
        uint64_t slot;
        if (m->slots[i].lo && !mem_find(&g, m->slots[i], &slot)) g.slots[slot] = m->slots[i];
    }
    g.n = m->n;
    mem_fini(m);
    *m = g;
}

static uint64_t mem_home(const memtable *m, tl_h128 k)
{
    return m->shift == 64 ? 0 : k.hi >> m->shift;
}

/* The keys in order. Slot order is key order except inside a cluster (insertion order) and
 * for keys that wrapped from the end of the table to its start; those go last, and an
 * insertion sort fixes the rest, in about n × the mean probe length. */
static tl_h128 *mem_sorted(const memtable *m)
{
    /* Huge pages: a fresh 16 MiB array faulted in 4 KiB at a time cost more than sorting
     * it. Wrapped keys are a cluster's worth. */
    tl_h128 *out = huge_alloc((m->n ? m->n : 1) * sizeof *out, false);
    size_t cap_w = 64;
    tl_h128 *wrapped = tl_xmalloc(cap_w * sizeof *wrapped);
    size_t n = 0, nw = 0;
    bool head = true; /* still in the cluster at slot 0 */
    for (uint64_t i = 0; i < m->cap; i++) {
        tl_h128 k = m->slots[i];
        if (!k.lo) {
            head = false;
            continue;
        }
        if (head && mem_home(m, k) > i) {
            if (nw == cap_w) {
                cap_w *= 2;
                wrapped = tl_xrealloc(wrapped, cap_w * sizeof *wrapped);
            }
            wrapped[nw++] = k;
        } else
            out[n++] = k;
    }
    memcpy(out + n, wrapped, nw * sizeof *out);
    n += nw;
    free(wrapped);
    for (size_t i = 1; i < n; i++) {
        tl_h128 x = out[i];
        size_t j = i;
        while (j > 0 && key_cmp(out[j - 1], x) > 0) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = x;
    }
    TL_ASSERT(n == m->n);
    return out;
}

static uint64_t mem_bytes(const memtable *m)
{
    return m->cap * sizeof *m->slots;
}

/* ---- run files ---- */

static void run_path(const tl_dedup *d, uint64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/run-%016" PRIx64, d->dir, id);
}

static void run_free(run *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r->fences);
    free(r->bloom);
    free(r->days);
    free(r);
}

static uint64_t run_file_len(const run *r)
{
    return HDR_LEN + (r->n_keys + r->n_pages) * KEY_LEN + r->n_blocks * BLOCK_LEN +
           (uint64_t)r->n_days * 8;
}

/* Keys of the run whose day is before `day`. */
static uint64_t run_keys_before(const run *r, uint32_t day)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < r->n_days && r->days[2 * i] < day; i++)
        n += r->days[2 * i + 1];
    return n;
}

static uint64_t n_pages_of(uint64_t n_keys)
{
    return (n_keys + TL_DEDUP_PAGE_KEYS - 1) / TL_DEDUP_PAGE_KEYS;
}

/* meta_hash: the header but itself, then the page index, filter and days as stored. */
static uint64_t meta_hash(const uint8_t *hdr, const void *meta, size_t len)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr, 40);
    XXH3_64bits_update(&st, hdr + 48, HDR_LEN - 48);
    XXH3_64bits_update(&st, meta, len);
    return XXH3_64bits_digest(&st);
}

/* Streams sorted keys into a new run file. */
typedef struct writer {
    run *r;
    char path[1200];
    uint8_t *buf;
    size_t len;
    uint64_t off, n;
    XXH3_state_t hs;
    tl_h128 last;
    uint32_t *day_n; /* keys per day, N_DAYS entries */
} writer;

static int writer_begin(tl_dedup *d, writer *w, uint64_t id, uint64_t max_keys)
{
    memset(w, 0, sizeof *w);
    run_path(d, id, w->path, sizeof w->path);
    run *r = tl_xcalloc(1, sizeof *r);
    r->id = id;
    r->fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r->fd < 0) {
        int rc = -errno;
        free(r);
        return rc;
    }
    r->n_blocks = bloom_blocks(max_keys);
    r->bloom = bloom_new(r->n_blocks);
    r->fences = tl_xmalloc((n_pages_of(max_keys) + 1) * sizeof *r->fences);
    w->r = r;
    w->buf = tl_xmalloc(WRITE_BUF);
    w->day_n = tl_xcalloc(N_DAYS, sizeof *w->day_n);
    w->off = HDR_LEN;
    XXH3_64bits_reset(&w->hs);
    return 0;
}

static int writer_drain(writer *w)
{
    if (!w->len) return 0;
    XXH3_64bits_update(&w->hs, w->buf, w->len);
    int rc = tl_pwrite_all(w->r->fd, w->buf, w->len, (off_t)w->off);
    w->off += w->len;
    w->len = 0;
    return rc;
}

/* Adds the next key (ascending; a repeat of the last one is skipped). */
static int writer_add(writer *w, tl_h128 k)
{
    if (w->n && key_cmp(k, w->last) <= 0) return key_cmp(k, w->last) ? TL_EBADMSG : 0;
    if (w->n % TL_DEDUP_PAGE_KEYS == 0) w->r->fences[w->n / TL_DEDUP_PAGE_KEYS] = k;
    bloom_add(w->r->bloom, w->r->n_blocks, k);
    w->day_n[key_day(k)]++;
    key_put(w->buf + w->len, k);
    w->len += KEY_LEN;
    w->n++;
    w->last = k;
    return w->len == WRITE_BUF ? writer_drain(w) : 0;
}

static void writer_abort(writer *w)
{
    if (w->r) {
        unlink(w->path);
        run_free(w->r);
    }
    free(w->buf);
    free(w->day_n);
    w->r = NULL;
    w->buf = NULL;
    w->day_n = NULL;
}

/* Writes the page index, the filter and the header, and fsyncs. */
static int writer_finish(writer *w, run **out)
{
    run *r = w->r;
    int rc = writer_drain(w);
    r->n_keys = w->n;
    r->n_pages = n_pages_of(w->n);
    tl_buf b = TL_BUF_INIT;
    for (uint64_t i = 0; !rc && i < r->n_pages; i++) {
        uint8_t k[KEY_LEN];
        key_put(k, r->fences[i]);
        tl_buf_add(&b, k, sizeof k);
    }
    for (uint64_t i = 0; !rc && i < r->n_blocks * 8; i++)
        tl_buf_u64(&b, r->bloom[i]);
    for (uint32_t day = 0; day < N_DAYS; day++)
        r->n_days += w->day_n[day] != 0;
    r->days = tl_xmalloc((r->n_days + 1) * 2 * sizeof *r->days);
    for (uint32_t day = 0, i = 0; day < N_DAYS; day++) {
        if (!w->day_n[day]) continue;
        r->days[2 * i] = day;
        r->days[2 * i + 1] = w->day_n[day];
        tl_buf_u32(&b, day);
        tl_buf_u32(&b, w->day_n[day]);
        i++;
    }
    if (!rc) rc = tl_pwrite_all(r->fd, b.p, b.len, (off_t)w->off);
    uint8_t hdr[HDR_LEN] = {0};
    memcpy(hdr, RUN_MAGIC, 8);
    tl_put32(hdr + 8, 1);
    tl_put32(hdr + 12, TL_DEDUP_PAGE_KEYS);
    tl_put64(hdr + 16, r->n_keys);
    tl_put64(hdr + 24, r->n_blocks);
    tl_put64(hdr + 32, XXH3_64bits_digest(&w->hs));
    tl_put32(hdr + 48, r->n_days);
    tl_put64(hdr + 40, meta_hash(hdr, b.p, b.len));
    tl_buf_fini(&b);
    if (!rc) rc = tl_pwrite_all(r->fd, hdr, sizeof hdr, 0);
    if (!rc) rc = tl_fdatasync(r->fd);
    if (rc) {
        writer_abort(w);
        return rc;
    }
    free(w->buf);
    free(w->day_n);
    w->buf = NULL;
    w->day_n = NULL;
    w->r = NULL;
    *out = r;
    return 0;
}

/* Opens run `id`, reading its header, page index and filter into memory. */
static int run_open(tl_dedup *d, uint64_t id, uint64_t n_keys, run **out, tl_err *err)
{
    char path[1200];
    run_path(d, id, path, sizeof path);
    run *r = tl_xcalloc(1, sizeof *r);
    r->id = id;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (r->fd < 0) {
        rc = -errno;
        tl_err_set(err, rc,
                   "%s: %s; this dedup run is named by the store's checkpoint (the index "
                   "directory is incomplete): restore it, or remove the directory %s to rebuild "
                   "it from the store at the next start",
                   path, tl_strerror(rc), d->dir);
        goto fail;
    }
    uint8_t hdr[HDR_LEN];
    struct stat stt;
    rc = tl_pread_all(r->fd, hdr, sizeof hdr, 0);
    if (!rc && fstat(r->fd, &stt) < 0) rc = -errno;
    if (rc) {
        tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
        goto fail;
    }
    r->n_keys = tl_le64(hdr + 16);
    r->n_blocks = tl_le64(hdr + 24);
    r->n_pages = n_pages_of(r->n_keys);
    r->n_days = tl_le32(hdr + 48);
    if (memcmp(hdr, RUN_MAGIC, 8) || tl_le32(hdr + 8) != 1 ||
        tl_le32(hdr + 12) != TL_DEDUP_PAGE_KEYS || r->n_keys != n_keys || !r->n_blocks ||
        r->n_keys > (uint64_t)stt.st_size / KEY_LEN ||
        r->n_blocks > (uint64_t)stt.st_size / BLOCK_LEN || r->n_days > N_DAYS ||
        (uint64_t)stt.st_size != run_file_len(r)) {
        rc = TL_EBADMSG;
        tl_err_set(err, rc, "%s: not a dedup run of %" PRIu64 " keys (bad header or size)", path,
                   n_keys);
        goto fail;
    }
    /* Read straight into the arrays (no staging copy: this is most of a restart's work),
     * checksummed as stored, then decoded in place (a no-op on little-endian hosts). */
    r->fences = tl_xmalloc((r->n_pages + 1) * sizeof *r->fences);
    r->bloom = bloom_new(r->n_blocks);
    r->days = tl_xmalloc(((size_t)r->n_days + 1) * 2 * sizeof *r->days);
    size_t flen = r->n_pages * KEY_LEN, blen = r->n_blocks * BLOCK_LEN, dlen = r->n_days * 8;
    off_t at = (off_t)(HDR_LEN + r->n_keys * KEY_LEN);
    rc = tl_pread_all(r->fd, r->fences, flen, at);
    if (!rc) rc = tl_pread_all(r->fd, r->bloom, blen, at + (off_t)flen);
    if (!rc) rc = tl_pread_all(r->fd, r->days, dlen, at + (off_t)(flen + blen));
    if (!rc) {
        XXH3_state_t hs;
        XXH3_64bits_reset(&hs);
        XXH3_64bits_update(&hs, hdr, 40);
        XXH3_64bits_update(&hs, hdr + 48, HDR_LEN - 48);
        XXH3_64bits_update(&hs, r->fences, flen);
        XXH3_64bits_update(&hs, r->bloom, blen);
        XXH3_64bits_update(&hs, r->days, dlen);
        if (XXH3_64bits_digest(&hs) != tl_le64(hdr + 40)) rc = TL_EBADMSG;
        for (uint64_t i = 0; i < r->n_pages; i++)
            r->fences[i] = key_get((const uint8_t *)&r->fences[i]);
        for (uint64_t i = 0; i < r->n_blocks * 8; i++)
            r->bloom[i] = tl_le64(&r->bloom[i]);
        uint64_t sum = 0;
        for (uint32_t i = 0; i < 2 * r->n_days; i++) {
            r->days[i] = tl_le32(&r->days[i]);
            if (i % 2)
                sum += r->days[i];
            else if (r->days[i] >= N_DAYS || (i && r->days[i] <= r->days[i - 2]))
                rc = TL_EBADMSG;
        }
        if (sum != r->n_keys) rc = TL_EBADMSG;
    }
    if (rc) {
        tl_err_set(err, rc, "%s: %s (page index or filter)", path,
                   rc == TL_EBADMSG ? "checksum mismatch" : tl_strerror(rc));
        goto fail;
    }
    *out = r;
    return 0;
fail:
    run_free(r);
    return rc;
}

/* 1 when the run holds k, 0 when not, negative on a read error. */
static int run_has(tl_dedup *d, const run *r, tl_h128 k)
{
    if (!r->n_keys || !bloom_maybe(r->bloom, r->n_blocks, k)) return 0;
    /* The last page whose first key is <= k. */
    uint64_t lo = 0, hi = r->n_pages;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (key_cmp(r->fences[mid], k) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return 0;
    uint64_t first = (lo - 1) * TL_DEDUP_PAGE_KEYS, n = r->n_keys - first;
    if (n > TL_DEDUP_PAGE_KEYS) n = TL_DEDUP_PAGE_KEYS;
    uint8_t page[TL_DEDUP_PAGE_KEYS * KEY_LEN];
    atomic_fetch_add_explicit(&d->page_reads, 1, memory_order_relaxed);
    int rc = tl_pread_all(r->fd, page, n * KEY_LEN, (off_t)(HDR_LEN + first * KEY_LEN));
    if (rc) {
        TL_ERROR("index", "dedup run %016" PRIx64 ": read failed: %s", r->id, tl_strerror(rc));
        return rc;
    }
    uint64_t a = 0, b = n;
    while (a < b) {
        uint64_t mid = a + (b - a) / 2;
        int c = key_cmp(key_get(page + mid * KEY_LEN), k);
        if (c == 0) return 1;
        if (c < 0)
            a = mid + 1;
        else
            b = mid;
    }
    return 0;
}

/* Reads a run's keys in order (merges and checks). */
typedef struct reader {
    const run *r;
    uint8_t *buf;
    uint64_t next, end; /* key index: next to return, end of the buffered ones */
    uint64_t buf_first;
    XXH3_state_t hs;
} reader;

static void reader_init(reader *rd, const run *r)
{
    memset(rd, 0, sizeof *rd);
    rd->r = r;
    rd->buf = tl_xmalloc(READ_BUF);
    XXH3_64bits_reset(&rd->hs);
}

/* 1 and *k, 0 at the end, or a negative error. */
static int reader_next(reader *rd, tl_h128 *k)
{
    if (rd->next == rd->r->n_keys) return 0;
    if (rd->next == rd->end) {
        uint64_t n = rd->r->n_keys - rd->next;
        if (n > READ_BUF / KEY_LEN) n = READ_BUF / KEY_LEN;
        int rc =
            tl_pread_all(rd->r->fd, rd->buf, n * KEY_LEN, (off_t)(HDR_LEN + rd->next * KEY_LEN));
        if (rc) return rc;
        XXH3_64bits_update(&rd->hs, rd->buf, n * KEY_LEN);
        rd->buf_first = rd->next;
        rd->end = rd->next + n;
    }
    *k = key_get(rd->buf + (rd->next - rd->buf_first) * KEY_LEN);
    rd->next++;
    return 1;
}

/* After the last key: does the keys' checksum match the header's? */
static int reader_verify(reader *rd)
{
    uint8_t h[8];
    int rc = tl_pread_all(rd->r->fd, h, sizeof h, 32);
    if (rc) return rc;
    return XXH3_64bits_digest(&rd->hs) == tl_le64(h) ? 0 : TL_EBADMSG;
}

static void reader_fini(reader *rd)
{
    free(rd->buf);
}

/* Writes keys[0..n) (sorted) as run `id`. */
static int run_write_sorted(tl_dedup *d, uint64_t id, const tl_h128 *keys, uint64_t n, run **out)
{
    writer w;
    int rc = writer_begin(d, &w, id, n);
    for (uint64_t i = 0; !rc && i < n; i++)
        rc = writer_add(&w, keys[i]);
    if (rc) {
        writer_abort(&w);
        return rc;
    }
    return writer_finish(&w, out);
}

/* ---- the set of runs ---- */

static void runs_add(tl_dedup *d, run *r)
{
    if (d->n_runs == d->cap_runs) {
        d->cap_runs = d->cap_runs ? d->cap_runs * 2 : 8;
        d->runs = tl_xrealloc(d->runs, d->cap_runs * sizeof *d->runs);
    }
    size_t i = d->n_runs++;
    while (i > 0 && d->runs[i - 1]->id > r->id) {
        d->runs[i] = d->runs[i - 1];
        i--;
    }
    d->runs[i] = r;
}

static void runs_remove(tl_dedup *d, const run *r)
{
    for (size_t i = 0; i < d->n_runs; i++)
        if (d->runs[i] == r) {
            memmove(d->runs + i, d->runs + i + 1, (d->n_runs - i - 1) * sizeof *d->runs);
            d->n_runs--;
            return;
        }
}

static void doom(tl_dedup *d, uint64_t id)
{
    if (d->n_doomed == d->cap_doomed) {
        d->cap_doomed = d->cap_doomed ? d->cap_doomed * 2 : 8;
        d->doomed = tl_xrealloc(d->doomed, d->cap_doomed * sizeof *d->doomed);
    }
    d->doomed[d->n_doomed++] = id;
}

/* ---- manifests ---- */

static void man_path(const tl_dedup *d, uint64_t gen, char *out, size_t cap)
{
    snprintf(out, cap, "%s/manifest-%016" PRIx64, d->dir, gen);
}

static int man_write(tl_dedup *d, uint64_t gen)
{
    tl_buf b = TL_BUF_INIT;
    tl_buf_add(&b, MAN_MAGIC, 8);
    tl_buf_u32(&b, 1);
    tl_buf_u32(&b, (uint32_t)d->n_runs);
    tl_buf_u64(&b, gen);
    tl_buf_u64(&b, d->next_id);
    for (size_t i = 0; i < d->n_runs; i++) {
        tl_buf_u64(&b, d->runs[i]->id);
        tl_buf_u64(&b, d->runs[i]->n_keys);
    }
    tl_buf_u64(&b, XXH3_64bits(b.p, b.len));
    char path[1200];
    man_path(d, gen, path, sizeof path);
    int rc = tl_write_file_atomic(path, b.p, b.len);
    tl_buf_fini(&b);
    return rc;
}

/* Loads manifest gen and opens its runs. */
static int man_load(tl_dedup *d, uint64_t gen, tl_err *err)
{
    char path[1200];
    man_path(d, gen, path, sizeof path);
    tl_buf b = TL_BUF_INIT;
    int rc = tl_read_file(path, &b);
    if (rc) {
        tl_err_set(err, rc,
                   "%s: %s; the store's checkpoint names this dedup manifest (the index "
                   "directory is incomplete): restore it, or remove the directory %s to rebuild "
                   "it from the store at the next start",
                   path, tl_strerror(rc), d->dir);
        goto out;
    }
    const uint8_t *p = (const uint8_t *)b.p;
    uint32_t n = b.len >= 24 ? tl_le32(p + 12) : 0;
    if (b.len < 40 || memcmp(p, MAN_MAGIC, 8) || tl_le32(p + 8) != 1 ||
        b.len != 32 + (size_t)n * 16 + 8 || tl_le64(p + 16) != gen ||
        XXH3_64bits(p, b.len - 8) != tl_le64(p + b.len - 8)) {
        rc = tl_err_set(err, TL_EBADMSG,
                        "%s: corrupt dedup manifest; remove the directory %s to rebuild it from "
                        "the store at the next start",
                        path, d->dir);
        goto out;
    }
    d->next_id = tl_le64(p + 24);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = tl_le64(p + 32 + (size_t)i * 16), nk = tl_le64(p + 40 + (size_t)i * 16);
        if (id >= d->next_id) {
            rc = tl_err_set(err, TL_EBADMSG, "%s: run id %" PRIx64 " past next id", path, id);
            goto out;
        }
        run *r = NULL;
        rc = run_open(d, id, nk, &r, err);
        if (rc) goto out;
        runs_add(d, r);
    }
out:
    tl_buf_fini(&b);
    return rc;
}

/* Deletes every file of the directory that manifest d->gen does not name (invariant 3). */
static void sweep(tl_dedup *d, bool keep_manifest)
{
    DIR *dir = opendir(d->dir);
    if (!dir) return;
    struct dirent *de;
    char path[1200];
    while ((de = readdir(dir))) {
        uint64_t id;
        char tail;
        bool orphan = false;
        if (sscanf(de->d_name, "run-%16" SCNx64 "%c", &id, &tail) == 1) {
            orphan = true;
            for (size_t i = 0; i < d->n_runs; i++)
                if (d->runs[i]->id == id) orphan = false;
        } else if (sscanf(de->d_name, "manifest-%16" SCNx64 "%c", &id, &tail) == 1) {
            orphan = !keep_manifest || id != d->gen;
        } else if (strlen(de->d_name) > 4 && !strcmp(de->d_name + strlen(de->d_name) - 4, ".tmp")) {
            orphan = true;
        }
        if (!orphan) continue;
        snprintf(path, sizeof path, "%s/%s", d->dir, de->d_name);
        TL_INFO("index", "removing dedup file not named by the checkpoint path=%s", path);
        unlink(path);
    }
    closedir(dir);
}

/* ---- merging ---- */

static int tier_of(uint64_t n_keys)
{
    int t = 0;
    for (uint64_t x = n_keys / TL_DEDUP_TIER0; x; x >>= 2)
        t++;
    return t;
}

/* Merges the job's inputs into a new run (merge thread). */
static int merge_runs(tl_dedup *d, job *j)
{
    reader rd[TL_DEDUP_FANOUT];
    tl_h128 head[TL_DEDUP_FANOUT];
    bool live[TL_DEDUP_FANOUT];
    uint64_t total = 0;
    for (int i = 0; i < j->n_in; i++) {
        reader_init(&rd[i], j->in[i]);
        total += j->in[i]->n_keys;
    }
    writer w;
    int rc = writer_begin(d, &w, j->out_id, total);
    for (int i = 0; !rc && i < j->n_in; i++) {
        rc = reader_next(&rd[i], &head[i]);
        live[i] = rc == 1;
        if (rc == 1) rc = 0;
    }
    for (uint64_t n = 0; !rc; n++) {
        int best = -1;
        for (int i = 0; i < j->n_in; i++)
            if (live[i] && (best < 0 || key_cmp(head[i], head[best]) < 0)) best = i;
        if (best < 0) break;
        if (key_day(head[best]) >= j->horizon)
            rc = writer_add(&w, head[best]);
        else
            j->expired++;
        if (rc) break;
        rc = reader_next(&rd[best], &head[best]);
        if (rc == 0) {
            live[best] = false;
            rc = reader_verify(&rd[best]);
            if (rc == TL_EBADMSG)
                TL_ERROR("index", "dedup run %016" PRIx64 ": keys checksum mismatch",
                         j->in[best]->id);
        } else if (rc == 1) {
            rc = 0;
        }
        if (n % CANCEL_CHK == 0 && atomic_load(&d->mstop)) rc = TL_ECANCELED;
    }
    for (int i = 0; i < j->n_in; i++)
        reader_fini(&rd[i]);
    if (rc) {
        if (w.r) writer_abort(&w);
        return rc;
    }
    return writer_finish(&w, &j->out);
}

static void *merger(void *arg)
{
    tl_dedup *d = arg;
    pthread_mutex_lock(&d->mmu);
    for (;;) {
        while (!atomic_load(&d->mstop) && !(d->job && !d->job->running))
            pthread_cond_wait(&d->mcv, &d->mmu);
        if (atomic_load(&d->mstop)) break;
        job *j = d->job;
        j->running = true;
        pthread_mutex_unlock(&d->mmu);
        int rc = merge_runs(d, j);
        pthread_mutex_lock(&d->mmu);
        j->rc = rc;
        j->done = true;
        pthread_cond_broadcast(&d->mcv);
    }
    pthread_mutex_unlock(&d->mmu);
    return NULL;
}

/* Starts a merge of the oldest FANOUT runs of the lowest full tier, or else the rewrite of a
 * run that is mostly expired, if any and if none is running. Writer only. */
static void maybe_merge(tl_dedup *d)
{
    pthread_mutex_lock(&d->mmu);
    if (d->job) {
        pthread_mutex_unlock(&d->mmu);
        return;
    }
    job *j = NULL;
    for (int t = 0; t < 64 && !j; t++) {
        int k = 0;
        run *in[TL_DEDUP_FANOUT];
        for (size_t i = 0; i < d->n_runs && k < TL_DEDUP_FANOUT; i++)
            if (tier_of(d->runs[i]->n_keys) == t) in[k++] = d->runs[i];
        if (k < TL_DEDUP_FANOUT) continue;
        j = tl_xcalloc(1, sizeof *j);
        j->n_in = k;
        for (int i = 0; i < k; i++) {
            j->in[i] = in[i];
            in[i]->busy = true;
        }
        j->out_id = d->next_id++;
    }
    /* Else a run at least half expired (not all: those are dropped without a rewrite). */
    for (size_t i = 0; i < d->n_runs && !j && d->horizon; i++) {
        run *r = d->runs[i];
        uint64_t old = run_keys_before(r, d->horizon);
        if (old * 2 < r->n_keys || old == r->n_keys) continue;
        j = tl_xcalloc(1, sizeof *j);
        j->n_in = 1;
        j->in[0] = r;
        r->busy = true;
        j->out_id = d->next_id++;
    }
    if (j) {
        j->horizon = d->horizon;
        if (!d->thread_started && pthread_create(&d->thread, NULL, merger, d) == 0)
            d->thread_started = true;
        if (d->thread_started) {
            d->job = j;
            pthread_cond_broadcast(&d->mcv);
        } else {
            TL_WARN("index", "cannot start the dedup merge thread; runs stay unmerged");
            for (int i = 0; i < j->n_in; i++)
                j->in[i]->busy = false;
            free(j);
        }
    }
    pthread_mutex_unlock(&d->mmu);
}

/* Takes a finished merge's result into the set (writer, in prepare). */
static void install_merge(tl_dedup *d)
{
    pthread_mutex_lock(&d->mmu);
    job *j = d->job && d->job->done ? d->job : NULL;
    if (j) d->job = NULL;
    pthread_mutex_unlock(&d->mmu);
    if (!j) return;
    for (int i = 0; i < j->n_in; i++)
        j->in[i]->busy = false;
    if (j->rc) {
        TL_WARN("index", "dedup merge into run %016" PRIx64 " failed: %s; will retry", j->out_id,
                tl_strerror(j->rc));
        free(j);
        return;
    }
    pthread_rwlock_wrlock(&d->lock);
    for (int i = 0; i < j->n_in; i++)
        runs_remove(d, j->in[i]);
    runs_add(d, j->out);
    pthread_rwlock_unlock(&d->lock);
    for (int i = 0; i < j->n_in; i++) {
        doom(d, j->in[i]->id);
        run_free(j->in[i]);
    }
    d->changed = true;
    atomic_fetch_add(&d->merges, 1);
    atomic_fetch_add(&d->expired, j->expired);
    TL_DEBUG("index", "dedup merge: %d runs into run %016" PRIx64 " keys=%" PRIu64, j->n_in,
             j->out->id, j->out->n_keys);
    free(j);
}

/* Drops the runs whose every key has expired (writer, in prepare). */
static void drop_expired(tl_dedup *d)
{
    if (!d->horizon) return;
    for (size_t i = 0; i < d->n_runs;) {
        run *r = d->runs[i];
        if (r->busy || run_keys_before(r, d->horizon) != r->n_keys) {
            i++;
            continue;
        }
        pthread_rwlock_wrlock(&d->lock);
        runs_remove(d, r);
        pthread_rwlock_unlock(&d->lock);
        doom(d, r->id);
        atomic_fetch_add(&d->expired, r->n_keys);
        TL_DEBUG("index", "dedup run %016" PRIx64 " expired keys=%" PRIu64, r->id, r->n_keys);
        run_free(r);
        d->changed = true;
    }
}

/* ---- public ---- */

int tl_dedup__open(const char *dir, uint64_t aux, bool *rebuild, tl_dedup **out, tl_err *err)
{
    struct stat st;
    bool existed = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    int rc = tl_mkdir_p(dir);
    if (rc) return tl_err_set(err, rc, "%s: %s", dir, tl_strerror(rc));
    tl_dedup *d = tl_xcalloc(1, sizeof *d);
    d->dir = tl_xstrndup(dir, strlen(dir));
    pthread_rwlock_init(&d->lock, NULL);
    pthread_mutex_init(&d->mmu, NULL);
    pthread_cond_init(&d->mcv, NULL);
    mem_init(&d->mem, MEM_MIN);
    d->next_id = 1;
    *rebuild = !(aux & TL_DEDUP_AUX_TAG) || !existed;
    if (*rebuild) {
        if (aux & TL_DEDUP_AUX_TAG)
            TL_WARN("index", "the dedup directory %s is missing: rebuilding it from the store",
                    dir);
        d->changed = true; /* the first prepare writes a manifest */
        sweep(d, false);
    } else {
        d->gen = d->gen_written = aux & ~TL_DEDUP_AUX_TAG;
        rc = man_load(d, d->gen, err);
        if (rc) {
            tl_dedup__free(d);
            return rc;
        }
        sweep(d, true);
    }
    *out = d;
    return 0;
}

void tl_dedup__free(tl_dedup *d)
{
    if (!d) return;
    if (d->thread_started) {
        pthread_mutex_lock(&d->mmu);
        atomic_store(&d->mstop, true);
        pthread_cond_broadcast(&d->mcv);
        pthread_mutex_unlock(&d->mmu);
        pthread_join(d->thread, NULL);
    }
    if (d->job) {
        if (d->job->done && !d->job->rc && d->job->out) {
            /* Finished but never named by a manifest: an orphan. */
            char path[1200];
            run_path(d, d->job->out->id, path, sizeof path);
            unlink(path);
            run_free(d->job->out);
        }
        free(d->job);
    }
    for (size_t i = 0; i < d->n_runs; i++)
        run_free(d->runs[i]);
    free(d->runs);
    free(d->doomed);
    mem_fini(&d->mem);
    free(d->dir);
    pthread_rwlock_destroy(&d->lock);
    pthread_mutex_destroy(&d->mmu);
    pthread_cond_destroy(&d->mcv);
    free(d);
}

static int runs_have(tl_dedup *d, tl_h128 k)
{
    for (size_t i = d->n_runs; i-- > 0;) {
        int rc = run_has(d, d->runs[i], k);
        if (rc) return rc;
    }
    return 0;
}

void tl_dedup__write_begin(tl_dedup *d)
{
    pthread_rwlock_wrlock(&d->lock);
}

void tl_dedup__write_end(tl_dedup *d)
{
    pthread_rwlock_unlock(&d->lock);
}

int tl_dedup__insert(tl_dedup *d, tl_h128 k)
{
    uint64_t slot;
    if (mem_find(&d->mem, k, &slot)) return 0;
    int rc = runs_have(d, k);
    if (rc) return rc < 0 ? rc : 0;
    d->mem.slots[slot] = k;
    d->mem.n++;
    if (d->mem.n * 10 > d->mem.cap * 7) mem_grow(&d->mem);
    return 1;
}

int tl_dedup__contains(tl_dedup *d, tl_h128 k)
{
    uint64_t slot;
    pthread_rwlock_rdlock(&d->lock);
    int rc = mem_find(&d->mem, k, &slot) ? 1 : runs_have(d, k);
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

/* The memtable slot and each run's filter block that a lookup of k reads first. */
static void prefetch_all(const tl_dedup *d, tl_h128 k)
{
    mem_prefetch(&d->mem, k);
    for (size_t i = 0; i < d->n_runs; i++)
        if (d->runs[i]->n_keys)
            __builtin_prefetch(bloom_block(d->runs[i]->bloom, d->runs[i]->n_blocks, k));
}

int tl_dedup__contains_n(tl_dedup *d, const tl_h128 *keys, uint32_t n, bool *found)
{
    enum { AHEAD = 8 }; /* memtable slots fetched ahead: the probes' cache misses overlap */
    int rc = 0;
    pthread_rwlock_rdlock(&d->lock);
    for (uint32_t i = 0; i < n && i < AHEAD; i++)
        prefetch_all(d, keys[i]);
    for (uint32_t i = 0; i < n; i++) {
        if (i + AHEAD < n) prefetch_all(d, keys[i + AHEAD]);
        uint64_t slot;
        int r = mem_find(&d->mem, keys[i], &slot) ? 1 : runs_have(d, keys[i]);
        if (r < 0) rc = r;
        found[i] = r > 0;
    }
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

void tl_dedup__prefetch(tl_dedup *d, tl_h128 k)
{
    prefetch_all(d, k);
}

uint64_t tl_dedup__mem_keys(tl_dedup *d)
{
    return d->mem.n;
}

bool tl_dedup__merge_ready(tl_dedup *d)
{
    pthread_mutex_lock(&d->mmu);
    bool ready = d->job && d->job->done;
    pthread_mutex_unlock(&d->mmu);
    return ready;
}

int tl_dedup__flush(tl_dedup *d, tl_err *err)
{
    if (!d->mem.n) return 0;
    tl_h128 *keys = mem_sorted(&d->mem);
    run *r = NULL;
    uint64_t id = d->next_id++;
    int rc = run_write_sorted(d, id, keys, d->mem.n, &r);
    free(keys);
    if (rc) {
        char path[1200];
        run_path(d, id, path, sizeof path);
        return tl_err_set(err, rc, "writing dedup run %s: %s", path, tl_strerror(rc));
    }
    pthread_rwlock_wrlock(&d->lock);
    runs_add(d, r);
    /* The same table, emptied: it stays mapped (with huge pages) for the next keys rather
     * than faulting in a fresh one page by page. */
    memset(d->mem.slots, 0, d->mem.cap * sizeof *d->mem.slots);
    d->mem.n = 0;
    pthread_rwlock_unlock(&d->lock);
    d->changed = true;
    atomic_fetch_add(&d->flushes, 1);
    return 0;
}

int tl_dedup__prepare(tl_dedup *d, uint64_t *aux, tl_err *err)
{
    int rc = tl_dedup__flush(d, err);
    if (rc) return rc;
    install_merge(d);
    drop_expired(d);
    if (d->changed) {
        rc = man_write(d, d->gen_written + 1);
        if (rc)
            return tl_err_set(err, rc, "writing the dedup manifest in %s: %s", d->dir,
                              tl_strerror(rc));
        d->gen_written++;
        d->changed = false;
    }
    *aux = TL_DEDUP_AUX_TAG | d->gen_written;
    return 0;
}

void tl_dedup__committed(tl_dedup *d, uint64_t aux)
{
    uint64_t gen = aux & ~TL_DEDUP_AUX_TAG;
    char path[1200];
    if (gen != d->gen) {
        for (uint64_t g = d->gen; g < gen; g++) {
            if (!g) continue;
            man_path(d, g, path, sizeof path);
            unlink(path);
        }
        d->gen = gen;
    }
    for (size_t i = 0; i < d->n_doomed; i++) {
        run_path(d, d->doomed[i], path, sizeof path);
        unlink(path);
    }
    d->n_doomed = 0;
    maybe_merge(d);
}

void tl_dedup__set_horizon(tl_dedup *d, uint32_t day)
{
    d->horizon = day;
}

void tl_dedup__wait_merge(tl_dedup *d)
{
    pthread_mutex_lock(&d->mmu);
    while (d->job && !d->job->done)
        pthread_cond_wait(&d->mcv, &d->mmu);
    pthread_mutex_unlock(&d->mmu);
}

void tl_dedup__get_stats(tl_dedup *d, tl_dedup_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&d->lock);
    out->runs = d->n_runs;
    for (size_t i = 0; i < d->n_runs; i++) {
        const run *r = d->runs[i];
        out->run_keys += r->n_keys;
        out->mem_bytes += r->n_pages * KEY_LEN + r->n_blocks * BLOCK_LEN + r->n_days * 8;
        out->disk_bytes += run_file_len(r);
    }
    out->mem_keys = d->mem.n;
    out->mem_bytes += mem_bytes(&d->mem);
    pthread_rwlock_unlock(&d->lock);
    out->flushes = atomic_load(&d->flushes);
    out->merges = atomic_load(&d->merges);
    out->expired = atomic_load(&d->expired);
    out->page_reads = atomic_load(&d->page_reads);
}

int tl_dedup__check_run(const char *path, tl_err *err)
{
    const char *slash = strrchr(path, '/');
    uint64_t id = 0;
    if (!slash || sscanf(slash + 1, "run-%16" SCNx64, &id) != 1)
        return tl_err_set(err, TL_EINVAL, "%s: not a run file name", path);
    tl_dedup tmp;
    memset(&tmp, 0, sizeof tmp);
    char dir[1200];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    tmp.dir = dir;
    /* The header's own key count is what the caller expects here. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tl_err_set(err, -errno, "%s: %s", path, tl_strerror(-errno));
    uint8_t hdr[HDR_LEN];
    int rc = tl_pread_all(fd, hdr, sizeof hdr, 0);
    close(fd);
    if (rc) return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    run *r = NULL;
    rc = run_open(&tmp, id, tl_le64(hdr + 16), &r, err);
    if (rc) return rc;
    reader rd;
    reader_init(&rd, r);
    tl_h128 k, prev = {0, 0};
    uint64_t i = 0;
    uint32_t *day_n = tl_xcalloc(N_DAYS, sizeof *day_n);
    while ((rc = reader_next(&rd, &k)) == 1) {
        day_n[key_day(k)]++;
        if (i && key_cmp(prev, k) >= 0) {
            rc = tl_err_set(err, TL_EBADMSG, "%s: key %" PRIu64 " out of order", path, i);
            break;
        }
        if (i % TL_DEDUP_PAGE_KEYS == 0 && key_cmp(r->fences[i / TL_DEDUP_PAGE_KEYS], k)) {
            rc = tl_err_set(err, TL_EBADMSG, "%s: page index wrong at key %" PRIu64, path, i);
            break;
        }
        if (!bloom_maybe(r->bloom, r->n_blocks, k)) {
            rc = tl_err_set(err, TL_EBADMSG, "%s: filter misses key %" PRIu64, path, i);
            break;
        }
        prev = k;
        i++;
    }
    if (rc == 0 && reader_verify(&rd))
        rc = tl_err_set(err, TL_EBADMSG, "%s: keys checksum mismatch", path);
    else if (rc < 0 && rc != TL_EBADMSG)
        tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    /* run_open checked that the days' counts sum to n_keys; each must match too. */
    for (uint32_t j = 0; rc == 0 && j < r->n_days; j++)
        if (day_n[r->days[2 * j]] != r->days[2 * j + 1])
            rc = tl_err_set(err, TL_EBADMSG, "%s: day %u counts %u keys, not %u", path,
                            r->days[2 * j], r->days[2 * j + 1], day_n[r->days[2 * j]]);
    free(day_n);
    reader_fini(&rd);
    run_free(r);
    return rc;
}
