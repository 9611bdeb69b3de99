/* Ingest: request bodies → validated, normalised tl_records (contract: API.md "Ingestion").
 *
 * Why it looks like this: every accepted event passes through here once, on the request
 * thread, so the path is one JSON parse (util/json.c, strings sliced in place) and one walk
 * over each event object, with every byte of output taken from the request's arena: no
 * malloc, no logging and no function pointer per event. zlib's own allocations go to the
 * arena too. Records borrow strings from the (decoded) body and from the arena, so both
 * must outlive them.
 *
 * Choices the contract leaves open, written down here once:
 *
 *  - Body forms. {"events":[…]} (an envelope, which may carry "sent_at" and "api_key"), a
 *    JSON array of events, one event object, or NDJSON. NDJSON is taken when Content-Type is
 *    application/x-ndjson (or application/ndjson), or when the body's first line is a
 *    complete JSON object and more non-blank lines follow. Blank NDJSON lines are skipped and
 *    do not count as events; the index of an NDJSON event is its position among the
 *    non-blank lines. A bad NDJSON line (bad JSON, bad UTF-8, too long) rejects that event
 *    only; in the other forms a body that is not JSON is refused as a whole (400). A leading
 *    UTF-8 byte order mark is skipped.
 *
 *  - Size and nesting. An event's size is the byte extent of its JSON object (for NDJSON: its
 *    line without the line break). Property nesting counts the properties object itself as
 *    level 1 and each nested object or array one more. The body is parsed with a nesting
 *    limit of max_depth + 8 so an event nested a little too deep is rejected alone, while a
 *    body nested far deeper is refused whole.
 *
 *  - Fields. Unknown top-level fields are ignored (SDKs add their own), and so is "api_key"
 *    inside an event (the HTTP layer reads it from out->body_key). A null value counts as
 *    absent, and so does an empty string for every optional field. When a field appears
 *    twice, the first occurrence wins (as tl_json_get does). The ids (event_id, anonymous_id,
 *    user_id, session_id) may also be JSON integers, stored as their decimal text; other
 *    numbers, booleans, arrays and objects are refused. Length limits: event and ids
 *    TL_INGEST_MAX_ID_BYTES, the short built-in fields (platform, app_version, browser, os,
 *    device_type) too; url, referrer and user_agent max_string_bytes. country is two ASCII
 *    letters, stored upper-cased. ip must parse as IPv4 or IPv6. ip and user_agent default to
 *    the request's and are only validated here: the record carries them as transient fields
 *    (never encoded) for enrichment (src/enrich.h), which runs before the log append.
 *
 *  - Properties. "properties" and "user_properties" are objects, flattened to dotted keys
 *    ({"cart":{"total":5}} → "cart.total"). Numbers → TL_PV_NUM; strings → TL_PV_STR;
 *    booleans → the strings "true"/"false"; null and empty objects → dropped; arrays → their
 *    compact JSON text (as tl_json_write writes it) as a string. Flattened keys are at most
 *    TL_INGEST_MAX_KEY_BYTES. The stored properties are sorted by key (a canonical order for
 *    the derived id); "user_properties_once" ($set_once) is flattened the same way and kept
 *    with the user properties, flagged TL_PV_ONCE (on a key in both, the $set value wins);
 *    when two flatten to the same key (duplicate JSON names, or {"a.b":1}
 *    next to {"a":{"b":2}}), the first in body order is kept.
 *
 *  - Time. "timestamp" and "sent_at" are a JSON number of milliseconds since the epoch, a
 *    string of such digits, or an ISO-8601 string with a zone. Numbers whose magnitude is
 *    below 1e11 are seconds (1e11 ms is 1973, 1e11 s is the year 5138, so no real time is
 *    ambiguous); fractions are kept to the millisecond. Clock skew: when the event has a
 *    timestamp and a sent_at is known (the event's own, else the envelope's), the client
 *    clock is assumed wrong by (sent_at − received), so
 *        ts = received + (timestamp − sent_at);
 *    with a timestamp and no sent_at, ts = timestamp; without a timestamp, ts = received.
 *    Then ts > received + max_future_ms is rejected ("timestamp: more than N s in the
 *    future"), and so is ts before 2000-01-01 ("timestamp: before 2000-01-01").
 *
 *  - Derived event_id. Without a client event_id (or with an empty one), the id is "~" + 32
 *    lowercase hex digits of XXH3-128 over a canonical encoding (derive_id below) of the
 *    event name, anonymous_id, user_id, session_id, the built-in fields, the event's own
 *    timestamp as the client gave it (before skew correction, so a retry of the same event
 *    with a later sent_at derives the same id and is deduplicated), and the sorted
 *    properties and user_properties. An event sent WITHOUT a timestamp hashes the receive
 *    time instead, so its retries cannot be recognised: such clients should send event_id
 *    or timestamp.
 */
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <math.h>
#include <zlib.h>

#include "util/buf.h"
#include "util/hash.h"
#include "util/time.h"

