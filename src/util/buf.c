/* Growable buffer, JSON output helpers, varints and allocation wrappers. */
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

void *tl_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "FATAL out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *tl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "FATAL out of memory allocating %zu x %zu bytes\n", n, size);
        abort();
    }
    return p;
}

void *tl_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "FATAL out of memory reallocating %zu bytes\n", n);
        abort();
    }
    return q;
}

char *tl_xstrndup(const char *s, size_t n)
{
    char *p = tl_xmalloc(n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *tl_trymalloc(size_t n)
{
    return malloc(n ? n : 1);
}

void tl_buf_fini(tl_buf *b)
{
    free(b->p);
    *b = TL_BUF_INIT;
}

char *tl_buf_reserve(tl_buf *b, size_t extra)
{
    if (b->cap - b->len < extra + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < extra + 1)
            cap *= 2;
        b->p = tl_xrealloc(b->p, cap);
        b->cap = cap;
    }
    return b->p + b->len;
}

void tl_buf_add(tl_buf *b, const void *p, size_t len)
{
    if (!len) return;
    memcpy(tl_buf_reserve(b, len), p, len);
    b->len += len;
}

void tl_buf_adds(tl_buf *b, const char *s)
{
    tl_buf_add(b, s, strlen(s));
}

void tl_buf_addstr(tl_buf *b, tl_str s)
{
    tl_buf_add(b, s.p, s.len);
}

void tl_buf_addc(tl_buf *b, char c)
{
    *tl_buf_reserve(b, 1) = c;
    b->len++;
}

void tl_buf_vprintf(tl_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char *end = tl_buf_reserve(b, 64);
    int n = vsnprintf(end, b->cap - b->len, fmt, ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        end = tl_buf_reserve(b, (size_t)n);
        n = vsnprintf(end, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0) b->len += (size_t)n;
}

void tl_buf_printf(tl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tl_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void tl_buf_u32(tl_buf *b, uint32_t v)
{
    tl_put32(tl_buf_reserve(b, 4), v);
    b->len += 4;
}

void tl_buf_u64(tl_buf *b, uint64_t v)
{
    tl_put64(tl_buf_reserve(b, 8), v);
    b->len += 8;
}

void tl_buf_varint(tl_buf *b, uint64_t v)
{
    uint8_t *p = (uint8_t *)tl_buf_reserve(b, 10);
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    b->len += n;
}

int tl_varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end) return TL_EBADMSG;
        uint8_t c = *p++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return TL_EBADMSG;
}

void tl_buf_json_str(tl_buf *b, tl_str s)
{
    static const char hex[] = "0123456789abcdef";
    tl_buf_reserve(b, s.len + 2);
    b->p[b->len++] = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            if (b->cap - b->len < 2) tl_buf_reserve(b, 1 + s.len - i);
            b->p[b->len++] = (char)c;
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        tl_buf_add(b, esc, n);
    }
    tl_buf_addc(b, '"');
}

void tl_buf_json_num(tl_buf *b, double v)
{
    if (!isfinite(v)) {
        tl_buf_adds(b, "null");
        return;
    }
    if (fabs(v) < 9.007199254740992e15 && v == (double)(long long)v) {
        tl_buf_printf(b, "%lld", (long long)v);
        return;
    }
    char tmp[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    tl_buf_adds(b, tmp);
}

char *tl_buf_cstr(tl_buf *b)
{
    tl_buf_reserve(b, 0);
    b->p[b->len] = 0;
    return b->p;
}

char *tl_buf_steal(tl_buf *b, size_t *len)
{
    tl_buf_cstr(b);
    char *p = b->p;
    if (len) *len = b->len;
    *b = TL_BUF_INIT;
    return p;
}
