/* A strict, single-pass JSON parser into an arena tree.
 *
 * Why our own: the hot ingest path parses every request body once; a recursive-descent parser
 * that slices strings in place (no copy unless the string has escapes) and validates UTF-8 in
 * the same pass is as fast as we need, has no per-node malloc, and is small enough to fuzz
 * exhaustively (fuzz/fuzz_json.c). Rules: RFC 8259; no comments, no trailing commas, no NaN;
 * lone surrogates in \u escapes are refused; depth and node count are bounded. */
#include "util/json.h"

#include <stdlib.h>
#include <string.h>

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "util/buf.h"

typedef struct parser {
    tl_arena *a;
    const char *p, *start, *end;
    uint32_t depth, max_depth, nodes, max_nodes;
    tl_err *err;
} parser;

static int fail(parser *ps, const char *what)
{
    return tl_err_set(ps->err, TL_EINVAL, "invalid JSON at byte %zu: %s",
                      (size_t)(ps->p - ps->start), what);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(parser *ps, const char *q, unsigned *out)
{
    if (ps->end - q < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(q[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The offset of the first byte in q[0..16) that needs a look (a quote, a backslash, a
 * control character, or, while ascii, a byte >= 0x80), or 16 when none does. */
#ifdef __SSE2__
static inline unsigned scan16(const char *q, bool ascii)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
    __m128i hit =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    /* Signed: bytes >= 0x80 are negative, so "< 0x20" also catches them. */
    __m128i low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    if (!ascii) low = _mm_andnot_si128(_mm_cmplt_epi8(v, _mm_setzero_si128()), low);
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(hit, low));
    return m ? (unsigned)__builtin_ctz(m) : 16;
}
#endif

/* ps->p is just past the opening quote. */
static int parse_string(parser *ps, tl_str *out)
{
    const char *s = ps->p;
    const char *q = s;
    bool esc = false, ascii = true; /* ascii: no byte >= 0x80 so far (then valid UTF-8) */
    for (;;) {
#ifdef __SSE2__
        /* 16 bytes at a time through the plain part of the string. */
        while (ps->end - q >= 16) {
            unsigned k = scan16(q, ascii);
            q += k;
            if (k < 16) break;
        }
#endif
        if (q >= ps->end || *q == '"') break;
        unsigned char c = (unsigned char)*q;
        if (c < 0x20) {
            ps->p = q;
            return fail(ps, "control character in string");
        }
        if (c == '\\') {
            /* Skip the escaped byte, but never step past the end (a trailing backslash). */
            esc = true;
            q += ps->end - q >= 2 ? 2 : 1;
            continue;
        }
        if (c >= 0x80) ascii = false;
        q++;
    }
    if (q >= ps->end) {
        ps->p = ps->end;
        return fail(ps, "unterminated string");
    }
    if (!esc) {
        if (!ascii && !tl_utf8_valid(s, (size_t)(q - s))) {
            ps->p = s;
            return fail(ps, "invalid UTF-8 in string");
        }
        *out = (tl_str){s, (size_t)(q - s)};
        ps->p = q + 1;
        return 0;
    }
    /* Escapes: decode into the arena. Output is never longer than input. */
    char *o = tl_arena_alloc(ps->a, (size_t)(q - s) + 1);
    size_t n = 0;
    const char *r = s;
    while (r < q) {
        if (*r != '\\') {
            o[n++] = *r++;
            continue;
        }
        r++;
        char e = *r++;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (read_u4(ps, r, &cp) < 0) {
                ps->p = r;
                return fail(ps, "bad \\u escape");
            }
            r += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (q - r < 6 || r[0] != '\\' || r[1] != 'u' || read_u4(ps, r + 2, &lo) < 0 ||
                    lo < 0xDC00 || lo > 0xDFFF) {
                    ps->p = r;
                    return fail(ps, "lone surrogate in \\u escape");
                }
                r += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                ps->p = r;
                return fail(ps, "lone surrogate in \\u escape");
            }
            n += put_utf8(o + n, cp);
            break;
        }
        default: ps->p = r - 1; return fail(ps, "bad escape");
        }
    }
    if (!tl_utf8_valid(o, n)) {
        ps->p = s;
        return fail(ps, "invalid UTF-8 in string");
    }
    o[n] = 0;
    *out = (tl_str){o, n};
    ps->p = q + 1;
    return 0;
}

static int parse_number(parser *ps, tl_json *v)
{
    const char *s = ps->p, *q = s;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end) return fail(ps, "bad number");
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    } else {
        return fail(ps, "bad number");
    }
    if (q < ps->end && *q == '.') {
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            ps->p = q;
            return fail(ps, "bad number fraction");
        }
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            ps->p = q;
            return fail(ps, "bad number exponent");
        }
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    char tmp[64];
    size_t len = (size_t)(q - s);
    bool neg = *s == '-';
    const char *d = s + neg, *e = d;
    while (e < q && *e >= '0' && *e <= '9')
        e++;
    if (e == q && q - d <= 15) {
        /* An integer of at most 15 digits (a timestamp, a count): exact in a double, so
         * the same value strtod gives, without its cost. */
        int64_t x = 0;
        for (; d < q; d++)
            x = x * 10 + (*d - '0');
        v->num = neg ? -(double)x : (double)x;
    } else if (len < sizeof tmp) {
        memcpy(tmp, s, len);
        tmp[len] = 0;
        v->num = strtod(tmp, NULL);
    } else {
        char *t = tl_arena_alloc(ps->a, len + 1);
        memcpy(t, s, len);
        t[len] = 0;
        v->num = strtod(t, NULL);
    }
    if (!isfinite(v->num)) return fail(ps, "number out of range");
    v->type = TL_JNUM;
    v->str = (tl_str){s, len};
    ps->p = q;
    return 0;
}

