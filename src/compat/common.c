/* What the compatible-format parsers share: the native-object builder, the batch they fill,
 * body decoders (gzip through ingest, base64, URL encoding) and the format table. See
 * compat_int.h for why events are rebuilt as native objects rather than mapped to records
 * directly: every native rule (limits, skew, flattening, derived ids) then applies as is. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compat/compat_int.h"
#include "util/buf.h"

/* ---------------------------------------------------------------------------------------- */
/* Object builder */

void tl_compat__obj(tl_cobj *o, tl_arena *a, tl_str extent)
{
    o->a = a;
    o->node = tl_arena_calloc(a, sizeof *o->node);
    o->node->type = TL_JOBJ;
    o->node->str = extent;
    o->last = NULL;
}

static void append(tl_cobj *o, tl_json *m)
{
    m->next = NULL;
    if (o->last)
        o->last->next = m;
    else
        o->node->child = m;
    o->last = m;
    o->node->n++;
}

void tl_compat__str(tl_cobj *o, const char *key, tl_str v)
{
    if (!v.p) return;
    tl_json *m = tl_compat__jstr(o->a, v);
    m->key = tl_str_c(key);
    append(o, m);
}

void tl_compat__num(tl_cobj *o, const char *key, double v)
{
    tl_json *m = tl_arena_calloc(o->a, sizeof *m);
    m->type = TL_JNUM;
    m->num = v;
    m->key = tl_str_c(key);
    append(o, m);
}

void tl_compat__node_k(tl_cobj *o, tl_str key, const tl_json *v)
{
    if (!v) return;
    tl_json *m = tl_arena_alloc(o->a, sizeof *m);
    *m = *v;
    m->key = key;
    append(o, m);
}

void tl_compat__node(tl_cobj *o, const char *key, const tl_json *v)
{
    tl_compat__node_k(o, tl_str_c(key), v);
}

tl_json *tl_compat__jstr(tl_arena *a, tl_str s)
{
    tl_json *m = tl_arena_calloc(a, sizeof *m);
    m->type = TL_JSTR;
    m->str = s.p ? s : TL_STR("");
    return m;
}

const tl_json *tl_compat__strv(const tl_json *v)
{
    return v && v->type == TL_JSTR && v->str.len ? v : NULL;
}

const tl_json *tl_compat__get(const tl_json *o, const char *key)
{
    const tl_json *v = o && o->type == TL_JOBJ ? tl_json_get(o, key) : NULL;
    return v && v->type != TL_JNULL ? v : NULL;
}

bool tl_compat__is_country(tl_str s)
{
    if (s.len != 2) return false;
    for (int i = 0; i < 2; i++) {
        char c = (char)(s.p[i] | 0x20);
        if (c < 'a' || c > 'z') return false;
    }
    return true;
}

tl_str tl_compat__get_str(const tl_json *obj, const char *key)
{
    const tl_json *v = obj && obj->type == TL_JOBJ ? tl_json_get(obj, key) : NULL;
    return v && v->type == TL_JSTR ? v->str : TL_STR_NULL;
}

tl_str tl_compat__get_id(tl_arena *a, const tl_json *obj, const char *key)
{
    const tl_json *v = obj && obj->type == TL_JOBJ ? tl_json_get(obj, key) : NULL;
    if (!v) return TL_STR_NULL;
    if (v->type == TL_JSTR) return v->str;
    if (v->type == TL_JNUM) {
        if (v->str.len) return v->str; /* the number's source text */
        return tl_compat__fmt(a, "%.17g", v->num);
    }
    return TL_STR_NULL;
}

tl_json *tl_compat__parse_json(tl_arena *a, tl_str s, const tl_ingest_limits *lim)
{
    uint64_t nodes = lim->max_body_bytes / 8;
    tl_json_opts o = {lim->max_depth < 1000 ? lim->max_depth + 8 : 1008, nodes < 4096 ? 4096
                                                                         : nodes > UINT32_MAX
                                                                             ? UINT32_MAX
                                                                             : (uint32_t)nodes};
    tl_json *root = NULL;
    if (!s.len || tl_json_parse(a, s.p, s.len, &o, &root, NULL)) return NULL;
    return root;
}

tl_str tl_compat__fmt(tl_arena *a, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    return tl_arena_strdup(a, (tl_str){tmp, (size_t)n});
}

