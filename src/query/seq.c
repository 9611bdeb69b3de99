/* Per-person event sequences: the shared first stage of funnels, retention, sessions and
 * paths (contract in query_int.h).
 *
 * One pass over the parts that meet the range: the rows in range that pass the top-level
 * filters (and whose person is not erased) form a selection vector, as in trends; each
 * condition narrows its own copy of it with the same filter code, and its survivors set
 * their bit in a per-row mask (a merge walk, both lists being in row order). Rows with a
 * mask (or every row, with keep_all) are emitted as (person, event); when every condition is
 * just an event name, one pass over the event column with a short table replaces the filter
 * passes. Then a radix sort on the person number groups them, and each person's events,
 * which arrive almost in time order because parts are visited by time, are put in order with
 * an insertion sort (qsort past a small size when they are not already in order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

#include "query/query_int.h"
#include "util/bigmem.h"

int tl_query__cond_parse(tl_qctx *c, const tl_json *where, const tl_json *event, const char *field,
                         tl_qcond *out, tl_err *err)
{
    tl_qreq tmp;
    memset(&tmp, 0, sizeof tmp);
    memset(out, 0, sizeof *out);
    tl_err e2 = {0};
    int rc = tl_query__where_parse(where, event, c->a, &tmp, &e2);
    if (rc) return tl_err_set(err, rc, "%s.%s", field, e2.msg);
    out->preds = tmp.preds;
    out->n_preds = tmp.n_preds;
    return 0;
}

void tl_query__cond_compile(tl_qctx *c, tl_qcond *cond)
{
    tl_qreq tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.preds = cond->preds;
    tmp.n_preds = cond->n_preds;
    cond->never = c->sn ? tl_query__compile(c, &tmp) : true;
}

/* Growing arrays of the gathered rows. */
typedef struct gather {
    uint32_t *who;
    tl_qseq_ev *ev;
    size_t n, cap;
    /* numeric aux values: an open-addressing map from bits to index */
    double *nums;
    uint32_t n_nums, cap_nums;
    uint64_t *nkeys;
    uint32_t *nidx;
    uint32_t nmask;
    /* per-part scratch, reused from part to part (large allocations are fresh pages) */
    uint32_t *sel, *tmp, *mask;
    size_t scap;
} gather;

static void gather_free(gather *g)
{
    tl_big_free(g->who, g->cap * sizeof *g->who);
    tl_big_free(g->ev, g->cap * sizeof *g->ev);
    free(g->nums);
    free(g->nkeys);
    free(g->nidx);
    tl_big_free(g->sel, g->scap * sizeof *g->sel);
    tl_big_free(g->tmp, g->scap * sizeof *g->tmp);
    tl_big_free(g->mask, g->scap * sizeof *g->mask);
}

static uint32_t num_id(gather *g, double x)
{
    uint64_t bits;
    if (x == 0) x = 0; /* -0 and 0 are one value */
    memcpy(&bits, &x, 8);
    if (g->n_nums * 2 >= g->nmask) {
        uint32_t cap = g->nmask ? (g->nmask + 1) * 2 : 64;
        uint64_t *k = tl_xcalloc(cap, sizeof *k);
        uint32_t *v = tl_xcalloc(cap, sizeof *v);
        for (uint32_t i = 0; g->nmask && i <= g->nmask; i++) {
            if (!g->nidx[i]) continue;
            uint32_t j = (uint32_t)(g->nkeys[i] * 0x9E3779B97F4A7C15ull >> 40) & (cap - 1);
            while (v[j])
                j = (j + 1) & (cap - 1);
            k[j] = g->nkeys[i];
            v[j] = g->nidx[i];
        }
        free(g->nkeys);
        free(g->nidx);
        g->nkeys = k;
        g->nidx = v;
        g->nmask = cap - 1;
    }
    uint32_t j = (uint32_t)(bits * 0x9E3779B97F4A7C15ull >> 40) & g->nmask;
    while (g->nidx[j]) {
        if (g->nkeys[j] == bits) return TL_QSEQ_NUM | (g->nidx[j] - 1);
        j = (j + 1) & g->nmask;
    }
    if (g->n_nums == g->cap_nums) {
        g->cap_nums = g->cap_nums ? g->cap_nums * 2 : 64;
        g->nums = tl_xrealloc(g->nums, g->cap_nums * sizeof *g->nums);
    }
    g->nums[g->n_nums] = x;
    g->nkeys[j] = bits;
    g->nidx[j] = ++g->n_nums;
    return TL_QSEQ_NUM | (g->n_nums - 1);
}

typedef struct auxcol {
    const uint32_t *col;
    tl_prop_col pc;
    bool present;
} auxcol;

static inline uint32_t aux_at(gather *g, const auxcol *x, uint32_t r)
{
    if (!x->present) return 0;
    if (x->col) return x->col[r];
    switch (x->pc.type[r]) {
    case TL_PV_STR: return x->pc.str[r];
    case TL_PV_NUM: return num_id(g, x->pc.num[r]);
    default: return 0;
    }
}

/* The rows in [lo, hi) of the events fid[0..nf) from the part's event index, ascending, into
 * sel (*nc of them), each tagged in its top bits with the index f of its event (row numbers
 * are below 2^ROW_BITS; tmp and u are scratch of the part's size). False when the part has no
 * index or too many rows for the tags. */