void tl_ingest_limits_default(tl_ingest_limits *l)
{
    l->max_body_bytes = 20u << 20;
    l->max_event_bytes = 32u << 10;
    l->max_string_bytes = 8u << 10;
    l->max_props = 1000;
    l->max_depth = 16;
    l->max_future_ms = 24 * 3600 * 1000LL;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static tl_str trim(tl_str s)
{
    while (s.len && is_ws(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && is_ws(s.p[s.len - 1]))
        s.len--;
    return s;
}

static bool eq_nocase(tl_str s, const char *c)
{
    size_t n = strlen(c);
    if (s.len != n) return false;
    for (size_t i = 0; i < n; i++) {
        char x = s.p[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (x != c[i]) return false;
    }
    return true;
}

/* The length of the longest prefix of s that is at most max bytes and does not split a UTF-8
 * sequence: for quoting input in error messages, which must stay valid UTF-8. */
static int cut_utf8(tl_str s, size_t max)
{
    if (s.len <= max) return (int)s.len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

#define QUOTE_MAX 64 /* bytes of a key quoted in an error message */

/* tl_utf8_valid for a slice that may be {NULL, 0} (an absent pixel value): pointer arithmetic
 * on NULL is undefined, even with a zero offset. */
static bool utf8_ok(tl_str s)
{
    return s.len == 0 || tl_utf8_valid(s.p, s.len);
}

/* ---------------------------------------------------------------------------------------- */
/* Body decoding */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return tl_arena_alloc(opaque, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    /* Arena memory is freed with the arena. */
}

static int gunzip(tl_arena *a, tl_str body, uint64_t max_bytes, tl_str *out, tl_err *err)
{
    /* The cap is max_bytes + 1 so that one byte too many is seen; clamp absurd limits. */
    size_t limit = max_bytes < (uint64_t)(SIZE_MAX / 4) ? (size_t)max_bytes + 1 : SIZE_MAX / 4;
    if (body.len > UINT32_MAX)
        return tl_err_set(err, TL_E2BIG, "body: more than %llu bytes after decompression",
                          (unsigned long long)max_bytes);
    /* First guess: the gzip trailer's ISIZE (exact for one member) when plausible (deflate
     * inflates at most ~1032×), else four times the input. */
    size_t cap = body.len * 4;
    if (body.len >= 18) {
        uint32_t isize = tl_le32(body.p + body.len - 4);
        if ((uint64_t)isize <= (uint64_t)body.len * 1032) cap = isize;
    }
    if (cap < 256) cap = 256;
    if (cap > limit) cap = limit;
    char *buf = tl_arena_alloc(a, cap);
    size_t len = 0;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    zs.opaque = a;
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return tl_err_set(err, TL_ENOMEM, "body: cannot start gzip decoding");
    zs.next_in = (Bytef *)(uintptr_t)body.p;
    zs.avail_in = (uInt)body.len;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= limit) {
                rc = tl_err_set(err, TL_E2BIG, "body: more than %llu bytes after decompression",
                                (unsigned long long)max_bytes);
                break;
            }
            size_t ncap = cap * 2 < limit ? cap * 2 : limit;
            char *nbuf = tl_arena_alloc(a, ncap);
            memcpy(nbuf, buf, len);
            buf = nbuf;
            cap = ncap;
        }
        zs.next_out = (Bytef *)buf + len;
        zs.avail_out = (uInt)(cap - len < UINT32_MAX ? cap - len : UINT32_MAX);
        int zr = inflate(&zs, Z_NO_FLUSH);
        len = (size_t)((char *)zs.next_out - buf);
        if (len > max_bytes) {
            rc = tl_err_set(err, TL_E2BIG, "body: more than %llu bytes after decompression",
                            (unsigned long long)max_bytes);
            break;
        }
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0) break;
            /* Concatenated members are one stream (RFC 1952 §2.2); anything else is not. */
            if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
                rc = tl_err_set(err, TL_EINVAL, "body: trailing bytes after the gzip stream");
                break;
            }
            inflateReset(&zs);
            continue;
        }
        if (zr == Z_OK) continue;
        if (zr == Z_BUF_ERROR && zs.avail_out == 0) continue; /* output full: grow */
        if (zr == Z_BUF_ERROR)
            rc = tl_err_set(err, TL_EINVAL, "body: truncated gzip stream");
        else if (zr == Z_MEM_ERROR)
            rc = tl_err_set(err, TL_ENOMEM, "body: out of memory decoding gzip");
        else
            rc = tl_err_set(err, TL_EINVAL, "body: corrupt gzip stream (%s)",
                            zs.msg ? zs.msg : "bad data");
        break;
    }
    inflateEnd(&zs);
    if (rc) return rc;
    *out = (tl_str){buf, len};
    return 0;
}

