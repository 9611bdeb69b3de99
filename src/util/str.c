/* Byte-slice helpers and a UTF-8 validator (RFC 3629 table of well-formed sequences). */
#include "util/str.h"

#include <stdint.h>

bool tl_str_contains(tl_str hay, tl_str needle)
{
    if (needle.len == 0) return true;
    if (hay.len < needle.len) return false;
    return memmem(hay.p, hay.len, needle.p, needle.len) != NULL;
}

bool tl_utf8_valid(const char *s, size_t len)
{
    if (len == 0) return true;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* Fast path over ASCII, 8 bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ull) break;
            p += 8;
        }
        if (p >= end) break;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n) return false;
        if (p[1] < lo || p[1] > hi) return false;
        for (size_t i = 2; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80) return false;
        p += n + 1;
    }
    return true;
}