#define ROW_BITS 26
#define ROW_MASK ((1u << ROW_BITS) - 1)
static bool event_rows(tl_qctx *c, size_t part, const uint32_t *fid, uint32_t nf, uint32_t lo,
                       uint32_t hi, uint32_t *sel, uint32_t *tmp, uint32_t *u, uint32_t *nc)
{
    _Static_assert(TL_Q_MAX_CONDS <= 1u << (32 - ROW_BITS), "event tags fit above the row");
    if (tl_snap_part_info(c->sn, part).n_rows > ROW_MASK) return false;
    uint32_t n = 0;
    for (uint32_t f = 0; f < nf; f++) {
        const uint32_t *rows;
        uint32_t nr;
        if (tl_snap_event_rows(c->sn, part, fid[f], &rows, &nr)) return false;
        uint32_t a0 = tl_query__lower_bound32(rows, nr, lo),
                 a1 = tl_query__lower_bound32(rows, nr, hi), w = a1 - a0;
        const uint32_t tag = f << ROW_BITS;
        uint32_t *dst = f ? tmp : sel;
        for (uint32_t j = 0; j < w; j++)
            dst[j] = rows[a0 + j] | tag;
        if (!f) {
            n = w;
            continue;
        }
        uint32_t i = 0, j = 0, m = 0; /* union of two ascending lists (disjoint) */
        while (i < n || j < w)
            u[m++] = j == w || (i < n && (sel[i] & ROW_MASK) < (tmp[j] & ROW_MASK)) ? sel[i++]
                                                                                    : tmp[j++];
        memcpy(sel, u, (size_t)m * sizeof *sel);
        n = m;
    }
    *nc = n;
    return true;
}

/* The rows of part `part` the spec keeps: g->sel[0..*k) their row numbers (ascending) and
 * g->mask[j] the conditions row g->sel[j] matches (never 0 unless keep_all). Rows outside
 * [from, to_excl), of unknown dids or of erased persons are left out. *ts and *did are the
 * part's columns. */
static int select_part(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, size_t part,
                       gather *g, const int64_t **ts_out, const uint32_t **did_out, uint32_t *k_out,
                       tl_err *err)
{
    *k_out = 0;
    tl_part_info in = tl_snap_part_info(c->sn, part);
    if (!in.n_rows || in.max_ts_ms < sp->from || in.min_ts_ms >= sp->to_excl) return 0;
    const int64_t *ts;
    const uint32_t *did;
    int rc = tl_snap_col_ts(c->sn, part, &ts);
    if (!rc) rc = tl_snap_col_u32(c->sn, part, TL_COL_DID, &did);
    if (rc) return tl_err_set(err, rc, "store: %s", tl_strerror(rc));
    *ts_out = ts;
    *did_out = did;
    uint32_t n = in.n_rows, lo = 0, hi = n, k = 0;
    if (g->scap < n) {
        tl_big_free(g->sel, g->scap * sizeof *g->sel);
        tl_big_free(g->tmp, g->scap * sizeof *g->tmp);
        tl_big_free(g->mask, g->scap * sizeof *g->mask);
        g->scap = n;
        g->sel = tl_big_alloc(n * sizeof *g->sel);
        g->tmp = tl_big_alloc(n * sizeof *g->tmp);
        g->mask = tl_big_alloc(n * sizeof *g->mask);
    }
    uint32_t *sel = g->sel, *tmp = g->tmp, *mask = g->mask;
    if (in.sorted) {
        lo = tl_query__lower_bound64(ts, n, sp->from);
        hi = tl_query__lower_bound64(ts, n, sp->to_excl);
    }
    /* The common case: every condition is "event = E" (or nothing): one pass over the event
     * column with a short table instead of one filter pass per condition. */
    uint32_t fid[TL_Q_MAX_CONDS], fmask[TL_Q_MAX_CONDS], nf = 0, all_bits = 0;
    bool fast = true;
    for (uint32_t ci = 0; ci < sp->n_conds && fast; ci++) {
        const tl_qcond *cd = &sp->conds[ci];
        if (cd->never) continue;
        if (!cd->n_preds) {
            all_bits |= 1u << ci;
        } else if (cd->n_preds == 1 && cd->preds[0].prop.col == TL_COL_EVENT && !cd->preds[0].neg &&
                   cd->preds[0].smode == TL_QS_ID1) {
            uint32_t f = 0;
            while (f < nf && fid[f] != cd->preds[0].sid1)
                f++;
            if (f == nf) {
                fid[nf] = cd->preds[0].sid1;
                fmask[nf++] = 0;
            }
            fmask[f] |= 1u << ci;
        } else {
            fast = false;
        }
    }
    const uint32_t *persons = c->persons, nd = c->n_dids;
    const uint32_t *evc = NULL;
    if (fast && nf) {
        rc = tl_snap_col_u32(c->sn, part, TL_COL_EVENT, &evc);
        if (rc) return tl_err_set(err, rc, "store: event column: %s", tl_strerror(rc));
    }
    if (fast && !req->n_preds && !sp->keep_all) {
        /* Straight from the columns: only rows of the conditions' events are looked at
         * further (time, person). */
        uint32_t nc = 0;
        bool tagged = false;
        if (all_bits) {
            for (uint32_t r = lo; r < hi; r++)
                sel[nc++] = r;
        } else if (in.sorted && event_rows(c, part, fid, nf, lo, hi, sel, tmp, mask, &nc)) {
            tagged = true; /* the rows of the events from the part's event index */
        } else {
            /* The rows of the events, branch-free (up to four names per pass), then the
             * other tests on those rows only. */
            for (uint32_t f0 = 0; f0 < nf; f0 += 4) {
                uint32_t a = fid[f0], b = f0 + 1 < nf ? fid[f0 + 1] : a,
                         cc = f0 + 2 < nf ? fid[f0 + 2] : a, d = f0 + 3 < nf ? fid[f0 + 3] : a;
                uint32_t *dst = f0 ? tmp : sel, w = 0;
                for (uint32_t r = lo; r < hi; r++) {
                    uint32_t e = evc[r];
                    dst[w] = r;
                    w += (e == a) | (e == b) | (e == cc) | (e == d);
                }
                if (!f0) {
                    nc = w;
                } else { /* union of two ascending lists (disjoint: one event a row) */
                    uint32_t *u = mask, i = 0, j = 0, n2 = 0;
                    while (i < nc || j < w)
                        u[n2++] = j == w || (i < nc && sel[i] < tmp[j]) ? sel[i++] : tmp[j++];
                    memcpy(sel, u, n2 * sizeof *sel);
                    nc = n2;
                }
            }
        }
        for (uint32_t j = 0; j < nc && tagged; j++) {
            uint32_t r = sel[j] & ROW_MASK, m = fmask[sel[j] >> ROW_BITS], dr = did[r];
            if (ts[r] < sp->from || ts[r] >= sp->to_excl || dr >= nd || persons[dr] >= nd) continue;
            sel[k] = r;
            mask[k++] = m;
        }
        for (uint32_t j = 0; j < nc && !tagged; j++) {
            uint32_t r = sel[j], m = all_bits;
            if (nf) {
                uint32_t e = evc[r];
                for (uint32_t f = 0; f < nf; f++)
                    m |= e == fid[f] ? fmask[f] : 0;
            }
            uint32_t dr = did[r];
            if (ts[r] < sp->from || ts[r] >= sp->to_excl || dr >= nd || persons[dr] >= nd) continue;
            sel[k] = r;
            mask[k++] = m;
        }
        *k_out = k;
        return 0;
    }
    for (uint32_t r = lo; r < hi; r++) {
        sel[k] = r;
        k += ts[r] >= sp->from && ts[r] < sp->to_excl && did[r] < nd && persons[did[r]] < nd;
    }
    for (uint32_t i = 0; k && i < req->n_preds; i++) {
        rc = tl_query__filter_sel(c, &req->preds[i], part, sel, 0, k, sel, &k, err);
        if (rc) return rc;
    }
    if (!k) return 0;
    if (fast) {
        for (uint32_t j = 0; j < k; j++) {
            uint32_t m = all_bits;
            if (nf) {
                uint32_t e = evc[sel[j]];
                for (uint32_t f = 0; f < nf; f++)
                    m |= e == fid[f] ? fmask[f] : 0;
            }
            mask[j] = m;
        }
    } else {
        memset(mask, 0, (size_t)k * sizeof *mask);
        for (uint32_t ci = 0; ci < sp->n_conds; ci++) {
            const tl_qcond *cd = &sp->conds[ci];
            if (cd->never) continue;
            uint32_t bit = 1u << ci;
            if (!cd->n_preds) {
                for (uint32_t j = 0; j < k; j++)
                    mask[j] |= bit;
                continue;
            }
            uint32_t m = 0;
            rc = tl_query__filter_sel(c, &cd->preds[0], part, sel, 0, k, tmp, &m, err);
            for (uint32_t i = 1; !rc && m && i < cd->n_preds; i++)
                rc = tl_query__filter_sel(c, &cd->preds[i], part, tmp, 0, m, tmp, &m, err);
            if (rc) return rc;
            for (uint32_t j = 0, t = 0; t < m; j++)
                if (sel[j] == tmp[t]) {
                    mask[j] |= bit;
                    t++;
                }
        }
    }
    if (!sp->keep_all) { /* keep the rows some condition matched */
        uint32_t w = 0;
        for (uint32_t j = 0; j < k; j++) {
            sel[w] = sel[j];
            mask[w] = mask[j];
            w += mask[j] != 0;
        }
        k = w;
    }
    *k_out = k;
    return 0;
}

