/* Large scratch blocks kept for reuse (see bigmem.h). Blocks are mmap'd in multiples of 2 MiB;
 * the cache is a small array of free blocks, searched for the smallest that fits, evicting the
 * least recently freed when over the budget. */
#include "util/bigmem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/mman.h>

#include "util/buf.h"

#define SMALL    (256u << 10) /* below: malloc */
#define GRAIN    (2u << 20)   /* mapping granularity: a huge page */
#define MAX_KEPT 128

typedef struct kept {
    void *p;
    size_t size;
    uint64_t age; /* when it was freed (a counter) */
} kept;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static kept cache[MAX_KEPT];
static unsigned n_kept;
static size_t kept_bytes, budget = (size_t)256 << 20;
static uint64_t clock_;
/* Blocks handed out, with their mapping's size (a kept block may be larger than asked). */
static kept *live;
static unsigned n_live, cap_live;

static void live_add(void *p, size_t size) /* under mu */
{
    if (n_live == cap_live) {
        cap_live = cap_live ? cap_live * 2 : 64;
        live = tl_xrealloc(live, cap_live * sizeof *live);
    }
    live[n_live++] = (kept){p, size, 0};
}

static size_t live_take(void *p) /* under mu: the block's size, forgetting it */
{
    for (unsigned i = n_live; i-- > 0;)
        if (live[i].p == p) {
            size_t size = live[i].size;
            live[i] = live[--n_live];
            return size;
        }
    fprintf(stderr, "FATAL tl_big_free of a block it did not hand out\n");
    abort();
}

static size_t round_size(size_t n)
{
    return (n + GRAIN - 1) / GRAIN * GRAIN;
}

static void *map_new(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "FATAL out of memory mapping %zu bytes\n", size);
        abort();
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE);
#endif
    pthread_mutex_lock(&mu);
    live_add(p, size);
    pthread_mutex_unlock(&mu);
    return p;
}

/* Takes the smallest kept block of at least size bytes (at most 4× it, so a small request
 * does not pin a huge block), or NULL. */
static void *take(size_t size)
{
    pthread_mutex_lock(&mu);
    unsigned best = n_kept;
    for (unsigned i = 0; i < n_kept; i++)
        if (cache[i].size >= size && cache[i].size / 4 <= size &&
            (best == n_kept || cache[i].size < cache[best].size))
            best = i;
    void *p = NULL;
    if (best < n_kept) {
        p = cache[best].p;
        kept_bytes -= cache[best].size;
        live_add(p, cache[best].size);
        cache[best] = cache[--n_kept];
    }
    pthread_mutex_unlock(&mu);
    return p;
}

void *tl_big_alloc(size_t n)
{
    if (n < SMALL) return tl_xmalloc(n ? n : 1);
    size_t size = round_size(n);
    void *p = take(size);
    return p ? p : map_new(size);
}

void *tl_big_zalloc(size_t n)
{
    if (n < SMALL) return tl_xcalloc(1, n ? n : 1);
    size_t size = round_size(n);
    void *p = take(size);
    if (!p) return map_new(size); /* fresh mappings are zero */
    memset(p, 0, n);
    return p;
}

void tl_big_free(void *p, size_t n)
{
    if (!p) return;
    if (n < SMALL) {
        free(p);
        return;
    }
    void *drop[MAX_KEPT + 1];
    size_t drop_size[MAX_KEPT + 1];
    unsigned nd = 0;
    pthread_mutex_lock(&mu);
    size_t size = live_take(p);
    cache[n_kept++] = (kept){p, size, ++clock_};
    kept_bytes += size;
    /* Over the budget or out of slots: drop the oldest. */
    while (n_kept && (kept_bytes > budget || n_kept == MAX_KEPT)) {
        unsigned old = 0;
        for (unsigned i = 1; i < n_kept; i++)
            if (cache[i].age < cache[old].age) old = i;
        drop[nd] = cache[old].p;
        drop_size[nd++] = cache[old].size;
        kept_bytes -= cache[old].size;
        cache[old] = cache[--n_kept];
    }
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < nd; i++)
        munmap(drop[i], drop_size[i]);
}

void *tl_big_realloc(void *p, size_t old_n, size_t new_n, size_t keep)
{
    if (p && old_n < SMALL && new_n < SMALL) return tl_xrealloc(p, new_n ? new_n : 1);
    void *q = tl_big_alloc(new_n);
    if (p) {
        if (keep) memcpy(q, p, keep);
        tl_big_free(p, old_n);
    }
    return q;
}

void tl_big_set_budget(size_t bytes)
{
    pthread_mutex_lock(&mu);
    budget = bytes;
    pthread_mutex_unlock(&mu);
}

size_t tl_big_cached(void)
{
    pthread_mutex_lock(&mu);
    size_t n = kept_bytes;
    pthread_mutex_unlock(&mu);
    return n;
}
