/* The person timeline (API.md "Other reads"): every event of a person, under all its distinct
 * ids, oldest first, paged; with the person's distinct ids and properties.
 *
 * The person is found by any of its distinct ids (a user id first, then an anonymous id),
 * resolved in the snapshot, so a merge shows at once. Rows are ordered by (time, event_id), a
 * total order that does not depend on how parts are laid out, so offset paging is stable while
 * no new event arrives in between.
 *
 * Cost. A sealed part's did set (its distinct dids, part format version 3) says whether the
 * person has rows there, so the did column is read only in the parts the person touched (a
 * person is on a few days of 90): compared against the person's few dids, 16 rows at a time; on
 * large stores the parts are split among a few threads. Times are read only for parts that
 * straddle the range's edges (to drop rows outside it) and for the parts that hold the page.
 * The rows are counted per part and the parts grouped by overlapping time spans (parts come
 * ordered by first time; sealed parts hardly overlap), so the page is found group by group and
 * only its groups are sorted. The page's cells (event, fields, properties, event ids) come
 * through tl_cells: from the decoded column when the cache holds it, else from the one 16 KiB
 * frame that holds the row (kept in the store's frame cache), so a person not asked before
 * costs a few frames per part touched, not every column of those parts (megabytes each, event
 * ids above all). Event ids are read only for the page's rows and to order rows of equal time.
 * Parts without a did set or frames (versions 1 and 2) are read whole, as before. */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "query.h"
#include "query/query_int.h"
#include "util/arena.h"
#include "util/time.h"

#define MAX_MEMBERS 4096
#define MAX_THREADS 4 /* threads of a search (memory bandwidth bound beyond a few) */

typedef struct hit {
    int64_t ts;
    uint32_t part, row;
    tl_str eid; /* read only when needed (ties, output) */
} hit;

/* (time, part, row): the order before ties are broken by event id. */
static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->part != y->part) return x->part < y->part ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Rows of equal time: by event id (then by place, only for equal ids, which dedup prevents). */
static int tie_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    int c = tl_str_cmp(x->eid, y->eid);
    return c ? c : hit_cmp(a, b);
}

/* A part holding rows of the person: their row numbers are rows[first .. first + n). */
typedef struct ppart {
    uint32_t part;
    int64_t min_ts, max_ts;
    size_t first, n;
} ppart;

typedef struct found {
    uint32_t *rows;
    size_t n, cap;
    ppart *parts;
    size_t np, capp;
} found;

static void add_row(found *f, uint32_t r)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->rows = tl_xrealloc(f->rows, f->cap * sizeof *f->rows);
    }
    f->rows[f->n++] = r;
}

/* Whether part may hold rows of any of the dids dids[0..n) (false only when it surely holds
 * none): a sealed part's did set (its distinct dids, ascending) answers, so the did column is
 * read only in the few parts the person touched. Parts without a set (open, or written before
 * format version 3) may always hold some; so may a part whose set does not load (its did
 * column then reports the error). */
static bool part_may_hold(tl_snap *sn, size_t part, const uint32_t *dids, uint32_t n)
{
    const uint32_t *set;
    uint32_t ns;
    if (tl_snap_part_dids(sn, part, &set, &ns)) return true;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo = 0, hi = ns;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (set[mid] < dids[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < ns && set[lo] == dids[i]) return true;
    }
    return false;
}

/* Appends the rows r in [lo, hi) of did column dc that belong to the person: compared with
 * its dids m[0..3] when it has at most 4 (16 rows at a time, a branch only where one of them
 * matches), else through the identity map. */
static void match_rows(found *f, const uint32_t *dc, uint32_t lo, uint32_t hi, const uint32_t *m,
                       const uint32_t *persons, uint32_t root)
{
    uint32_t r = lo;
    if (m) {
        const uint32_t a = m[0], b = m[1], c = m[2], d = m[3];
        for (; r + 16 <= hi; r += 16) {
            uint32_t any = 0;
            for (uint32_t j = 0; j < 16; j++) {
                uint32_t x = dc[r + j];
                any |= (x == a) | (x == b) | (x == c) | (x == d);
            }
            if (!any) continue;
            for (uint32_t j = 0; j < 16; j++) {
                uint32_t x = dc[r + j];
                if (x == a || x == b || x == c || x == d) add_row(f, r + j);
            }
        }
        for (; r < hi; r++)
            if (dc[r] == a || dc[r] == b || dc[r] == c || dc[r] == d) add_row(f, r);
        return;
    }
    for (; r < hi; r++)
        if (persons[dc[r]] == root) add_row(f, r);
}