static void gather_reserve(gather *g, size_t more)
{
    if (g->n + more <= g->cap) return;
    size_t cap = g->cap ? g->cap : 4096;
    while (cap < g->n + more)
        cap *= 2;
    g->who = tl_big_realloc(g->who, g->cap * sizeof *g->who, cap * sizeof *g->who,
                            g->n * sizeof *g->who);
    g->ev =
        tl_big_realloc(g->ev, g->cap * sizeof *g->ev, cap * sizeof *g->ev, g->n * sizeof *g->ev);
    g->cap = cap;
}

/* Appends the kept rows of part `part` to g as (person, event). */
static int gather_part(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, size_t part,
                       gather *g, tl_err *err)
{
    const int64_t *ts;
    const uint32_t *did;
    uint32_t k;
    int rc = select_part(c, req, sp, part, g, &ts, &did, &k, err);
    if (rc || !k) return rc;
    auxcol ax[2];
    memset(ax, 0, sizeof ax);
    for (int i = 0; i < 2; i++)
        if (sp->aux[i]) {
            rc =
                tl_query__prop_col(c, part, sp->aux[i], &ax[i].col, &ax[i].pc, &ax[i].present, err);
            if (rc) return rc;
        }
    gather_reserve(g, k);
    const uint32_t *sel = g->sel, *mask = g->mask, *persons = c->persons;
    uint32_t *W = g->who + g->n;
    tl_qseq_ev *E = g->ev + g->n;
    if (!ax[0].present && !ax[1].present) {
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = sel[j];
            W[j] = persons[did[r]];
            E[j] = (tl_qseq_ev){ts[r], mask[j], {0, 0}};
        }
    } else {
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = sel[j];
            W[j] = persons[did[r]];
            E[j] = (tl_qseq_ev){ts[r], mask[j], {aux_at(g, &ax[0], r), aux_at(g, &ax[1], r)}};
        }
    }
    g->n += k;
    return 0;
}

