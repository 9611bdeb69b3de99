/* The enrichment caches (user agent → browser/os/device/bot; IP → country/region/city; mmdb
 * record → its decoded strings): a fixed number of entries split into shards, each a two-way
 * set-associative table under its own mutex (on its own cache line), so lookups from many
 * request threads rarely meet. A key whose two slots are taken replaces one of them (no
 * recency bookkeeping on the hot path). Keys live in the slot itself, so a lookup touches one
 * slot pair and nothing else: keys up to 16 bytes (addresses, offsets) as they are, longer
 * ones (user agents) as their 128-bit XXH3 digest with their length — two different user
 * agents with the same digest and length are taken to be impossible (~2^-128). Values are
 * copied in and out, so nothing handed out can be freed under a reader.
 * Memory: n_entries × (32-byte slot + value), mapped and faulted in at creation: a page fault
 * taken by a request thread costs ~12 µs on the project's (virtual) machine, populating the
 * pages at start ~0.6 µs each, and the IP cache alone is ~3,000 pages that the first events
 * after a start would otherwise fault in one by one. In transparent huge pages (when the
 * kernel has them: `madvise` mode is enough): the IP cache is 12 MiB, and with 4 KiB pages
 * nearly every lookup was also a TLB miss — on this VM the kernel flushes the TLB at every
 * system call (page-table isolation without PCID), so between two requests it starts empty. */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/mman.h>

#include "enrich.h"
#include "enrich/enrich_int.h"
#include "util/hash.h"

#define N_SHARDS 16
#define KEY_MAX  16

typedef struct centry {
    uint64_t hash; /* hash | 1; 0: empty */
    uint64_t klen;
    unsigned char key[KEY_MAX]; /* the key, or its digest when longer than KEY_MAX */
    /* then val_size bytes of value */
} centry;

typedef struct cshard {
    pthread_mutex_t mu;
    unsigned char *slots; /* per_shard × stride bytes, in mem */
    char pad[64 - (sizeof(pthread_mutex_t) + sizeof(unsigned char *)) % 64];
} cshard;

struct tl_ecache {
    cshard shard[N_SHARDS];
    uint32_t per_shard; /* even: slots come in pairs */
    size_t val_size, stride;
    unsigned char *mem; /* every shard's slots (tl_enrich__huge_alloc) */
    size_t mem_size;
};

/* The slot form of a key: itself, or its digest. */
static const unsigned char *slot_key(const void *key, size_t klen, unsigned char buf[KEY_MAX])
{
    if (klen <= KEY_MAX) return key;
    tl_h128 h = tl_hash128(key, klen, 0x75616b6579ULL);
    memcpy(buf, &h.lo, 8);
    memcpy(buf + 8, &h.hi, 8);
    return buf;
}

#define HUGE_PAGE ((size_t)2 << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static size_t huge_round(size_t n)
{
    return (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
}

void *tl_enrich__huge_alloc(size_t n)
{
    size_t len = huge_round(n ? n : 1), all = len + HUGE_PAGE;
    unsigned char *m = mmap(NULL, all, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort(); /* as tl_xmalloc */
    /* Keep the 2 MiB-aligned len bytes inside, give back the rest. */
    unsigned char *p =
        (unsigned char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > m) munmap(m, (size_t)(p - m));
    if (m + all > p + len) munmap(p + len, (size_t)(m + all - (p + len)));
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE);
#endif
    if (madvise(p, len, MADV_POPULATE_WRITE)) /* before 5.14: touch each page */
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 0;
    return p;
}

void tl_enrich__huge_free(void *p, size_t n)
{
    if (p) munmap(p, huge_round(n ? n : 1));
}

tl_ecache *tl_enrich__cache_new(uint32_t n_entries, size_t val_size)
{
    tl_ecache *c = aligned_alloc(64, (sizeof *c + 63) & ~(size_t)63); /* shards on lines */
    if (!c) abort();                                                  /* as tl_xmalloc */
    memset(c, 0, sizeof *c);
    c->per_shard = n_entries / N_SHARDS >= 2 ? (n_entries / N_SHARDS) & ~1u : 2;
    c->val_size = val_size;
    c->stride = (sizeof(centry) + val_size + 15) & ~(size_t)15;
    c->mem_size = (size_t)N_SHARDS * c->per_shard * c->stride;
    c->mem = tl_enrich__huge_alloc(c->mem_size);
    for (int i = 0; i < N_SHARDS; i++) {
        pthread_mutex_init(&c->shard[i].mu, NULL);
        c->shard[i].slots = c->mem + (size_t)i * c->per_shard * c->stride;
    }
    return c;
}

static centry *at(const tl_ecache *c, const cshard *sh, size_t i)
{
    return (centry *)(void *)(sh->slots + i * c->stride);
}

void tl_enrich__cache_free(tl_ecache *c)
{
    if (!c) return;
    for (int i = 0; i < N_SHARDS; i++)
        pthread_mutex_destroy(&c->shard[i].mu);
    tl_enrich__huge_free(c->mem, c->mem_size);
    free(c);
}

/* The shard comes from the top bits, the slot pair from the low bits. */
static size_t pair(tl_ecache *c, uint64_t hash, cshard **sh)
{
    *sh = &c->shard[(hash >> 60) % N_SHARDS];
    return (size_t)(hash % c->per_shard) & ~(size_t)1;
}

static bool same(const centry *e, uint64_t tag, const unsigned char *k, size_t klen)
{
    return e->hash == tag && e->klen == klen && !memcmp(e->key, k, klen < KEY_MAX ? klen : KEY_MAX);
}

void tl_enrich__cache_prefetch(const tl_ecache *c, uint64_t hash)
{
    if (!c) return;
    const cshard *sh = &c->shard[(hash >> 60) % N_SHARDS];
    const unsigned char *p = sh->slots + ((size_t)(hash % c->per_shard) & ~(size_t)1) * c->stride;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 2 * c->stride - 1); /* the pair's last byte: its other line(s) */
    if (2 * c->stride > 128) __builtin_prefetch(p + 64);
}

bool tl_enrich__cache_get(tl_ecache *c, const void *key, size_t klen, uint64_t hash, void *val)
{
    unsigned char buf[KEY_MAX];
    const unsigned char *k = slot_key(key, klen, buf);
    cshard *sh;
    size_t i = pair(c, hash, &sh);
    uint64_t tag = hash | 1;
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    for (size_t w = 0; w < 2 && !hit; w++) {
        centry *e = at(c, sh, i + w);
        if (same(e, tag, k, klen)) {
            memcpy(val, e + 1, c->val_size);
            hit = true;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return hit;
}

void tl_enrich__cache_put(tl_ecache *c, const void *key, size_t klen, uint64_t hash,
                          const void *val)
{
    unsigned char buf[KEY_MAX];
    const unsigned char *k = slot_key(key, klen, buf);
    cshard *sh;
    size_t i = pair(c, hash, &sh);
    uint64_t tag = hash | 1;
    pthread_mutex_lock(&sh->mu);
    /* The way that holds this key already, else an empty one, else the one a hash bit picks. */
    centry *e = at(c, sh, i), *e1 = at(c, sh, i + 1);
    if (!same(e, tag, k, klen)) {
        if (same(e1, tag, k, klen) || (e->hash && !e1->hash) || (e->hash && (hash >> 32) & 1))
            e = e1;
    }
    e->hash = tag;
    e->klen = klen;
    memcpy(e->key, k, klen < KEY_MAX ? klen : KEY_MAX);
    memcpy(e + 1, val, c->val_size);
    pthread_mutex_unlock(&sh->mu);
}
