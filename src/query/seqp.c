/* Per-person sequences, compact (contract in query_int.h, "query/seqp.c").
 *
 * When every condition is an event name (or empty) and no aux value is carried, all a row
 * needs to say is who, when and which conditions it matches; the conditions' masks are few
 * (one per event named, plus "none" or "only the empty ones"), so a mask travels as its rank
 * in sequence order. One row is then one 64-bit key:
 *
 *   bits 63..53  the person's number within its bucket of 2048 persons
 *   bits 52..6   time - from, in ms (the range must be under 2^47 ms, 4,000 years)
 *   bits  5..0   rank of the row's mask: masks ordered by their lowest condition, then value
 *
 * so sorting a person's keys sorts its rows by time, then lowest condition, then mask:
 * exactly tl_query__seq_buckets' sequence order. Stage 1: each worker takes its parts, reads
 * each named event's rows from the part's event index (no event-column read, no merge of the
 * events' row lists) and deals keys into chunks per bucket. Stage 2: each worker takes a
 * range of buckets; per bucket it copies the chunks into one buffer, groups the keys by
 * person with one counting-sort pass on the top 11 bits, sorts each person's few keys (they
 * are runs in time order: one per event and part) and hands the person's rows to fn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"
#include "util/bigmem.h"

#define P_BITS    11 /* persons per bucket: 2^P_BITS */
#define RANK_BITS TL_QKEY_RANK_BITS
#define TIME_BITS TL_QKEY_TIME_BITS
_Static_assert(P_BITS + RANK_BITS + TIME_BITS == 64, "a key is 64 bits");
#define TIME_MASK  ((1ull << TIME_BITS) - 1)
#define RANK_NONE  0xFF
#define KCHUNK     2048u           /* keys a chunk: 16 KiB */
#define KSLAB      (256u * KCHUNK) /* keys a slab: 4 MiB, two huge pages */
#define MAX_SLABS  2048u
#define SMALL_SORT 24

/* The conditions as event names: fid[f] is matched by the rows of rank frank[f]; rows of no
 * named event get orank (RANK_NONE: not kept). kd.mask[rank] is the mask back. */
typedef struct pspec {
    uint32_t nf, fid[TL_Q_MAX_CONDS];
    uint8_t frank[TL_Q_MAX_CONDS], orank;
    tl_qkeys kd; /* rank → mask */
} pspec;

static inline uint32_t low_bit(uint32_t m)
{
    return m ? (uint32_t)__builtin_ctz(m) : 32;
}

static bool mask_before(uint32_t a, uint32_t b)
{
    uint32_t la = low_bit(a), lb = low_bit(b);
    return la != lb ? la < lb : a < b;
}

/* The event names and the rank of each mask; false when sp is not of the compact kind. */
static bool pspec_make(const tl_qseq_spec *sp, pspec *ps)
{
    memset(ps, 0, sizeof *ps);
    if (sp->aux[0] || sp->aux[1] || sp->n_conds > TL_Q_MAX_CONDS) return false;
    if (sp->to_excl <= sp->from || (uint64_t)(sp->to_excl - sp->from) > TIME_MASK) return false;
    uint32_t fmask[TL_Q_MAX_CONDS], all_bits = 0;
    for (uint32_t ci = 0; ci < sp->n_conds; ci++) {
        const tl_qcond *cd = &sp->conds[ci];
        if (cd->never) continue;
        if (!cd->n_preds) {
            all_bits |= 1u << ci;
            continue;
        }
        if (cd->n_preds != 1 || cd->preds[0].prop.col != TL_COL_EVENT || cd->preds[0].neg ||
            cd->preds[0].smode != TL_QS_ID1)
            return false;
        uint32_t f = 0;
        while (f < ps->nf && ps->fid[f] != cd->preds[0].sid1)
            f++;
        if (f == ps->nf) {
            ps->fid[ps->nf] = cd->preds[0].sid1;
            fmask[ps->nf++] = 0;
        }
        fmask[f] |= 1u << ci;
    }
    /* The masks rows can have, in sequence order; the rank is the position. */
    uint32_t masks[TL_Q_MAX_CONDS + 1], nm = 0;
    bool other = sp->keep_all || all_bits;
    for (uint32_t f = 0; f < ps->nf; f++)
        masks[nm++] = fmask[f] | all_bits;
    if (other) masks[nm++] = all_bits;
    for (uint32_t i = 1; i < nm; i++)
        for (uint32_t j = i; j > 0 && mask_before(masks[j], masks[j - 1]); j--) {
            uint32_t t = masks[j];
            masks[j] = masks[j - 1];
            masks[j - 1] = t;
        }
    ps->kd.from = sp->from;
    for (uint32_t r = 0; r < nm; r++)
        ps->kd.mask[r] = masks[r];
    for (uint32_t f = 0; f < ps->nf; f++)
        for (uint32_t r = 0; r < nm; r++)
            if (masks[r] == (fmask[f] | all_bits)) ps->frank[f] = (uint8_t)r;
    ps->orank = RANK_NONE;
    for (uint32_t r = 0; other && r < nm; r++)
        if (masks[r] == all_bits) ps->orank = (uint8_t)r;
    return true;
}

