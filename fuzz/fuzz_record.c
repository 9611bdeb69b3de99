/* Fuzz target for the event record decoder (tl_record_decode): arbitrary bytes must decode or
 * fail with TL_EBADMSG, never crash or read past the input. A record that decodes must encode
 * to bytes that decode to the same record, and its NDJSON export must parse as JSON whenever
 * its strings are valid UTF-8 and its numbers finite (what the log can hold from ingest). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "record.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_same(tl_str a, tl_str b)
{
    return tl_str_eq(a, b);
}

static bool props_same(const tl_prop *a, const tl_prop *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!str_same(a[i].key, b[i].key) || a[i].type != b[i].type) return false;
        if (a[i].type == TL_PV_NUM ? memcmp(&a[i].num, &b[i].num, 8) != 0
                                   : !str_same(a[i].str, b[i].str))
            return false;
    }
    return true;
}

static bool same(const tl_record *a, const tl_record *b)
{
    if (a->kind != b->kind || a->ts_ms != b->ts_ms || a->recv_ms != b->recv_ms ||
        !str_same(a->project, b->project) || !str_same(a->event, b->event) ||
        !str_same(a->event_id, b->event_id) || !str_same(a->anonymous_id, b->anonymous_id) ||
        !str_same(a->user_id, b->user_id) || !str_same(a->session_id, b->session_id) ||
        a->n_props != b->n_props || a->n_uprops != b->n_uprops)
        return false;
    for (int f = 0; f < TL_F_COUNT; f++)
        if (!str_same(a->field[f], b->field[f])) return false;
    return props_same(a->props, b->props, a->n_props) &&
           props_same(a->uprops, b->uprops, a->n_uprops);
}

static bool props_clean(const tl_prop *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!tl_utf8_valid(p[i].key.p, p[i].key.len)) return false;
        if (p[i].type == TL_PV_NUM ? !isfinite(p[i].num) : !tl_utf8_valid(p[i].str.p, p[i].str.len))
            return false;
    }
    return true;
}

/* Strings valid UTF-8 and numbers finite (any time: out of ISO range it is written as ms). */
static bool clean(const tl_record *r)
{
    const tl_str s[] = {r->event, r->event_id, r->anonymous_id, r->user_id, r->session_id};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (!tl_utf8_valid(s[i].p, s[i].len)) return false;
    for (int f = 0; f < TL_F_COUNT; f++)
        if (!tl_utf8_valid(r->field[f].p, r->field[f].len)) return false;
    return props_clean(r->props, r->n_props) && props_clean(r->uprops, r->n_uprops);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Decode from an exact-size copy so that any over-read is caught. */
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    tl_arena *a = tl_arena_new();
    tl_record r;
    tl_err err = {0};
    int rc = tl_record_decode(copy, size, a, &r, &err);
    if (rc) {
        if (rc != TL_EBADMSG || err.code != TL_EBADMSG) abort();
        goto out;
    }
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&r, &b);
    if (b.len > size) /* canonical varints are never longer than what was read */
        abort();
    tl_record r2;
    if (tl_record_decode(b.p, b.len, a, &r2, NULL) || !same(&r, &r2)) abort();
    b.len = 0;
    tl_record_write_json(&r, &b);
    if (clean(&r)) {
        tl_json *j;
        tl_err jerr = {0};
        if (tl_json_parse(a, b.p, b.len, NULL, &j, &jerr) || j->type != TL_JOBJ) abort();
    }
    tl_buf_fini(&b);
out:
    tl_arena_free(a);
    free(copy);
    return 0;
}
