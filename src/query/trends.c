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
 *     column. Filters (and erased persons) are evaluated as one pass per filter over the
 *     candidate rows into keep[]; the kept rows are then listed per unit in perm[]. An
 *     unsorted (open) part is counting-sorted by unit into perm[] the same way. So every part
 *     ends as "rows of unit u" = off[u - u0] .. off[u - u0 + 1], direct or through perm.
 *  2. With a breakdown, count rows per breakdown value, keep the TL_Q_MAX_BREAKDOWN values
 *     with the most rows (ties: value order) and map the rest to "$other"; then renumber the
 *     value map to output slots, so the accumulation reads one array per row.
 *  3. Sweep units in increasing order, visiting every part active in the unit. Counting and
 *     sums just add. Distinct persons rely on the order: last[k] holds the last unit in which
 *     key k (a person, or a person and breakdown slot) was counted, so a key is new in unit u
 *     iff last[k] != u; nothing is ever cleared. For a rolling window of W units (wau/mau),
 *     a key seen in unit u after last being seen in unit l adds coverage to the windows
 *     ending in [max(u, l + W), u + W): a +1/-1 pair in a difference array whose prefix sums
 *     give the exact distinct count of every window, in O(rows + units) in all.
 *
 * Parallel scans can be added without changing the shape: stage 1 is per part (the filter
 * memos would become per thread), events/sums are additive across any split of the parts,
 * and the distinct sweep splits by unit ranges with private last[] arrays (a range starting
 * at u warms up from u - W + 1 and only records coverage from u). */
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"

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
    /* accumulators, [unit * nslot + slot] */
    uint64_t *cnt;
    double *sum;
    int64_t *diff;
    /* distinct state */
    uint32_t *last; /* flat [person * nslot + slot], or the hash below */
    uint64_t *lh_key;
    uint32_t *lh_val;
    uint32_t lh_mask, lh_n;
} eng;

/* ---- small helpers ---- */