int tl_ingest_decode_body(tl_arena *a, tl_str body, tl_str content_encoding, uint64_t max_bytes,
                          tl_str *out, tl_err *err)
{
    tl_str ce = trim(content_encoding);
    bool gzip = eq_nocase(ce, "gzip") || eq_nocase(ce, "x-gzip");
    if (!gzip && ce.len && !eq_nocase(ce, "identity")) {
        /* Header bytes are not known to be UTF-8: echo only short printable ASCII. */
        bool echo = ce.len <= QUOTE_MAX;
        for (size_t i = 0; echo && i < ce.len; i++)
            echo = ce.p[i] >= 0x20 && ce.p[i] < 0x7f;
        return tl_err_set(err, TL_EINVAL, "body: unsupported Content-Encoding \"%.*s\"",
                          echo ? (int)ce.len : 0, ce.p);
    }
    if (body.len >= 2 && (unsigned char)body.p[0] == 0x1f && (unsigned char)body.p[1] == 0x8b)
        gzip = true;
    if (gzip && body.len > 0) return gunzip(a, body, max_bytes, out, err);
    if (body.len > max_bytes)
        return tl_err_set(err, TL_E2BIG, "body: more than %llu bytes",
                          (unsigned long long)max_bytes);
    *out = body;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Time values */

/* 1e15 ms is the year 33658: anything further is garbage, and the bound keeps the skew
 * arithmetic far from int64 overflow. */
#define MAX_ABS_MS 1e15

static int num_to_ms(double x, int64_t *ms)
{
    if (!isfinite(x)) return TL_EINVAL;
    if (fabs(x) < 1e11) x *= 1000; /* seconds */
    if (!(fabs(x) <= MAX_ABS_MS)) return TL_EINVAL;
    *ms = (int64_t)floor(x);
    return 0;
}

/* Digits with an optional sign and fraction are a number; anything else must be ISO-8601. */
static int str_to_ms(tl_str s, int64_t *ms)
{
    if (!s.len) return TL_EINVAL;
    size_t i = s.len && s.p[0] == '-' ? 1 : 0, digits = 0, dots = 0;
    for (; i < s.len; i++) {
        if (s.p[i] >= '0' && s.p[i] <= '9')
            digits++;
        else if (s.p[i] == '.' && digits && !dots)
            dots++;
        else
            break;
    }
    if (i == s.len && digits && s.p[s.len - 1] != '.') {
        char tmp[40];
        if (s.len >= sizeof tmp) return TL_EINVAL;
        memcpy(tmp, s.p, s.len);
        tmp[s.len] = 0;
        return num_to_ms(strtod(tmp, NULL), ms);
    }
    return tl_iso_parse(s, ms);
}

static int bad_time(tl_err *err, bool timestamp)
{
    return tl_err_set(err, TL_EINVAL, "%s: not a number or ISO-8601 date with a zone",
                      timestamp ? "timestamp" : "sent_at");
}

int tl_ingest_time(const tl_json *v, int64_t *ms)
{
    if (!v) return TL_EINVAL;
    if (v->type == TL_JNUM) return num_to_ms(v->num, ms);
    if (v->type == TL_JSTR) return str_to_ms(v->str, ms);
    return TL_EINVAL;
}

/* ---------------------------------------------------------------------------------------- */
/* One event, whatever format it came in: the string slots, times and flattened properties
 * gathered first, then validated and normalised by finish(). */

enum {
    S_EVENT,
    S_EVENT_ID,
    S_ANON,
    S_USER,
    S_SESSION,
    S_IP,
    S_UA,
    S_FIELD, /* S_FIELD + TL_F_* */
    S_COUNT = S_FIELD + TL_F_COUNT,
    /* Members that are not string slots. */
    K_TIMESTAMP = S_COUNT,
    K_SENT_AT,
    K_PROPS,
    K_UPROPS,
    K_UPROPS_ONCE,
    K_IGNORE,
};

static const char *slot_name(int s)
{
    static const char *const names[S_FIELD] = {
        "event", "event_id", "anonymous_id", "user_id", "session_id", "ip", "user_agent",
    };
    return s < S_FIELD ? names[s] : tl_field_name(s - S_FIELD);
}

/* The member of a native event object, by name. */
static int member_kind(tl_str k)
{
#define IS(lit) (memcmp(k.p, lit, sizeof(lit) - 1) == 0)
    switch (k.len) {
    case 2:
        if (IS("os")) return S_FIELD + TL_F_OS;
        if (IS("ip")) return S_IP;
        break;
    case 3:
        if (IS("url")) return S_FIELD + TL_F_URL;
        break;
    case 5:
        if (IS("event")) return S_EVENT;
        break;
    case 7:
        if (IS("user_id")) return S_USER;
        if (IS("sent_at")) return K_SENT_AT;
        if (IS("country")) return S_FIELD + TL_F_COUNTRY;
        if (IS("browser")) return S_FIELD + TL_F_BROWSER;
        break;
    case 8:
        if (IS("event_id")) return S_EVENT_ID;
        if (IS("platform")) return S_FIELD + TL_F_PLATFORM;
        if (IS("referrer")) return S_FIELD + TL_F_REFERRER;
        break;
    case 9:
        if (IS("timestamp")) return K_TIMESTAMP;
        break;
    case 10:
        if (IS("properties")) return K_PROPS;
        if (IS("session_id")) return S_SESSION;
        if (IS("user_agent")) return S_UA;
        break;
    case 11:
        if (IS("app_version")) return S_FIELD + TL_F_APP_VERSION;
        if (IS("device_type")) return S_FIELD + TL_F_DEVICE_TYPE;
        break;
    case 12:
        if (IS("anonymous_id")) return S_ANON;
        break;
    case 15:
        if (IS("user_properties")) return K_UPROPS;
        break;
    case 20:
        if (IS("user_properties_once")) return K_UPROPS_ONCE;
        break;
    }
    return K_IGNORE;
#undef IS
}

typedef struct evin {
    tl_str s[S_COUNT];
    uint32_t seen; /* bit per member kind: the first occurrence wins */
    bool has_ts, has_sent;
    int64_t ts_ms, sent_ms; /* as the client gave them */
    tl_prop *props, *uprops, *once;
    uint32_t n_props, n_uprops, n_once;
} evin;

static bool first_seen(evin *e, int kind)
{
    uint32_t bit = 1u << kind;
    if (e->seen & bit) return false;
    e->seen |= bit;
    return true;
}

/* Stable sort by key (insertion for the usual handful, merge above), then drop repeated keys
 * so the first in body order stays. */
static void sort_props(tl_arena *a, tl_prop *p, uint32_t *np)
{
    uint32_t n = *np;
    if (n < 2) return;
    if (n <= 24) {
        for (uint32_t i = 1; i < n; i++) {
            tl_prop x = p[i];
            uint32_t j = i;
            while (j > 0 && tl_str_cmp(p[j - 1].key, x.key) > 0) {
                p[j] = p[j - 1];
                j--;
            }
            p[j] = x;
        }
    } else {
        tl_prop *tmp = tl_arena_alloc(a, (size_t)n * sizeof *tmp);
        tl_prop *src = p, *dst = tmp;
        for (uint32_t w = 1; w < n; w *= 2) {
            for (uint32_t lo = 0; lo < n; lo += 2 * w) {
                uint32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
                uint32_t i = lo, j = mid, k = lo;
                while (i < mid && j < hi)
                    dst[k++] = tl_str_cmp(src[j].key, src[i].key) < 0 ? src[j++] : src[i++];
                while (i < mid)
                    dst[k++] = src[i++];
                while (j < hi)
                    dst[k++] = src[j++];
            }
            tl_prop *t = src;
            src = dst;
            dst = t;
        }
        if (src != p) memcpy(p, src, (size_t)n * sizeof *p);
    }
    uint32_t m = 1;
    for (uint32_t i = 1; i < n; i++)
        if (!tl_str_eq(p[i].key, p[m - 1].key)) p[m++] = p[i];
    *np = m;
}

/* The canonical encoding hashed into a derived event_id: a domain tag, then each string as
 * u32 LE length + bytes, the timestamp as a presence byte and i64 LE, and each property list
 * as u32 LE count + (key, type byte, f64 LE bits | string). Properties are already sorted. */
#define ID_TAG "tally-event-id-v1"

static size_t props_enc_len(const tl_prop *p, uint32_t n)
{
    size_t len = 4;
    for (uint32_t i = 0; i < n; i++)
        len += 4 + p[i].key.len + 1 + (p[i].type == TL_PV_NUM ? 8 : 4 + p[i].str.len);
    return len;
}

static uint8_t *enc_str(uint8_t *o, tl_str s)
{
    tl_put32(o, (uint32_t)s.len);
    if (s.len) memcpy(o + 4, s.p, s.len);
    return o + 4 + s.len;
}

static uint8_t *enc_props(uint8_t *o, const tl_prop *p, uint32_t n)
{
    tl_put32(o, n);
    o += 4;
    for (uint32_t i = 0; i < n; i++) {
        o = enc_str(o, p[i].key);
        *o++ = p[i].type;
        if (p[i].type == TL_PV_NUM) {
            uint64_t bits;
            memcpy(&bits, &p[i].num, 8);
            tl_put64(o, bits);
            o += 8;
        } else {
            o = enc_str(o, p[i].str);
        }
    }
    return o;
}

static tl_str derive_id(tl_arena *a, const tl_record *r, bool has_ts, int64_t raw_ts_ms)
{
    const tl_str strs[] = {r->event, r->anonymous_id, r->user_id, r->session_id};
    size_t len = sizeof ID_TAG - 1 + 1 + 8;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        len += 4 + strs[i].len;
    for (int f = 0; f < TL_F_COUNT; f++)
        len += 4 + r->field[f].len;
    len += props_enc_len(r->props, r->n_props) + props_enc_len(r->uprops, r->n_uprops);

    uint8_t stack[1024];
    uint8_t *buf = len <= sizeof stack ? stack : tl_arena_alloc(a, len);
    uint8_t *o = buf;
    memcpy(o, ID_TAG, sizeof ID_TAG - 1);
    o += sizeof ID_TAG - 1;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        o = enc_str(o, strs[i]);
    for (int f = 0; f < TL_F_COUNT; f++)
        o = enc_str(o, r->field[f]);
    *o++ = has_ts;
    tl_put64(o, (uint64_t)raw_ts_ms);
    o += 8;
    o = enc_props(o, r->props, r->n_props);
    o = enc_props(o, r->uprops, r->n_uprops);
    TL_ASSERT((size_t)(o - buf) == len);

    tl_h128 h = tl_hash128(buf, len, 0);
    static const char hex[] = "0123456789abcdef";
    char *id = tl_arena_alloc(a, 34);
    id[0] = '~';
    for (int i = 0; i < 16; i++) {
        uint64_t w = i < 8 ? h.hi : h.lo;
        unsigned byte = (unsigned)(w >> (56 - 8 * (i & 7))) & 0xFF;
        id[1 + 2 * i] = hex[byte >> 4];
        id[2 + 2 * i] = hex[byte & 15];
    }
    id[33] = 0;
    return (tl_str){id, 33};
}

static uint32_t slot_limit(int s, const tl_ingest_limits *lim)
{
    switch (s) {
    case S_UA:
    case S_FIELD + TL_F_URL:
    case S_FIELD + TL_F_REFERRER: return lim->max_string_bytes;
    default: return TL_INGEST_MAX_ID_BYTES;
    }
}

static bool valid_ip(tl_str s)
{
    char tmp[64];
    unsigned char addr[16];
    if (s.len >= sizeof tmp || memchr(s.p, 0, s.len)) return false;
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = 0;
    return inet_pton(AF_INET, tmp, addr) == 1 || inet_pton(AF_INET6, tmp, addr) == 1;
}

#define MIN_TS_MS 946684800000LL /* 2000-01-01T00:00:00Z */

static int finish(tl_arena *a, evin *e, int64_t batch_sent_ms, const tl_ingest_ctx *ctx,
                  const tl_ingest_limits *lim, tl_record *out, tl_err *err)
{
    if (!e->s[S_EVENT].p) return tl_err_set(err, TL_EINVAL, "event: required");
    if (!e->s[S_EVENT].len) return tl_err_set(err, TL_EINVAL, "event: must not be empty");
    for (int s = 0; s < S_COUNT; s++) {
        uint32_t max = slot_limit(s, lim);
        if (e->s[s].len > max)
            return tl_err_set(err, TL_EINVAL, "%s: longer than %u bytes", slot_name(s), max);
    }
    if (!e->s[S_ANON].len && !e->s[S_USER].len)
        return tl_err_set(err, TL_EINVAL, "anonymous_id or user_id: at least one is required");

    tl_str country = e->s[S_FIELD + TL_F_COUNTRY];
    if (country.len) {
        const char *c = country.p;
        bool alpha = country.len == 2 && ((c[0] | 0x20) >= 'a' && (c[0] | 0x20) <= 'z') &&
                     ((c[1] | 0x20) >= 'a' && (c[1] | 0x20) <= 'z');
        if (!alpha)
            return tl_err_set(err, TL_EINVAL,
                              "country: must be a two-letter ISO 3166 code like \"NP\"");
        if (c[0] >= 'a' || c[1] >= 'a') {
            char *u = tl_arena_alloc(a, 2);
            u[0] = (char)(c[0] & ~0x20);
            u[1] = (char)(c[1] & ~0x20);
            e->s[S_FIELD + TL_F_COUNTRY] = (tl_str){u, 2};
        }
    }
    if (e->s[S_IP].len && !valid_ip(e->s[S_IP]))
        return tl_err_set(err, TL_EINVAL, "ip: not an IPv4 or IPv6 address");

    int64_t recv = ctx->recv_ms, ts = recv;
    if (e->has_ts) {
        int64_t sent = e->has_sent ? e->sent_ms : batch_sent_ms;
        ts = sent != INT64_MIN ? recv + (e->ts_ms - sent) : e->ts_ms;
    }
    if (ts > recv + lim->max_future_ms)
        return tl_err_set(err, TL_EINVAL, "timestamp: more than %lld s in the future",
                          (long long)(lim->max_future_ms / 1000));
    if (ts < MIN_TS_MS) return tl_err_set(err, TL_EINVAL, "timestamp: before 2000-01-01");

    if (e->n_once) {
        /* $set_once values follow the $set ones, flagged; on a repeated key $set wins. */
        tl_prop *all = tl_arena_alloc(a, ((size_t)e->n_uprops + e->n_once) * sizeof *all);
        if (e->n_uprops) memcpy(all, e->uprops, e->n_uprops * sizeof *all);
        for (uint32_t i = 0; i < e->n_once; i++) {
            all[e->n_uprops + i] = e->once[i];
            all[e->n_uprops + i].type |= TL_PV_ONCE;
        }
        e->uprops = all;
        e->n_uprops += e->n_once;
    }
    sort_props(a, e->props, &e->n_props);
    sort_props(a, e->uprops, &e->n_uprops);

    out->kind = TL_REC_EVENT;
    out->ts_ms = ts;
    out->recv_ms = recv;
    out->event = e->s[S_EVENT];
    out->anonymous_id = e->s[S_ANON];
    out->user_id = e->s[S_USER];
    out->session_id = e->s[S_SESSION];
    for (int f = 0; f < TL_F_COUNT; f++)
        out->field[f] = e->s[S_FIELD + f];
    out->props = e->props;
    out->n_props = e->n_props;
    out->uprops = e->uprops;
    out->n_uprops = e->n_uprops;
    out->ip = e->s[S_IP].len ? e->s[S_IP] : ctx->ip;
    out->user_agent = e->s[S_UA].len ? e->s[S_UA] : ctx->user_agent;
    out->event_id = e->s[S_EVENT_ID].len
                        ? e->s[S_EVENT_ID]
                        : derive_id(a, out, e->has_ts, e->has_ts ? e->ts_ms : recv);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Flattening JSON properties. Pass 1 (count) checks every limit and counts the leaves, so
 * pass 2 (fill) writes into an exactly sized array and cannot fail. */

typedef struct flat {
    tl_arena *a;
    const tl_ingest_limits *lim;
    const char *field; /* "properties" or "user_properties" */
    tl_err *err;
    uint32_t n;
    tl_prop *out;
    char key[TL_INGEST_MAX_KEY_BYTES];
} flat;

/* Compact JSON, as tl_json_write and tl_buf_json_str write it, but measured and then written
 * into arena memory. */
static size_t jstr_len(tl_str s)
{
    size_t n = 2;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            n++;
        else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t')
            n += 2;
        else
            n += 6;
    }
    return n;
}

/* A number node built by hand (not parsed) has no source text: format it as
 * tl_buf_json_num does (integers exactly, else the shortest round-trip form). */
static tl_str num_text(const tl_json *v, char tmp[32])
{
    if (v->str.len) return v->str;
    double x = v->num;
    if (!isfinite(x)) return TL_STR("null");
    if (fabs(x) < 9.007199254740992e15 && x == (double)(long long)x) {
        snprintf(tmp, 32, "%lld", (long long)x);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, 32, "%.*g", prec, x);
            if (strtod(tmp, NULL) == x) break;
        }
    }
    return tl_str_c(tmp);
}