static inline uint32_t low_bit(uint32_t m)
{
    return m ? (uint32_t)__builtin_ctz(m) : 32;
}

/* Event order: time, lowest condition, mask, then the aux values in answer order (values,
 * not ids, so the order does not depend on the order strings were first stored in). */
static inline int ev_cmp(tl_qctx *c, const tl_qseq *sq, const tl_qseq_ev *a, const tl_qseq_ev *b)
{
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    uint32_t la = low_bit(a->mask), lb = low_bit(b->mask);
    if (la != lb) return la < lb ? -1 : 1;
    if (a->mask != b->mask) return a->mask < b->mask ? -1 : 1;
    int r = tl_query__seq_aux_cmp(c, sq, a->aux[0], b->aux[0]);
    return r ? r : tl_query__seq_aux_cmp(c, sq, a->aux[1], b->aux[1]);
}

typedef struct sortctx {
    tl_qctx *c;
    const tl_qseq *sq;
} sortctx;

static int ev_qcmp(const void *a, const void *b, void *arg)
{
    const sortctx *x = arg;
    return ev_cmp(x->c, x->sq, a, b);
}

static void sort_events(tl_qctx *c, const tl_qseq *sq, tl_qseq_ev *e, size_t n)
{
    size_t i = 1;
    while (i < n && ev_cmp(c, sq, &e[i - 1], &e[i]) <= 0)
        i++;
    if (i >= n) return;
    if (n > 48) {
        sortctx x = {c, sq};
        qsort_r(e, n, sizeof *e, ev_qcmp, &x);
        return;
    }
    for (; i < n; i++) {
        tl_qseq_ev x = e[i];
        size_t j = i;
        while (j > 0 && ev_cmp(c, sq, &e[j - 1], &x) > 0) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

bool tl_query__seq_prepare(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp)
{
    if (tl_query__compile(c, (tl_qreq *)req)) return false;
    for (int i = 0; i < 2; i++)
        if (sp->aux[i]) tl_query__prop_resolve(c, sp->aux[i]);
    return true;
}

/* Groups the gathered events by person: an LSD radix sort on the person number, in passes of
 * up to 11 bits, so every pass reads and writes in streams (a direct scatter to one bucket
 * per person misses the cache on nearly every event). Stable, so each person's events keep
 * their gathered order, which is nearly time order. */
static void group_persons(tl_qctx *c, gather *g, tl_qseq *out)
{
    uint32_t nd = c->n_dids, bits = 1;
    while (bits < 32 && (1u << bits) < nd)
        bits++;
    uint32_t *who = g->who, *who2 = tl_big_alloc(g->n * sizeof *who2);
    tl_qseq_ev *ev = g->ev, *ev2 = tl_big_alloc(g->n * sizeof *ev2);
    size_t cnt[2048];
    for (uint32_t shift = 0; shift < bits; shift += 11) {
        uint32_t w = bits - shift < 11 ? bits - shift : 11, mask = (1u << w) - 1;
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < g->n; i++)
            cnt[who[i] >> shift & mask]++;
        size_t sum = 0;
        for (uint32_t b = 0; b <= mask; b++) {
            size_t x = cnt[b];
            cnt[b] = sum;
            sum += x;
        }
        for (size_t i = 0; i < g->n; i++) {
            size_t d = cnt[who[i] >> shift & mask]++;
            who2[d] = who[i];
            ev2[d] = ev[i];
        }
        uint32_t *tw = who;
        who = who2;
        who2 = tw;
        tl_qseq_ev *te = ev;
        ev = ev2;
        ev2 = te;
    }
    uint32_t np = 0;
    for (size_t i = 0; i < g->n; i++)
        np += !i || who[i] != who[i - 1];
    out->n_persons = np;
    out->person = tl_query__scratch(c, np, sizeof *out->person);
    out->off = tl_query__scratch(c, (size_t)np + 1, sizeof *out->off);
    out->ev = tl_query__scratch(c, g->n, sizeof *out->ev);
    memcpy(out->ev, ev, g->n * sizeof *ev);
    uint32_t pi = 0;
    for (size_t i = 0; i < g->n; i++)
        if (!i || who[i] != who[i - 1]) {
            out->person[pi] = who[i];
            out->off[pi++] = i;
        }
    out->off[np] = g->n;
    /* g's arrays may now be the temporaries: free whichever two are not g's originals. */
    tl_big_free(who2 == g->who ? who : who2, g->n * sizeof *who);
    tl_big_free(ev2 == g->ev ? ev : ev2, g->n * sizeof *ev);
}

int tl_query__seq_build(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qseq *out,
                        tl_err *err)
{
    memset(out, 0, sizeof *out);
    out->off = tl_query__scratch(c, 1, sizeof *out->off);
    if (!c->sn) return 0;
    if (!tl_query__seq_prepare(c, req, sp)) return 0;
    gather g;
    memset(&g, 0, sizeof g);
    int rc = 0;
    size_t np = tl_snap_n_parts(c->sn);
    for (size_t p = 0; p < np && !rc; p++)
        rc = gather_part(c, req, sp, p, &g, err);
    if (!rc && g.n) group_persons(c, &g, out);
    if (g.n_nums) {
        out->nums = tl_query__scratch(c, g.n_nums, sizeof *out->nums);
        memcpy(out->nums, g.nums, g.n_nums * sizeof *g.nums);
        out->n_nums = g.n_nums;
    }
    for (uint32_t i = 0; !rc && i < out->n_persons; i++)
        sort_events(c, out, out->ev + out->off[i], out->off[i + 1] - out->off[i]);
    gather_free(&g);
    return rc;
}

/* ---- streaming: all persons at once, in time order ---- */

typedef struct rowx {
    tl_qseq_ev ev;
    uint32_t who;
} rowx;

/* Merges the sorted runs a[lo..mid) and a[mid..hi) through tmp. */
static void merge_runs(tl_qctx *c, const tl_qseq *v, rowx *a, rowx *tmp, size_t lo, size_t mid,
                       size_t hi)
{
    size_t i = lo, j = mid, k = 0;
    while (i < mid && j < hi)
        tmp[k++] = ev_cmp(c, v, &a[j].ev, &a[i].ev) < 0 ? a[j++] : a[i++];
    while (i < mid)
        tmp[k++] = a[i++];
    memcpy(a + lo, tmp, k * sizeof *a);
}

/* Puts rows in sequence order. Parts come in time order, so rows are a few sorted runs: a
 * natural merge sort (runs found, then merged pairwise) costs a pass per doubling of the
 * runs, not a full sort. */
static void sort_runs(tl_qctx *c, const tl_qseq *view, uint32_t *who, tl_qseq_ev *ev, size_t n)
{
    size_t i = 1;
    while (i < n && ev_cmp(c, view, &ev[i - 1], &ev[i]) <= 0)
        i++;
    if (i >= n) return;
    rowx *a = tl_big_alloc(n * sizeof *a), *tmp = tl_big_alloc(n * sizeof *tmp);
    size_t *run = tl_big_alloc((n + 1) * sizeof *run), nr = 0;
    for (size_t k = 0; k < n; k++) {
        a[k].ev = ev[k];
        a[k].who = who[k];
        if (!k || ev_cmp(c, view, &a[k - 1].ev, &a[k].ev) > 0) run[nr++] = k;
    }
    run[nr] = n;
    while (nr > 1) {
        size_t w = 0;
        for (size_t r = 0; r < nr; r += 2) {
            if (r + 1 < nr) merge_runs(c, view, a, tmp, run[r], run[r + 1], run[r + 2]);
            run[w++] = run[r];
        }
        run[w] = n;
        nr = w;
    }
    for (size_t k = 0; k < n; k++) {
        ev[k] = a[k].ev;
        who[k] = a[k].who;
    }
    tl_big_free(a, n * sizeof *a);
    tl_big_free(tmp, n * sizeof *tmp);
    tl_big_free(run, (n + 1) * sizeof *run);
}

/* Hands the gathered rows of one group of parts to fn in sequence order. */
static int flush_group(tl_qctx *c, gather *g, tl_qseq_fn fn, void *ctx)
{
    if (!g->n) return 0;
    tl_qseq view;
    memset(&view, 0, sizeof view);
    view.nums = g->nums;
    sort_runs(c, &view, g->who, g->ev, g->n);
    int rc = fn(ctx, g->who, g->ev, g->n);
    g->n = 0;
    return rc;
}

int tl_query__seq_stream(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qseq_fn fn,
                         void *ctx, tl_qseq *nums, tl_err *err)
{
    memset(nums, 0, sizeof *nums);
    if (!c->sn) return 0;
    if (!tl_query__seq_prepare(c, req, sp)) return 0;
    gather g;
    memset(&g, 0, sizeof g);
    int rc = 0;
    size_t np = tl_snap_n_parts(c->sn);
    int64_t group_end = INT64_MIN;
    for (size_t p = 0; p < np && !rc; p++) {
        tl_part_info in = tl_snap_part_info(c->sn, p);
        if (!in.n_rows || in.max_ts_ms < sp->from || in.min_ts_ms >= sp->to_excl) continue;
        /* Parts come ordered by their first time: a part that starts after every row seen
         * so far begins a new group, and the rows before it are final. */
        if (in.min_ts_ms > group_end) rc = flush_group(c, &g, fn, ctx);
        if (in.max_ts_ms > group_end) group_end = in.max_ts_ms;
        if (!rc) rc = gather_part(c, req, sp, p, &g, err);
    }
    if (!rc) rc = flush_group(c, &g, fn, ctx);
    if (g.n_nums) {
        nums->nums = tl_query__scratch(c, g.n_nums, sizeof *nums->nums);
        memcpy(nums->nums, g.nums, g.n_nums * sizeof *g.nums);
        nums->n_nums = g.n_nums;
    }
    gather_free(&g);
    return rc;
}

/* ---- in parallel: order-free part visits and person buckets ---- */

void tl_query__plan_parts(tl_qctx *c, const tl_qseq_spec *sp, uint32_t max_threads, tl_qparts *pl)
{
    memset(pl, 0, sizeof *pl);
    size_t np = tl_snap_n_parts(c->sn);
    pl->idx = tl_query__scratch(c, np ? np : 1, sizeof *pl->idx);
    for (size_t p = 0; p < np; p++) {
        tl_part_info in = tl_snap_part_info(c->sn, p);
        if (!in.n_rows || in.max_ts_ms < sp->from || in.min_ts_ms >= sp->to_excl) continue;
        pl->idx[pl->n++] = p;
        pl->rows += in.n_rows;
    }
    uint32_t nt = tl_query__threads(pl->rows, pl->n);
    if (nt > max_threads) nt = max_threads;
    if (nt < 1) nt = 1;
    pl->nt = nt;
    uint64_t acc = 0;
    uint32_t w = 1;
    for (size_t i = 0; i < pl->n && w < nt; i++) {
        acc += tl_snap_part_info(c->sn, pl->idx[i]).n_rows;
        if (acc * nt >= pl->rows * w) pl->lim[w++] = i + 1;
    }
    while (w < nt)
        pl->lim[w++] = pl->n;
    pl->lim[nt] = pl->n;
}

void tl_query__split_buckets(const size_t *const *rows, uint32_t nt, uint32_t nb, uint32_t *lim)
{
    size_t total = 0, acc = 0;
    for (uint32_t k = 0; k < nb; k++)
        for (uint32_t w = 0; w < nt; w++)
            total += rows[w][k];
    uint32_t k = 0;
    for (uint32_t w = 0; w < nt; w++) {
        lim[w] = k;
        if (w == nt - 1) k = nb;
        while (k < nb && acc * nt < total * (w + 1)) {
            for (uint32_t x = 0; x < nt; x++)
                acc += rows[x][k];
            k++;
        }
    }
    lim[nt] = nb;
}

void tl_query__run_workers(void *(*job)(void *), void *arg, size_t size, uint32_t nt)
{
    pthread_t th[TL_Q_THREADS];
    bool started[TL_Q_THREADS] = {false};
    for (uint32_t w = 1; w < nt; w++)
        started[w] = pthread_create(&th[w], NULL, job, (char *)arg + w * size) == 0;
    job(arg);
    for (uint32_t w = 1; w < nt; w++) {
        if (started[w])
            pthread_join(th[w], NULL);
        else
            job((char *)arg + w * size);
    }
}

typedef struct pvisit {
    tl_qctx *c;
    const tl_qreq *req;
    const tl_qseq_spec *sp;
    const tl_qparts *pl;
    uint32_t w;
    tl_qsel_fn fn;
    void *ctx;
    int rc;
    tl_err err;
} pvisit;

static void *pvisit_run(void *arg)
{
    pvisit *v = arg;
    tl_qctx *c = v->c;
    gather g;
    memset(&g, 0, sizeof g);
    uint32_t *who = NULL;
    int64_t *t = NULL;
    size_t cap = 0;
    for (size_t i = v->pl->lim[v->w]; i < v->pl->lim[v->w + 1] && !v->rc; i++) {
        const int64_t *ts;
        const uint32_t *did;
        uint32_t k;
        v->rc = select_part(c, v->req, v->sp, v->pl->idx[i], &g, &ts, &did, &k, &v->err);
        if (v->rc || !k) continue;
        if (k > cap) {
            tl_big_free(who, cap * sizeof *who);
            tl_big_free(t, cap * sizeof *t);
            cap = k;
            who = tl_big_alloc(cap * sizeof *who);
            t = tl_big_alloc(cap * sizeof *t);
        }
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = g.sel[j];
            who[j] = c->persons[did[r]];
            t[j] = ts[r];
        }
        v->rc = v->fn(v->ctx, v->w, who, t, g.mask, k);
    }
    tl_big_free(who, cap * sizeof *who);
    tl_big_free(t, cap * sizeof *t);
    gather_free(&g);
    return NULL;
}

