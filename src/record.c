/* Encoding and decoding of normalised event records (format drawn in record.h). */
#include "record.h"

#include <string.h>

#include "util/time.h"

static const char *const g_field_names[TL_F_COUNT] = {
    "platform", "app_version", "country", "url", "referrer", "browser", "os", "device_type",
};

const char *tl_field_name(int f)
{
    return f >= 0 && f < TL_F_COUNT ? g_field_names[f] : "?";
}

int tl_field_by_name(tl_str name)
{
    for (int f = 0; f < TL_F_COUNT; f++)
        if (tl_str_eqc(name, g_field_names[f])) return f;
    return -1;
}

static uint64_t zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzz(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Encoding writes through a raw pointer into space reserved once for the whole record (the
 * bound below): no capacity check per field. */
#define VARINT_MAX 10

static uint8_t *put_varint(uint8_t *o, uint64_t v)
{
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

static uint8_t *put_str(uint8_t *o, tl_str s)
{
    o = put_varint(o, s.len);
    if (s.len) memcpy(o, s.p, s.len);
    return o + s.len;
}

static uint8_t *put_props(uint8_t *o, const tl_prop *p, uint32_t n)
{
    o = put_varint(o, n);
    for (uint32_t i = 0; i < n; i++) {
        o = put_str(o, p[i].key);
        *o++ = p[i].type;
        if (TL_PV_TYPE(p[i].type) == TL_PV_NUM) {
            uint64_t bits;
            memcpy(&bits, &p[i].num, 8);
            for (int k = 0; k < 8; k++)
                *o++ = (uint8_t)(bits >> (8 * k));
        } else {
            o = put_str(o, p[i].str);
        }
    }
    return o;
}

static size_t props_bound(const tl_prop *p, uint32_t n)
{
    size_t len = VARINT_MAX;
    for (uint32_t i = 0; i < n; i++)
        len += 2 * VARINT_MAX + 1 + 8 + p[i].key.len + p[i].str.len;
    return len;
}

void tl_record_encode(const tl_record *r, tl_buf *b)
{
    size_t bound = 2 + 2 * VARINT_MAX + 6 * VARINT_MAX + r->project.len + r->event.len +
                   r->event_id.len + r->anonymous_id.len + r->user_id.len + r->session_id.len +
                   props_bound(r->props, r->n_props) + props_bound(r->uprops, r->n_uprops);
    for (int f = 0; f < TL_F_COUNT; f++)
        bound += VARINT_MAX + r->field[f].len;
    uint8_t *start = (uint8_t *)tl_buf_reserve(b, bound), *o = start;
    *o++ = 1;
    *o++ = r->kind;
    o = put_varint(o, zz(r->ts_ms));
    o = put_varint(o, zz(r->recv_ms));
    o = put_str(o, r->project);
    o = put_str(o, r->event);
    o = put_str(o, r->event_id);
    o = put_str(o, r->anonymous_id);
    o = put_str(o, r->user_id);
    o = put_str(o, r->session_id);
    for (int f = 0; f < TL_F_COUNT; f++)
        o = put_str(o, r->field[f]);
    o = put_props(o, r->props, r->n_props);
    o = put_props(o, r->uprops, r->n_uprops);
    b->len += (size_t)(o - start);
}

typedef struct reader {
    const uint8_t *p, *end;
} reader;

/* A varint, the one-byte case (almost every length) inline. */
static inline int get_varint(reader *rd, uint64_t *v)
{
    if (rd->p < rd->end && *rd->p < 0x80) {
        *v = *rd->p++;
        return 0;
    }
    return tl_varint_get(&rd->p, rd->end, v);
}

static int get_str(reader *rd, tl_str *s)
{
    uint64_t n;
    if (get_varint(rd, &n) || n > (uint64_t)(rd->end - rd->p)) return TL_EBADMSG;
    s->p = (const char *)rd->p;
    s->len = (size_t)n;
    rd->p += n;
    return 0;
}

static int get_props(reader *rd, tl_arena *a, bool once_ok, tl_prop **out, uint32_t *n_out)
{
    uint64_t n;
    /* Each prop takes at least 3 bytes, which bounds n by the input size. */
    if (get_varint(rd, &n) || n > (uint64_t)(rd->end - rd->p) / 3) return TL_EBADMSG;
    tl_prop *p = n ? tl_arena_alloc(a, n * sizeof *p) : NULL;
    for (uint64_t i = 0; i < n; i++) {
        memset(&p[i], 0, sizeof p[i]);
        if (get_str(rd, &p[i].key) || rd->p >= rd->end) return TL_EBADMSG;
        p[i].type = *rd->p++;
        if (p[i].type & TL_PV_ONCE && !once_ok) return TL_EBADMSG;
        if (TL_PV_TYPE(p[i].type) == TL_PV_NUM) {
            if (rd->end - rd->p < 8) return TL_EBADMSG;
            uint64_t bits = tl_le64(rd->p);
            memcpy(&p[i].num, &bits, 8);
            rd->p += 8;
        } else if (TL_PV_TYPE(p[i].type) == TL_PV_STR) {
            if (get_str(rd, &p[i].str)) return TL_EBADMSG;
        } else {
            return TL_EBADMSG;
        }
    }
    *out = p;
    *n_out = (uint32_t)n;
    return 0;
}

int tl_record_decode(const void *data, size_t len, tl_arena *a, tl_record *r, tl_err *err)
{
    reader rd = {data, (const uint8_t *)data + len};
    memset(r, 0, sizeof *r);
    uint64_t ts, recv;
    if (len < 2 || rd.p[0] != 1) return tl_err_set(err, TL_EBADMSG, "record: unknown version");
    r->kind = rd.p[1];
    rd.p += 2;
    if (r->kind != TL_REC_EVENT && r->kind != TL_REC_IDENTIFY && r->kind != TL_REC_ERASE)
        return tl_err_set(err, TL_EBADMSG, "record: unknown kind %u", r->kind);
    if (tl_varint_get(&rd.p, rd.end, &ts) || tl_varint_get(&rd.p, rd.end, &recv)) goto bad;
    r->ts_ms = unzz(ts);
    r->recv_ms = unzz(recv);
    if (get_str(&rd, &r->project) || get_str(&rd, &r->event) || get_str(&rd, &r->event_id) ||
        get_str(&rd, &r->anonymous_id) || get_str(&rd, &r->user_id) || get_str(&rd, &r->session_id))
        goto bad;
    for (int f = 0; f < TL_F_COUNT; f++)
        if (get_str(&rd, &r->field[f])) goto bad;
    if (get_props(&rd, a, false, &r->props, &r->n_props) ||
        get_props(&rd, a, true, &r->uprops, &r->n_uprops))
        goto bad;
    if (rd.p != rd.end)
        return tl_err_set(err, TL_EBADMSG, "record: %zu trailing bytes", (size_t)(rd.end - rd.p));
    return 0;
bad:
    return tl_err_set(err, TL_EBADMSG, "record: truncated at byte %zu",
                      (size_t)(rd.p - (const uint8_t *)data));
}

/* Writes the properties whose TL_PV_ONCE flag equals `once` as the object `name`. */
static void write_props(tl_buf *b, const char *name, const tl_prop *p, uint32_t n, bool once)
{
    bool any = false;
    for (uint32_t i = 0; i < n && !any; i++)
        any = !(p[i].type & TL_PV_ONCE) == !once;
    if (!any) return;
    tl_buf_printf(b, ",\"%s\":{", name);
    bool first = true;
    for (uint32_t i = 0; i < n; i++) {
        if (!(p[i].type & TL_PV_ONCE) != !once) continue;
        if (!first) tl_buf_addc(b, ',');
        first = false;
        tl_buf_json_str(b, p[i].key);
        tl_buf_addc(b, ':');
        if (TL_PV_TYPE(p[i].type) == TL_PV_NUM)
            tl_buf_json_num(b, p[i].num);
        else
            tl_buf_json_str(b, p[i].str);
    }
    tl_buf_addc(b, '}');
}

/* Instants ISO-8601 can write with a four-digit year: 0000-01-01 to 9999-12-31. */
#define ISO_MIN_MS (-62167219200000LL)
#define ISO_MAX_MS 253402300799999LL

void tl_record_write_json(const tl_record *r, tl_buf *b)
{
    tl_buf_adds(b, "{\"event\":");
    tl_buf_json_str(b, r->event);
    tl_buf_adds(b, ",\"event_id\":");
    tl_buf_json_str(b, r->event_id);
    if (r->ts_ms >= ISO_MIN_MS && r->ts_ms <= ISO_MAX_MS) {
        char iso[32];
        tl_iso_format(r->ts_ms, iso);
        tl_buf_printf(b, ",\"timestamp\":\"%s\"", iso);
    } else {
        /* Milliseconds, which /collect also accepts, rather than a date with a 5-digit or
         * negative year. */
        tl_buf_printf(b, ",\"timestamp\":%lld", (long long)r->ts_ms);
    }
    if (r->anonymous_id.len) {
        tl_buf_adds(b, ",\"anonymous_id\":");
        tl_buf_json_str(b, r->anonymous_id);
    }
    if (r->user_id.len) {
        tl_buf_adds(b, ",\"user_id\":");
        tl_buf_json_str(b, r->user_id);
    }
    if (r->session_id.len) {
        tl_buf_adds(b, ",\"session_id\":");
        tl_buf_json_str(b, r->session_id);
    }
    for (int f = 0; f < TL_F_COUNT; f++) {
        if (!r->field[f].len) continue;
        tl_buf_printf(b, ",\"%s\":", g_field_names[f]);
        tl_buf_json_str(b, r->field[f]);
    }
    write_props(b, "properties", r->props, r->n_props, false);
    write_props(b, "user_properties", r->uprops, r->n_uprops, false);
    write_props(b, "user_properties_once", r->uprops, r->n_uprops, true);
    tl_buf_addc(b, '}');
}
