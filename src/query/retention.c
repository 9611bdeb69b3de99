/* The retention query (API.md "retention"; semantics in docs/semantics.md, "Retention").
 *
 * Request: start_event (default: any event), where (on the start events), return_event
 * (default: any event), return_where, period (day, week — ISO, from Monday — or month, in
 * the query's zone; default week), periods N (1..400, default 8), mode "bounded" (default:
 * retained[k] counts persons with a return in period k exactly) or "unbounded" (in period k
 * or any later one, up to N - 1), and breakdown (the value on the person's first start
 * event).
 *
 * A person's cohort is the period of its first start event ever (before `from` too, so a
 * person first seen earlier is in no cohort of the range); cohorts are the periods that
 * start inside [from, to]. retained[0] is the cohort's size; retained[k], k >= 1, counts
 * the cohort's persons with a return event in period cohort + k, however far that is past
 * `to` (periods still in the future count 0). Identity is resolved at query time, so every
 * distinct id of a person shares one first start. Ties at the first start instant are broken
 * as in query/seq.c (so the breakdown value does not depend on arrival order). */
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"
#include "util/bigmem.h"
#include "util/time.h"

#define MAX_PERIODS     400
#define DEFAULT_PERIODS 8

enum { P_DAY, P_WEEK, P_MONTH };

/* The number of the period that contains local day d. */
static int64_t period_of(int period, int64_t d)
{
    int64_t y;
    unsigned m, dd;
    switch (period) {
    case P_WEEK: return tl_floordiv(d + 3, 7); /* 1970-01-01 was a Thursday */
    case P_MONTH: tl_civil_from_days(d, &y, &m, &dd); return y * 12 + (m - 1);
    default: return d;
    }
}

/* The first local day of period number p. */
static int64_t period_first_day(int period, int64_t p)
{
    switch (period) {
    case P_WEEK: return p * 7 - 3;
    case P_MONTH:
        return tl_days_from_civil(tl_floordiv(p, 12), (unsigned)(p - tl_floordiv(p, 12) * 12) + 1,
                                  1);
    default: return p;
    }
}

/* Cohort tables per breakdown value (query/seq.c's value table ranks them by cohort persons). */
typedef struct rtab {
    tl_qvals v;
    uint64_t **cnt; /* per value: n_cohorts × N */
    uint32_t cap;
    size_t cells;
} rtab;

static uint64_t *rtab_get(rtab *t, uint32_t value)
{
    uint32_t n0 = t->v.n, i = tl_query__vals_get(&t->v, value);
    if (t->v.n > n0) {
        if (i == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 64;
            t->cnt = tl_xrealloc(t->cnt, t->cap * sizeof *t->cnt);
        }
        t->cnt[i] = tl_xcalloc(t->cells, sizeof **t->cnt);
    }
    t->v.rank[i]++;
    return t->cnt[i];
}

static void rtab_free(rtab *t)
{
    for (uint32_t i = 0; i < t->v.n; i++)
        free(t->cnt[i]);
    free(t->cnt);
    tl_query__vals_free(&t->v);
}

static void put_cohorts(tl_buf *out, const uint64_t *cnt, uint32_t nc, uint32_t N, int period,
                        int64_t p0)
{
    tl_buf_addc(out, '[');
    for (uint32_t ci = 0; ci < nc; ci++) {
        const uint64_t *r = cnt + (size_t)ci * N;
        tl_buf_adds(out, ci ? ",{\"cohort\":" : "{\"cohort\":");
        tl_query__put_label(out, TL_QI_DAY, period_first_day(period, p0 + ci));
        tl_buf_printf(out, ",\"persons\":%llu,\"retained\":[", (unsigned long long)r[0]);
        for (uint32_t k = 0; k < N; k++)
            tl_buf_printf(out, "%s%llu", k ? "," : "", (unsigned long long)r[k]);
        tl_buf_adds(out, "]}");
    }
    tl_buf_addc(out, ']');
}