bool tl_query__seq_persons_fits(const tl_qseq_spec *sp)
{
    pspec ps;
    return pspec_make(sp, &ps);
}

/* ---- stage 1: keys dealt into chunks per bucket ---- */

typedef struct kchunks {
    uint64_t *slab[MAX_SLABS]; /* chunk i is keys [i * KCHUNK, +KCHUNK) of the slabs in turn */
    uint32_t n_slabs, n_chunks;
    uint32_t *next, cap_next; /* per chunk: the next chunk of its bucket + 1, 0 at the end */
    uint32_t *head, *tail;    /* per bucket: first and last chunk + 1 (0: none) */
    uint64_t **wp, **wend;    /* per bucket: where its next key goes, the end of its chunk */
    size_t *rows;             /* per bucket, once dealt: keys in all */
    uint32_t *fill;           /* per bucket, once dealt: keys in its last chunk */
} kchunks;

static inline uint64_t *chunk_at(const kchunks *ch, uint32_t i)
{
    return ch->slab[i / (KSLAB / KCHUNK)] + (size_t)(i % (KSLAB / KCHUNK)) * KCHUNK;
}

/* A new last chunk for bucket k; returns where its first key goes. */
static __attribute__((noinline)) uint64_t *chunk_new(kchunks *ch, uint32_t k)
{
    uint32_t i = ch->n_chunks++;
    if (i / (KSLAB / KCHUNK) == ch->n_slabs) {
        if (ch->n_slabs == MAX_SLABS) {
            fprintf(stderr, "FATAL query: more than %u rows in one query worker\n",
                    MAX_SLABS * KSLAB);
            abort();
        }
        ch->slab[ch->n_slabs++] = tl_big_alloc(KSLAB * sizeof(uint64_t));
    }
    if (ch->n_chunks > ch->cap_next) {
        ch->cap_next = ch->cap_next ? ch->cap_next * 2 : 256;
        ch->next = tl_xrealloc(ch->next, ch->cap_next * sizeof *ch->next);
    }
    ch->next[i] = 0;
    if (ch->tail[k])
        ch->next[ch->tail[k] - 1] = i + 1;
    else
        ch->head[k] = i + 1;
    ch->tail[k] = i + 1;
    ch->rows[k] += KCHUNK;
    uint64_t *p = chunk_at(ch, i);
    ch->wend[k] = p + KCHUNK;
    return p;
}

static inline void chunk_push(kchunks *ch, uint32_t k, uint64_t key)
{
    uint64_t *p = ch->wp[k];
    if (p == ch->wend[k]) p = chunk_new(ch, k);
    *p++ = key;
    ch->wp[k] = p;
}

/* After dealing: each bucket's key count and last chunk's fill. */
static void chunks_count(kchunks *ch, uint32_t nb)
{
    for (uint32_t k = 0; k < nb; k++) {
        if (!ch->tail[k]) continue;
        ch->fill[k] = KCHUNK - (uint32_t)(ch->wend[k] - ch->wp[k]);
        ch->rows[k] -= KCHUNK - ch->fill[k];
    }
}

static void chunks_free(kchunks *ch)
{
    for (uint32_t i = 0; i < ch->n_slabs; i++)
        tl_big_free(ch->slab[i], KSLAB * sizeof(uint64_t));
    free(ch->next);
    free(ch->head);
    free(ch->tail);
    free(ch->wp);
    free(ch->wend);
    free(ch->fill);
    free(ch->rows);
}