int tl_query__seq_parts(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qsel_fn fn,
                        void *ctx, tl_err *err)
{
    if (!c->sn || !tl_query__seq_prepare(c, req, sp)) return 0;
    tl_qparts pl;
    tl_query__plan_parts(c, sp, TL_Q_THREADS, &pl);
    pvisit v[TL_Q_THREADS];
    for (uint32_t w = 0; w < pl.nt; w++)
        v[w] = (pvisit){c, req, sp, &pl, w, fn, ctx, 0, {0}};
    tl_query__run_workers(pvisit_run, v, sizeof *v, pl.nt);
    for (uint32_t w = 0; w < pl.nt; w++)
        if (v[w].rc) {
            if (err) *err = v[w].err;
            return v[w].rc;
        }
    return 0;
}

/* Person buckets. Stage 1: each worker gathers its parts' rows, part by part, and deals them
 * into its own chunks per bucket (one write stream per bucket, no global array). Stage 2:
 * each worker takes a range of buckets and, per bucket, copies the workers' chunks in worker
 * (so time) order into one small buffer that stays in the cache, puts it in sequence order
 * (it is already unless parts overlap in time: a natural merge sort of its runs) and hands it
 * to fn. */
#define CHUNK     2048u         /* rows a chunk */
#define SLAB_ROWS (73u * CHUNK) /* a slab (who then ev) just under 4 MiB: two huge pages */

