/* The enrichment caches (user agent → browser/os/device/bot; IP → country/region/city; mmdb
 * record → its decoded strings): a fixed number of entries split into shards, each a two-way
 * set-associative table under its own mutex, so lookups from many request threads rarely
 * meet. A key whose two slots are taken replaces one of them (no recency bookkeeping on the
 * hot path). Keys up to 16 bytes (addresses, offsets) live in the slot itself, so a lookup
 * touches one slot pair and nothing else; longer keys are copied to the heap. Values are
 * copied in and out, so nothing handed out can be freed under a reader.
 * Memory: n_entries × (slot + value), plus the long keys. */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

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
    unsigned char *slots; /* per_shard × stride bytes */
} cshard;

struct tl_ecache {
    cshard shard[N_SHARDS];
    uint32_t per_shard; /* even: slots come in pairs */
    size_t val_size, stride;
};

tl_ecache *tl_enrich__cache_new(uint32_t n_entries, size_t val_size)
{
    tl_ecache *c = tl_xcalloc(1, sizeof *c);
    c->per_shard = n_entries / N_SHARDS >= 2 ? (n_entries / N_SHARDS) & ~1u : 2;
    c->val_size = val_size;
    c->stride = (sizeof(centry) + val_size + 15) & ~(size_t)15;
    for (int i = 0; i < N_SHARDS; i++) {
        pthread_mutex_init(&c->shard[i].mu, NULL);
        c->shard[i].slots = tl_xcalloc(c->per_shard, c->stride);
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
        free(c->shard[i].slots);
        pthread_mutex_destroy(&c->shard[i].mu);
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