/* Adds one cohort person (cohort ci, breakdown value bd, hit[k]: returned in period k). */
typedef struct radd {
    uint64_t *tot;
    rtab *rt;
    uint32_t N;
    bool unbounded, bd;
} radd;

static void add_person(radd *a, uint32_t ci, uint32_t bd, uint8_t *hit)
{
    const uint32_t N = a->N;
    hit[0] = 1;
    if (a->unbounded)
        for (uint32_t k = N - 1; k-- > 1;)
            hit[k] |= hit[k + 1];
    uint64_t *row = a->tot + (size_t)ci * N;
    for (uint32_t k = 0; k < N; k++)
        row[k] += hit[k];
    if (a->bd) {
        uint64_t *gr = rtab_get(a->rt, bd) + (size_t)ci * N;
        for (uint32_t k = 0; k < N; k++)
            gr[k] += hit[k];
    }
}

/* The streaming scan: per person its state (0 not started, 1 in a cohort, 2 first start
 * outside the cohorts), cohort period, returns as bits (N <= 64) and step-1 value. */
typedef struct rstate {
    int64_t pc;
    uint64_t bits;
    uint32_t bd;
    uint8_t state;
} rstate;

typedef struct rstream {
    rstate *st;
    const tl_tz *tz;
    int period;
    uint32_t N;
    int64_t lo_ms, hi_ms;
    int64_t day_start, day_end, cur; /* the local day last met, and its period */
} rstream;

static inline int64_t row_period(rstream *x, int64_t ts)
{
    if (ts < x->day_start || ts >= x->day_end) {
        int64_t d = tl_tz_local_day(x->tz, ts);
        x->day_start = tl_tz_day_start(x->tz, d);
        x->day_end = tl_tz_day_start(x->tz, d + 1);
        x->cur = period_of(x->period, d);
    }
    return x->cur;
}

static int stream_rows(void *arg, const uint32_t *who, const tl_qseq_ev *ev, size_t n)
{
    rstream *x = arg;
    for (size_t i = 0; i < n; i++) {
        rstate *p = &x->st[who[i]];
        if (p->state == 0) {
            if (!(ev[i].mask & 1)) continue;
            if (ev[i].ts < x->lo_ms || ev[i].ts >= x->hi_ms) {
                p->state = 2;
                continue;
            }
            p->state = 1;
            p->pc = row_period(x, ev[i].ts);
            p->bits = 1;
            p->bd = ev[i].aux[0];
        } else if (p->state == 1 && ev[i].mask & 2) {
            int64_t k = row_period(x, ev[i].ts) - p->pc;
            if (k >= 1 && k < (int64_t)x->N) p->bits |= 1ull << k;
        }
    }
    return 0;
}

/* Order-free (no breakdown, cohorts + periods ≤ 64): per person the lowest period of its start
 * rows (-1: before the first cohort) and its return periods as bits, relative to the first
 * cohort; each worker keeps its own arrays over its parts, and they merge by min and or. A
 * return in a period after the cohort's comes after the first start whatever the order, so
 * this equals the streaming scan. */
typedef struct rwork {
    int32_t *first;
    uint64_t *bits;
    int64_t day_start, day_end, cur;
} rwork;

typedef struct rfree {
    const tl_tz *tz;
    int period;
    uint32_t n_dids;
    int64_t pf, lo_ms;
    rwork w[TL_Q_THREADS];
} rfree;