typedef struct pwork {
    tl_qctx *c;
    const tl_qreq *req;
    const tl_qseq_spec *sp;
    const pspec *ps;
    const tl_qparts *pl;
    struct pwork *all;
    uint32_t w, nt, stage;
    kchunks ch;
    uint32_t *sel; /* stage 1 scratch: a part's rows */
    uint8_t *rank;
    size_t scap;
    uint32_t b0, b1; /* stage 2: buckets [b0, b1) */
    tl_qperson_fn fn;
    void *ctx;
    int rc;
    tl_err err;
} pwork;

/* Keys for rows[0..n) of a part (rows NULL: rows 0..n-1 of ts and did), all of rank `rank`
 * (or, with rank RANK_NONE, each of ranks[j]); rows out of the range or of unknown or erased
 * persons are left out. */
static void emit(pwork *b, const int64_t *ts, const uint32_t *did, const uint32_t *rows, uint32_t n,
                 uint32_t rank, const uint8_t *ranks)
{
    const int64_t from = b->sp->from;
    const uint64_t span = (uint64_t)(b->sp->to_excl - from);
    const uint32_t *persons = b->c->persons, nd = b->c->n_dids;
    for (uint32_t j = 0; j < n; j++) {
        if (j + 16 < n) __builtin_prefetch(&persons[did[rows ? rows[j + 16] : j + 16]]);
        uint32_t r = rows ? rows[j] : j, d = did[r];
        uint64_t dt = (uint64_t)(ts[r] - from);
        if (dt >= span || d >= nd) continue;
        uint32_t p = persons[d];
        if (p >= nd) continue;
        uint64_t rk = ranks ? ranks[j] : rank;
        chunk_push(&b->ch, p >> P_BITS,
                   (uint64_t)(p & ((1u << P_BITS) - 1)) << (64 - P_BITS) | dt << RANK_BITS | rk);
    }
}

static int part_keys(pwork *b, size_t part)
{
    tl_qctx *c = b->c;
    const tl_qseq_spec *sp = b->sp;
    const pspec *ps = b->ps;
    tl_part_info in = tl_snap_part_info(c->sn, part);
    if (!in.n_rows || in.max_ts_ms < sp->from || in.min_ts_ms >= sp->to_excl) return 0;
    const int64_t *ts;
    const uint32_t *did;
    int rc = tl_snap_col_ts(c->sn, part, &ts);
    if (!rc) rc = tl_snap_col_u32(c->sn, part, TL_COL_DID, &did);
    if (rc) return tl_err_set(&b->err, rc, "store: %s", tl_strerror(rc));
    uint32_t n = in.n_rows, lo = 0, hi = n;
    if (in.sorted) {
        lo = tl_query__lower_bound64(ts, n, sp->from);
        hi = tl_query__lower_bound64(ts, n, sp->to_excl);
    }
    if (lo >= hi) return 0;
    if (b->scap < n) {
        tl_big_free(b->sel, b->scap * sizeof *b->sel);
        free(b->rank);
        b->scap = n;
        b->sel = tl_big_alloc(n * sizeof *b->sel);
        b->rank = tl_xmalloc(n);
    }
    const tl_qreq *req = b->req;
    if (ps->orank == RANK_NONE) {
        /* Only the named events' rows: from the event index, one event at a time, each read
         * in its own space (positions in its rows, times and dids through projections:
         * dense where a rare event's rows are scattered through the part). */
        bool indexed = true;
        for (uint32_t f = 0; f < ps->nf && indexed; f++) {
            const uint32_t *rows;
            uint32_t nr;
            rc = tl_snap_event_rows(c->sn, part, ps->fid[f], &rows, &nr);
            if (rc == TL_ENOENT && !f) {
                indexed = false;
                break;
            }
            if (rc) return tl_err_set(&b->err, rc, "store: event index: %s", tl_strerror(rc));
            uint32_t a0 = tl_query__lower_bound32(rows, nr, lo),
                     a1 = tl_query__lower_bound32(rows, nr, hi), k = a1 - a0;
            if (!k) continue;
            const int64_t *ets;
            const uint32_t *edid;
            rc = tl_snap_event_ts(c->sn, part, ps->fid[f], &ets);
            if (!rc) rc = tl_snap_event_u32(c->sn, part, ps->fid[f], TL_COL_DID, &edid);
            if (rc) return tl_err_set(&b->err, rc, "store: projection: %s", tl_strerror(rc));
            if (!req->n_preds) {
                emit(b, ets + a0, edid + a0, NULL, k, ps->frank[f], NULL);
                continue;
            }
            for (uint32_t j = 0; j < k; j++)
                b->sel[j] = a0 + j;
            for (uint32_t i = 0; k && i < req->n_preds; i++) {
                rc = tl_query__filter_sel_ev(c, &req->preds[i], part, ps->fid[f], b->sel, 0, k,
                                             b->sel, &k, &b->err);
                if (rc) return rc;
            }
            emit(b, ets, edid, b->sel, k, ps->frank[f], NULL);
        }
        if (indexed) return 0;
    }
    /* Every row of [lo, hi) that passes the filters, ranked by its event. */
    const uint32_t *evc;
    rc = tl_snap_col_u32(c->sn, part, TL_COL_EVENT, &evc);
    if (rc) return tl_err_set(&b->err, rc, "store: event column: %s", tl_strerror(rc));
    uint32_t k = 0;
    for (uint32_t r = lo; r < hi; r++) {
        uint32_t e = evc[r], rk = ps->orank;
        for (uint32_t f = 0; f < ps->nf; f++)
            if (e == ps->fid[f]) rk = ps->frank[f];
        b->sel[k] = r;
        b->rank[k] = (uint8_t)rk;
        k += rk != RANK_NONE;
    }
    for (uint32_t i = 0; k && i < req->n_preds; i++) {
        uint32_t m = 0, t = 0;
        uint32_t *kept = tl_big_alloc((size_t)k * sizeof *kept);
        rc = tl_query__filter_sel(c, &req->preds[i], part, b->sel, 0, k, kept, &m, &b->err);
        for (uint32_t j = 0; !rc && t < m; j++) /* both ascending: keep the ranks in step */
            if (b->sel[j] == kept[t]) {
                b->sel[t] = kept[t];
                b->rank[t++] = b->rank[j];
            }
        tl_big_free(kept, (size_t)k * sizeof *kept);
        if (rc) return rc;
        k = m;
    }
    emit(b, ts, did, b->sel, k, RANK_NONE, b->rank);
    return 0;
}

