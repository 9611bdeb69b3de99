/* Trends metrics `stickiness` and `lifecycle` (docs/semantics.md, "Stickiness and
 * lifecycle"). Both count persons, over the events that pass the top-level `where` (and
 * `event`), with the query's buckets (interval, tz), and refuse a breakdown.
 *
 * stickiness: for k = 1 .. (number of buckets), the persons active in exactly k buckets of the
 * range ("active days" with interval day, the default). Answer: {"columns":["days",
 * "persons"],"rows":[[1,N1],[2,N2],…]} (the first column is named after the interval: hours,
 * days, weeks, months); every k is listed, zeros included.
 *
 * lifecycle (PostHog's): in each bucket, a person active in it is
 *   new           when its first matching event ever (all of history, not only the range) is
 *                 in this bucket;
 *   returning     else, when it was active in the previous bucket;
 *   resurrecting  else (active now, not in the previous bucket, but before);
 * and a person active in the previous bucket but not in this one is dormant, reported as a
 * negative number. The previous bucket of the first one is the whole calendar period before
 * it; activity in a first bucket that the range cuts is only the part inside the range (so
 * a person whose first event falls in the cut-off part of the first bucket is not new there).
 * Answer: {"columns":["bucket","new","returning","resurrecting","dormant"],"rows":[[b,n,r,s,-d],
 * …]} with every bucket.
 *
 * Cost: one streaming scan (query/seq.c, no grouping by person; for lifecycle over all
 * history up to `to`, to find first events) with a few bytes of state per person (an array
 * over persons whose pages are touched only where used) and the bucket of each row found
 * next to the previous row's: O(E) after the scan. */
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"

#define PREFETCH 16 /* rows ahead whose person state is fetched (persons are far apart) */
#include "util/time.h"

/* [*p0, *p1): the calendar period before the first bucket's, in UTC ms. */
static void prev_period(const tl_qreq *req, const tl_qplan *pl, int64_t *p0, int64_t *p1)
{
    int64_t l0 = pl->label[0];
    if (req->interval == TL_QI_HOUR) {
        *p1 = tl_tz_local_to_utc_ms(req->tz, l0 * 3600);
        int64_t h = l0 - 1;
        *p0 = tl_tz_local_to_utc_ms(req->tz, h * 3600);
        for (int i = 0; i < 3 && *p0 >= *p1; i++) /* a wall hour skipped by DST */
            *p0 = tl_tz_local_to_utc_ms(req->tz, --h * 3600);
        return;
    }
    int64_t prev = l0 - 1, y;
    unsigned m, d;
    if (req->interval == TL_QI_WEEK) {
        prev = l0 - 7;
    } else if (req->interval == TL_QI_MONTH) {
        tl_civil_from_days(l0 - 1, &y, &m, &d);
        prev = tl_days_from_civil(y, m, 1);
    }
    *p0 = tl_tz_day_start(req->tz, prev);
    *p1 = tl_tz_day_start(req->tz, l0);
}

static const char *unit_name(int interval)
{
    switch (interval) {
    case TL_QI_HOUR: return "hours";
    case TL_QI_WEEK: return "weeks";
    case TL_QI_MONTH: return "months";
    default: return "days";
    }
}

/* The bucket of t, trying first the one of the row before (rows come in sequence order, so
 * nearly always the same or the next one). */
static inline uint32_t bucket_near(const tl_qplan *pl, int64_t t, uint32_t *hint)
{
    uint32_t b = *hint;
    if (t >= pl->U[b] && t < pl->U[b + 1]) return b;
    if (b + 2 <= pl->nb && t >= pl->U[b + 1] && t < pl->U[b + 2]) return *hint = b + 1;
    return *hint = tl_query__bucket_of(pl, t);
}

/* Stickiness, streamed: per person its last active bucket (+ 1, 0: none) and its count of
 * active buckets; the histogram is kept as counts change (rows come in each person's time
 * order, so a bucket is counted once). */
typedef struct stickctx {
    const tl_qplan *pl;
    uint32_t (*st)[2]; /* per person: last bucket + 1, buckets */
    uint64_t *hist;
    uint32_t hint;
} stickctx;

static int stick_rows(void *arg, const uint32_t *who, const tl_qseq_ev *ev, size_t n)
{
    stickctx *x = arg;
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH < n) __builtin_prefetch(&x->st[who[i + PREFETCH]], 1);
        uint32_t *p = x->st[who[i]], b = bucket_near(x->pl, ev[i].ts, &x->hint) + 1;
        if (p[0] == b) continue;
        p[0] = b;
        if (p[1]) x->hist[p[1]]--;
        x->hist[++p[1]]++;
    }
    return 0;
}

