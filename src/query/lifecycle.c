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
 * Cost: one sequence build (for lifecycle over all history up to `to`, to find first events),
 * then one pass over each person's events with a binary search per event: O(E log B). */
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"
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

static int stickiness(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, tl_buf *out, tl_err *err)
{
    tl_qseq sq;
    memset(&sq, 0, sizeof sq);
    if (c->sn && !tl_query__compile(c, req)) {
        tl_qseq_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.from = req->from_ms;
        sp.to_excl = req->to_excl;
        sp.keep_all = true;
        int rc = tl_query__seq_build(c, req, &sp, &sq, err);
        if (rc) return rc;
    }
    uint64_t *hist = tl_xcalloc((size_t)plan->nb + 1, sizeof *hist);
    for (uint32_t p = 0; p < sq.n_persons; p++) {
        uint32_t k = 0, last = UINT32_MAX;
        for (size_t i = sq.off[p]; i < sq.off[p + 1]; i++) {
            uint32_t b = tl_query__bucket_of(plan, sq.ev[i].ts);
            k += b != last;
            last = b;
        }
        hist[k]++;
    }
    tl_buf_printf(out, "{\"columns\":[\"%s\",\"persons\"],\"rows\":[", unit_name(req->interval));
    for (uint32_t k = 1; k <= plan->nb; k++)
        tl_buf_printf(out, "%s[%u,%llu]", k > 1 ? "," : "", k, (unsigned long long)hist[k]);
    tl_buf_addc(out, ']');
    free(hist);
    return 0;
}

static int lifecycle(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, tl_buf *out, tl_err *err)
{
    int64_t p0, p1;
    prev_period(req, plan, &p0, &p1);
    tl_qseq sq;
    memset(&sq, 0, sizeof sq);
    if (c->sn && !tl_query__compile(c, req)) {
        tl_qseq_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.from = INT64_MIN; /* first events ever */
        sp.to_excl = req->to_excl;
        sp.keep_all = true;
        int rc = tl_query__seq_build(c, req, &sp, &sq, err);
        if (rc) return rc;
    }
    uint32_t nb = plan->nb;
    uint64_t *cnt = tl_xcalloc((size_t)nb * 4, sizeof *cnt); /* new, returning, resurr., dormant */
    const int64_t *U = plan->U;
    for (uint32_t p = 0; p < sq.n_persons; p++) {
        const tl_qseq_ev *e = sq.ev + sq.off[p];
        size_t n = sq.off[p + 1] - sq.off[p];
        int64_t first = e[0].ts;
        int64_t last = -2; /* the last active bucket so far; -1 the previous period, -2 none */
        for (size_t i = 0; i < n; i++) {
            int64_t t = e[i].ts;
            if (t < p0 || (t >= p1 && t < U[0])) continue;
            int64_t b = t < p1 ? -1 : (int64_t)tl_query__bucket_of(plan, t);
            if (b == last) continue;
            if (b >= 0) {
                if (first >= U[b])
                    cnt[b * 4]++;
                else if (last == b - 1)
                    cnt[b * 4 + 1]++;
                else
                    cnt[b * 4 + 2]++;
            }
            if (last >= -1 && last + 1 < b) cnt[(last + 1) * 4 + 3]++;
            last = b;
        }
        if (last >= -1 && last + 1 < (int64_t)nb) cnt[(last + 1) * 4 + 3]++;
    }
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