static size_t jlen(const tl_json *v, uint32_t *depth)
{
    char tmp[32];
    switch (v->type) {
    case TL_JNULL: return 4;
    case TL_JFALSE: return 5;
    case TL_JTRUE: return 4;
    case TL_JNUM: return num_text(v, tmp).len;
    case TL_JSTR: return jstr_len(v->str);
    case TL_JARR:
    case TL_JOBJ: {
        size_t n = 2;
        uint32_t d = 0;
        for (const tl_json *c = v->child; c; c = c->next) {
            uint32_t cd = 0;
            n += (c != v->child) + jlen(c, &cd);
            if (v->type == TL_JOBJ) n += jstr_len(c->key) + 1;
            if (cd > d) d = cd;
        }
        *depth = d + 1;
        return n;
    }
    }
    return 0;
}

static char *jstr_put(char *o, tl_str s)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    return o;
}

static char *jput(char *o, const tl_json *v)
{
    char tmp[32];
    tl_str num;
    switch (v->type) {
    case TL_JNULL: memcpy(o, "null", 4); return o + 4;
    case TL_JFALSE: memcpy(o, "false", 5); return o + 5;
    case TL_JTRUE: memcpy(o, "true", 4); return o + 4;
    case TL_JNUM:
        num = num_text(v, tmp);
        memcpy(o, num.p, num.len);
        return o + num.len;
    case TL_JSTR: return jstr_put(o, v->str);
    case TL_JARR:
    case TL_JOBJ: {
        bool obj = v->type == TL_JOBJ;
        *o++ = obj ? '{' : '[';
        for (const tl_json *c = v->child; c; c = c->next) {
            if (c != v->child) *o++ = ',';
            if (obj) {
                o = jstr_put(o, c->key);
                *o++ = ':';
            }
            o = jput(o, c);
        }
        *o++ = obj ? '}' : ']';
        return o;
    }
    }
    return o;
}

