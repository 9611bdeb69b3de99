/* Hashing with xxHash (XXH3). */
#ifndef TL_HASH_H
#define TL_HASH_H

#include <stdint.h>

#include "util/str.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct tl_h128 {
    uint64_t lo, hi;
} tl_h128;

static inline uint64_t tl_hash64(const void *p, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, len, seed);
}

static inline uint64_t tl_hash_str(tl_str s)
{
    return XXH3_64bits(s.p, s.len);
}

static inline tl_h128 tl_hash128(const void *p, size_t len, uint64_t seed)
{
    XXH128_hash_t h = XXH3_128bits_withSeed(p, len, seed);
    return (tl_h128){h.low64, h.high64};
}

#endif
