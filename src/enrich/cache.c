/* The enrichment caches (user agent → browser/os/device/bot; IP → country/region/city): a
 * fixed number of entries split into shards, each a direct-mapped table under its own mutex,
 * so lookups from many request threads rarely meet. A colliding key replaces the old entry
 * (no LRU bookkeeping on the hot path). Values are copied in and out, so nothing handed out
 * can be freed under a reader. Memory: n_entries × (value + key) at most. */
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
    c->per_shard = n_entries / N_SHARDS ? n_entries / N_SHARDS : 1;
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

static centry *slot(tl_ecache *c, uint64_t hash, cshard **sh)
{
    *sh = &c->shard[hash % N_SHARDS];
    return (centry *)(void *)((*sh)->slots + ((hash / N_SHARDS) % c->per_shard) * c->stride);
}

bool tl_enrich__cache_get(tl_ecache *c, const void *key, size_t klen, uint64_t hash, void *val)
{
    cshard *sh;
    hash |= 1;
    centry *e = slot(c, hash, &sh);
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    if (e->hash == hash && e->klen == klen && !memcmp(e->key, key, klen)) {
        memcpy(val, e + 1, c->val_size);
        hit = true;
    }
    pthread_mutex_unlock(&sh->mu);
    return hit;
}

void tl_enrich__cache_put(tl_ecache *c, const void *key, size_t klen, uint64_t hash,
                          const void *val)
{
    cshard *sh;
    hash |= 1;
    centry *e = slot(c, hash, &sh);
    char *copy = tl_xmalloc(klen ? klen : 1);
    memcpy(copy, key, klen);
    pthread_mutex_lock(&sh->mu);
    char *old = e->key;
    e->hash = hash;
    e->key = copy;
    e->klen = klen;
    memcpy(e + 1, val, c->val_size);
    pthread_mutex_unlock(&sh->mu);
    free(old);
}
