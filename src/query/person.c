/* The person timeline (API.md "Other reads"): every event of a person, under all its distinct
 * ids, oldest first, paged; with the person's distinct ids and properties.
 *
 * The person is found by any of its distinct ids (a user id first, then an anonymous id),
 * resolved in the snapshot, so a merge shows at once. Rows are found by scanning the did
 * column of the parts that meet the range (a few ms for millions of rows, from the column
 * cache) and ordered by (time, event_id), a total order that does not depend on how parts are
 * laid out, so offset paging is stable while no new event arrives in between. */
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "query/query_int.h"
#include "util/time.h"

#define MAX_MEMBERS 4096

typedef struct hit {
    int64_t ts;
    uint32_t part, row;
    tl_str eid;
} hit;

static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return tl_str_cmp(x->eid, y->eid);
}

static void put_time(tl_buf *out, int64_t ms)
{
    char iso[40];
    tl_iso_format(ms, iso);
    tl_buf_json_str(out, tl_str_c(iso));
}

typedef struct pctx {
    tl_buf *out;
    bool first;
    bool once;
} pctx;

static void put_prop(void *arg, tl_str key, const tl_prop *v)
{
    pctx *x = arg;
    tl_buf_adds(x->out, x->first ? "" : ",");
    x->first = false;
    tl_buf_json_str(x->out, key);
    tl_buf_addc(x->out, ':');
    if (TL_PV_TYPE(v->type) == TL_PV_NUM)
        tl_buf_json_num(x->out, v->num);
    else
        tl_buf_json_str(x->out, v->str);
}

static int put_row(tl_snap *sn, const hit *h, uint32_t *keys, uint32_t cap, tl_buf *out,
                   tl_err *err)
{
    const uint32_t *ev, *did;
    int rc = tl_snap_col_u32(sn, h->part, TL_COL_EVENT, &ev);
    if (!rc) rc = tl_snap_col_u32(sn, h->part, TL_COL_DID, &did);
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    tl_buf_adds(out, "{\"event\":");
    tl_buf_json_str(out, tl_snap_dict_str(sn, ev[h->row]));
    tl_buf_adds(out, ",\"event_id\":");
    tl_buf_json_str(out, h->eid);
    tl_buf_adds(out, ",\"timestamp\":");
    put_time(out, h->ts);
    tl_buf_adds(out, ",\"distinct_id\":");
    tl_buf_json_str(out, tl_snap_did_str(sn, did[h->row]));
    for (int f = 0; f < TL_F_COUNT; f++) {
        const uint32_t *col;
        rc = tl_snap_col_u32(sn, h->part, TL_COL_FIELD + f, &col);
        if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
        if (!col[h->row]) continue;
        tl_buf_printf(out, ",\"%s\":", tl_field_name(f));
        tl_buf_json_str(out, tl_snap_dict_str(sn, col[h->row]));
    }
    const uint32_t *sess;
    rc = tl_snap_col_u32(sn, h->part, TL_COL_SESSION, &sess);
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    if (sess[h->row]) {
        tl_buf_adds(out, ",\"session_id\":");
        tl_buf_json_str(out, tl_snap_dict_str(sn, sess[h->row]));
    }
    tl_buf_adds(out, ",\"properties\":{");
    uint32_t nk = tl_snap_part_prop_keys(sn, h->part, keys, cap);
    bool first = true;
    for (uint32_t k = 0; k < nk && k < cap; k++) {
        tl_prop_col pc;
        rc = tl_snap_prop(sn, h->part, keys[k], &pc);
        if (rc == TL_ENOENT) continue;
        if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
        uint8_t t = pc.type[h->row];
        if (!t) continue;
        tl_buf_adds(out, first ? "" : ",");
        first = false;
        tl_buf_json_str(out, tl_snap_dict_str(sn, keys[k]));
        tl_buf_addc(out, ':');
        if (t == TL_PV_NUM)
            tl_buf_json_num(out, pc.num[h->row]);
        else
            tl_buf_json_str(out, tl_snap_dict_str(sn, pc.str[h->row]));
    }
    tl_buf_adds(out, "}}");
    return 0;
}

