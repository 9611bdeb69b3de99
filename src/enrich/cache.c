/* The enrichment caches (user agent → browser/os/device/bot; IP → country/region/city; mmdb
 * record → its decoded strings): a fixed number of entries split into shards, each a two-way
 * set-associative table under its own mutex, so lookups from many request threads rarely
 * meet. A key whose two slots are taken replaces one of them (no recency bookkeeping on the
 * hot path). Keys up to 16 bytes (addresses, offsets) live in the slot itself, so a lookup
 * touches one slot pair and nothing else; longer keys are copied to the heap. Values are
 * copied in and out, so nothing handed out can be freed under a reader.
 * Memory: n_entries × (slot + value), plus the long keys, mapped and faulted in at creation:
 * a page fault taken by a request thread costs ~12 µs on the project's (virtual) machine,
 * populating the pages at start ~0.6 µs each, and the IP cache alone is ~3,000 pages that the
 * first events after a start would otherwise fault in one by one. */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define TL_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_CACHE_ASAN 1
#endif
#endif
#ifdef TL_CACHE_ASAN
/* The slots hold the only pointers to long keys: LeakSanitizer must scan the mapping. */
#include <sanitizer/lsan_interface.h>
#define LSAN_ROOT(p, n)   __lsan_register_root_region(p, n)
#define LSAN_UNROOT(p, n) __lsan_unregister_root_region(p, n)
#endif
#ifndef LSAN_ROOT
#define LSAN_ROOT(p, n)   ((void)0)
#define LSAN_UNROOT(p, n) ((void)0)
#endif

#include "enrich.h"
#include "enrich/enrich_int.h"

#define N_SHARDS   16
#define INLINE_KEY 16

typedef struct centry {
    uint64_t hash; /* hash | 1; 0: empty */
    size_t klen;
    union {
        char *heap; /* klen > INLINE_KEY */
        unsigned char in[INLINE_KEY];
    } key;
    /* then val_size bytes of value */
} centry;

typedef struct cshard {
    pthread_mutex_t mu;
    unsigned char *slots; /* per_shard × stride bytes, in mem */
} cshard;

struct tl_ecache {
    cshard shard[N_SHARDS];
    uint32_t per_shard; /* even: slots come in pairs */
    size_t val_size, stride;
    unsigned char *mem; /* every shard's slots */
    size_t mem_size;
    bool mapped; /* mem is an mmap (else calloc) */
};

tl_ecache *tl_enrich__cache_new(uint32_t n_entries, size_t val_size)
{
    tl_ecache *c = tl_xcalloc(1, sizeof *c);
    c->per_shard = n_entries / N_SHARDS >= 2 ? (n_entries / N_SHARDS) & ~1u : 2;
    c->val_size = val_size;
    c->stride = (sizeof(centry) + val_size + 15) & ~(size_t)15;
    c->mem_size = (size_t)N_SHARDS * c->per_shard * c->stride;
    /* Zeroed anonymous pages, faulted in now rather than by the first events (see the top). */
    void *m = mmap(NULL, c->mem_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    c->mapped = m != MAP_FAILED;
    c->mem = c->mapped ? m : tl_xcalloc(1, c->mem_size);
    if (c->mapped) LSAN_ROOT(c->mem, c->mem_size);
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

static void drop_key(centry *e)
{
    if (e->hash && e->klen > INLINE_KEY) free(e->key.heap);
}

void tl_enrich__cache_free(tl_ecache *c)
{
    if (!c) return;
    for (int i = 0; i < N_SHARDS; i++) {
        for (uint32_t j = 0; j < c->per_shard; j++)
            drop_key(at(c, &c->shard[i], j));
        pthread_mutex_destroy(&c->shard[i].mu);
    }
    if (c->mapped) {
        LSAN_UNROOT(c->mem, c->mem_size);
        munmap(c->mem, c->mem_size);
    } else {
        free(c->mem);
    }
    free(c);
}

/* The shard comes from the top bits, the slot pair from the low bits. */
static size_t pair(tl_ecache *c, uint64_t hash, cshard **sh)
{
    *sh = &c->shard[(hash >> 60) % N_SHARDS];
    return (size_t)(hash % c->per_shard) & ~(size_t)1;
}

static bool same(const centry *e, uint64_t tag, const void *key, size_t klen)
{
    if (e->hash != tag || e->klen != klen) return false;
    return !memcmp(klen > INLINE_KEY ? (const void *)e->key.heap : e->key.in, key, klen);
}

bool tl_enrich__cache_get(tl_ecache *c, const void *key, size_t klen, uint64_t hash, void *val)
{
    cshard *sh;
    size_t i = pair(c, hash, &sh);
    uint64_t tag = hash | 1;
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    for (size_t w = 0; w < 2 && !hit; w++) {
        centry *e = at(c, sh, i + w);
        if (same(e, tag, key, klen)) {
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
    cshard *sh;
    size_t i = pair(c, hash, &sh);
    uint64_t tag = hash | 1;
    char *copy = NULL;
    if (klen > INLINE_KEY) {
        copy = tl_xmalloc(klen);
        memcpy(copy, key, klen);
    }
    char *old = NULL;
    pthread_mutex_lock(&sh->mu);
    /* The way that holds this key already, else an empty one, else the one a hash bit picks. */
    centry *e = at(c, sh, i), *e1 = at(c, sh, i + 1);
    if (!same(e, tag, key, klen)) {
        if (same(e1, tag, key, klen) || (e->hash && !e1->hash) || (e->hash && (hash >> 32) & 1))
            e = e1;
    }
    if (e->hash && e->klen > INLINE_KEY) old = e->key.heap;
    e->hash = tag;
    e->klen = klen;
    if (copy)
        e->key.heap = copy;
    else
        memcpy(e->key.in, key, klen);
    memcpy(e + 1, val, c->val_size);
    pthread_mutex_unlock(&sh->mu);
    free(old);
}