/* Appends ".name" (or "name" at the top) to the key being built; -1 when too long. */
static int key_push(flat *f, size_t len, tl_str name)
{
    size_t n = len + (len ? 1 : 0) + name.len;
    if (n > sizeof f->key) return -1;
    if (len) f->key[len] = '.';
    memcpy(f->key + n - name.len, name.p, name.len);
    return (int)n;
}

static int flat_count(flat *f, const tl_json *obj, uint32_t depth, size_t klen)
{
    const tl_ingest_limits *lim = f->lim;
    if (depth > lim->max_depth)
        return tl_err_set(f->err, TL_EINVAL, "%s: nested deeper than %u", f->field, lim->max_depth);
    for (const tl_json *c = obj->child; c; c = c->next) {
        int kl = key_push(f, klen, c->key);
        if (kl < 0)
            return tl_err_set(f->err, TL_EINVAL, "%s: key longer than %u bytes", f->field,
                              (unsigned)TL_INGEST_MAX_KEY_BYTES);
        size_t vlen = 0;
        uint32_t d = 0;
        switch (c->type) {
        case TL_JNULL: continue;
        case TL_JOBJ: {
            int rc = flat_count(f, c, depth + 1, (size_t)kl);
            if (rc) return rc;
            continue;
        }
        case TL_JSTR: vlen = c->str.len; break;
        case TL_JARR:
            vlen = jlen(c, &d);
            if (depth + d > lim->max_depth)
                return tl_err_set(f->err, TL_EINVAL, "%s: nested deeper than %u", f->field,
                                  lim->max_depth);
            break;
        default: break;
        }
        if (vlen > lim->max_string_bytes) {
            tl_str k = {f->key, (size_t)kl};
            return tl_err_set(f->err, TL_EINVAL, "%s.%.*s: longer than %u bytes", f->field,
                              cut_utf8(k, QUOTE_MAX), k.p, lim->max_string_bytes);
        }
        if (++f->n > lim->max_props)
            return tl_err_set(f->err, TL_EINVAL, "%s: more than %u properties", f->field,
                              lim->max_props);
    }
    return 0;
}