typedef struct bchunks {
    uint32_t *who[1024]; /* slabs of SLAB_ROWS rows; chunk i is rows [i * CHUNK, +CHUNK) */
    tl_qseq_ev *ev[1024];
    uint32_t n_slabs, n_chunks;
    uint32_t *next; /* per chunk: the next chunk of its bucket + 1, 0 at the end */
    uint32_t cap_next;
    uint32_t *head, *tail; /* per bucket: first and last chunk + 1 (0: none) */
    uint32_t *fill;        /* per bucket: rows in its last chunk */
    size_t *rows;          /* per bucket: rows in all */
} bchunks;

typedef struct bwork {
    tl_qctx *c;
    const tl_qreq *req;
    const tl_qseq_spec *sp;
    const tl_qparts *pl;
    struct bwork *all; /* every worker's (stage 2 reads their chunks) */
    uint32_t w, nt, shift;
    gather g;
    bchunks ch;
    uint32_t b0, b1; /* stage 2: buckets [b0, b1) */
    int stage;
    tl_qbucket_fn fn;
    void *ctx;
    int rc;
    tl_err err;
} bwork;

static uint32_t chunk_new(bchunks *ch)
{
    uint32_t i = ch->n_chunks++;
    if (i / (SLAB_ROWS / CHUNK) == ch->n_slabs) {
        if (ch->n_slabs == 1024) {
            fprintf(stderr, "FATAL query: more than %u rows in one query worker\n",
                    1024u * SLAB_ROWS);
            abort();
        }
        char *slab = tl_big_alloc(SLAB_ROWS * (sizeof(uint32_t) + sizeof(tl_qseq_ev)));
        ch->who[ch->n_slabs] = (uint32_t *)slab;
        ch->ev[ch->n_slabs++] = (tl_qseq_ev *)(slab + SLAB_ROWS * sizeof(uint32_t));
    }
    if (ch->n_chunks > ch->cap_next) {
        ch->cap_next = ch->cap_next ? ch->cap_next * 2 : 256;
        ch->next = tl_xrealloc(ch->next, ch->cap_next * sizeof *ch->next);
    }
    ch->next[i] = 0;
    return i;
}

