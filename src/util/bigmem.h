/* Large scratch blocks (queries' row arrays, states, buckets) kept for reuse between queries.
 *
 * Why: a fresh block is backed by the kernel one page fault per 4 KiB page on first touch, and
 * on a virtual machine a page fault costs microseconds: a funnel over 1.5 M rows spent more
 * time faulting in its 40 MB of scratch than computing. Blocks from here are mapped with
 * transparent huge pages requested (one fault per 2 MiB where the kernel allows it) and, once
 * freed, kept (up to a byte budget) and handed out again already backed.
 *
 * Small requests (under 256 KiB) go to malloc. Every function is thread-safe. Free a block
 * with the size it was allocated (or last grown) with: it tells a malloc'd block (under
 * 256 KiB) from a mapping (whose real size is recorded). Out of memory aborts, as
 * tl_xmalloc does (sizes are bounded by the data). */
#ifndef TL_BIGMEM_H
#define TL_BIGMEM_H

#include <stddef.h>

/* A block of at least n bytes (n > 0), contents undefined. */
void *tl_big_alloc(size_t n);
/* The same, zeroed. */
void *tl_big_zalloc(size_t n);
/* Grows (or shrinks) p from old_n to new_n bytes keeping the first `keep` bytes (keep <=
 * old_n, keep <= new_n); p may be NULL (old_n 0). */
void *tl_big_realloc(void *p, size_t old_n, size_t new_n, size_t keep);
/* Returns p (NULL-safe) to the cache, or to the system past the budget. */
void tl_big_free(void *p, size_t n);
/* Bytes kept for reuse at most (default 256 MiB; applies from the next free); 0 keeps
 * nothing. */
void tl_big_set_budget(size_t bytes);
/* Bytes currently kept. */
size_t tl_big_cached(void);

#endif