static int stickiness(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, tl_buf *out, tl_err *err)
{
    uint64_t *hist = tl_xcalloc((size_t)plan->nb + 2, sizeof *hist);
    if (c->sn && !tl_query__compile(c, req)) {
        tl_qseq_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.from = req->from_ms;
        sp.to_excl = req->to_excl;
        sp.keep_all = true;
        stickctx x = {plan, tl_query__scratch(c, (size_t)c->n_dids + 1, sizeof *x.st), hist, 0};
        tl_qseq nums;
        int rc = tl_query__seq_stream(c, req, &sp, stick_rows, &x, &nums, err);
        if (rc) {
            free(hist);
            return rc;
        }
    }
    tl_buf_printf(out, "{\"columns\":[\"%s\",\"persons\"],\"rows\":[", unit_name(req->interval));
    for (uint32_t k = 1; k <= plan->nb; k++)
        tl_buf_printf(out, "%s[%u,%llu]", k > 1 ? "," : "", k, (unsigned long long)hist[k]);
    tl_buf_addc(out, ']');
    free(hist);
    return 0;
}

/* Lifecycle, streamed: per person its first event ever (the first row it gets, rows coming
 * in each person's time order from the start of history) and its last active bucket; the
 * counts are kept as rows come, and the dormant after each person's last active bucket are
 * added at the end. */
typedef struct lperson {
    int64_t first;
    int32_t last; /* the last active bucket so far; -1 the previous period, -2 none */
    uint32_t seen;
} lperson;

typedef struct lifectx {
    const tl_qplan *pl;
    int64_t p0, p1;
    lperson *st;    /* per person, calloc'd: pages touched only where used */
    uint32_t *seen; /* persons met */
    size_t n_seen, cap_seen;
    uint64_t *cnt; /* per bucket: new, returning, resurrecting, dormant */
    uint32_t hint;
} lifectx;

static int life_rows(void *arg, const uint32_t *who, const tl_qseq_ev *ev, size_t n)
{
    lifectx *x = arg;
    const int64_t *U = x->pl->U;
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH < n) __builtin_prefetch(&x->st[who[i + PREFETCH]], 1);
        lperson *p = &x->st[who[i]];
        int64_t t = ev[i].ts;
        if (!p->seen) {
            if (x->n_seen == x->cap_seen) {
                x->cap_seen = x->cap_seen ? x->cap_seen * 2 : 1024;
                x->seen = tl_xrealloc(x->seen, x->cap_seen * sizeof *x->seen);
            }
            x->seen[x->n_seen++] = who[i];
            *p = (lperson){t, -2, 1};
        }
        if (t < x->p0 || (t >= x->p1 && t < U[0])) continue;
        int32_t b = t < x->p1 ? -1 : (int32_t)bucket_near(x->pl, t, &x->hint);
        if (b == p->last) continue;
        if (b >= 0) {
            if (p->first >= U[b])
                x->cnt[b * 4]++;
            else if (p->last == b - 1)
                x->cnt[b * 4 + 1]++;
            else
                x->cnt[b * 4 + 2]++;
        }
        if (p->last >= -1 && p->last + 1 < b) x->cnt[(p->last + 1) * 4 + 3]++;
        p->last = b;
    }
    return 0;
}

static int lifecycle(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, tl_buf *out, tl_err *err)
{
    uint32_t nb = plan->nb;
    lifectx x;
    memset(&x, 0, sizeof x);
    x.pl = plan;
    prev_period(req, plan, &x.p0, &x.p1);
    x.cnt = tl_xcalloc((size_t)nb * 4, sizeof *x.cnt);
    if (c->sn && !tl_query__compile(c, req)) {
        tl_qseq_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.from = INT64_MIN; /* first events ever */
        sp.to_excl = req->to_excl;
        sp.keep_all = true;
        x.st = tl_query__scratch(c, (size_t)c->n_dids + 1, sizeof *x.st);
        tl_qseq nums;
        int rc = tl_query__seq_stream(c, req, &sp, life_rows, &x, &nums, err);
        if (rc) {
            free(x.seen);
            free(x.cnt);
            return rc;
        }
        for (size_t i = 0; i < x.n_seen; i++) {
            int32_t last = x.st[x.seen[i]].last;
            if (last >= -1 && last + 1 < (int32_t)nb) x.cnt[(last + 1) * 4 + 3]++;
        }
        free(x.seen);
    }
    uint64_t *cnt = x.cnt;
    tl_buf_adds(out, "{\"columns\":[\"bucket\",\"new\",\"returning\",\"resurrecting\",\"dormant\"],"
                     "\"rows\":[");
    for (uint32_t b = 0; b < nb; b++) {
        tl_buf_adds(out, b ? ",[" : "[");
        tl_query__put_label(out, req->interval, plan->label[b]);
        tl_buf_printf(out, ",%llu,%llu,%llu,%lld]", (unsigned long long)cnt[b * 4],
                      (unsigned long long)cnt[b * 4 + 1], (unsigned long long)cnt[b * 4 + 2],
                      -(long long)cnt[b * 4 + 3]);
    }
    tl_buf_addc(out, ']');
    free(cnt);
    return 0;
}

int tl_query__lifecycle(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q,
                        tl_buf *out, tl_err *err)
{
    (void)q;
    bool st = req->metric == TL_QM_STICKINESS;
    if (req->has_bd)
        return tl_err_set(err, TL_EINVAL, "breakdown: not supported with metric '%s'",
                          st ? "stickiness" : "lifecycle");
    return st ? stickiness(c, req, plan, out, err) : lifecycle(c, req, plan, out, err);
}