tl_str tl_compat__arg(const tl_compat_in *in, const char *name)
{
    for (size_t i = 0; i < in->n_args; i++)
        if (tl_str_eqc(in->arg_k[i], name)) return in->arg_v[i].p ? in->arg_v[i] : TL_STR("");
    return TL_STR_NULL;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

tl_str tl_compat__trim(tl_str s)
{
    while (s.len && is_ws(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && is_ws(s.p[s.len - 1]))
        s.len--;
    return s;
}

bool tl_compat__eq_nocase(tl_str s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n) return false;
    for (size_t i = 0; i < n; i++) {
        char x = s.p[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (x != lit[i]) return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Batch */

int tl_compat__start(tl_cbatch *b, tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                     const tl_ingest_limits *lim, tl_ingest_batch *out, tl_compat_decoder dec,
                     tl_str *body, tl_err *err)
{
    memset(out, 0, sizeof *out);
    memset(b, 0, sizeof *b);
    b->a = a;
    b->ctx = ctx;
    if (!lim) {
        tl_ingest_limits_default(&b->dl);
        lim = &b->dl;
    }
    b->lim = lim;
    b->out = out;
    *body = TL_STR("");
    int rc = dec ? dec(a, in, lim, body, err)
                 : tl_compat__gunzip(a, in->body, in->content_encoding, lim, body, err);
    if (rc) return rc;
    *body = tl_compat__trim(*body);
    return 0;
}

int tl_compat__object(tl_cbatch *b, tl_str body, const char *what, const tl_json **root,
                      tl_err *err)
{
    *root = tl_compat__parse_json(b->a, body, b->lim);
    if (*root && (*root)->type == TL_JOBJ) return 0;
    *root = NULL;
    return tl_err_set(err, TL_EINVAL, "body: expected %s", what);
}

void tl_compat__reject(tl_cbatch *b, const char *fmt, ...)
{
    tl_ingest_batch *o = b->out;
    o->rejected++;
    if (o->n_errors >= TL_INGEST_MAX_ERRORS) return;
    if (!o->errors) o->errors = tl_arena_alloc(b->a, TL_INGEST_MAX_ERRORS * sizeof *o->errors);
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    o->errors[o->n_errors++] = (tl_ingest_error){b->index, tl_arena_strdup(b->a, tl_str_c(tmp)).p};
}

int tl_compat__start_object(tl_cbatch *b, tl_arena *a, const tl_compat_in *in,
                            const tl_ingest_ctx *ctx, const tl_ingest_limits *lim,
                            tl_ingest_batch *out, const char *what, const tl_json **root,
                            tl_err *err)
{
    tl_str body;
    *root = NULL;
    int rc = tl_compat__start(b, a, in, ctx, lim, out, NULL, &body, err);
    return rc ? rc : tl_compat__object(b, body, what, root, err);
}

/* Room for one more record, growing with the accepted ones only (as ingest.c does). */
static tl_record *next_rec(tl_cbatch *b)
{
    tl_ingest_batch *o = b->out;
    if (o->n == b->cap) {
        uint32_t ncap = b->cap ? b->cap * 2 : 16;
        tl_record *r = tl_arena_alloc(b->a, (size_t)ncap * sizeof *r);
        if (o->n) memcpy(r, o->recs, (size_t)o->n * sizeof *r);
        o->recs = r;
        b->cap = ncap;
    }
    return &o->recs[o->n];
}

tl_record *tl_compat__add(tl_cbatch *b, const tl_json *ev, int64_t sent_ms, uint8_t kind)
{
    tl_err e = {0};
    tl_record *r = next_rec(b);
    if (tl_ingest_event(b->a, ev, sent_ms, b->ctx, b->lim, r, &e)) {
        tl_compat__reject(b, "%s", e.msg);
        return NULL;
    }
    r->kind = kind;
    b->out->n++;
    return r;
}

void tl_compat__next(tl_cbatch *b)
{
    b->out->n_input++;
    b->index++;
}

int tl_compat__gunzip(tl_arena *a, tl_str body, tl_str enc, const tl_ingest_limits *lim,
                      tl_str *out, tl_err *err)
{
    return tl_ingest_decode_body(a, body, enc, lim->max_body_bytes, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Decoders */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

long tl_compat_base64_decode(tl_arena *a, tl_str in, tl_str *out)
{
    char *o = tl_arena_alloc(a, in.len / 4 * 3 + 4);
    size_t n = 0, q = 0;
    uint32_t acc = 0;
    bool pad = false;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (is_ws((char)c)) continue;
        if (c == '=') {
            pad = true;
            continue;
        }
        int v = b64_val(c);
        if (v < 0 || pad) return -1; /* data after padding is not base64 */
        acc = acc << 6 | (uint32_t)v;
        if (++q == 4) {
            o[n++] = (char)(acc >> 16);
            o[n++] = (char)(acc >> 8);
            o[n++] = (char)acc;
            q = 0;
            acc = 0;
        }
    }
    if (q == 1) return -1;
    if (q == 2) o[n++] = (char)(acc >> 4);
    if (q == 3) {
        o[n++] = (char)(acc >> 10);
        o[n++] = (char)(acc >> 2);
    }
    *out = (tl_str){o, n};
    return (long)n;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long tl_compat_url_decode(tl_arena *a, tl_str in, tl_str *out)
{
    char *o = tl_arena_alloc(a, in.len + 1);
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        if (c == '+') {
            o[n++] = ' ';
        } else if (c == '%') {
            int h = i + 2 < in.len ? hex_val(in.p[i + 1]) : -1;
            int l = h >= 0 ? hex_val(in.p[i + 2]) : -1;
            if (l < 0) return -1;
            o[n++] = (char)(h << 4 | l);
            i += 2;
        } else {
            o[n++] = c;
        }
    }
    *out = (tl_str){o, n};
    return (long)n;
}

/* ---------------------------------------------------------------------------------------- */
/* Formats */

static const struct {
    const char *name;
    int (*parse)(tl_arena *, const tl_compat_in *, const tl_ingest_ctx *, const tl_ingest_limits *,
                 tl_ingest_batch *, tl_err *);
} g_fmt[TL_COMPAT_COUNT] = {
    [TL_COMPAT_SEGMENT] = {"segment", tl_compat_segment},
    [TL_COMPAT_POSTHOG] = {"posthog", tl_compat_posthog},
    [TL_COMPAT_SNOWPLOW] = {"snowplow", tl_compat_snowplow},
    [TL_COMPAT_PLAUSIBLE] = {"plausible", tl_compat_plausible},
    [TL_COMPAT_GA4] = {"ga4", tl_compat_ga4},
};

const char *tl_compat_name(tl_compat_fmt f)
{
    return (unsigned)f < TL_COMPAT_COUNT ? g_fmt[f].name : "unknown";
}

int tl_compat_by_path(tl_str path)
{
    static const struct {
        const char *path;
        tl_compat_fmt f;
    } paths[] = {
        {"/v1/track", TL_COMPAT_SEGMENT},
        {"/v1/identify", TL_COMPAT_SEGMENT},
        {"/v1/page", TL_COMPAT_SEGMENT},
        {"/v1/screen", TL_COMPAT_SEGMENT},
        {"/v1/alias", TL_COMPAT_SEGMENT},
        {"/v1/group", TL_COMPAT_SEGMENT},
        {"/v1/batch", TL_COMPAT_SEGMENT},
        {"/v1/import", TL_COMPAT_SEGMENT},
        /* analytics.js (analytics-next) posts to short paths: the type's first letter, and
         * b for its batching strategy. */
        {"/v1/t", TL_COMPAT_SEGMENT},
        {"/v1/p", TL_COMPAT_SEGMENT},
        {"/v1/i", TL_COMPAT_SEGMENT},
        {"/v1/a", TL_COMPAT_SEGMENT},
        {"/v1/g", TL_COMPAT_SEGMENT},
        {"/v1/s", TL_COMPAT_SEGMENT},
        {"/v1/b", TL_COMPAT_SEGMENT},
        {"/i/v0/e", TL_COMPAT_POSTHOG},
        {"/e", TL_COMPAT_POSTHOG},
        {"/capture", TL_COMPAT_POSTHOG},
        {"/batch", TL_COMPAT_POSTHOG},
        {"/track", TL_COMPAT_POSTHOG},
        {"/engage", TL_COMPAT_POSTHOG},
        {"/com.snowplowanalytics.snowplow/tp2", TL_COMPAT_SNOWPLOW},
        {"/i", TL_COMPAT_SNOWPLOW},
        {"/api/event", TL_COMPAT_PLAUSIBLE},
        {"/mp/collect", TL_COMPAT_GA4},
        {"/debug/mp/collect", TL_COMPAT_GA4},
    };
    if (path.len > 1 && path.p[path.len - 1] == '/') path.len--;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (tl_str_eqc(path, paths[i].path)) return (int)paths[i].f;
    return -1;
}

int tl_compat_parse(tl_compat_fmt f, tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                    const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    if ((unsigned)f >= TL_COMPAT_COUNT) {
        memset(out, 0, sizeof *out);
        return tl_err_set(err, TL_EINVAL, "format: unknown");
    }
    return g_fmt[f].parse(a, in, ctx, lim, out, err);
}
