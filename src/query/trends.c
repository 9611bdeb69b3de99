/* The trends engine: scans the parts of a snapshot once and computes one metric per (bucket,
 * breakdown value).
 *
 * Rows are assigned to units: the buckets themselves, or local days for wau/mau. Unit
 * boundaries are UTC instants computed once per query from the zone (query.c), so a row's
 * unit is found by comparing its timestamp with instants; no per-row zone math. The scan has
 * three stages:
 *
 *  1. Prepare each part whose [min_ts, max_ts] meets the range. For a sorted (sealed) part the
 *     rows of each unit are a run found by binary search of the unit boundaries in the ts
 *     column. Filters (and erased persons) narrow a selection vector of row numbers, one
 *     pass per filter over the rows that are still candidates (the most selective filter,
 *     `event`, goes first); for a sorted part the vector stays in row order and becomes
 *     perm[], and an unsorted (open) part's is counting-sorted by unit. So every part ends
 *     as "rows of unit u" = off[u - u0] .. off[u - u0 + 1], direct or through perm.
 *  2. With a breakdown, count rows per breakdown value, keep the TL_Q_MAX_BREAKDOWN values
 *     with the most rows (ties: value order) and map the rest to "$other"; then renumber the
 *     value map to output slots, so the accumulation reads one array per row.
 *  3. Sweep units in increasing order, visiting every part active in the unit. Counting and
 *     sums just add. Distinct persons per unit: test-and-set in a bitset of persons per
 *     breakdown slot, cleared at the end of each unit through the list of words it dirtied
 *     (only what was set). Rolling windows (wau/mau): when a bitset per unit fits, each
 *     unit's persons are marked and every window is the popcount of the OR of its W units;
 *     otherwise key k (a person, or a person and slot) keeps a tag, the unit after the
 *     window of its last activity, and activity in unit u adds coverage to the windows
 *     ending in [max(u, tag), u + W): a +1/-1 pair in a difference array whose prefix sums
 *     give every window's exact count, in O(rows + units). Nothing is approximate.
 *
 * Threads (from TL_Q_PAR_ROWS rows, up to the CPUs): stage 1 hands parts to workers from a
 * shared counter, each with its own arena; the filter memos they share are relaxed atomics.
 * Stage 3 splits the units into contiguous ranges of about equal rows, one worker each.
 * Workers share the parts read-only and write their own state (and cnt / sum at their own
 * units); a window worker warms its tags up over the W - 1 units before its range and
 * records coverage only inside it, so the per-worker difference arrays just add.
 */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>

#include "query/query_int.h"
#include "util/bigmem.h"

#ifdef TL_TESTING
int tl_query__test_flags;
#endif

typedef struct qpart {
    uint32_t part;
    uint32_t u0, u1; /* units with rows, inclusive */
    uint32_t *off;   /* u1 - u0 + 2 offsets into perm, or rows when perm is NULL */
    uint32_t *perm;  /* kept rows grouped by unit, or NULL */
    const uint32_t *did;
    const uint32_t *bcol; /* breakdown: a u32 column, or a property column in bp */
    tl_prop_col bp;
    bool bpresent;
    const uint32_t *vcol; /* sum/avg value */
    tl_prop_col vp;
    bool vpresent;
} qpart;

typedef struct eng {
    tl_qctx *c;
    const tl_qreq *req;
    const tl_qplan *pl;
    int64_t scan_lo, scan_hi;
    qpart *qp;
    uint32_t nq;
    bool filtered;
    /* breakdown */
    bool bd;
    uint32_t *bmap;   /* dict id (0 = absent) -> value + 1 in stage 2, slot + 1 in stage 3 */
    uint64_t *nh_key; /* numbers: double bits -> value + 1 / slot + 1 in nh_val */
    uint32_t *nh_val;
    uint32_t nh_mask, nh_n;
    tl_qslot *bv;
    uint64_t *bv_cnt;
    uint32_t nbv, cap_bv;
    uint32_t nslot;
    tl_qslot *slots;
    /* accumulators, [unit * nslot + slot]; distinct counts land in cnt too */
    uint64_t *cnt;
    double *sum;
} eng;

/* ---- small helpers ---- */

