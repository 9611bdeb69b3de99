/* The enrichment caches (user agent → browser/os/device/bot; IP → country/region/city): a
 * fixed number of entries split into shards, each a two-way set-associative table under its
 * own mutex, so lookups from many request threads rarely meet. A key whose two slots are taken
 * replaces one of them (no recency bookkeeping on the hot path). Values are copied in and
 * out, so nothing handed out can be freed under a reader. Memory: n_entries × (value + key). */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "enrich.h"
#include "enrich/enrich_int.h"

#define N_SHARDS 16

typedef struct centry {
    uint64_t hash; /* 0: empty */
    char *key;
    size_t klen;
    /* then val_size bytes of value */
} centry;

typedef struct cshard {
    pthread_mutex_t mu;
    unsigned char *slots; /* per_shard × stride bytes */
} cshard;

struct tl_ecache {
    cshard shard[N_SHARDS];
    uint32_t per_shard;
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

void tl_enrich__cache_free(tl_ecache *c)
{
    if (!c) return;
    for (int i = 0; i < N_SHARDS; i++) {
        for (uint32_t j = 0; j < c->per_shard; j++)
            free(((centry *)(void *)(c->shard[i].slots + j * c->stride))->key);
        free(c->shard[i].slots);
        pthread_mutex_destroy(&c->shard[i].mu);
    }
    free(c);
}

/* The two slots (ways) key `hash` may live in: the shard from the top bits, the slot pair
 * from the low bits (the stored tag is hash | 1, so 0 marks an empty slot). */
static centry *ways(tl_ecache *c, uint64_t hash, cshard **sh)
{
    *sh = &c->shard[(hash >> 60) % N_SHARDS];
    return (centry *)(void *)((*sh)->slots + ((hash % c->per_shard) & ~(uint64_t)1) * c->stride);
}

static centry *way(const tl_ecache *c, centry *w, int i)
{
    return (centry *)(void *)((unsigned char *)w + (size_t)i * c->stride);
}

bool tl_enrich__cache_get(tl_ecache *c, const void *key, size_t klen, uint64_t hash, void *val)
{
    cshard *sh;
    centry *w = ways(c, hash, &sh);
    uint64_t tag = hash | 1;
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    for (int i = 0; i < 2 && !hit; i++) {
        centry *e = way(c, w, i);
        if (e->hash == tag && e->klen == klen && !memcmp(e->key, key, klen)) {
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
    centry *w = ways(c, hash, &sh);
    uint64_t tag = hash | 1;
    char *copy = tl_xmalloc(klen ? klen : 1);
    memcpy(copy, key, klen);
    pthread_mutex_lock(&sh->mu);
    /* An empty way, else the one a hash bit picks (no recency bookkeeping on reads). */
    centry *e = !w->hash              ? w
                : !way(c, w, 1)->hash ? way(c, w, 1)
                                      : way(c, w, (int)(hash >> 32) & 1);
    char *old = e->key;
    e->hash = tag;
    e->key = copy;
    e->klen = klen;
    memcpy(e + 1, val, c->val_size);
    pthread_mutex_unlock(&sh->mu);
    free(old);
}