/* A search over parts [p0, p1) for the rows of the person (root, its dids members[0..nm),
 * all of them unless `partial`) with ts in [from_ms, to_excl); several run at once on large
 * stores. */
typedef struct fjob {
    tl_snap *sn;
    uint32_t root, nm;
    const uint32_t *members;
    bool partial;
    int64_t from_ms, to_excl;
    size_t p0, p1;
    found f;
    int rc;
    tl_err err;
    pthread_t th;
    bool started;
} fjob;

static void *find_rows(void *arg)
{
    fjob *j = arg;
    found *f = &j->f;
    const uint32_t *persons = tl_snap_persons(j->sn), *members = j->members;
    const uint32_t root = j->root, nm = j->nm;
    const int64_t from_ms = j->from_ms, to_excl = j->to_excl;
    /* Up to 4 dids are compared directly (repeated to fill 4); more go through the map. */
    uint32_t m4[4];
    for (uint32_t i = 0; i < 4; i++)
        m4[i] = members[i < nm ? i : 0];
    const uint32_t *m = nm <= 4 && !j->partial ? m4 : NULL;
    for (size_t pi = j->p0; pi < j->p1; pi++) {
        tl_part_info in = tl_snap_part_info(j->sn, pi);
        if (!in.n_rows || in.max_ts_ms < from_ms || in.min_ts_ms >= to_excl) continue;
        if (!j->partial && !part_may_hold(j->sn, pi, members, nm)) continue;
        const uint32_t *dc;
        const int64_t *ts = NULL;
        int rc = tl_snap_col_u32(j->sn, pi, TL_COL_DID, &dc);
        /* Times only where the range cuts the part. */
        bool cut = in.min_ts_ms < from_ms || in.max_ts_ms >= to_excl;
        if (!rc && cut) rc = tl_snap_col_ts(j->sn, pi, &ts);
        if (rc) {
            j->rc = tl_err_set(&j->err, rc, "store: %s", tl_strerror(rc));
            return NULL;
        }
        uint32_t lo = 0, hi = in.n_rows;
        if (cut && in.sorted) {
            lo = tl_query__lower_bound64(ts, in.n_rows, from_ms);
            hi = tl_query__lower_bound64(ts, in.n_rows, to_excl);
        }
        size_t first = f->n;
        match_rows(f, dc, lo, hi, m, persons, root);
        if (cut && !in.sorted) {
            size_t w = first;
            for (size_t i = first; i < f->n; i++)
                if (ts[f->rows[i]] >= from_ms && ts[f->rows[i]] < to_excl)
                    f->rows[w++] = f->rows[i];
            f->n = w;
        }
        if (f->n == first) continue;
        if (f->np == f->capp) {
            f->capp = f->capp ? f->capp * 2 : 64;
            f->parts = tl_xrealloc(f->parts, f->capp * sizeof *f->parts);
        }
        f->parts[f->np++] = (ppart){(uint32_t)pi, in.min_ts_ms, in.max_ts_ms, first, f->n - first};
    }
    return NULL;
}

/* The rows of the person in every part, in part order: the parts split among workers by rows,
 * each worker's finds appended in turn. */