int tl_query_person_events(tl_store *s, const tl_project_conf *p, tl_str distinct_id,
                           int64_t from_ms, int64_t to_excl, uint32_t offset, uint32_t limit,
                           tl_buf *out, tl_err *err)
{
    int64_t t0 = tl_mono_ms();
    tl_snap *sn;
    int rc = tl_store_snap(s, tl_str_c(p->name), &sn);
    if (rc == TL_ENOENT) return tl_err_set(err, TL_ENOENT, "distinct_id: no such person");
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    uint32_t did = tl_snap_did_find(sn, distinct_id);
    const uint32_t *persons = tl_snap_persons(sn);
    if (did == TL_DID_NONE || persons[did] == TL_PERSON_ERASED) {
        tl_snap_free(sn);
        return tl_err_set(err, TL_ENOENT, "distinct_id: no such person");
    }
    uint32_t members[MAX_MEMBERS];
    uint32_t nm = tl_snap_person_members(sn, did, members, MAX_MEMBERS);
    if (nm > MAX_MEMBERS) nm = MAX_MEMBERS;
    const uint32_t root = persons[did];
    hit *hits = NULL;
    size_t n = 0, cap = 0;
    size_t np = tl_snap_n_parts(sn);
    for (size_t pi = 0; pi < np && !rc; pi++) {
        tl_part_info in = tl_snap_part_info(sn, pi);
        if (!in.n_rows || in.max_ts_ms < from_ms || in.min_ts_ms >= to_excl) continue;
        const uint32_t *dc;
        const int64_t *ts;
        rc = tl_snap_col_u32(sn, pi, TL_COL_DID, &dc);
        if (!rc) rc = tl_snap_col_ts(sn, pi, &ts);
        if (rc) {
            tl_err_set(err, rc, "store: %s", tl_strerror(rc));
            break;
        }
        for (uint32_t r = 0; r < in.n_rows && !rc; r++) {
            if (persons[dc[r]] != root || ts[r] < from_ms || ts[r] >= to_excl) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                hits = tl_xrealloc(hits, cap * sizeof *hits);
            }
            hits[n] = (hit){ts[r], (uint32_t)pi, r, TL_STR_NULL};
            rc = tl_snap_event_id(sn, pi, r, &hits[n].eid);
            if (rc) tl_err_set(err, rc, "store: %s", tl_strerror(rc));
            n++;
        }
    }
    if (!rc) {
        qsort(hits, n, sizeof *hits, hit_cmp);
        tl_buf_adds(out, "{\"person\":{\"distinct_ids\":[");
        for (uint32_t i = 0; i < nm; i++) {
            if (i) tl_buf_addc(out, ',');
            tl_buf_json_str(out, tl_snap_did_str(sn, members[i]));
        }
        tl_buf_adds(out, "],\"properties\":{");
        pctx pc = {out, true, false};
        tl_snap_person_props(sn, root, put_prop, &pc);
        tl_buf_printf(out, "}},\"total\":%zu,\"offset\":%u,\"events\":[", n, offset);
        uint32_t keys[4096];
        size_t end = (size_t)offset + limit < n ? (size_t)offset + limit : n;
        for (size_t i = offset; i < end && !rc; i++) {
            if (i > offset) tl_buf_addc(out, ',');
            rc = put_row(sn, &hits[i], keys, 4096, out, err);
        }
        tl_buf_addc(out, ']');
        if (end < n)
            tl_buf_printf(out, ",\"next_offset\":%zu", end);
        else
            tl_buf_adds(out, ",\"next_offset\":null");
        tl_buf_printf(out, ",\"took_ms\":%lld}", (long long)(tl_mono_ms() - t0));
    }
    free(hits);
    tl_snap_free(sn);
    return rc;
}
