/* tl_buf: a growable byte buffer (Redis sds without the header trick). Grows geometrically;
 * tl_buf_* that allocate abort on OOM through tl_xmalloc, so only use them for sizes the
 * program controls or that were already bounded by a limit. */
#ifndef TL_BUF_H
#define TL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

typedef struct tl_buf {
    char *p;
    size_t len;
    size_t cap;
} tl_buf;

#define TL_BUF_INIT ((tl_buf){NULL, 0, 0})

void tl_buf_fini(tl_buf *b);
/* Ensures room for `extra` more bytes; returns a pointer to the end. */
char *tl_buf_reserve(tl_buf *b, size_t extra);
void tl_buf_add(tl_buf *b, const void *p, size_t len);
void tl_buf_adds(tl_buf *b, const char *s);
void tl_buf_addstr(tl_buf *b, tl_str s);
void tl_buf_addc(tl_buf *b, char c);
void tl_buf_printf(tl_buf *b, const char *fmt, ...) TL_PRINTF(2, 3);
void tl_buf_vprintf(tl_buf *b, const char *fmt, va_list ap);
/* Little-endian fixed-width and LEB128 varint encoders. */
void tl_buf_u32(tl_buf *b, uint32_t v);
void tl_buf_u64(tl_buf *b, uint64_t v);
void tl_buf_varint(tl_buf *b, uint64_t v);
/* A JSON string literal with quotes and escapes. */
void tl_buf_json_str(tl_buf *b, tl_str s);
/* A JSON number: integers exactly, others with the shortest round-trip form. */
void tl_buf_json_num(tl_buf *b, double v);
/* NUL-terminates without counting the NUL in len; returns b->p. */
char *tl_buf_cstr(tl_buf *b);
/* Takes the bytes; the caller frees them with free(). b is reset. */
char *tl_buf_steal(tl_buf *b, size_t *len);

static inline tl_str tl_buf_str(const tl_buf *b)
{
    return (tl_str){b->p, b->len};
}

/* Little-endian loads/stores. */
static inline uint32_t tl_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t tl_le64(const void *p)
{
    return (uint64_t)tl_le32(p) | (uint64_t)tl_le32((const uint8_t *)p + 4) << 32;
}
static inline void tl_put32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}
static inline void tl_put64(void *p, uint64_t v)
{
    tl_put32(p, (uint32_t)v);
    tl_put32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* Reads a varint from [*p, end); returns 0, or TL_EBADMSG when truncated or too long. */
int tl_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out);

/* Allocation: tl_xmalloc aborts on OOM (bounded sizes only); tl_trymalloc returns NULL. */
void *tl_xmalloc(size_t n);
void *tl_xcalloc(size_t n, size_t size);
void *tl_xrealloc(void *p, size_t n);
char *tl_xstrndup(const char *s, size_t n);
void *tl_trymalloc(size_t n);

#endif