static int find_all(fjob *proto, found *out, tl_err *err)
{
    size_t np = tl_snap_n_parts(proto->sn);
    uint64_t total = 0;
    for (size_t pi = 0; pi < np; pi++) {
        tl_part_info in = tl_snap_part_info(proto->sn, pi);
        if (in.n_rows && in.max_ts_ms >= proto->from_ms && in.min_ts_ms < proto->to_excl)
            total += in.n_rows;
    }
    uint32_t nw = tl_query__threads(total, MAX_THREADS);
    fjob jobs[MAX_THREADS];
    uint64_t acc = 0;
    size_t pi = 0;
    for (uint32_t k = 0; k < nw; k++) {
        jobs[k] = *proto;
        jobs[k].p0 = pi;
        uint64_t want = total * (k + 1) / nw;
        while (pi < np && (acc < want || k + 1 == nw)) {
            tl_part_info in = tl_snap_part_info(proto->sn, pi++);
            if (in.n_rows && in.max_ts_ms >= proto->from_ms && in.min_ts_ms < proto->to_excl)
                acc += in.n_rows;
        }
        jobs[k].p1 = pi;
    }
    for (uint32_t k = 1; k < nw; k++)
        jobs[k].started = pthread_create(&jobs[k].th, NULL, find_rows, &jobs[k]) == 0;
    find_rows(&jobs[0]);
    for (uint32_t k = 1; k < nw; k++) {
        if (jobs[k].started)
            pthread_join(jobs[k].th, NULL);
        else
            find_rows(&jobs[k]); /* no thread: its share runs here */
    }
    int rc = 0;
    *out = jobs[0].f;
    for (uint32_t k = 0; k < nw; k++) {
        if (jobs[k].rc && !rc) {
            rc = jobs[k].rc;
            *err = jobs[k].err;
        }
        if (!k) continue;
        found *g = &jobs[k].f;
        for (size_t i = 0; i < g->n; i++)
            add_row(out, g->rows[i]);
        for (size_t i = 0; i < g->np; i++) {
            if (out->np == out->capp) {
                out->capp = out->capp ? out->capp * 2 : 64;
                out->parts = tl_xrealloc(out->parts, out->capp * sizeof *out->parts);
            }
            ppart pp = g->parts[i];
            pp.first += out->n - g->n;
            out->parts[out->np++] = pp;
        }
        free(g->rows);
        free(g->parts);
    }
    return rc;
}

/* The rows of parts[a..b) (one group) in timeline order, appended to *h. */
static int order_group(tl_snap *sn, tl_cells *cl, tl_arena *ar, const found *f, size_t a, size_t b,
                       hit **h, size_t *nh, size_t *caph, tl_err *err)
{
    size_t base = *nh, need = 0;
    for (size_t k = a; k < b; k++)
        need += f->parts[k].n;
    if (base + need > *caph) {
        *caph = base + need;
        *h = tl_xrealloc(*h, *caph * sizeof **h);
    }
    hit *g = *h + base;
    size_t n = 0;
    for (size_t k = a; k < b; k++) {
        const ppart *pp = &f->parts[k];
        const int64_t *ts;
        int rc = tl_snap_col_ts(sn, pp->part, &ts);
        if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
        for (size_t i = 0; i < pp->n; i++) {
            uint32_t r = f->rows[pp->first + i];
            g[n++] = (hit){ts[r], pp->part, r, TL_STR_NULL};
        }
    }
    qsort(g, n, sizeof *g, hit_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && g[j].ts == g[i].ts)
            j++;
        if (j - i > 1) {
            for (size_t k = i; k < j; k++) {
                tl_str e;
                int rc = tl_cells_event_id(cl, g[k].part, g[k].row, &e);
                if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
                g[k].eid = tl_arena_strdup(ar, e); /* e lives only until the next cell */
            }
            qsort(g + i, j - i, sizeof *g, tie_cmp);
        }
        i = j;
    }
    *nh = base + n;
    return 0;
}

/* The page [offset, offset + limit) of the timeline, in order, into *page (*n_page rows):
 * only the groups of parts that hold it are read and sorted. A group is a run of parts whose
 * time spans overlap (touching counts: equal times are ordered by event id across parts). */
