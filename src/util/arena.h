/* tl_arena: a bump allocator for one request or one query (nginx pools). Everything allocated
 * from it is freed at once by tl_arena_free/reset. Not thread-safe: one owner thread. */
#ifndef TL_ARENA_H
#define TL_ARENA_H

#include <stddef.h>

#include "util/str.h"

typedef struct tl_arena tl_arena;

/* Returns a new arena, free with tl_arena_free. Aborts on OOM. */
tl_arena *tl_arena_new(void);
void tl_arena_free(tl_arena *a);
/* Frees all allocations but keeps the first block for reuse. */
void tl_arena_reset(tl_arena *a);
/* 16-byte-aligned memory that lives until the arena is freed or reset. Aborts on OOM. */
void *tl_arena_alloc(tl_arena *a, size_t n);
void *tl_arena_calloc(tl_arena *a, size_t n);
tl_str tl_arena_strdup(tl_arena *a, tl_str s);
/* Bytes allocated so far (for limits). */
size_t tl_arena_used(const tl_arena *a);

#endif
