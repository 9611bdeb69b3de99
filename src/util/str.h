/* tl_str: a borrowed slice of bytes {p, len}, not NUL-terminated (nginx ngx_str_t). */
#ifndef TL_STR_H
#define TL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct tl_str {
    const char *p;
    size_t len;
} tl_str;

#define TL_STR(lit) ((tl_str){(lit), sizeof(lit) - 1})
#define TL_STR_NULL ((tl_str){NULL, 0})

static inline tl_str tl_str_c(const char *s)
{
    return (tl_str){s, s ? strlen(s) : 0};
}

static inline bool tl_str_eq(tl_str a, tl_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool tl_str_eqc(tl_str a, const char *c)
{
    return tl_str_eq(a, tl_str_c(c));
}

static inline int tl_str_cmp(tl_str a, tl_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static inline bool tl_str_has_prefix(tl_str s, const char *pre)
{
    size_t n = strlen(pre);
    return s.len >= n && memcmp(s.p, pre, n) == 0;
}

/* True when `needle` occurs in `hay` (empty needle: true). */
bool tl_str_contains(tl_str hay, tl_str needle);

/* True when s is valid UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF). */
bool tl_utf8_valid(const char *s, size_t len);

#endif