static int find_page(tl_snap *sn, tl_cells *cl, tl_arena *ar, const found *f, size_t offset,
                     size_t end, hit **page, size_t *n_page, tl_err *err)
{
    hit *h = NULL;
    size_t nh = 0, caph = 0, pos = 0;
    int rc = 0;
    for (size_t a = 0; a < f->np && pos < end && !rc;) {
        int64_t gend = f->parts[a].max_ts;
        size_t b = a + 1, cnt = f->parts[a].n;
        while (b < f->np && f->parts[b].min_ts <= gend) {
            if (f->parts[b].max_ts > gend) gend = f->parts[b].max_ts;
            cnt += f->parts[b].n;
            b++;
        }
        if (pos + cnt > offset) {
            size_t before = nh;
            rc = order_group(sn, cl, ar, f, a, b, &h, &nh, &caph, err);
            /* Keep only the group's rows that fall in the page. */
            size_t s = offset > pos ? offset - pos : 0, e = end - pos < cnt ? end - pos : cnt;
            if (!rc) {
                memmove(h + before, h + before + s, (e - s) * sizeof *h);
                nh = before + (e - s);
            }
        }
        pos += cnt;
        a = b;
    }
    if (rc) {
        free(h);
        return rc;
    }
    *page = h;
    *n_page = nh;
    return 0;
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

/* One row of the page as JSON. Cells come through cl: only the frames that hold the row are
 * decoded, unless the column is decoded already. */
static int put_row(tl_snap *sn, tl_cells *cl, const hit *h, uint32_t *keys, uint32_t cap,
                   tl_buf *out, tl_err *err)
{
    uint32_t v;
    tl_str eid = h->eid;
    int rc = tl_cells_u32(cl, h->part, TL_COL_EVENT, h->row, &v);
    if (!rc && !eid.p) rc = tl_cells_event_id(cl, h->part, h->row, &eid);
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    tl_buf_adds(out, "{\"event\":");
    tl_buf_json_str(out, tl_snap_dict_str(sn, v));
    tl_buf_adds(out, ",\"event_id\":");
    tl_buf_json_str(out, eid); /* before the next cell: eid may live in cl */
    tl_buf_adds(out, ",\"timestamp\":");
    put_time(out, h->ts);
    rc = tl_cells_u32(cl, h->part, TL_COL_DID, h->row, &v);
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    tl_buf_adds(out, ",\"distinct_id\":");
    tl_buf_json_str(out, tl_snap_did_str(sn, v));
    for (int f = 0; f < TL_F_COUNT; f++) {
        rc = tl_cells_u32(cl, h->part, TL_COL_FIELD + f, h->row, &v);
        if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
        if (!v) continue;
        tl_buf_printf(out, ",\"%s\":", tl_field_name(f));
        tl_buf_json_str(out, tl_snap_dict_str(sn, v));
    }
    rc = tl_cells_u32(cl, h->part, TL_COL_SESSION, h->row, &v);
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    if (v) {
        tl_buf_adds(out, ",\"session_id\":");
        tl_buf_json_str(out, tl_snap_dict_str(sn, v));
    }
    tl_buf_adds(out, ",\"properties\":{");
    uint32_t nk = tl_snap_part_prop_keys(sn, h->part, keys, cap);
    bool first = true;
    for (uint32_t k = 0; k < nk && k < cap; k++) {
        uint8_t t;
        double num;
        uint32_t str;
        rc = tl_cells_prop(cl, h->part, keys[k], h->row, &t, &num, &str);
        if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
        if (!t) continue;
        tl_buf_adds(out, first ? "" : ",");
        first = false;
        tl_buf_json_str(out, tl_snap_dict_str(sn, keys[k]));
        tl_buf_addc(out, ':');
        if (t == TL_PV_NUM)
            tl_buf_json_num(out, num);
        else
            tl_buf_json_str(out, tl_snap_dict_str(sn, str));
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
    const bool partial = nm > MAX_MEMBERS; /* members[] holds only the first MAX_MEMBERS */
    if (partial) nm = MAX_MEMBERS;
    const uint32_t root = persons[did];
    found f;
    memset(&f, 0, sizeof f);
    hit *hits = NULL;
    size_t n_page = 0;
    fjob proto;
    memset(&proto, 0, sizeof proto);
    proto.sn = sn;
    proto.root = root;
    proto.nm = nm;
    proto.members = members;
    proto.partial = partial;
    proto.from_ms = from_ms;
    proto.to_excl = to_excl;
    rc = find_all(&proto, &f, err);
    size_t n = f.n, end = (size_t)offset + limit < n ? (size_t)offset + limit : n;
    tl_cells *cl = tl_cells_new(sn);
    tl_arena *ar = tl_arena_new();
    if (!rc && offset < end) rc = find_page(sn, cl, ar, &f, offset, end, &hits, &n_page, err);
    if (!rc) {
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
        for (size_t i = 0; i < n_page && !rc; i++) {
            if (i) tl_buf_addc(out, ',');
            rc = put_row(sn, cl, &hits[i], keys, 4096, out, err);
        }
        tl_buf_addc(out, ']');
        if (end < n)
            tl_buf_printf(out, ",\"next_offset\":%zu", end);
        else
            tl_buf_adds(out, ",\"next_offset\":null");
        tl_buf_printf(out, ",\"took_ms\":%lld}", (long long)(tl_mono_ms() - t0));
    }
    free(f.rows);
    free(f.parts);
    free(hits);
    tl_arena_free(ar);
    tl_cells_free(cl);
    tl_snap_free(sn);
    return rc;
}