static inline uint32_t *chunk_who(bchunks *ch, uint32_t i)
{
    return ch->who[i / (SLAB_ROWS / CHUNK)] + (size_t)(i % (SLAB_ROWS / CHUNK)) * CHUNK;
}

static inline tl_qseq_ev *chunk_ev(bchunks *ch, uint32_t i)
{
    return ch->ev[i / (SLAB_ROWS / CHUNK)] + (size_t)(i % (SLAB_ROWS / CHUNK)) * CHUNK;
}

/* Deals the rows gathered in b->g into b's chunks, in order. */
static void deal(bwork *b)
{
    bchunks *ch = &b->ch;
    for (size_t i = 0; i < b->g.n; i++) {
        uint32_t k = b->g.who[i] >> b->shift, t = ch->tail[k];
        if (!t || ch->fill[k] == CHUNK) {
            uint32_t c = chunk_new(ch);
            if (t)
                ch->next[t - 1] = c + 1;
            else
                ch->head[k] = c + 1;
            ch->tail[k] = t = c + 1;
            ch->fill[k] = 0;
        }
        uint32_t f = ch->fill[k]++;
        chunk_who(ch, t - 1)[f] = b->g.who[i];
        chunk_ev(ch, t - 1)[f] = b->g.ev[i];
        ch->rows[k]++;
    }
    b->g.n = 0;
}

static void chunks_free(bchunks *ch)
{
    for (uint32_t i = 0; i < ch->n_slabs; i++)
        tl_big_free(ch->who[i], SLAB_ROWS * (sizeof(uint32_t) + sizeof(tl_qseq_ev)));
    free(ch->next);
    free(ch->head);
    free(ch->tail);
    free(ch->fill);
    free(ch->rows);
}

static void *bwork_run(void *arg)
{
    bwork *b = arg;
    if (b->stage == 1) {
        for (size_t i = b->pl->lim[b->w]; i < b->pl->lim[b->w + 1] && !b->rc; i++) {
            b->rc = gather_part(b->c, b->req, b->sp, b->pl->idx[i], &b->g, &b->err);
            deal(b);
        }
        return NULL;
    }
    tl_qseq view;
    memset(&view, 0, sizeof view);
    view.nums = b->all[0].g.nums;
    uint32_t *who = NULL;
    tl_qseq_ev *ev = NULL;
    size_t cap = 0;
    for (uint32_t k = b->b0; k < b->b1 && !b->rc; k++) {
        size_t n = 0;
        for (uint32_t w = 0; w < b->nt; w++)
            n += b->all[w].ch.rows[k];
        if (!n) continue;
        if (n > cap) {
            tl_big_free(who, cap * sizeof *who);
            tl_big_free(ev, cap * sizeof *ev);
            cap = n;
            who = tl_big_alloc(cap * sizeof *who);
            ev = tl_big_alloc(cap * sizeof *ev);
        }
        size_t at = 0;
        for (uint32_t w = 0; w < b->nt; w++) {
            bchunks *ch = &b->all[w].ch;
            for (uint32_t c = ch->head[k]; c; c = ch->next[c - 1]) {
                uint32_t m = ch->next[c - 1] ? CHUNK : ch->fill[k];
                memcpy(who + at, chunk_who(ch, c - 1), m * sizeof *who);
                memcpy(ev + at, chunk_ev(ch, c - 1), m * sizeof *ev);
                at += m;
            }
        }
        sort_runs(b->c, &view, who, ev, n);
        b->rc = b->fn(b->ctx, b->w, k << b->shift, who, ev, n);
    }
    tl_big_free(who, cap * sizeof *who);
    tl_big_free(ev, cap * sizeof *ev);
    return NULL;
}