/* ---- stage 2: per bucket, per person ---- */

/* Sorts a[0..n) ascending: insertion sort when short, else a natural merge sort (the keys
 * are a few ascending runs). */
static void sort_keys(uint64_t *a, uint64_t *tmp, size_t n)
{
    size_t i = 1;
    while (i < n && a[i - 1] <= a[i])
        i++;
    if (i >= n) return;
    if (n <= SMALL_SORT) {
        for (; i < n; i++) {
            uint64_t x = a[i];
            size_t j = i;
            while (j > 0 && a[j - 1] > x) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    for (size_t w = 1; w < n; w *= 2) /* bottom-up merge on top of the first run */
        for (size_t lo = 0; lo + w < n; lo += 2 * w) {
            size_t mid = lo + w, hi = lo + 2 * w < n ? lo + 2 * w : n;
            if (a[mid - 1] <= a[mid]) continue;
            size_t x = lo, y = mid, k = 0;
            while (x < mid && y < hi)
                tmp[k++] = a[y] < a[x] ? a[y++] : a[x++];
            while (x < mid)
                tmp[k++] = a[x++];
            memcpy(a + lo, tmp, k * sizeof *a);
        }
}

/* Runs BODY with key bound to each key of bucket k, worker by worker, chunk by chunk. */
#define FOR_KEYS(b, k, key, ...)                                                                   \
    do {                                                                                           \
        for (uint32_t w_ = 0; w_ < (b)->nt; w_++) {                                                \
            const kchunks *ch_ = &(b)->all[w_].ch;                                                 \
            for (uint32_t c_ = ch_->head[k]; c_; c_ = ch_->next[c_ - 1]) {                         \
                const uint64_t *x_ = chunk_at(ch_, c_ - 1);                                        \
                uint32_t m_ = ch_->next[c_ - 1] ? KCHUNK : ch_->fill[k];                           \
                for (uint32_t i_ = 0; i_ < m_; i_++) {                                             \
                    uint64_t key = x_[i_];                                                         \
                    __VA_ARGS__                                                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Bucket k's keys from every worker's chunks, grouped by person into grp (a counting sort
 * on the top bits, in worker, so time, order); then each person's keys sorted and handed to
 * fn. tmp is scratch of n keys. */
static void bucket_persons(pwork *b, uint32_t k, uint64_t *grp, uint64_t *tmp)
{
    enum { NP = 1u << P_BITS };
    uint32_t cnt[NP + 1];
    memset(cnt, 0, sizeof cnt);
    FOR_KEYS(b, k, key, cnt[(key >> (64 - P_BITS)) + 1]++;);
    for (uint32_t p = 0; p < NP; p++)
        cnt[p + 1] += cnt[p];
    uint32_t at[NP];
    memcpy(at, cnt, sizeof at);
    FOR_KEYS(b, k, key, grp[at[key >> (64 - P_BITS)]++] = key;);
    for (uint32_t p = 0; p < NP && !b->rc; p++) {
        size_t lo = cnt[p], m = cnt[p + 1] - lo;
        if (!m) continue;
        sort_keys(grp + lo, tmp, m);
        b->rc = b->fn(b->ctx, b->w, (k << P_BITS) | p, &b->ps->kd, grp + lo, m);
    }
}

static void *pwork_run(void *arg)
{
    pwork *b = arg;
    if (b->stage == 1) {
        for (size_t i = b->pl->lim[b->w]; i < b->pl->lim[b->w + 1] && !b->rc; i++)
            b->rc = part_keys(b, b->pl->idx[i]);
        return NULL;
    }
    uint64_t *grp = NULL, *tmp = NULL;
    size_t cap = 0;
    for (uint32_t k = b->b0; k < b->b1 && !b->rc; k++) {
        size_t n = 0;
        for (uint32_t w = 0; w < b->nt; w++)
            n += b->all[w].ch.rows[k];
        if (!n) continue;
        if (n > cap) {
            tl_big_free(grp, cap * sizeof *grp);
            tl_big_free(tmp, cap * sizeof *tmp);
            cap = n;
            grp = tl_big_alloc(cap * sizeof *grp);
            tmp = tl_big_alloc(cap * sizeof *tmp);
        }
        bucket_persons(b, k, grp, tmp);
    }
    tl_big_free(grp, cap * sizeof *grp);
    tl_big_free(tmp, cap * sizeof *tmp);
    return NULL;
}

/* The first worker error, copied to *err. */
static int first_error(const pwork *b, uint32_t nt, tl_err *err)
{
    for (uint32_t w = 0; w < nt; w++)
        if (b[w].rc) {
            if (err) *err = b[w].err;
            return b[w].rc;
        }
    return 0;
}

int tl_query__seq_persons(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qperson_fn fn,
                          void *ctx, uint32_t *n_workers, tl_err *err)
{
    *n_workers = 1;
    pspec ps;
    if (!pspec_make(sp, &ps)) return tl_err_set(err, TL_EINVAL, "query: not a compact sequence");
    if (!c->sn || !tl_query__seq_prepare(c, req, sp)) return 0;
    tl_qparts pl;
    tl_query__plan_parts(c, sp, TL_Q_THREADS, &pl);
    uint32_t nt = pl.nt, nb = (c->n_dids >> P_BITS) + 1;
    pwork *b = tl_xcalloc(nt, sizeof *b);
    for (uint32_t w = 0; w < nt; w++) {
        b[w] = (pwork){.c = c,
                       .req = req,
                       .sp = sp,
                       .ps = &ps,
                       .pl = &pl,
                       .all = b,
                       .w = w,
                       .nt = nt,
                       .stage = 1,
                       .fn = fn,
                       .ctx = ctx};
        b[w].ch.head = tl_xcalloc(nb, sizeof *b[w].ch.head);
        b[w].ch.tail = tl_xcalloc(nb, sizeof *b[w].ch.tail);
        b[w].ch.wp = tl_xcalloc(nb, sizeof *b[w].ch.wp);
        b[w].ch.wend = tl_xcalloc(nb, sizeof *b[w].ch.wend);
        b[w].ch.fill = tl_xcalloc(nb, sizeof *b[w].ch.fill);
        b[w].ch.rows = tl_xcalloc(nb, sizeof *b[w].ch.rows);
    }
    tl_query__run_workers(pwork_run, b, sizeof *b, nt);
    int rc = first_error(b, nt, err);
    for (uint32_t w = 0; w < nt; w++)
        chunks_count(&b[w].ch, nb);
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
        tl_query__run_workers(pwork_run, b, sizeof *b, nt);
        rc = first_error(b, nt, err);
    }
    for (uint32_t w = 0; w < nt; w++) {
        chunks_free(&b[w].ch);
        tl_big_free(b[w].sel, b[w].scap * sizeof *b[w].sel);
        free(b[w].rank);
    }
    free(b);
    *n_workers = nt;
    return rc;
}