static uint32_t lower_bound64(const int64_t *a, uint32_t n, int64_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

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

static int prep_part(eng *e, size_t part, uint8_t *keep, uint32_t *ub, tl_err *err)
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
    q.off = tl_arena_alloc(c->a, (span + 1) * sizeof *q.off);
    if (in.sorted) {
        for (uint32_t j = 0; j <= span; j++)
            q.off[j] = lower_bound64(ts, n, U[q.u0 + j]);
        lo = q.off[0];
        hi = q.off[span];
        if (lo == hi) return 0;
    }
    if (e->filtered || !in.sorted) {
        if (in.sorted) {
            memset(keep + lo, 1, hi - lo);
        } else {
            int64_t a = e->scan_lo, b = e->scan_hi;
            for (uint32_t r = 0; r < n; r++)
                keep[r] = (uint8_t)(ts[r] >= a && ts[r] < b);
        }
        for (uint32_t i = 0; i < e->req->n_preds; i++) {
            rc = tl_query__filter_part(c, &e->req->preds[i], part, keep, lo, hi, err);
            if (rc) return rc;
        }
        if (c->any_erased) {
            const uint32_t *did;
            rc = tl_snap_col_u32(c->sn, part, TL_COL_DID, &did);
            if (rc) return tl_err_set(err, rc, "store: did column: %s", tl_strerror(rc));
            const uint32_t *persons = c->persons, nd = c->n_dids;
            for (uint32_t r = lo; r < hi; r++)
                keep[r] &= (uint8_t)(did[r] < nd && persons[did[r]] < nd);
        }
        q.perm = tl_arena_alloc(c->a, (size_t)(hi - lo) * sizeof *q.perm);
        uint32_t k = 0;
        if (in.sorted) {
            for (uint32_t j = 0; j < span; j++) {
                uint32_t a = q.off[j], b = q.off[j + 1];
                q.off[j] = k;
                for (uint32_t r = a; r < b; r++) {
                    q.perm[k] = r;
                    k += keep[r];
                }
            }
            q.off[span] = k;
        } else {
            /* Counting sort by unit. */
            memset(q.off, 0, (span + 1) * sizeof *q.off);
            for (uint32_t r = 0; r < n; r++) {
                if (!keep[r]) continue;
                uint32_t u = span == 1 ? 0 : unit_in(U, q.u0, q.u1 + 1, ts[r]) - q.u0;
                ub[r] = u;
                q.off[u + 1]++;
            }
            for (uint32_t j = 0; j < span; j++)
                q.off[j + 1] += q.off[j];
            uint32_t *cur = tl_arena_alloc(c->a, span * sizeof *cur);
            memcpy(cur, q.off, span * sizeof *cur);
            for (uint32_t r = 0; r < n; r++)
                if (keep[r]) q.perm[cur[ub[r]]++] = r;
            k = q.off[span];
        }
        if (!k) return 0;
    }
    int m = e->req->metric;
    if (m == TL_QM_PERSONS || m == TL_QM_WAU || m == TL_QM_MAU) {
        rc = tl_snap_col_u32(c->sn, part, TL_COL_DID, &q.did);
        if (rc) return tl_err_set(err, rc, "store: did column: %s", tl_strerror(rc));
    }
    if (e->bd) {
        rc = tl_query__prop_col(c, part, &e->req->bd, &q.bcol, &q.bp, &q.bpresent, err);
        if (rc) return rc;
    }
    if (m == TL_QM_SUM || m == TL_QM_AVG) {
        rc = tl_query__prop_col(c, part, &e->req->mprop, &q.vcol, &q.vp, &q.vpresent, err);
        if (rc) return rc;
    }
    e->qp[e->nq++] = q;
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

/* The breakdown value (stage 2) or slot (stage 3, after renumbering) of row r. */
static inline uint32_t bv_of(eng *e, const qpart *q, uint32_t r, bool assign)
{
    uint32_t id = 0;
    if (q->bcol) {
        id = q->bcol[r];
    } else if (q->bpresent) {
        uint8_t t = q->bp.type[r];
        if (t == TL_PV_NUM) {
            double x = q->bp.num[r];
            uint32_t *v = hmap_slot(&e->nh_key, &e->nh_val, &e->nh_mask, &e->nh_n, num_key(x));
            if (!*v && assign) *v = bv_new(e, TL_QB_NUM, x == 0 ? 0.0 : x, 0) + 1;
            return *v - 1;
        }
        if (t == TL_PV_STR) id = q->bp.str[r];
    }
    uint32_t m = e->bmap[id];
    if (!m && assign) m = e->bmap[id] = bv_new(e, id ? TL_QB_STR : TL_QB_NULL, 0, id) + 1;
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
        for (uint32_t j = a; j < b; j++) {
            uint32_t v = bv_of(e, q, q->perm ? q->perm[j] : j, true); /* may grow bv_cnt */
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

#define ROW(q, j) ((q)->perm ? (q)->perm[j] : (j))

static void k_events(eng *e, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    if (!e->bd) {
        e->cnt[u] += hi - lo;
        return;
    }
    uint64_t *cnt = e->cnt + (size_t)u * e->nslot;
    for (uint32_t j = lo; j < hi; j++)
        cnt[bv_of(e, q, ROW(q, j), false)]++;
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

static void k_sum(eng *e, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    if (!q->vpresent) return;
    size_t base = (size_t)u * e->nslot;
    for (uint32_t j = lo; j < hi; j++) {
        uint32_t r = ROW(q, j);
        double x;
        if (!value_of(e->c, q, r, &x)) continue;
        uint32_t s = e->bd ? bv_of(e, q, r, false) : 0;
        e->sum[base + s] += x;
        e->cnt[base + s]++;
    }
}

/* Distinct persons per unit without breakdown (DAU and friends): the hot loop. */
static void k_persons1(eng *e, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    const uint32_t *did = q->did, *persons = e->c->persons, *perm = q->perm;
    const uint32_t nd = e->c->n_dids, tag = u + 1;
    uint32_t *last = e->last;
    uint64_t n = 0;
    if (perm) {
        for (uint32_t j = lo; j < hi; j++) {
            uint32_t d = did[perm[j]];
            uint32_t p = d < nd ? persons[d] : UINT32_MAX;
            if (p >= nd) continue;
            n += last[p] != tag;
            last[p] = tag;
        }
    } else {
        for (uint32_t j = lo; j < hi; j++) {
            uint32_t d = did[j];
            uint32_t p = d < nd ? persons[d] : UINT32_MAX;
            if (p >= nd) continue;
            n += last[p] != tag;
            last[p] = tag;
        }
    }
    e->cnt[u] += n;
}

static void k_distinct(eng *e, const qpart *q, uint32_t u, uint32_t lo, uint32_t hi)
{
    const uint32_t *did = q->did, *persons = e->c->persons;
    const uint32_t nd = e->c->n_dids, tag = u + 1, W = e->pl->window, ns = e->nslot;
    for (uint32_t j = lo; j < hi; j++) {
        uint32_t r = ROW(q, j), d = did[r];
        uint32_t p = d < nd ? persons[d] : UINT32_MAX;
        if (p >= nd) continue;
        uint32_t s = e->bd ? bv_of(e, q, r, false) : 0;
        uint32_t *lp = e->last ? &e->last[(size_t)p * ns + s]
                               : hmap_slot(&e->lh_key, &e->lh_val, &e->lh_mask, &e->lh_n,
                                           (uint64_t)p * ns + s + 1);
        uint32_t l = *lp;
        if (l == tag) continue;
        *lp = tag;
        if (W == 1) {
            e->cnt[(size_t)u * ns + s]++;
        } else {
            uint32_t from = l && l - 1 + W > u ? l - 1 + W : u;
            e->diff[(size_t)from * ns + s]++;
            e->diff[(size_t)(u + W) * ns + s]--;
        }
    }
}

static void sweep(eng *e)
{
    uint32_t *act = tl_arena_alloc(e->c->a, (e->nq ? e->nq : 1) * sizeof *act);
    uint32_t nact = 0, next = 0, m = (uint32_t)e->req->metric;
    bool fast = !e->bd && e->pl->window == 1 && e->last;
    for (uint32_t u = 0; u < e->pl->nu; u++) {
        while (next < e->nq && e->qp[next].u0 <= u)
            act[nact++] = next++;
        for (uint32_t i = 0; i < nact;) {
            const qpart *q = &e->qp[act[i]];
            uint32_t lo = q->off[u - q->u0], hi = q->off[u - q->u0 + 1];
            if (lo < hi) {
                switch (m) {
                case TL_QM_EVENTS: k_events(e, q, u, lo, hi); break;
                case TL_QM_SUM:
                case TL_QM_AVG: k_sum(e, q, u, lo, hi); break;
                default:
                    if (fast)
                        k_persons1(e, q, u, lo, hi);
                    else
                        k_distinct(e, q, u, lo, hi);
                    break;
                }
            }
            if (q->u1 <= u)
                act[i] = act[--nact];
            else
                i++;
        }
    }
}

/* ---- the query ---- */

static void eng_fini(eng *e)
{
    free(e->bv);
    free(e->bv_cnt);
    free(e->nh_key);
    free(e->nh_val);
    free(e->lh_key);
    free(e->lh_val);
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
    uint32_t max_rows = 0;
    for (size_t i = 0; i < np; i++) {
        tl_part_info in = tl_snap_part_info(c->sn, i);
        if (in.n_rows > max_rows && in.max_ts_ms >= e.scan_lo && in.min_ts_ms < e.scan_hi)
            max_rows = in.n_rows;
    }
    e.qp = tl_arena_alloc(c->a, (np ? np : 1) * sizeof *e.qp);
    if (max_rows) {
        uint8_t *keep = tl_query__scratch(c, max_rows, 1);
        uint32_t *ub = tl_query__scratch(c, max_rows, sizeof *ub);
        for (size_t i = 0; i < np && !rc; i++)
            rc = prep_part(&e, i, keep, ub, err);
        if (rc) goto done;
    }
    qsort(e.qp, e.nq, sizeof *e.qp, qpart_cmp);

    /* Stage 2. */
    e.nslot = 1;
    if (e.bd) {
        e.bmap = tl_query__scratch(c, (size_t)c->dict_n + 1, sizeof *e.bmap);
        breakdown_values(&e);
    }

    /* Stage 3. */
    uint32_t ns = e.nslot, nu = pl->nu, W = pl->window;
    int m = req->metric;
    if (ns) {
        bool distinct = m == TL_QM_PERSONS || m == TL_QM_WAU || m == TL_QM_MAU;
        if (W > 1)
            e.diff = tl_query__scratch(c, ((size_t)nu + W + 1) * ns, sizeof *e.diff);
        else
            e.cnt = tl_query__scratch(c, (size_t)nu * ns, sizeof *e.cnt);
        if (m == TL_QM_SUM || m == TL_QM_AVG)
            e.sum = tl_query__scratch(c, (size_t)nu * ns, sizeof *e.sum);
        if (distinct && e.nq) {
            if ((uint64_t)c->n_dids * ns <= TL_Q_FLAT_LAST)
                e.last = tl_query__scratch(c, (size_t)c->n_dids * ns, sizeof *e.last);
        }
        sweep(&e);
    }

    /* Values per bucket. */
    res->nslot = ns;
    res->slots = e.bd ? e.slots : NULL;
    res->values = tl_arena_alloc(c->a, ((size_t)pl->nb * ns + 1) * sizeof *res->values);
    if (W > 1 && ns) {
        for (uint32_t s = 0; s < ns; s++) {
            int64_t run = 0;
            for (uint32_t u = 0; u < nu; u++) {
                run += e.diff[(size_t)u * ns + s];
                e.diff[(size_t)u * ns + s] = run;
            }
        }
    }
    for (uint32_t b = 0; b < pl->nb; b++) {
        size_t at = (size_t)pl->b_unit[b] * ns;
        for (uint32_t s = 0; s < ns; s++) {
            double v;
            if (W > 1)
                v = (double)e.diff[at + s];
            else if (m == TL_QM_SUM)
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