/* The unit of instant t, searching boundaries U[lo .. hi] (t is inside [U[lo], U[hi])). */
static inline uint32_t unit_in(const int64_t *U, uint32_t lo, uint32_t hi, int64_t t)
{
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (U[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Open-addressing map from nonzero u64 keys to u32 values; returns the value's slot (0 when
 * new). Grows at half load. */
static uint32_t *hmap_slot(uint64_t **keys, uint32_t **vals, uint32_t *mask, uint32_t *n,
                           uint64_t key)
{
    if (!*keys || (*n + 1) * 2 > *mask + 1) {
        uint32_t ncap = *keys ? (*mask + 1) * 2 : 1024;
        uint64_t *nk = tl_xcalloc(ncap, sizeof *nk);
        uint32_t *nv = tl_xcalloc(ncap, sizeof *nv);
        if (*keys) {
            for (uint32_t i = 0; i <= *mask; i++) {
                if (!(*keys)[i]) continue;
                uint32_t j = (uint32_t)mix64((*keys)[i]) & (ncap - 1);
                while (nk[j])
                    j = (j + 1) & (ncap - 1);
                nk[j] = (*keys)[i];
                nv[j] = (*vals)[i];
            }
            free(*keys);
            free(*vals);
        }
        *keys = nk;
        *vals = nv;
        *mask = ncap - 1;
    }
    uint32_t j = (uint32_t)mix64(key) & *mask;
    while ((*keys)[j] && (*keys)[j] != key)
        j = (j + 1) & *mask;
    if (!(*keys)[j]) {
        (*keys)[j] = key;
        (*n)++;
    }
    return &(*vals)[j];
}

static inline uint64_t num_key(double x)
{
    uint64_t k;
    if (x == 0) x = 0.0; /* -0 and +0 are one value */
    memcpy(&k, &x, 8);
    return k ^ 0x8000000000000000ULL; /* never 0 for a finite double's bits ^ sign */
}

/* ---- stage 1: parts ---- */

uint32_t tl_query__threads(uint64_t rows, uint64_t max)
{
    uint64_t par_rows = TL_Q_PAR_ROWS;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef TL_TESTING
    /* Test builds: unit tests set the flag, integration tests the environment variable. */
    if (tl_query__test_flags & TL_QT_THREADS || getenv("TALLY_TEST_QUERY_THREADS")) {
        par_rows = 0;
        cpus = 3;
    }
#endif
    if (rows < par_rows || cpus < 2) return 1;
    uint64_t n = (uint64_t)cpus < TL_Q_THREADS ? (uint64_t)cpus : TL_Q_THREADS;
    return (uint32_t)(n < max ? n : max ? max : 1);
}

/* Prepares part `part` into *out (*got false when none of its rows is kept). Allocates from
 * a, the calling worker's arena. */
static int prep_part(const eng *e, tl_arena *a, size_t part, uint32_t *scratch, uint32_t *ub,
                     qpart *out, bool *got, tl_err *err)
{
    tl_qctx *c = e->c;
    const tl_qplan *pl = e->pl;
    const int64_t *U = pl->U;
    tl_part_info in = tl_snap_part_info(c->sn, part);
    if (!in.n_rows || in.max_ts_ms < e->scan_lo || in.min_ts_ms >= e->scan_hi) return 0;
    const int64_t *ts;
    int rc = tl_snap_col_ts(c->sn, part, &ts);
    if (rc) return tl_err_set(err, rc, "store: ts column: %s", tl_strerror(rc));
    int64_t tlo = in.min_ts_ms > e->scan_lo ? in.min_ts_ms : e->scan_lo;
    int64_t thi = in.max_ts_ms < e->scan_hi - 1 ? in.max_ts_ms : e->scan_hi - 1;
    qpart q;
    memset(&q, 0, sizeof q);
    q.part = (uint32_t)part;
    q.u0 = unit_in(U, 0, pl->nu, tlo);
    q.u1 = unit_in(U, q.u0, pl->nu, thi);
    uint32_t span = q.u1 - q.u0 + 1, n = in.n_rows, lo = 0, hi = n;
    uint32_t ev = 0, ev_n = 0; /* E's space (below): the event, its rows */
    const uint32_t *ev_rows = NULL;
    q.off = tl_arena_alloc(a, (span + 1) * sizeof *q.off);
    if (in.sorted) {
        for (uint32_t j = 0; j <= span; j++)
            q.off[j] = tl_query__lower_bound64(ts, n, U[q.u0 + j]);
        lo = q.off[0];
        hi = q.off[span];
        if (lo == hi) return 0;
    }
    if (e->filtered || !in.sorted) {
        /* The kept rows as a selection vector, narrowed by each filter in turn. For a sorted
         * part it stays in row order and becomes perm; an unsorted one is sorted by unit. */
        uint32_t *sel = scratch, k = 0;
        bool have = false;
        if (!in.sorted) {
            const int64_t t0 = e->scan_lo, t1 = e->scan_hi;
            for (uint32_t r = 0; r < n; r++) {
                sel[k] = r;
                k += ts[r] >= t0 && ts[r] < t1;
            }
            have = true;
        }
        /* An "event = E" filter on a sorted part starts from the part's event index: only
         * E's rows are read, not the whole event column (and the selection is sized for
         * them, not for the part: a fresh block per part costs page faults). From there the
         * part is read in E's space: the selection holds positions in E's rows and every
         * column is read through its projection (store.h), dense where E's rows are
         * scattered through the part. */
        uint32_t skip = UINT32_MAX;
        for (uint32_t i = 0; i < e->req->n_preds && !have && in.sorted; i++) {
            const tl_qpred *pd = &e->req->preds[i];
            const uint32_t *rows;
            uint32_t nr;
            if (pd->prop.col != TL_COL_EVENT || pd->neg || pd->smode != TL_QS_ID1 ||
                tl_snap_event_rows(c->sn, part, pd->sid1, &rows, &nr))
                continue;
            uint32_t a0 = tl_query__lower_bound32(rows, nr, lo),
                     a1 = tl_query__lower_bound32(rows, nr, hi);
            k = a1 - a0;
            if (!k) return 0;
            sel = tl_arena_alloc(a, (size_t)k * sizeof *sel);
            for (uint32_t j = 0; j < k; j++)
                sel[j] = a0 + j;
            have = true;
            skip = i;
            ev = pd->sid1;
            ev_rows = rows;
            ev_n = nr;
        }
        if (in.sorted && !have) sel = tl_arena_alloc(a, (size_t)(hi - lo) * sizeof *sel);
        for (uint32_t i = 0; i < e->req->n_preds; i++) {
            if (i == skip) continue;
            rc = tl_query__filter_sel_ev(c, &e->req->preds[i], part, ev, have ? sel : NULL,
                                         have ? 0 : lo, have ? k : hi, sel, &k, err);
            if (rc) return rc;
            have = true;
            if (!k) return 0;
        }
        if (c->any_erased) {
            const uint32_t *did;
            rc = ev ? tl_snap_event_u32(c->sn, part, ev, TL_COL_DID, &did)
                    : tl_snap_col_u32(c->sn, part, TL_COL_DID, &did);
            if (rc) return tl_err_set(err, rc, "store: did column: %s", tl_strerror(rc));
            const uint32_t *persons = c->persons, nd = c->n_dids;
            uint32_t k2 = 0;
            if (have) {
                for (uint32_t i = 0; i < k; i++) {
                    uint32_t r = sel[i];
                    sel[k2] = r;
                    k2 += did[r] < nd && persons[did[r]] < nd;
                }
            } else {
                for (uint32_t r = lo; r < hi; r++) {
                    sel[k2] = r;
                    k2 += did[r] < nd && persons[did[r]] < nd;
                }
            }
            k = k2;
        }
        if (!k) return 0;
        if (in.sorted) {
            for (uint32_t j = 0; j <= span; j++) /* row bounds, in E's space positions */
                q.off[j] = tl_query__lower_bound32(
                    sel, k, ev ? tl_query__lower_bound32(ev_rows, ev_n, q.off[j]) : q.off[j]);
            q.perm = sel;
        } else {
            /* Counting sort by unit. */
            memset(q.off, 0, (span + 1) * sizeof *q.off);
            for (uint32_t i = 0; i < k; i++) {
                uint32_t u = span == 1 ? 0 : unit_in(U, q.u0, q.u1 + 1, ts[sel[i]]) - q.u0;
                ub[i] = u;
                q.off[u + 1]++;
            }
            for (uint32_t j = 0; j < span; j++)
                q.off[j + 1] += q.off[j];
            uint32_t *cur = tl_arena_alloc(a, span * sizeof *cur);
            memcpy(cur, q.off, span * sizeof *cur);
            q.perm = tl_arena_alloc(a, (size_t)k * sizeof *q.perm);
            for (uint32_t i = 0; i < k; i++)
                q.perm[cur[ub[i]]++] = sel[i];
        }
    }
    int m = e->req->metric;
    if (m == TL_QM_PERSONS || m == TL_QM_WAU || m == TL_QM_MAU) {
        rc = ev ? tl_snap_event_u32(c->sn, part, ev, TL_COL_DID, &q.did)
                : tl_snap_col_u32(c->sn, part, TL_COL_DID, &q.did);
        if (rc) return tl_err_set(err, rc, "store: did column: %s", tl_strerror(rc));
    }
    if (e->bd) {
        rc = tl_query__prop_col_ev(c, part, ev, &e->req->bd, &q.bcol, &q.bp, &q.bpresent, err);
        if (rc) return rc;
    }
    if (m == TL_QM_SUM || m == TL_QM_AVG) {
        rc = tl_query__prop_col_ev(c, part, ev, &e->req->mprop, &q.vcol, &q.vp, &q.vpresent, err);
        if (rc) return rc;
    }
    *out = q;
    *got = true;
    return 0;
}

/* A stage-1 worker: takes parts from a shared counter. */
typedef struct prepw {
    const eng *e;
    tl_arena *a;
    uint32_t *scratch, *ub;
    _Atomic size_t *next;
    size_t np;
    qpart *out;
    bool *got;
    int rc;
    tl_err err;
    pthread_t th;
    bool started;
} prepw;

static void *prep_run(void *arg)
{
    prepw *w = arg;
    for (size_t i; !w->rc && (i = atomic_fetch_add(w->next, 1)) < w->np;)
        w->rc = prep_part(w->e, w->a, i, w->scratch, w->ub, &w->out[i], &w->got[i], &w->err);
    return NULL;
}

/* Stage 1 over all parts, on several threads when there is filtering work to share. */
static int prep_all(eng *e, size_t np, tl_err *err)
{
    tl_qctx *c = e->c;
    uint32_t max_rows = 0;
    uint64_t rows = 0;
    for (size_t i = 0; i < np; i++) {
        tl_part_info in = tl_snap_part_info(c->sn, i);
        if (in.max_ts_ms < e->scan_lo || in.min_ts_ms >= e->scan_hi) continue;
        rows += in.n_rows;
        if (in.n_rows > max_rows) max_rows = in.n_rows;
    }
    e->qp = tl_arena_alloc(c->a, (np ? np : 1) * sizeof *e->qp);
    if (!max_rows) return 0;
    uint32_t nt = e->filtered ? tl_query__threads(rows, np) : 1;
    if (nt > TL_Q_THREADS - c->n_warena) nt = 1;
    _Atomic size_t next = 0;
    qpart *out = tl_arena_alloc(c->a, np * sizeof *out);
    bool *got = tl_arena_calloc(c->a, np * sizeof *got);
    prepw *ws = tl_arena_calloc(c->a, nt * sizeof *ws);
    for (uint32_t k = 0; k < nt; k++) {
        prepw *w = &ws[k];
        w->e = e;
        w->a = k ? (c->warena[c->n_warena++] = tl_arena_new()) : c->a;
        w->scratch = tl_big_alloc(max_rows * sizeof *w->scratch); /* reused: no page faults */
        w->ub = tl_big_alloc(max_rows * sizeof *w->ub);
        w->next = &next;
        w->np = np;
        w->out = out;
        w->got = got;
    }
    for (uint32_t k = 1; k < nt; k++)
        ws[k].started = pthread_create(&ws[k].th, NULL, prep_run, &ws[k]) == 0;
    prep_run(&ws[0]);
    for (uint32_t k = 1; k < nt; k++) {
        if (ws[k].started)
            pthread_join(ws[k].th, NULL);
        else
            prep_run(&ws[k]); /* no thread: its share (if any is left) runs here */
    }
    int rc = 0;
    for (uint32_t k = 0; k < nt; k++) {
        if (ws[k].rc && !rc) {
            if (err) *err = ws[k].err;
            rc = ws[k].rc;
        }
        tl_big_free(ws[k].scratch, max_rows * sizeof *ws[k].scratch);
        tl_big_free(ws[k].ub, max_rows * sizeof *ws[k].ub);
    }
    if (rc) return rc;
    for (size_t i = 0; i < np; i++)
        if (got[i]) e->qp[e->nq++] = out[i];
    return 0;
}

static int qpart_cmp(const void *a, const void *b)
{
    const qpart *x = a, *y = b;
    if (x->u0 != y->u0) return x->u0 < y->u0 ? -1 : 1;
    return x->part < y->part ? -1 : x->part > y->part;
}

/* ---- stage 2: breakdown values ---- */

static uint32_t bv_new(eng *e, uint8_t kind, double num, uint32_t id)
{
    if (e->nbv == e->cap_bv) {
        e->cap_bv = e->cap_bv ? e->cap_bv * 2 : 64;
        e->bv = tl_xrealloc(e->bv, e->cap_bv * sizeof *e->bv);
        e->bv_cnt = tl_xrealloc(e->bv_cnt, e->cap_bv * sizeof *e->bv_cnt);
    }
    e->bv[e->nbv] = (tl_qslot){kind, num, id};
    e->bv_cnt[e->nbv] = 0;
    return e->nbv++;
}

/* The breakdown value of row r, assigning new values (stage 2, one thread). */
static uint32_t bv_assign(eng *e, const qpart *q, uint32_t r)
{
    uint32_t id = 0;
    if (q->bcol) {
        id = q->bcol[r];
    } else if (q->bpresent) {
        uint8_t t = q->bp.type[r];
        if (t == TL_PV_NUM) {
            double x = q->bp.num[r];
            uint32_t *v = hmap_slot(&e->nh_key, &e->nh_val, &e->nh_mask, &e->nh_n, num_key(x));
            if (!*v) *v = bv_new(e, TL_QB_NUM, x == 0 ? 0.0 : x, 0) + 1;
            return *v - 1;
        }
        if (t == TL_PV_STR) id = q->bp.str[r];
    }
    uint32_t m = e->bmap[id];
    if (!m) m = e->bmap[id] = bv_new(e, id ? TL_QB_STR : TL_QB_NULL, 0, id) + 1;
    return m - 1;
}

static int slot_cmp(tl_qctx *c, const tl_qslot *a, const tl_qslot *b)
{
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->kind == TL_QB_NUM) return a->num < b->num ? -1 : a->num > b->num;
    if (a->kind == TL_QB_STR)
        return tl_str_cmp(tl_snap_dict_str(c->sn, a->id), tl_snap_dict_str(c->sn, b->id));
    return 0;
}

static int rank_cmp(const void *a, const void *b, void *arg)
{
    eng *e = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (e->bv_cnt[x] != e->bv_cnt[y]) return e->bv_cnt[x] > e->bv_cnt[y] ? -1 : 1;
    return slot_cmp(e->c, &e->bv[x], &e->bv[y]);
}

static int order_cmp(const void *a, const void *b, void *arg)
{
    eng *e = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return slot_cmp(e->c, &e->bv[x], &e->bv[y]);
}

static void breakdown_values(eng *e)
{
    for (uint32_t i = 0; i < e->nq; i++) {
        const qpart *q = &e->qp[i];
        uint32_t span = q->u1 - q->u0 + 1, a = q->off[0], b = q->off[span];
        if (q->bcol) {
            /* A column of dict ids (every row of a part, for a plain breakdown): a value's
             * index is a table lookup, new values are rare. */
            const uint32_t *col = q->bcol, *perm = q->perm;
            uint32_t *bmap = e->bmap;
            uint64_t *cnt = e->bv_cnt;
#define BV_COUNT(ROW)                                                                              \
    for (uint32_t j = a; j < b; j++) {                                                             \
        uint32_t id = col[ROW], m = bmap[id];                                                      \
        if (__builtin_expect(!m, 0)) {                                                             \
            m = bmap[id] = bv_new(e, id ? TL_QB_STR : TL_QB_NULL, 0, id) + 1;                      \
            cnt = e->bv_cnt; /* may have moved */                                                  \
        }                                                                                          \
        cnt[m - 1]++;                                                                              \
    }
            if (perm) {
                BV_COUNT(perm[j])
            } else {
                BV_COUNT(j)
            }
#undef BV_COUNT
            continue;
        }
        for (uint32_t j = a; j < b; j++) {
            uint32_t v = bv_assign(e, q, q->perm ? q->perm[j] : j); /* may grow bv_cnt */
            e->bv_cnt[v]++;
        }
    }
    uint32_t nbv = e->nbv, keep = nbv < TL_Q_MAX_BREAKDOWN ? nbv : TL_Q_MAX_BREAKDOWN;
    uint32_t *idx = tl_arena_alloc(e->c->a, (nbv ? nbv : 1) * sizeof *idx);
    for (uint32_t i = 0; i < nbv; i++)
        idx[i] = i;
    if (nbv > keep) qsort_r(idx, nbv, sizeof *idx, rank_cmp, e);
    qsort_r(idx, keep, sizeof *idx, order_cmp, e);
    e->nslot = keep + (nbv > keep);
    e->slots = tl_arena_alloc(e->c->a, (e->nslot ? e->nslot : 1) * sizeof *e->slots);
    uint32_t *slot_of = tl_arena_alloc(e->c->a, (nbv ? nbv : 1) * sizeof *slot_of);
    for (uint32_t i = 0; i < nbv; i++) {
        slot_of[idx[i]] = i < keep ? i : keep;
        if (i < keep) e->slots[i] = e->bv[idx[i]];
    }
    if (nbv > keep) e->slots[keep] = (tl_qslot){TL_QB_OTHER, 0, 0};
    for (uint32_t i = 0; i < nbv; i++)
        if (e->bv[i].kind != TL_QB_NUM) e->bmap[e->bv[i].id] = slot_of[i] + 1;
    for (uint32_t i = 0; e->nh_key && i <= e->nh_mask; i++)
        if (e->nh_key[i]) e->nh_val[i] = slot_of[e->nh_val[i] - 1] + 1;
}

/* ---- stage 3: accumulation ---- */

/* The output slot of row r (stage 3; reads the maps only, so workers may share them). */
static inline uint32_t slot_of(const eng *e, const qpart *q, uint32_t r)
{
    uint32_t id = 0;
    if (q->bcol) {
        id = q->bcol[r];
    } else if (q->bpresent) {
        uint8_t t = q->bp.type[r];
        if (t == TL_PV_NUM) {
            uint64_t k = num_key(q->bp.num[r]);
            uint32_t j = (uint32_t)mix64(k) & e->nh_mask;
            while (e->nh_key[j] && e->nh_key[j] != k)
                j = (j + 1) & e->nh_mask;
            return e->nh_val[j] ? e->nh_val[j] - 1 : 0; /* stage 2 saw every value */
        }
        if (t == TL_PV_STR) id = q->bp.str[r];
    }
    return e->bmap[id] - 1;
}

/* One worker sweeps the units [uw, ub) and records results for [ua, ub); units before ua
 * only warm up the rolling-window state. Workers share nothing they write but cnt (at their
 * own units). */
typedef struct worker {
    eng *e;
    uint32_t ua, ub, uw;
    uint32_t *act;   /* active parts */
    uint64_t *bits;  /* persons: per slot a bitset of the persons seen in the current unit */
    size_t words;    /* 64-bit words per slot */
    uint32_t *dirty; /* words made nonzero in the current unit (cleared at its end) */
    uint32_t n_dirty;
    uint32_t *last; /* windows: tag per [person * nslot + slot], or the hash below */
    uint64_t *lh_key;
    uint32_t *lh_val;
    uint32_t lh_mask, lh_n;
    int64_t *diff; /* distinct metrics: (nu + 1) * nslot, coverage differences */
    bool per_unit; /* windows: bits holds one bitset per unit and slot, shared */
    pthread_t th;
    bool started;
} worker;

/* Runs BODY with r bound to each row of rows [lo, hi) of part q. */
#define FOR_ROWS(q, lo, hi, r, ...)                                                                \
    do {                                                                                           \
        if ((q)->perm) {                                                                           \
            const uint32_t *perm_ = (q)->perm;                                                     \
            for (uint32_t j_ = (lo); j_ < (hi); j_++) {                                            \
                uint32_t r = perm_[j_];                                                            \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            for (uint32_t r = (lo); r < (hi); r++) {                                               \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void k_events(worker *w, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    const eng *e = w->e;
    if (!e->bd) {
        e->cnt[u] += hi - lo;
        return;
    }
    uint64_t *cnt = e->cnt + (size_t)u * e->nslot;
    FOR_ROWS(q, lo, hi, r, cnt[slot_of(e, q, r)]++;);
}

static inline bool value_of(tl_qctx *c, const qpart *q, uint32_t r, double *x)
{
    if (q->vcol) return tl_query__str_num(c, q->vcol[r], x);
    uint8_t t = q->vp.type[r];
    if (t == TL_PV_NUM) {
        *x = q->vp.num[r];
        return true;
    }
    return t == TL_PV_STR && tl_query__str_num(c, q->vp.str[r], x);
}

/* sum / avg; numbers in strings come from the shared numeric memo. */
static void k_sum(worker *w, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    eng *e = w->e;
    if (!q->vpresent) return;
    size_t base = (size_t)u * e->nslot;
    if (!e->bd) {
        double sum = 0; /* in registers: no store-to-load chain through e->sum */
        uint64_t n = 0;
        FOR_ROWS(q, lo, hi, r, {
            double x;
            if (!value_of(e->c, q, r, &x)) continue;
            sum += x;
            n++;
        });
        e->sum[base] += sum;
        e->cnt[base] += n;
        return;
    }
    FOR_ROWS(q, lo, hi, r, {
        double x;
        if (!value_of(e->c, q, r, &x)) continue;
        uint32_t s = slot_of(e, q, r);
        e->sum[base + s] += x;
        e->cnt[base + s]++;
    });
}

/* Distinct persons per unit: test-and-set in the unit's bitsets. The hot loop of DAU. */
static void k_bits(worker *w, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    const eng *e = w->e;
    const uint32_t *did = q->did, *persons = e->c->persons, nd = e->c->n_dids;
    uint64_t *bits = w->bits;
    uint32_t *dirty = w->dirty, n_dirty = w->n_dirty;
    if (!e->bd) {
        int64_t n = 0;
        FOR_ROWS(q, lo, hi, r, {
            uint32_t d = did[r];
            uint32_t p = d < nd ? persons[d] : UINT32_MAX;
            if (p >= nd) continue;
            uint64_t x = bits[p >> 6], m = 1ull << (p & 63);
            dirty[n_dirty] = p >> 6;
            n_dirty += x == 0;
            n += !(x & m);
            bits[p >> 6] = x | m;
        });
        w->diff[u] += n;
        w->diff[u + 1] -= n;
    } else {
        const uint32_t ns = e->nslot;
        const size_t words = w->words;
        int64_t *d0 = w->diff + (size_t)u * ns, *d1 = d0 + ns;
        FOR_ROWS(q, lo, hi, r, {
            uint32_t d = did[r];
            uint32_t p = d < nd ? persons[d] : UINT32_MAX;
            if (p >= nd) continue;
            uint32_t s = slot_of(e, q, r);
            size_t wi = s * words + (p >> 6);
            uint64_t x = bits[wi], m = 1ull << (p & 63);
            dirty[n_dirty] = (uint32_t)wi;
            n_dirty += x == 0;
            int64_t nw = !(x & m);
            d0[s] += nw;
            d1[s] -= nw;
            bits[wi] = x | m;
        });
    }
    w->n_dirty = n_dirty;
}

/* Distinct persons in rolling windows of W units (and persons per unit when the bitsets
 * would be too big). A key's tag is the unit after the window of its last activity (last
 * + W, 0 = never): activity in unit u adds coverage to the windows ending in [max(u, tag),
 * u + W), clipped to the worker's [ua, ub). Branch-free per row. */
static void k_window(worker *w, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    const eng *e = w->e;
    const uint32_t *did = q->did, *persons = e->c->persons, nd = e->c->n_dids;
    const uint32_t ns = e->nslot, tag = u + e->pl->window;
    const uint32_t end = tag < w->ub ? tag : w->ub, base = u > w->ua ? u : w->ua;
    int64_t *diff = w->diff;
    uint32_t *last = w->last;
    if (!e->bd && last) {
        int64_t gone = 0;
        FOR_ROWS(q, lo, hi, r, {
            uint32_t d = did[r];
            uint32_t p = d < nd ? persons[d] : UINT32_MAX;
            if (p >= nd) continue;
            uint32_t t0 = last[p];
            last[p] = tag;
            int64_t nw = t0 != tag;
            uint32_t from = t0 > base ? t0 : base;
            from = from < end ? from : end;
            diff[from] += nw;
            gone += nw; /* diff[end] once, after the loop: no store-to-load chain */
        });
        diff[end] -= gone;
        return;
    }
    FOR_ROWS(q, lo, hi, r, {
        uint32_t d = did[r];
        uint32_t p = d < nd ? persons[d] : UINT32_MAX;
        if (p >= nd) continue;
        uint32_t s = e->bd ? slot_of(e, q, r) : 0;
        uint32_t *lp = last ? &last[(size_t)p * ns + s]
                            : hmap_slot(&w->lh_key, &w->lh_val, &w->lh_mask, &w->lh_n,
                                        (uint64_t)p * ns + s + 1);
        uint32_t t0 = *lp;
        *lp = tag;
        int64_t nw = t0 != tag;
        uint32_t from = t0 > base ? t0 : base;
        from = from < end ? from : end;
        diff[(size_t)from * ns + s] += nw;
        diff[(size_t)end * ns + s] -= nw;
    });
}

/* Rolling windows when every unit can have its own bitsets: mark the persons of each unit
 * (workers own disjoint units, so no warm-up); count_windows ORs them per window. */
static void k_ubits(worker *w, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    const eng *e = w->e;
    const uint32_t *did = q->did, *persons = e->c->persons, nd = e->c->n_dids;
    const size_t words = w->words;
    uint64_t *bits = w->bits + (size_t)u * e->nslot * words;
    if (!e->bd) {
        FOR_ROWS(q, lo, hi, r, {
            uint32_t d = did[r];
            uint32_t p = d < nd ? persons[d] : UINT32_MAX;
            if (p >= nd) continue;
            bits[p >> 6] |= 1ull << (p & 63);
        });
        return;
    }
    FOR_ROWS(q, lo, hi, r, {
        uint32_t d = did[r];
        uint32_t p = d < nd ? persons[d] : UINT32_MAX;
        if (p >= nd) continue;
        bits[slot_of(e, q, r) * words + (p >> 6)] |= 1ull << (p & 63);
    });
}

static inline uint64_t popcount64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

/* cnt[last unit of each bucket] = persons in the union of its window's unit bitsets. */
static void count_windows(eng *e, const uint64_t *ubits, size_t words)
{
    const tl_qplan *pl = e->pl;
    const uint32_t ns = e->nslot, W = pl->window;
    uint64_t *acc = tl_query__scratch(e->c, words, sizeof *acc);
    for (uint32_t b = 0; b < pl->nb; b++) {
        uint32_t eu = pl->b_unit[b];
        for (uint32_t s = 0; s < ns; s++) {
            memset(acc, 0, words * sizeof *acc);
            for (uint32_t k = 0; k < W && k <= eu; k++) {
                const uint64_t *src = ubits + ((size_t)(eu - k) * ns + s) * words;
                for (size_t i = 0; i < words; i++)
                    acc[i] |= src[i];
            }
            uint64_t n = 0;
            for (size_t i = 0; i < words; i++)
                n += popcount64(acc[i]);
            e->cnt[(size_t)eu * ns + s] = n;
        }
    }
}

static void *sweep(void *arg)
{
    worker *w = arg;
    const eng *e = w->e;
    uint32_t nact = 0, next = 0;
    int m = e->req->metric;
    for (uint32_t u = w->uw; u < w->ub; u++) {
        while (next < e->nq && e->qp[next].u0 <= u) {
            if (e->qp[next].u1 >= u) w->act[nact++] = next;
            next++;
        }
        for (uint32_t i = 0; i < nact;) {
            const qpart *q = &e->qp[w->act[i]];
            uint32_t lo = q->off[u - q->u0], hi = q->off[u - q->u0 + 1];
            if (lo < hi) {
                switch (m) {
                case TL_QM_EVENTS: k_events(w, q, u, lo, hi); break;
                case TL_QM_SUM:
                case TL_QM_AVG: k_sum(w, q, u, lo, hi); break;
                default:
                    if (w->per_unit)
                        k_ubits(w, q, u, lo, hi);
                    else if (w->bits)
                        k_bits(w, q, u, lo, hi);
                    else
                        k_window(w, q, u, lo, hi);
                    break;
                }
            }
            if (q->u1 <= u)
                w->act[i] = w->act[--nact];
            else
                i++;
        }
        for (uint32_t i = 0; i < w->n_dirty; i++)
            w->bits[w->dirty[i]] = 0;
        w->n_dirty = 0;
    }
    return NULL;
}

/* ---- the query ---- */

static void eng_fini(eng *e)
{
    free(e->bv);
    free(e->bv_cnt);
    free(e->nh_key);
    free(e->nh_val);
}

/* Splits the units among workers by rows, sets up their state, runs them and merges. */
static void accumulate(eng *e)
{
    tl_qctx *c = e->c;
    const tl_qplan *pl = e->pl;
    uint32_t nu = pl->nu, ns = e->nslot, W = pl->window;
    int m = e->req->metric;
    bool distinct = m == TL_QM_PERSONS || m == TL_QM_WAU || m == TL_QM_MAU;
    uint64_t *rows_u = tl_query__scratch(c, nu, sizeof *rows_u), total = 0, max_u = 0;
    for (uint32_t i = 0; i < e->nq; i++) {
        const qpart *q = &e->qp[i];
        for (uint32_t u = q->u0; u <= q->u1; u++)
            rows_u[u] += q->off[u - q->u0 + 1] - q->off[u - q->u0];
    }
    for (uint32_t u = 0; u < nu; u++) {
        total += rows_u[u];
        max_u = rows_u[u] > max_u ? rows_u[u] : max_u;
    }
    uint64_t bits_max = TL_Q_BITS_MAX, flat_max = TL_Q_FLAT_LAST;
#ifdef TL_TESTING
    if (tl_query__test_flags & TL_QT_NO_BITS) bits_max = 0;
    if (tl_query__test_flags & TL_QT_NO_FLAT) flat_max = 0;
#endif
    /* Plain event counts are one addition per unit and part: not worth a thread. */
    uint32_t nw = m == TL_QM_EVENTS && !e->bd ? 1 : tl_query__threads(total, nu);
    worker *ws = tl_arena_calloc(c->a, nw * sizeof *ws);
    size_t words = (size_t)c->n_dids / 64 + 1;
    bool use_bits = distinct && W == 1 && (uint64_t)words * ns * 8 <= bits_max;
    /* Windows: one bitset per unit if they fit, and ORing each window's stays cheap. */
    bool per_unit = distinct && W > 1 && (uint64_t)words * ns * nu * 8 <= bits_max * 2 &&
                    (uint64_t)words * ns * W * pl->nb <= TL_Q_WINDOW_OPS;
    uint64_t *ubits = per_unit ? tl_query__scratch(c, words * ns * nu, sizeof *ubits) : NULL;
    uint64_t acc = 0;
    uint32_t u = 0;
    for (uint32_t k = 0; k < nw; k++) {
        worker *w = &ws[k];
        w->e = e;
        w->ua = u;
        /* rows up to the k+1-th share of the total */
        uint64_t goal = total * (k + 1) / nw;
        while (u < nu && (k == nw - 1 || acc + rows_u[u] <= goal || u == w->ua))
            acc += rows_u[u++];
        w->ub = u;
        w->uw = W > 1 && !per_unit ? (w->ua >= W - 1 ? w->ua - (W - 1) : 0) : w->ua;
        w->act = tl_arena_alloc(c->a, (e->nq ? e->nq : 1) * sizeof *w->act);
        if (!distinct) continue;
        if (!per_unit) w->diff = tl_query__scratch(c, ((size_t)nu + 1) * ns, sizeof *w->diff);
        if (per_unit) {
            w->per_unit = true;
            w->words = words;
            w->bits = ubits;
        } else if (use_bits) {
            w->words = words;
            w->bits = tl_query__scratch(c, words * ns, sizeof *w->bits);
            w->dirty = tl_query__scratch(c, max_u + 1, sizeof *w->dirty);
        } else if ((uint64_t)c->n_dids * ns <= flat_max) {
            w->last = tl_query__scratch(c, (size_t)c->n_dids * ns, sizeof *w->last);
        }
    }
    for (uint32_t k = 1; k < nw; k++) {
        ws[k].started = pthread_create(&ws[k].th, NULL, sweep, &ws[k]) == 0;
        if (!ws[k].started) sweep(&ws[k]); /* no thread: do its share here */
    }
    sweep(&ws[0]);
    for (uint32_t k = 1; k < nw; k++)
        if (ws[k].started) pthread_join(ws[k].th, NULL);
    if (per_unit) {
        count_windows(e, ubits, words);
    } else if (distinct) {
        /* Sum the workers' differences, then prefix sums give the counts. */
        int64_t *d = ws[0].diff;
        for (uint32_t k = 1; k < nw; k++)
            for (size_t i = 0; i < ((size_t)nu + 1) * ns; i++)
                d[i] += ws[k].diff[i];
        for (uint32_t s = 0; s < ns; s++) {
            int64_t run = 0;
            for (uint32_t x = 0; x < nu; x++) {
                run += d[(size_t)x * ns + s];
                e->cnt[(size_t)x * ns + s] = (uint64_t)run;
            }
        }
    }
    for (uint32_t k = 0; k < nw; k++) {
        free(ws[k].lh_key);
        free(ws[k].lh_val);
    }
}

int tl_query__trends(tl_qctx *c, const tl_qreq *req, const tl_qplan *pl, tl_qresult *res,
                     tl_err *err)
{
    eng e;
    memset(&e, 0, sizeof e);
    e.c = c;
    e.req = req;
    e.pl = pl;
    e.scan_lo = pl->U[0];
    e.scan_hi = pl->U[pl->nu];
    e.bd = req->has_bd;
    e.filtered = req->n_preds > 0 || c->any_erased;
    int rc = 0;
    size_t np = c->sn ? tl_snap_n_parts(c->sn) : 0;
    bool never = tl_query__compile(c, (tl_qreq *)req);
    if (e.bd) tl_query__prop_resolve(c, (tl_qprop *)&req->bd);
    if (req->metric == TL_QM_SUM || req->metric == TL_QM_AVG)
        tl_query__prop_resolve(c, (tl_qprop *)&req->mprop);
    if (never) np = 0;

    /* Stage 1. */
    rc = prep_all(&e, np, err);
    if (rc) goto done;
    qsort(e.qp, e.nq, sizeof *e.qp, qpart_cmp);

    /* Stage 2. */
    e.nslot = 1;
    if (e.bd) {
        e.bmap = tl_query__scratch_sparse(c, (size_t)c->dict_n + 1, sizeof *e.bmap);
        breakdown_values(&e);
    }

    /* Stage 3. */
    uint32_t ns = e.nslot, nu = pl->nu;
    int m = req->metric;
    e.cnt = tl_query__scratch(c, (size_t)nu * ns, sizeof *e.cnt);
    if (m == TL_QM_SUM || m == TL_QM_AVG)
        e.sum = tl_query__scratch(c, (size_t)nu * ns, sizeof *e.sum);
    if (ns && e.nq) accumulate(&e);

    /* Values per bucket. */
    res->nslot = ns;
    res->slots = e.bd ? e.slots : NULL;
    res->values = tl_arena_alloc(c->a, ((size_t)pl->nb * ns + 1) * sizeof *res->values);
    for (uint32_t b = 0; b < pl->nb; b++) {
        size_t at = (size_t)pl->b_unit[b] * ns;
        for (uint32_t s = 0; s < ns; s++) {
            double v;
            if (m == TL_QM_SUM)
                v = e.sum[at + s];
            else if (m == TL_QM_AVG)
                v = e.cnt[at + s] ? e.sum[at + s] / (double)e.cnt[at + s] : 0;
            else
                v = (double)e.cnt[at + s];
            res->values[(size_t)b * ns + s] = v;
        }
    }
done:
    eng_fini(&e);
    return rc;
}