int tl_query__seq_buckets(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, uint32_t shift,
                          tl_qbucket_fn fn, void *ctx, uint32_t *n_workers, tl_qseq *nums,
                          tl_err *err)
{
    memset(nums, 0, sizeof *nums);
    *n_workers = 1;
    if (!c->sn || !tl_query__seq_prepare(c, req, sp)) return 0;
    /* Numeric aux values are numbered per gather: one worker then, so one numbering. */
    bool num_aux = (sp->aux[0] && sp->aux[0]->col < 0) || (sp->aux[1] && sp->aux[1]->col < 0);
    tl_qparts pl;
    tl_query__plan_parts(c, sp, num_aux ? 1 : TL_Q_THREADS, &pl);
    uint32_t nt = pl.nt, nb = (c->n_dids >> shift) + 1;
    bwork *b = tl_xcalloc(nt, sizeof *b);
    for (uint32_t w = 0; w < nt; w++) {
        b[w] = (bwork){.c = c,
                       .req = req,
                       .sp = sp,
                       .pl = &pl,
                       .all = b,
                       .w = w,
                       .nt = nt,
                       .shift = shift,
                       .stage = 1,
                       .fn = fn,
                       .ctx = ctx};
        b[w].ch.head = tl_xcalloc(nb, sizeof *b[w].ch.head);
        b[w].ch.tail = tl_xcalloc(nb, sizeof *b[w].ch.tail);
        b[w].ch.fill = tl_xcalloc(nb, sizeof *b[w].ch.fill);
        b[w].ch.rows = tl_xcalloc(nb, sizeof *b[w].ch.rows);
    }
    int rc = 0;
    tl_query__run_workers(bwork_run, b, sizeof *b, nt);
    for (uint32_t w = 0; w < nt && !rc; w++)
        if (b[w].rc) {
            rc = b[w].rc;
            if (err) *err = b[w].err;
        }
    if (!rc) {
        const size_t *rows[TL_Q_THREADS] = {NULL};
        uint32_t lim[TL_Q_THREADS + 1];
        for (uint32_t w = 0; w < nt; w++)
            rows[w] = b[w].ch.rows;
        tl_query__split_buckets(rows, nt, nb, lim);
        for (uint32_t w = 0; w < nt; w++) {
            b[w].stage = 2;
            b[w].b0 = lim[w];
            b[w].b1 = lim[w + 1];
        }
        tl_query__run_workers(bwork_run, b, sizeof *b, nt);
        for (uint32_t w = 0; w < nt && !rc; w++)
            if (b[w].rc) {
                rc = b[w].rc;
                if (err) *err = b[w].err;
            }
    }
    if (!rc && b[0].g.n_nums) {
        nums->nums = tl_query__scratch(c, b[0].g.n_nums, sizeof *nums->nums);
        memcpy(nums->nums, b[0].g.nums, b[0].g.n_nums * sizeof *b[0].g.nums);
        nums->n_nums = b[0].g.n_nums;
    }
    for (uint32_t w = 0; w < nt; w++) {
        gather_free(&b[w].g);
        chunks_free(&b[w].ch);
    }
    free(b);
    *n_workers = nt;
    return rc;
}

void tl_query__seq_aux_json(tl_qctx *c, const tl_qseq *sq, uint32_t v, tl_buf *out)
{
    if (!v)
        tl_buf_adds(out, "null");
    else if (v & TL_QSEQ_NUM)
        tl_buf_json_num(out, sq->nums[v & ~TL_QSEQ_NUM]);
    else
        tl_buf_json_str(out, tl_snap_dict_str(c->sn, v));
}

int tl_query__seq_aux_cmp(tl_qctx *c, const tl_qseq *sq, uint32_t a, uint32_t b)
{
    if (a == b) return 0;
    int ka = !a ? 0 : (a & TL_QSEQ_NUM) ? 1 : 2, kb = !b ? 0 : (b & TL_QSEQ_NUM) ? 1 : 2;
    if (ka != kb) return ka < kb ? -1 : 1;
    if (ka == 1) {
        double x = sq->nums[a & ~TL_QSEQ_NUM], y = sq->nums[b & ~TL_QSEQ_NUM];
        return x < y ? -1 : x > y;
    }
    return tl_str_cmp(tl_snap_dict_str(c->sn, a), tl_snap_dict_str(c->sn, b));
}

/* ---- breakdown values ---- */

uint32_t tl_query__vals_get(tl_qvals *v, uint32_t value)
{
    if ((v->n + 1) * 2 > v->mask) {
        uint32_t nm = v->mask ? v->mask * 2 + 1 : 255;
        uint32_t *m = tl_xcalloc((size_t)nm + 1, sizeof *m);
        for (uint32_t i = 0; i < v->n; i++) {
            uint32_t h = (v->value[i] * 0x9E3779B1u) & nm;
            while (m[h])
                h = (h + 1) & nm;
            m[h] = i + 1;
        }
        free(v->map);
        v->map = m;
        v->mask = nm;
    }
    uint32_t h = (value * 0x9E3779B1u) & v->mask;
    while (v->map[h]) {
        if (v->value[v->map[h] - 1] == value) return v->map[h] - 1;
        h = (h + 1) & v->mask;
    }
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->value = tl_xrealloc(v->value, v->cap * sizeof *v->value);
        v->rank = tl_xrealloc(v->rank, v->cap * sizeof *v->rank);
    }
    v->value[v->n] = value;
    v->rank[v->n] = 0;
    v->map[h] = ++v->n;
    return v->n - 1;
}

typedef struct valsctx {
    tl_qctx *c;
    const tl_qseq *sq;
    const tl_qvals *v;
} valsctx;

static int vals_rank_cmp(const void *a, const void *b, void *arg)
{
    const valsctx *x = arg;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    if (x->v->rank[i] != x->v->rank[j]) return x->v->rank[i] > x->v->rank[j] ? -1 : 1;
    return tl_query__seq_aux_cmp(x->c, x->sq, x->v->value[i], x->v->value[j]);
}

static int vals_value_cmp(const void *a, const void *b, void *arg)
{
    const valsctx *x = arg;
    return tl_query__seq_aux_cmp(x->c, x->sq, x->v->value[*(const uint32_t *)a],
                                 x->v->value[*(const uint32_t *)b]);
}

void tl_query__vals_order(tl_qctx *c, const tl_qseq *sq, const tl_qvals *v, uint32_t *ord,
                          uint32_t *keep)
{
    for (uint32_t i = 0; i < v->n; i++)
        ord[i] = i;
    valsctx x = {c, sq, v};
    qsort_r(ord, v->n, sizeof *ord, vals_rank_cmp, &x);
    *keep = v->n < TL_Q_MAX_BREAKDOWN ? v->n : TL_Q_MAX_BREAKDOWN;
    qsort_r(ord, *keep, sizeof *ord, vals_value_cmp, &x);
}

void tl_query__vals_free(tl_qvals *v)
{
    free(v->value);
    free(v->rank);
    free(v->map);
    memset(v, 0, sizeof *v);
}