static int parse_value(parser *ps, tl_json *v);

static int parse_container(parser *ps, tl_json *v, bool obj)
{
    if (++ps->depth > ps->max_depth)
        return tl_err_set(ps->err, TL_E2BIG, "JSON nested deeper than %u levels", ps->max_depth);
    v->type = obj ? TL_JOBJ : TL_JARR;
    const char *open = ps->p;
    ps->p++;
    skip_ws(ps);
    char close = obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        v->str = (tl_str){open, (size_t)(ps->p - open)};
        return 0;
    }
    tl_json **tail = &v->child;
    for (;;) {
        tl_json *c = tl_arena_calloc(ps->a, sizeof *c);
        skip_ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected member name");
            ps->p++;
            int rc = parse_string(ps, &c->key);
            if (rc) return rc;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        int rc = parse_value(ps, c);
        if (rc) return rc;
        *tail = c;
        tail = &c->next;
        v->n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            v->str = (tl_str){open, (size_t)(ps->p - open)};
            return 0;
        }
        return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_lit(parser *ps, const char *lit, size_t n, tl_jtype t, tl_json *v)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return fail(ps, "unexpected character");
    ps->p += n;
    v->type = t;
    return 0;
}

static int parse_value(parser *ps, tl_json *v)
{
    if (ps->max_nodes && ++ps->nodes > ps->max_nodes)
        return tl_err_set(ps->err, TL_E2BIG, "JSON has more than %u values", ps->max_nodes);
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, true);
    case '[': return parse_container(ps, v, false);
    case '"':
        ps->p++;
        v->type = TL_JSTR;
        return parse_string(ps, &v->str);
    case 't': return parse_lit(ps, "true", 4, TL_JTRUE, v);
    case 'f': return parse_lit(ps, "false", 5, TL_JFALSE, v);
    case 'n': return parse_lit(ps, "null", 4, TL_JNULL, v);
    default: return parse_number(ps, v);
    }
}

int tl_json_parse(tl_arena *a, const char *p, size_t len, const tl_json_opts *opts, tl_json **out,
                  tl_err *err)
{
    parser ps = {
        .a = a,
        .p = p,
        .start = p,
        .end = p + len,
        .max_depth = opts && opts->max_depth ? opts->max_depth : 64,
        .max_nodes = opts ? opts->max_nodes : 0,
        .err = err,
    };
    tl_json *v = tl_arena_calloc(a, sizeof *v);
    int rc = parse_value(&ps, v);
    if (rc) return rc;
    skip_ws(&ps);
    if (ps.p != ps.end) return fail(&ps, "trailing characters after the value");
    *out = v;
    return 0;
}

const tl_json *tl_json_get(const tl_json *obj, const char *key)
{
    if (!obj || obj->type != TL_JOBJ) return NULL;
    tl_str k = tl_str_c(key);
    for (const tl_json *c = obj->child; c; c = c->next)
        if (tl_str_eq(c->key, k)) return c;
    return NULL;
}

tl_str tl_json_get_str(const tl_json *obj, const char *key)
{
    const tl_json *v = tl_json_get(obj, key);
    return v && v->type == TL_JSTR ? v->str : TL_STR_NULL;
}

const char *tl_json_type_name(tl_jtype t)
{
    static const char *names[] = {"null",   "boolean", "boolean", "number",
                                  "string", "array",   "object"};
    return (unsigned)t < 7 ? names[t] : "?";
}

void tl_json_write(tl_buf *b, const tl_json *v)
{
    switch (v->type) {
    case TL_JNULL: tl_buf_adds(b, "null"); break;
    case TL_JFALSE: tl_buf_adds(b, "false"); break;
    case TL_JTRUE: tl_buf_adds(b, "true"); break;
    case TL_JNUM:
        /* Parsed numbers keep their source text; a node built by hand may have only num. */
        if (v->str.len)
            tl_buf_addstr(b, v->str);
        else
            tl_buf_json_num(b, v->num);
        break;
    case TL_JSTR: tl_buf_json_str(b, v->str); break;
    case TL_JARR:
    case TL_JOBJ: {
        bool obj = v->type == TL_JOBJ;
        tl_buf_addc(b, obj ? '{' : '[');
        for (const tl_json *c = v->child; c; c = c->next) {
            if (c != v->child) tl_buf_addc(b, ',');
            if (obj) {
                tl_buf_json_str(b, c->key);
                tl_buf_addc(b, ':');
            }
            tl_json_write(b, c);
        }
        tl_buf_addc(b, obj ? '}' : ']');
        break;
    }
    }
}