static int free_rows(void *arg, uint32_t worker, const uint32_t *who, const int64_t *ts,
                     const uint32_t *mask, size_t n)
{
    rfree *x = arg;
    rwork *w = &x->w[worker];
    if (!w->first) {
        w->first = tl_big_alloc(((size_t)x->n_dids + 1) * sizeof *w->first);
        for (uint32_t d = 0; d < x->n_dids; d++)
            w->first[d] = INT32_MAX;
        w->bits = tl_big_zalloc(((size_t)x->n_dids + 1) * sizeof *w->bits);
        w->day_start = w->day_end = INT64_MIN;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t t = ts[i];
        int32_t rp = -1;
        if (t >= x->lo_ms) {
            if (t < w->day_start || t >= w->day_end) {
                int64_t d = tl_tz_local_day(x->tz, t);
                w->day_start = tl_tz_day_start(x->tz, d);
                w->day_end = tl_tz_day_start(x->tz, d + 1);
                w->cur = period_of(x->period, d) - x->pf;
            }
            rp = (int32_t)w->cur;
        }
        uint32_t p = who[i];
        if (mask[i] & 1 && rp < w->first[p]) w->first[p] = rp;
        if (mask[i] & 2 && rp >= 0 && rp < 64) w->bits[p] |= 1ull << rp;
    }
    return 0;
}

static int opt_event(const tl_json *q, const char *name, const tl_json **out, tl_err *err)
{
    *out = tl_json_get(q, name);
    if (*out && (*out)->type == TL_JNULL) *out = NULL;
    if (*out && (*out)->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "%s: expected a string (an event name)", name);
    return 0;
}