static void flat_fill(flat *f, const tl_json *obj, size_t klen)
{
    for (const tl_json *c = obj->child; c; c = c->next) {
        if (c->type == TL_JNULL) continue;
        int kl = key_push(f, klen, c->key); /* fits: flat_count checked */
        if (c->type == TL_JOBJ) {
            flat_fill(f, c, (size_t)kl);
            continue;
        }
        tl_prop *p = &f->out[f->n++];
        /* A top-level key is the member name itself, which lives in the body. */
        p->key = klen ? tl_arena_strdup(f->a, (tl_str){f->key, (size_t)kl}) : c->key;
        p->type = TL_PV_STR;
        p->num = 0;
        p->str = TL_STR_NULL;
        switch (c->type) {
        case TL_JNUM:
            p->type = TL_PV_NUM;
            p->num = c->num;
            break;
        case TL_JSTR: p->str = c->str; break;
        case TL_JTRUE: p->str = TL_STR("true"); break;
        case TL_JFALSE: p->str = TL_STR("false"); break;
        default: {
            uint32_t d;
            size_t n = jlen(c, &d);
            char *s = tl_arena_alloc(f->a, n);
            char *e = jput(s, c);
            TL_ASSERT(e == s + n);
            p->str = (tl_str){s, n};
            break;
        }
        }
    }
}

static int flatten(tl_arena *a, const tl_json *v, const char *field, const tl_ingest_limits *lim,
                   tl_prop **out, uint32_t *n, tl_err *err)
{
    if (v->type == TL_JNULL) return 0;
    if (v->type != TL_JOBJ)
        return tl_err_set(err, TL_EINVAL, "%s: must be an object, not %s", field,
                          tl_json_type_name(v->type));
    flat f;
    f.a = a;
    f.lim = lim;
    f.field = field;
    f.err = err;
    f.n = 0;
    int rc = flat_count(&f, v, 1, 0);
    if (rc || f.n == 0) return rc;
    f.out = tl_arena_alloc(a, (size_t)f.n * sizeof *f.out);
    *n = f.n;
    f.n = 0;
    flat_fill(&f, v, 0);
    TL_ASSERT(f.n == *n);
    *out = f.out;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Native events */

static bool is_integer_text(tl_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] == '.' || s.p[i] == 'e' || s.p[i] == 'E') return false;
    return true;
}

static const tl_ingest_limits *limits_or_default(const tl_ingest_limits *lim, tl_ingest_limits *tmp)
{
    if (lim) return lim;
    tl_ingest_limits_default(tmp);
    return tmp;
}

