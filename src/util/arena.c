/* Arena: a chain of blocks; large requests get their own block. */
#include "util/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define BLOCK_SIZE (64 * 1024)

typedef struct block {
    struct block *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} block;

struct tl_arena {
    block *head;
    size_t total;
};

static block *block_new(size_t cap)
{
    block *b = tl_xmalloc(sizeof *b + cap);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

tl_arena *tl_arena_new(void)
{
    tl_arena *a = tl_xmalloc(sizeof *a);
    a->head = block_new(BLOCK_SIZE);
    a->total = 0;
    return a;
}

void tl_arena_free(tl_arena *a)
{
    if (!a) return;
    for (block *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a);
}

void tl_arena_reset(tl_arena *a)
{
    block *keep = a->head;
    while (keep->next)
        keep = keep->next; /* the first block allocated is at the tail */
    for (block *b = a->head, *n; b != keep; b = n) {
        n = b->next;
        free(b);
    }
    keep->used = 0;
    a->head = keep;
    a->total = 0;
}

void *tl_arena_alloc(tl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    block *b = a->head;
    if (b->cap - b->used < n) {
        if (n > BLOCK_SIZE / 4) {
            /* Big: a dedicated block behind the current one, so the current keeps filling. */
            block *big = block_new(n);
            big->used = n;
            big->next = b->next;
            b->next = big;
            a->total += n;
            return big->data;
        }
        b = block_new(BLOCK_SIZE);
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

void *tl_arena_calloc(tl_arena *a, size_t n)
{
    void *p = tl_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

tl_str tl_arena_strdup(tl_arena *a, tl_str s)
{
    char *p = tl_arena_alloc(a, s.len + 1);
    if (s.len) memcpy(p, s.p, s.len);
    p[s.len] = 0;
    return (tl_str){p, s.len};
}

size_t tl_arena_used(const tl_arena *a)
{
    return a->total;
}