int tl_query__retention(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q,
                        tl_buf *out, tl_err *err)
{
    (void)plan;
    const tl_json *se, *re, *v;
    int rc;
    if ((rc = opt_event(q, "start_event", &se, err)) ||
        (rc = opt_event(q, "return_event", &re, err)))
        return rc;
    int period = P_WEEK;
    v = tl_json_get(q, "period");
    if (v && v->type != TL_JNULL) {
        if (v->type == TL_JSTR && tl_str_eqc(v->str, "day"))
            period = P_DAY;
        else if (v->type == TL_JSTR && tl_str_eqc(v->str, "week"))
            period = P_WEEK;
        else if (v->type == TL_JSTR && tl_str_eqc(v->str, "month"))
            period = P_MONTH;
        else
            return tl_err_set(err, TL_EINVAL, "period: expected \"day\", \"week\" or \"month\"");
    }
    uint32_t N = DEFAULT_PERIODS;
    v = tl_json_get(q, "periods");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JNUM || v->num < 1 || v->num > MAX_PERIODS ||
            v->num != (double)(int)v->num)
            return tl_err_set(err, TL_EINVAL, "periods: expected a whole number 1 to %d",
                              MAX_PERIODS);
        N = (uint32_t)v->num;
    }
    bool unbounded = false;
    v = tl_json_get(q, "mode");
    if (v && v->type != TL_JNULL) {
        if (v->type == TL_JSTR && tl_str_eqc(v->str, "bounded"))
            unbounded = false;
        else if (v->type == TL_JSTR && tl_str_eqc(v->str, "unbounded"))
            unbounded = true;
        else
            return tl_err_set(err, TL_EINVAL, "mode: expected \"bounded\" or \"unbounded\"");
    }
    /* Conditions: 0 the start (start_event and the top-level where), 1 the return. */
    tl_qcond conds[2];
    memset(conds, 0, sizeof conds);
    rc = tl_query__cond_parse(c, NULL, se, "start_event", &conds[0], err);
    if (!rc)
        rc = tl_query__cond_parse(c, tl_json_get(q, "return_where"), re, "return", &conds[1], err);
    if (rc) return rc;
    if (req->n_preds) {
        tl_qpred *all = tl_arena_alloc(c->a, (conds[0].n_preds + req->n_preds) * sizeof *all);
        memcpy(all, conds[0].preds, conds[0].n_preds * sizeof *all);
        memcpy(all + conds[0].n_preds, req->preds, req->n_preds * sizeof *all);
        conds[0].preds = all;
        conds[0].n_preds += req->n_preds;
    }
    for (int i = 0; i < 2; i++)
        tl_query__cond_compile(c, &conds[i]);

    /* Cohort periods: those whose first day is inside [from, to]. */
    int64_t pf = period_of(period, req->fd), pt = period_of(period, req->td);
    if (period_first_day(period, pf) < req->fd) pf++;
    uint32_t nc = pt >= pf ? (uint32_t)(pt - pf + 1) : 0;
    if ((uint64_t)nc * N > 4000000)
        return tl_err_set(err, TL_EINVAL, "periods: %u cohorts × %u periods is too many", nc, N);

    tl_qreq r2 = *req;
    r2.n_preds = 0; /* the top-level where is on the start events only */
    tl_qseq_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.from = INT64_MIN;
    sp.to_excl =
        nc ? tl_tz_day_start(req->tz, period_first_day(period, pf + nc - 1 + N)) : INT64_MIN;
    sp.conds = conds;
    sp.n_conds = 2;
    sp.aux[0] = req->has_bd ? &req->bd : NULL;
    tl_qseq sq;
    memset(&sq, 0, sizeof sq);
    size_t cells = (size_t)nc * N;
    uint64_t *tot = tl_query__scratch(c, cells ? cells : 1, sizeof *tot);
    rtab rt;
    memset(&rt, 0, sizeof rt);
    rt.cells = cells ? cells : 1;
    uint8_t *hit = tl_query__scratch(c, N, 1);
    /* Start of the first cohort and of the period after the last one, as instants: a quick
     * test before the zone arithmetic. */
    int64_t lo_ms = nc ? tl_tz_day_start(req->tz, period_first_day(period, pf)) : 0;
    int64_t hi_ms = nc ? tl_tz_day_start(req->tz, period_first_day(period, pf + nc)) : 0;
    radd ra = {tot, &rt, N, unbounded, req->has_bd};
    if (nc && nc + N <= 64 && !req->has_bd && c->sn) {
        rfree *x = tl_xcalloc(1, sizeof *x);
        x->tz = req->tz;
        x->period = period;
        x->n_dids = c->n_dids;
        x->pf = pf;
        x->lo_ms = lo_ms;
        free_rows(x, 0, NULL, NULL, NULL, 0); /* worker 0's arrays receive the merge */
        rc = tl_query__seq_parts(c, &r2, &sp, free_rows, x, err);
        rwork *w0 = &x->w[0];
        for (uint32_t k = 1; !rc && k < TL_Q_THREADS; k++) {
            rwork *w = &x->w[k];
            for (uint32_t d = 0; w->first && d < c->n_dids; d++) {
                if (w->first[d] < w0->first[d]) w0->first[d] = w->first[d];
                w0->bits[d] |= w->bits[d];
            }
        }
        for (uint32_t d = 0; !rc && d < c->n_dids; d++) {
            int32_t ci = w0->first[d];
            if (ci < 0 || ci >= (int32_t)nc) continue;
            for (uint32_t k = 0; k < N; k++)
                hit[k] = w0->bits[d] >> (ci + k) & 1;
            add_person(&ra, (uint32_t)ci, 0, hit);
        }
        for (uint32_t k = 0; k < TL_Q_THREADS; k++) {
            if (!x->w[k].first) continue;
            tl_big_free(x->w[k].first, ((size_t)c->n_dids + 1) * sizeof *x->w[k].first);
            tl_big_free(x->w[k].bits, ((size_t)c->n_dids + 1) * sizeof *x->w[k].bits);
        }
        free(x);
    } else if (nc && N <= 64 && c->sn) {
        /* Stream every person at once: 24 bytes of state each, no grouping by person. */
        rstream x;
        memset(&x, 0, sizeof x);
        x.st = tl_big_zalloc(((size_t)c->n_dids + 1) * sizeof *x.st);
        x.tz = req->tz;
        x.period = period;
        x.N = N;
        x.lo_ms = lo_ms;
        x.hi_ms = hi_ms;
        x.day_start = x.day_end = INT64_MIN;
        rc = tl_query__seq_stream(c, &r2, &sp, stream_rows, &x, &sq, err);
        for (uint32_t d = 0; !rc && d < c->n_dids; d++) {
            const rstate *p = &x.st[d];
            if (p->state != 1) continue;
            for (uint32_t k = 0; k < N; k++)
                hit[k] = p->bits >> k & 1;
            add_person(&ra, (uint32_t)(p->pc - pf), p->bd, hit);
        }
        tl_big_free(x.st, ((size_t)c->n_dids + 1) * sizeof *x.st);
    } else if (nc) {
        rc = tl_query__seq_build(c, &r2, &sp, &sq, err);
        for (uint32_t i = 0; !rc && i < sq.n_persons; i++) {
            const tl_qseq_ev *ev = sq.ev + sq.off[i];
            size_t n = sq.off[i + 1] - sq.off[i], e = 0;
            while (e < n && !(ev[e].mask & 1))
                e++;
            if (e == n || ev[e].ts < lo_ms || ev[e].ts >= hi_ms) continue;
            int64_t pc = period_of(period, tl_tz_local_day(req->tz, ev[e].ts));
            memset(hit, 0, N);
            hit[0] = 1;
            int64_t day_end = INT64_MIN, cur = pc;
            for (size_t j = e + 1; j < n; j++) {
                if (!(ev[j].mask & 2)) continue;
                if (ev[j].ts >= day_end) { /* a later local day: find its period */
                    int64_t d = tl_tz_local_day(req->tz, ev[j].ts);
                    cur = period_of(period, d);
                    day_end = tl_tz_day_start(req->tz, d + 1);
                }
                int64_t k = cur - pc;
                if (k >= (int64_t)N) break;
                if (k >= 1) hit[k] = 1;
            }
            add_person(&ra, (uint32_t)(pc - pf), ev[e].aux[0], hit);
        }
    }
    if (rc) {
        rtab_free(&rt);
        return rc;
    }

    static const char *const pnames[] = {"day", "week", "month"};
    tl_buf_adds(out, "{\"cohorts\":");
    put_cohorts(out, tot, nc, N, period, pf);
    if (req->has_bd) {
        /* The TL_Q_MAX_BREAKDOWN values with the most cohort persons; the rest as "$other". */
        uint32_t n = rt.v.n, keep;
        uint32_t *ord = tl_xmalloc((n + 1) * sizeof *ord);
        tl_query__vals_order(c, &sq, &rt.v, ord, &keep);
        tl_buf_adds(out, ",\"breakdown\":");
        tl_buf_json_str(out, req->bd.name);
        tl_buf_adds(out, ",\"breakdowns\":[");
        for (uint32_t i = 0; i < keep; i++) {
            tl_buf_adds(out, i ? ",{\"value\":" : "{\"value\":");
            tl_query__seq_aux_json(c, &sq, rt.v.value[ord[i]], out);
            tl_buf_adds(out, ",\"cohorts\":");
            put_cohorts(out, rt.cnt[ord[i]], nc, N, period, pf);
            tl_buf_addc(out, '}');
        }
        if (keep < n) {
            uint64_t *o = tl_query__scratch(c, cells ? cells : 1, sizeof *o);
            for (uint32_t i = keep; i < n; i++)
                for (size_t x = 0; x < cells; x++)
                    o[x] += rt.cnt[ord[i]][x];
            tl_buf_adds(out, ",{\"value\":\"$other\",\"cohorts\":");
            put_cohorts(out, o, nc, N, period, pf);
            tl_buf_addc(out, '}');
        }
        tl_buf_addc(out, ']');
        free(ord);
    }
    rtab_free(&rt);
    tl_buf_printf(out, ",\"period\":\"%s\",\"periods\":%u,\"mode\":\"%s\"", pnames[period], N,
                  unbounded ? "unbounded" : "bounded");
    return 0;
}