int tl_ingest_event(tl_arena *a, const tl_json *obj, int64_t batch_sent_at_ms,
                    const tl_ingest_ctx *ctx, const tl_ingest_limits *lim, tl_record *out,
                    tl_err *err)
{
    tl_ingest_limits dl;
    lim = limits_or_default(lim, &dl);
    memset(out, 0, sizeof *out);
    if (!obj || obj->type != TL_JOBJ)
        return tl_err_set(err, TL_EINVAL, "event: must be an object, not %s",
                          obj ? tl_json_type_name(obj->type) : "nothing");
    if (obj->str.len > lim->max_event_bytes)
        return tl_err_set(err, TL_EINVAL, "event: more than %u bytes", lim->max_event_bytes);

    evin e;
    memset(&e, 0, sizeof e);
    for (const tl_json *m = obj->child; m; m = m->next) {
        int kind = member_kind(m->key);
        if (kind == K_IGNORE || !first_seen(&e, kind) || m->type == TL_JNULL) continue;
        int rc = 0;
        switch (kind) {
        case K_TIMESTAMP:
        case K_SENT_AT: {
            bool ts = kind == K_TIMESTAMP;
            if (tl_ingest_time(m, ts ? &e.ts_ms : &e.sent_ms)) return bad_time(err, ts);
            *(ts ? &e.has_ts : &e.has_sent) = true;
            break;
        }
        case K_PROPS: rc = flatten(a, m, "properties", lim, &e.props, &e.n_props, err); break;
        case K_UPROPS:
            rc = flatten(a, m, "user_properties", lim, &e.uprops, &e.n_uprops, err);
            break;
        case K_UPROPS_ONCE:
            rc = flatten(a, m, "user_properties_once", lim, &e.once, &e.n_once, err);
            break;
        default:
            if (m->type == TL_JSTR) {
                e.s[kind] = m->str;
            } else if (m->type == TL_JNUM && kind >= S_EVENT_ID && kind <= S_SESSION &&
                       is_integer_text(m->str)) {
                e.s[kind] = m->str; /* an integer id, as its decimal text */
            } else {
                return tl_err_set(err, TL_EINVAL, "%s: must be a string, not %s", slot_name(kind),
                                  tl_json_type_name(m->type));
            }
        }
        if (rc) return rc;
    }
    return finish(a, &e, batch_sent_at_ms, ctx, lim, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Pixel */

static bool pixel_prop_key(tl_str k, tl_str *name, bool *user)
{
    static const struct {
        const char *pre;
        bool user;
    } pre[] = {{"properties.", false}, {"p.", false}, {"user_properties.", true}};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        size_t n = strlen(pre[i].pre);
        if (k.len > n && memcmp(k.p, pre[i].pre, n) == 0) {
            *name = (tl_str){k.p + n, k.len - n};
            *user = pre[i].user;
            return true;
        }
    }
    return false;
}

int tl_ingest_pixel(tl_arena *a, const tl_str *keys, const tl_str *vals, size_t n,
                    const tl_ingest_ctx *ctx, const tl_ingest_limits *lim, tl_record *out,
                    tl_err *err)
{
    tl_ingest_limits dl;
    lim = limits_or_default(lim, &dl);
    memset(out, 0, sizeof *out);
    evin e;
    memset(&e, 0, sizeof e);

    size_t np = 0, nup = 0;
    for (size_t i = 0; i < n; i++) {
        tl_str name;
        bool user;
        if (pixel_prop_key(keys[i], &name, &user)) *(user ? &nup : &np) += 1;
    }
    const char *over = np > lim->max_props ? "properties" : "user_properties";
    if (np > lim->max_props || nup > lim->max_props)
        return tl_err_set(err, TL_EINVAL, "%s: more than %u properties", over, lim->max_props);
    if (np) e.props = tl_arena_alloc(a, np * sizeof *e.props);
    if (nup) e.uprops = tl_arena_alloc(a, nup * sizeof *e.uprops);

    for (size_t i = 0; i < n; i++) {
        tl_str k = keys[i], v = vals[i];
        tl_str name;
        bool user;
        if (pixel_prop_key(k, &name, &user)) {
            const char *field = user ? "user_properties" : "properties";
            if (name.len > TL_INGEST_MAX_KEY_BYTES || !utf8_ok(name))
                return tl_err_set(err, TL_EINVAL, "%s: key longer than %u bytes or not UTF-8",
                                  field, (unsigned)TL_INGEST_MAX_KEY_BYTES);
            if (v.len > lim->max_string_bytes)
                return tl_err_set(err, TL_EINVAL, "%s.%.*s: longer than %u bytes", field,
                                  cut_utf8(name, QUOTE_MAX), name.p, lim->max_string_bytes);
            if (!utf8_ok(v))
                return tl_err_set(err, TL_EINVAL, "%s.%.*s: not valid UTF-8", field,
                                  cut_utf8(name, QUOTE_MAX), name.p);
            tl_prop *p = user ? &e.uprops[e.n_uprops++] : &e.props[e.n_props++];
            *p = (tl_prop){.key = name, .type = TL_PV_STR, .str = v};
            continue;
        }
        int kind = member_kind(k);
        if (kind == K_IGNORE || kind == K_PROPS || kind == K_UPROPS || kind == K_UPROPS_ONCE ||
            !first_seen(&e, kind))
            continue;
        if (kind == K_TIMESTAMP || kind == K_SENT_AT) {
            bool ts = kind == K_TIMESTAMP;
            if (str_to_ms(v, ts ? &e.ts_ms : &e.sent_ms)) return bad_time(err, ts);
            *(ts ? &e.has_ts : &e.has_sent) = true;
            continue;
        }
        if (!utf8_ok(v)) return tl_err_set(err, TL_EINVAL, "%s: not valid UTF-8", slot_name(kind));
        e.s[kind] = v.p ? v : TL_STR("");
    }
    return finish(a, &e, INT64_MIN, ctx, lim, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Native bodies */

typedef struct batch_state {
    tl_arena *a;
    const tl_ingest_ctx *ctx;
    const tl_ingest_limits *lim;
    tl_ingest_batch *out;
    uint32_t cap_recs;
} batch_state;

static void reject(batch_state *b, uint32_t index, const char *msg)
{
    tl_ingest_batch *o = b->out;
    o->rejected++;
    if (o->n_errors >= TL_INGEST_MAX_ERRORS) return;
    if (!o->errors) o->errors = tl_arena_alloc(b->a, TL_INGEST_MAX_ERRORS * sizeof *o->errors);
    o->errors[o->n_errors++] = (tl_ingest_error){index, tl_arena_strdup(b->a, tl_str_c(msg)).p};
}

/* Room for one more record. The array grows with the accepted events only (doubling, so at
 * most twice the memory they need): sizing it by the input would let a body of 20 MiB of
 * "{}," or blank-ish NDJSON lines cost gigabytes of 280-byte records. */
static tl_record *next_rec(batch_state *b, uint32_t hint)
{
    tl_ingest_batch *o = b->out;
    if (o->n == b->cap_recs) {
        uint32_t ncap = b->cap_recs ? b->cap_recs * 2 : (hint && hint < 1024 ? hint : 1024);
        tl_record *r = tl_arena_alloc(b->a, (size_t)ncap * sizeof *r);
        if (o->n) memcpy(r, o->recs, (size_t)o->n * sizeof *r);
        o->recs = r;
        b->cap_recs = ncap;
    }
    return &o->recs[o->n];
}

static void add_event(batch_state *b, uint32_t index, uint32_t hint, const tl_json *ev,
                      int64_t sent_ms)
{
    tl_err e;
    tl_record *r = next_rec(b, hint);
    if (tl_ingest_event(b->a, ev, sent_ms, b->ctx, b->lim, r, &e) == 0)
        b->out->n++;
    else
        reject(b, index, e.msg);
}

/* Parse trees take ~64 bytes per JSON value, up to 32 times the body for input like
 * "[[],[],…]". A body may hold one value per 8 bytes of max_body_bytes on average (real
 * events have one per 12-20), which bounds a request's tree at 8 × max_body_bytes. */
static uint32_t max_values(const tl_ingest_limits *lim)
{
    uint64_t n = lim->max_body_bytes / 8;
    return n < 4096 ? 4096 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static tl_json_opts parse_opts(const tl_ingest_limits *lim)
{
    /* Room for envelope → events → event → properties plus a few levels, so an event nested
     * a little too deep is rejected alone (see the file comment). */
    uint32_t d = lim->max_depth < 1000 ? lim->max_depth + 8 : 1008;
    return (tl_json_opts){.max_depth = d, .max_nodes = max_values(lim)};
}

static tl_str body_key_of(const tl_json *obj)
{
    tl_str k = tl_json_get_str(obj, "api_key");
    return k.p ? k : TL_STR_NULL;
}

static bool is_ndjson_type(tl_str ct)
{
    const char *semi = memchr(ct.p ? ct.p : "", ';', ct.len);
    tl_str mt = trim(semi ? (tl_str){ct.p, (size_t)(semi - ct.p)} : ct);
    return eq_nocase(mt, "application/x-ndjson") || eq_nocase(mt, "application/ndjson");
}

/* The next line of [*p, end) without its line break, trimmed. */
static tl_str next_line(const char **p, const char *end)
{
    const char *s = *p;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    return trim((tl_str){s, (size_t)(e - s)});
}

static int too_many_values(const tl_ingest_limits *lim, tl_err *err)
{
    return tl_err_set(err, TL_E2BIG, "body: more than %u JSON values", max_values(lim));
}

/* NDJSON: one parse per line, so a bad line rejects only its event. The lines' trees share
 * the budget of max_values (measured as the arena memory the parses take). */
static int ingest_ndjson(batch_state *b, tl_str body, const tl_json *first, tl_err *err)
{
    const tl_ingest_limits *lim = b->lim;
    tl_json_opts opts = parse_opts(lim);
    size_t parsed = 0, budget = (size_t)max_values(lim) * sizeof(tl_json) + body.len;
    uint32_t index = 0;
    const char *p = body.p, *end = body.p + body.len;
    while (p < end) {
        tl_str line = next_line(&p, end);
        if (!line.len) continue;
        const tl_json *ev = NULL;
        tl_err e;
        if (index == 0 && first) {
            ev = first;
        } else if (line.len > lim->max_event_bytes) {
            tl_err_set(&e, TL_EINVAL, "event: more than %u bytes", lim->max_event_bytes);
            reject(b, index++, e.msg);
            continue;
        } else {
            tl_json *j;
            size_t used = tl_arena_used(b->a);
            int rc = tl_json_parse(b->a, line.p, line.len, &opts, &j, &e);
            parsed += tl_arena_used(b->a) - used;
            if (parsed > budget) return too_many_values(lim, err);
            if (rc) {
                reject(b, index++, e.msg);
                continue;
            }
            ev = j;
        }
        if (index == 0) b->out->body_key = body_key_of(ev);
        add_event(b, index++, 0, ev, INT64_MIN);
    }
    b->out->n_input = index;
    return 0;
}

int tl_ingest_native(tl_arena *a, tl_str body, tl_str content_type, const tl_ingest_ctx *ctx,
                     const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    tl_ingest_limits dl;
    lim = limits_or_default(lim, &dl);
    memset(out, 0, sizeof *out);
    if (body.len > lim->max_body_bytes)
        return tl_err_set(err, TL_E2BIG, "body: more than %llu bytes",
                          (unsigned long long)lim->max_body_bytes);
    if (body.len >= 3 && memcmp(body.p, "\xEF\xBB\xBF", 3) == 0) {
        body.p += 3;
        body.len -= 3;
    }
    body = trim(body);
    if (!body.len) return tl_err_set(err, TL_EINVAL, "body: empty");

    batch_state b = {.a = a, .ctx = ctx, .lim = lim, .out = out};
    tl_json_opts opts = parse_opts(lim);
    tl_err perr;
    tl_json *root = NULL;

    if (is_ndjson_type(content_type)) return ingest_ndjson(&b, body, NULL, err);
    if (body.p[0] == '{') {
        /* NDJSON sniffing: a first line that is a whole object, and more lines after it. */
        const char *p = body.p, *end = body.p + body.len;
        tl_str line = next_line(&p, end);
        if (p < end && tl_json_parse(a, line.p, line.len, &opts, &root, NULL) == 0 &&
            root->type == TL_JOBJ)
            return ingest_ndjson(&b, body, root, err);
    }

    int rc = tl_json_parse(a, body.p, body.len, &opts, &root, &perr);
    if (rc == TL_E2BIG && strstr(perr.msg, "values")) return too_many_values(lim, err);
    /* Anything else, nesting included, is a body that cannot be read (400, not 413). */
    if (rc) return tl_err_set(err, TL_EINVAL, "body: %s", perr.msg);

    const tl_json *events = root;
    int64_t sent_ms = INT64_MIN;
    if (root->type == TL_JOBJ) {
        const tl_json *env = tl_json_get(root, "events");
        if (!env) {
            out->n_input = 1;
            out->body_key = body_key_of(root);
            add_event(&b, 0, 1, root, INT64_MIN);
            return 0;
        }
        if (env->type != TL_JARR)
            return tl_err_set(err, TL_EINVAL, "events: must be an array, not %s",
                              tl_json_type_name(env->type));
        const tl_json *sent = tl_json_get(root, "sent_at");
        if (sent && sent->type != TL_JNULL && tl_ingest_time(sent, &sent_ms))
            return bad_time(err, false);
        out->body_key = body_key_of(root);
        events = env;
    } else if (root->type != TL_JARR) {
        return tl_err_set(err, TL_EINVAL,
                          "body: expected an event object, an array of events, "
                          "{\"events\":[...]} or NDJSON, not a %s",
                          tl_json_type_name(root->type));
    }
    out->n_input = events->n;
    if (!out->body_key.p && events->child && events->child->type == TL_JOBJ)
        out->body_key = body_key_of(events->child);
    uint32_t i = 0;
    for (const tl_json *ev = events->child; ev; ev = ev->next)
        add_event(&b, i++, events->n, ev, sent_ms);
    return 0;
}

size_t tl_ingest_encode(tl_arena *a, tl_ingest_batch *b, tl_str project, const bool *keep,
                        tl_buf *enc, tl_str **out)
{
    /* Offsets first: enc may move while it grows. */
    size_t *offs = tl_arena_alloc(a, ((size_t)b->n + 1) * sizeof *offs);
    size_t n = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        if (keep && !keep[i]) continue;
        b->recs[i].project = project;
        offs[n++] = enc->len;
        tl_record_encode(&b->recs[i], enc);
    }
    offs[n] = enc->len;
    tl_str *s = tl_arena_alloc(a, (n + 1) * sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = (tl_str){enc->p + offs[i], offs[i + 1] - offs[i]};
    *out = s;
    return n;
}

void tl_ingest_limits_from_config(tl_ingest_limits *l, const tl_config *c)
{
    tl_ingest_limits_default(l);
    l->max_body_bytes = c->max_body_bytes;
    l->max_event_bytes = c->max_event_bytes;
    l->max_string_bytes = c->max_string_bytes;
    l->max_props = c->max_props;
    l->max_depth = c->max_depth;
    l->max_future_ms = (int64_t)c->max_future_s * 1000;
}
