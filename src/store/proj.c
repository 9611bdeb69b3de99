/* Projections: a column's values at one event's rows of a sealed part, in the event index's
 * order (contract in store_int.h).
 *
 * Parts are sorted by time, so the rows of a rare event are scattered through every column:
 * a filter or a sum over them misses the cache on nearly every row (ClickHouse, its table
 * ordered by event, reads them contiguously). A projection is that column gathered once into
 * event order, then read as a dense array by every later query. They are built on first use
 * (so they cost nothing for columns no query combines with an event) and kept in an LRU
 * under their own budget; a snapshot pins what it reads until it is freed. Parts are
 * immutable and a key names the part by project and sequence number, which is never reused
 * (a rewritten part gets a new one), so an entry is never stale: entries of parts that are
 * gone are simply never asked for again and leave with the least recently used. */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "store/store_int.h"

struct tl_pent {
    tl_pkey key;
    void *data;
    size_t bytes;
    uint32_t pins;
    struct tl_pent *prev, *next; /* LRU, while unpinned */
    struct tl_pent *chain;       /* hash chain */
};

struct tl_proj {
    pthread_mutex_t mu;
    uint64_t budget, bytes;
    uint64_t hits, misses;
    tl_pent **tab;
    uint32_t mask, n;
    tl_pent lru; /* sentinel: lru.next is the least recently used */
};

tl_proj *tl_proj__new(uint64_t budget)
{
    tl_proj *pj = tl_xcalloc(1, sizeof *pj);
    pthread_mutex_init(&pj->mu, NULL);
    pj->budget = budget;
    pj->mask = 1023;
    pj->tab = tl_xcalloc(pj->mask + 1, sizeof *pj->tab);
    pj->lru.next = pj->lru.prev = &pj->lru;
    return pj;
}

void tl_proj__free(tl_proj *pj)
{
    if (!pj) return;
    for (uint32_t i = 0; i <= pj->mask; i++)
        for (tl_pent *e = pj->tab[i], *next; e; e = next) {
            next = e->chain;
            free(e->data);
            free(e);
        }
    free(pj->tab);
    pthread_mutex_destroy(&pj->mu);
    free(pj);
}

static uint32_t key_hash(const tl_pkey *k)
{
    uint64_t h = k->seq * 0x9E3779B97F4A7C15ull ^ ((uint64_t)k->project << 40) ^
                 ((uint64_t)k->col << 20) ^ k->key;
    h ^= (uint64_t)k->event * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    return (uint32_t)(h * 0xBF58476D1CE4E5B9ull >> 32);
}

static bool key_eq(const tl_pkey *a, const tl_pkey *b)
{
    return a->seq == b->seq && a->project == b->project && a->col == b->col && a->key == b->key &&
           a->event == b->event;
}

static void lru_unlink(tl_pent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(tl_proj *pj, tl_pent *e)
{
    e->prev = pj->lru.prev;
    e->next = &pj->lru;
    pj->lru.prev->next = e;
    pj->lru.prev = e;
}

static void unchain(tl_proj *pj, tl_pent *e)
{
    tl_pent **pp = &pj->tab[key_hash(&e->key) & pj->mask];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    pj->n--;
}

/* Frees unpinned entries, least recently used first, down to the budget. */
static void evict(tl_proj *pj)
{
    while (pj->bytes > pj->budget && pj->lru.next != &pj->lru) {
        tl_pent *e = pj->lru.next;
        lru_unlink(e);
        unchain(pj, e);
        pj->bytes -= e->bytes;
        free(e->data);
        free(e);
    }
}

static void grow(tl_proj *pj)
{
    uint32_t mask = pj->mask * 2 + 1;
    tl_pent **tab = tl_xcalloc((size_t)mask + 1, sizeof *tab);
    for (uint32_t i = 0; i <= pj->mask; i++)
        for (tl_pent *e = pj->tab[i], *next; e; e = next) {
            next = e->chain;
            uint32_t h = key_hash(&e->key) & mask;
            e->chain = tab[h];
            tab[h] = e;
        }
    free(pj->tab);
    pj->tab = tab;
    pj->mask = mask;
}

const void *tl_proj__get(tl_proj *pj, const tl_pkey *k, tl_pent **pin)
{
    pthread_mutex_lock(&pj->mu);
    tl_pent *e = pj->tab[key_hash(k) & pj->mask];
    while (e && !key_eq(&e->key, k))
        e = e->chain;
    const void *data = NULL;
    if (e) {
        pj->hits++;
        if (!e->pins++) lru_unlink(e);
        data = e->data;
        *pin = e;
    } else {
        pj->misses++;
        *pin = NULL;
    }
    pthread_mutex_unlock(&pj->mu);
    return data;
}

const void *tl_proj__put(tl_proj *pj, const tl_pkey *k, void *data, size_t bytes, tl_pent **pin)
{
    pthread_mutex_lock(&pj->mu);
    uint32_t h = key_hash(k) & pj->mask;
    tl_pent *e = pj->tab[h];
    while (e && !key_eq(&e->key, k))
        e = e->chain;
    if (e) { /* another query built it meanwhile: take that one */
        free(data);
        if (!e->pins++) lru_unlink(e);
    } else {
        e = tl_xcalloc(1, sizeof *e);
        e->key = *k;
        e->data = data;
        e->bytes = bytes;
        e->pins = 1;
        e->chain = pj->tab[h];
        pj->tab[h] = e;
        pj->bytes += bytes;
        if (++pj->n > pj->mask) grow(pj);
        evict(pj);
    }
    *pin = e;
    const void *out = e->data;
    pthread_mutex_unlock(&pj->mu);
    return out;
}

void tl_proj__unpin(tl_proj *pj, tl_pent *e)
{
    if (!e) return;
    pthread_mutex_lock(&pj->mu);
    if (!--e->pins) {
        lru_push(pj, e);
        evict(pj);
    }
    pthread_mutex_unlock(&pj->mu);
}

void tl_proj__stats(tl_proj *pj, uint64_t *bytes, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&pj->mu);
    *bytes = pj->bytes;
    *hits = pj->hits;
    *misses = pj->misses;
    pthread_mutex_unlock(&pj->mu);
}
