/* Queries over a store snapshot: the request of POST /api/v1/query (API.md, "Queries") is
 * validated here, turned into a time plan of UTC instants in the query's zone, run by the
 * trends engine (query/trends.c) with filters from query/filter.c, and written as JSON.
 *
 * Semantics that API.md leaves to the implementation, stated once:
 *
 *  Range. `from` and `to` are inclusive. A date (YYYY-MM-DD) means the whole local day in
 *  `tz`; an ISO-8601 time with a zone, or milliseconds since the epoch, means that instant.
 *  Buckets are the calendar periods (local hour, day, ISO week from Monday, month) that meet
 *  the range; a bucket is labelled by its first local day ("2026-01-05") or, for hours, its
 *  local wall hour ("2026-01-05T13:00"); rows outside the range never count, even inside a
 *  bucket that is cut by it. Every bucket appears, zeros included, at most 10000 of them.
 *  Hours: a wall hour skipped by a DST change has no bucket; a repeated wall hour is one
 *  two-hour bucket. A zone whose midnight falls in a gap starts that day at its first instant.
 *
 *  Metrics. events: rows. persons: distinct persons (identity resolved at query time, so
 *  merges are retroactive). wau / mau: distinct persons active in the 7 / 30 whole local days
 *  ending on the bucket's last day, or on the range's last day when the bucket runs past it;
 *  those windows reach back before `from` (a wau of the first day counts the six days before
 *  it), and rows after `to` never count. They need day, week or month buckets. sum:<prop> /
 *  avg:<prop>: over rows whose value is a number (see below); other rows are ignored, and the
 *  average of no rows is 0. Erased persons are excluded from every metric.
 *
 *  Filters (`where`, all must hold; the top-level `event` is one more `event = name`). A
 *  property is absent on a row that does not carry it (built-in fields: empty).
 *   - `=`, `in`: a string value matches a string property value exactly (bytes, case
 *     sensitive), and a numeric property value when the string's whole text is a JSON number
 *     equal to it; a number matches numeric values numerically and string values whose whole
 *     text is a JSON number equal to it ("42", "4.2e1"); true / false match the strings
 *     "true" / "false" (how booleans are stored). `=` with a list is `in`; `in` with a
 *     scalar is `=`.
 *   - `!=`, `not_in`: the negation, so they also match rows where the property is absent
 *     (as PostHog does); add `is_set` to exclude those.
 *   - `contains`: substring of a string value, case-sensitive; numbers never match.
 *   - `>`, `>=`, `<`, `<=`: numeric; a string value takes part when its whole text is a JSON
 *     number; any other value, and absence, never matches.
 *   - `is_set` / `is_not_set`: presence.
 *
 *  Breakdown. One column holds the value of the breakdown property: strings as stored,
 *  numbers as JSON numbers, null for rows without it. Every value that has a matching row in
 *  the scanned time (which for wau/mau includes the window before `from`) appears in every
 *  bucket, zeros included. At most 100 values are kept — those with the most matching rows,
 *  ties by value — and the rows of all others are counted together under "$other" (their own
 *  metric: distinct persons among them, not a sum of per-value counts). Rows are ordered by
 *  bucket, then null, numbers ascending, strings by bytes, then "$other". No matching row
 *  at all means no rows in the answer.
 *
 * Errors are TL_EINVAL with a message that starts with the field: "where[1].op: ...". */
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/mman.h>

#include <math.h>

#include "query/query_int.h"
#include "util/time.h"

/* ---- time zones: loaded once per name, shared by every query ---- */

#define TZ_CACHE_N 64

static pthread_mutex_t g_tz_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[TL_NAME_MAX];
    tl_tz *tz;
} g_tz[TZ_CACHE_N];
static uint32_t g_tz_n;

/* The zone `name`, from the cache or loaded into it; when the cache is full the zone is
 * returned in *owned too, for the caller to free. */
static int tz_get(tl_str name, const tl_tz **out, tl_tz **owned, tl_err *err)
{
    char buf[TL_NAME_MAX];
    *owned = NULL;
    if (!name.len || name.len >= sizeof buf || memchr(name.p, 0, name.len))
        return tl_err_set(err, TL_EINVAL, "tz: unknown time zone '%.*s'",
                          (int)(name.len > 80 ? 80 : name.len), name.p ? name.p : "");
    memcpy(buf, name.p, name.len);
    buf[name.len] = 0;
    pthread_mutex_lock(&g_tz_mu);
    for (uint32_t i = 0; i < g_tz_n; i++) {
        if (!strcmp(g_tz[i].name, buf)) {
            *out = g_tz[i].tz;
            pthread_mutex_unlock(&g_tz_mu);
            return 0;
        }
    }
    tl_tz *z = NULL;
    int rc = tl_tz_load(buf, &z, NULL);
    if (rc) {
        pthread_mutex_unlock(&g_tz_mu);
        return tl_err_set(err, TL_EINVAL, "tz: unknown time zone '%s'", buf);
    }
    if (g_tz_n < TZ_CACHE_N) {
        memcpy(g_tz[g_tz_n].name, buf, sizeof buf);
        g_tz[g_tz_n++].tz = z;
    } else {
        *owned = z;
    }
    pthread_mutex_unlock(&g_tz_mu);
    *out = z;
    return 0;
}

/* ---- request ---- */

static const char *const g_kind_names[TL_QK_COUNT] = {"trends", "funnel", "retention", "sessions",
                                                      "paths"};
#define TL_Q_KINDS "trends, funnel, retention, sessions, paths"

#define MIN_MS (-62135596800000LL) /* 0001-01-01 */
#define MAX_MS (253402214400000LL) /* 9999-12-31 */

/* from / to: a date, an ISO-8601 instant, or ms. For `to`, the end is exclusive. */
static int time_parse(const tl_json *v, const char *field, bool is_to, const tl_tz *tz, int64_t *ms,
                      tl_err *err)
{
    if (!v || v->type == TL_JNULL)
        return tl_err_set(err, TL_EINVAL,
                          "%s: required (a date YYYY-MM-DD, an ISO-8601 time "
                          "or milliseconds)",
                          field);
    int64_t t, day;
    if (v->type == TL_JSTR && !tl_date_parse(v->str, &day)) {
        t = tl_tz_day_start(tz, day + is_to);
        if (t < MIN_MS || t > MAX_MS) return tl_err_set(err, TL_EINVAL, "%s: out of range", field);
        *ms = t;
        return 0;
    }
    if (v->type == TL_JSTR && !tl_iso_parse(v->str, &t)) {
        /* accepted below */
    } else if (v->type == TL_JNUM && isfinite(v->num) && v->num == floor(v->num) &&
               fabs(v->num) < 9e15) {
        t = (int64_t)v->num;
    } else {
        return tl_err_set(err, TL_EINVAL,
                          "%s: expected a date YYYY-MM-DD, an ISO-8601 time "
                          "with a zone, or milliseconds",
                          field);
    }
    if (t < MIN_MS || t > MAX_MS) return tl_err_set(err, TL_EINVAL, "%s: out of range", field);
    *ms = t + is_to;
    return 0;
}

static int metric_parse(const tl_json *v, tl_qreq *req, tl_err *err)
{
    req->metric = TL_QM_EVENTS;
    if (!v || v->type == TL_JNULL) return 0;
    if (v->type != TL_JSTR) return tl_err_set(err, TL_EINVAL, "metric: expected a string");
    static const char *const names[] = {"events", "persons", "wau", "mau"};
    for (int i = 0; i < 4; i++)
        if (tl_str_eqc(v->str, names[i])) {
            req->metric = i;
            return 0;
        }
    if (tl_str_eqc(v->str, "stickiness") || tl_str_eqc(v->str, "lifecycle")) {
        req->metric = tl_str_eqc(v->str, "stickiness") ? TL_QM_STICKINESS : TL_QM_LIFECYCLE;
        return 0;
    }
    bool sum = tl_str_has_prefix(v->str, "sum:"), avg = tl_str_has_prefix(v->str, "avg:");
    if (!sum && !avg)
        return tl_err_set(err, TL_EINVAL,
                          "metric: unknown '%.*s' (events, persons, wau, mau, sum:<prop>, "
                          "avg:<prop>, stickiness, lifecycle)",
                          (int)(v->str.len > 80 ? 80 : v->str.len), v->str.p);
    req->metric = sum ? TL_QM_SUM : TL_QM_AVG;
    tl_str prop = {v->str.p + 4, v->str.len - 4};
    if (!prop.len)
        return tl_err_set(err, TL_EINVAL, "metric: '%s' needs a property ('%s:properties.price')",
                          sum ? "sum:" : "avg:", sum ? "sum" : "avg");
    return tl_query__prop_parse(prop, "metric", &req->mprop, err);
}

static int interval_parse(const tl_json *v, tl_qreq *req, tl_err *err)
{
    static const char *const names[] = {"hour", "day", "week", "month"};
    req->interval = TL_QI_DAY;
    if (!v || v->type == TL_JNULL) return 0;
    if (v->type == TL_JSTR)
        for (int i = 0; i < 4; i++)
            if (tl_str_eqc(v->str, names[i])) {
                req->interval = i;
                return 0;
            }
    if (v->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "interval: expected a string (hour, day, week, month)");
    return tl_err_set(err, TL_EINVAL, "interval: unknown '%.*s' (hour, day, week, month)",
                      (int)(v->str.len > 80 ? 80 : v->str.len), v->str.p);
}

static int req_parse(const tl_project_conf *p, const tl_json *q, tl_arena *a, tl_qreq *req,
                     tl_tz **owned, tl_err *err)
{
    memset(req, 0, sizeof *req);
    if (!q || q->type != TL_JOBJ)
        return tl_err_set(err, TL_EINVAL, "query: expected a JSON object");
    const tl_json *v = tl_json_get(q, "project");
    if (!v || v->type == TL_JNULL) return tl_err_set(err, TL_EINVAL, "project: required");
    if (v->type != TL_JSTR) return tl_err_set(err, TL_EINVAL, "project: expected a string");
    if (!tl_str_eqc(v->str, p->name))
        return tl_err_set(err, TL_EINVAL, "project: '%.*s' is not the project of this key",
                          (int)(v->str.len > 80 ? 80 : v->str.len), v->str.p);
    v = tl_json_get(q, "kind");
    if (!v || v->type == TL_JNULL)
        return tl_err_set(err, TL_EINVAL, "kind: required (%s)", TL_Q_KINDS);
    if (v->type != TL_JSTR) return tl_err_set(err, TL_EINVAL, "kind: expected a string");
    req->kind = -1;
    for (int i = 0; i < TL_QK_COUNT; i++)
        if (tl_str_eqc(v->str, g_kind_names[i])) req->kind = i;
    if (req->kind < 0)
        return tl_err_set(err, TL_EINVAL, "kind: unknown '%.*s' (%s)",
                          (int)(v->str.len > 80 ? 80 : v->str.len), v->str.p, TL_Q_KINDS);
    v = tl_json_get(q, "tz");
    int rc;
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JSTR)
            return tl_err_set(err, TL_EINVAL, "tz: expected a string (an IANA zone name)");
        rc = tz_get(v->str, &req->tz, owned, err);
    } else {
        rc = tz_get(tl_str_c(p->timezone[0] ? p->timezone : "UTC"), &req->tz, owned, err);
    }
    if (rc) return rc;
    if ((rc = time_parse(tl_json_get(q, "from"), "from", false, req->tz, &req->from_ms, err)) ||
        (rc = time_parse(tl_json_get(q, "to"), "to", true, req->tz, &req->to_excl, err)))
        return rc;
    if (req->to_excl <= req->from_ms) return tl_err_set(err, TL_EINVAL, "to: before from");
    req->fd = tl_tz_local_day(req->tz, req->from_ms);
    req->td = tl_tz_local_day(req->tz, req->to_excl - 1);
    if (req->td - req->fd >= TL_Q_MAX_DAYS)
        return tl_err_set(err, TL_EINVAL, "to: the range is longer than %d days", TL_Q_MAX_DAYS);
    if ((rc = interval_parse(tl_json_get(q, "interval"), req, err))) return rc;
    if (req->kind == TL_QK_TRENDS && (rc = metric_parse(tl_json_get(q, "metric"), req, err)))
        return rc;
    if ((req->metric == TL_QM_WAU || req->metric == TL_QM_MAU) && req->interval == TL_QI_HOUR)
        return tl_err_set(err, TL_EINVAL,
                          "interval: 'hour' does not go with metric '%s' (use "
                          "day, week or month)",
                          req->metric == TL_QM_WAU ? "wau" : "mau");
    rc = tl_query__where_parse(tl_json_get(q, "where"), tl_json_get(q, "event"), a, req, err);
    if (rc) return rc;
    v = tl_json_get(q, "breakdown");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JSTR)
            return tl_err_set(err, TL_EINVAL, "breakdown: expected a string (a property)");
        req->has_bd = true;
        rc = tl_query__prop_parse(v->str, "breakdown", &req->bd, err);
    }
    return rc;
}

/* ---- the time plan ---- */

static int64_t period_start(int interval, int64_t day)
{
    int64_t y;
    unsigned m, d;
    switch (interval) {
    case TL_QI_WEEK: return day - (day + 3 - 7 * tl_floordiv(day + 3, 7)); /* Monday */
    case TL_QI_MONTH: tl_civil_from_days(day, &y, &m, &d); return tl_days_from_civil(y, m, 1);
    default: return day;
    }
}

static int64_t period_next(int interval, int64_t day)
{
    int64_t y;
    unsigned m, d;
    switch (interval) {
    case TL_QI_WEEK: return day + 7;
    case TL_QI_MONTH:
        tl_civil_from_days(day, &y, &m, &d);
        return m == 12 ? tl_days_from_civil(y + 1, 1, 1) : tl_days_from_civil(y, m + 1, 1);
    default: return day + 1;
    }
}

static int too_many(uint64_t nb, tl_err *err)
{
    return tl_err_set(err, TL_EINVAL,
                      "interval: %llu buckets, more than %d; use a longer interval or a "
                      "shorter range",
                      (unsigned long long)nb, TL_Q_MAX_BUCKETS);
}

static int plan_hours(const tl_qreq *req, tl_arena *a, tl_qplan *pl, tl_err *err)
{
    const tl_tz *tz = req->tz;
    uint64_t days = (uint64_t)(req->td - req->fd + 1);
    if (days * 24 > TL_Q_MAX_BUCKETS + 48) return too_many(days * 24, err);
    uint32_t cap = (uint32_t)days * 24;
    pl->label = tl_arena_alloc(a, cap * sizeof *pl->label);
    pl->U = tl_arena_alloc(a, (cap + 1) * sizeof *pl->U);
    pl->nb = 0;
    int64_t end = 0;
    for (int64_t h = req->fd * 24; h < (req->td + 1) * 24; h++) {
        int64_t s = tl_tz_local_to_utc_ms(tz, h * 3600),
                e = tl_tz_local_to_utc_ms(tz, h * 3600 + 3600);
        if (pl->nb && s < end) s = end; /* never overlap the previous bucket */
        if (e <= s || e <= req->from_ms || s >= req->to_excl) continue;
        pl->label[pl->nb] = h;
        pl->U[pl->nb++] = s;
        end = e;
    }
    if (pl->nb > TL_Q_MAX_BUCKETS) return too_many(pl->nb, err);
    if (!pl->nb) { /* cannot happen for a nonempty range; be safe */
        pl->label[0] = req->fd * 24;
        pl->U[0] = req->from_ms;
        pl->nb = 1;
    }
    if (pl->U[0] < req->from_ms) pl->U[0] = req->from_ms;
    pl->U[pl->nb] = req->to_excl;
    pl->nu = pl->nb;
    pl->b_unit = tl_arena_alloc(a, pl->nb * sizeof *pl->b_unit);
    for (uint32_t b = 0; b < pl->nb; b++)
        pl->b_unit[b] = b;
    pl->window = 1;
    return 0;
}

static int plan_build(const tl_qreq *req, tl_arena *a, tl_qplan *pl, tl_err *err)
{
    memset(pl, 0, sizeof *pl);
    if (req->interval == TL_QI_HOUR) return plan_hours(req, a, pl, err);
    const tl_tz *tz = req->tz;
    int iv = req->interval;
    uint64_t nb = 0;
    for (int64_t d = period_start(iv, req->fd); d <= req->td; d = period_next(iv, d))
        nb++;
    if (nb > TL_Q_MAX_BUCKETS) return too_many(nb, err);
    pl->nb = (uint32_t)nb;
    pl->label = tl_arena_alloc(a, nb * sizeof *pl->label);
    pl->b_unit = tl_arena_alloc(a, nb * sizeof *pl->b_unit);
    int64_t d = period_start(iv, req->fd);
    for (uint32_t b = 0; b < nb; b++, d = period_next(iv, d))
        pl->label[b] = d;
    pl->window = req->metric == TL_QM_WAU ? 7 : req->metric == TL_QM_MAU ? 30 : 1;
    if (pl->window == 1) {
        pl->nu = pl->nb;
        pl->U = tl_arena_alloc(a, (pl->nu + 1) * sizeof *pl->U);
        pl->U[0] = req->from_ms;
        for (uint32_t b = 1; b < nb; b++)
            pl->U[b] = tl_tz_day_start(tz, pl->label[b]);
        pl->U[nb] = req->to_excl;
        for (uint32_t b = 0; b < nb; b++)
            pl->b_unit[b] = b;
        return 0;
    }
    /* Rolling windows: units are local days, from the first window's first day. */
    int64_t e0 = period_next(iv, pl->label[0]) - 1;
    if (e0 > req->td) e0 = req->td;
    int64_t d0 = e0 - pl->window + 1;
    pl->nu = (uint32_t)(req->td - d0 + 1);
    pl->U = tl_arena_alloc(a, (pl->nu + 1) * sizeof *pl->U);
    for (uint32_t u = 0; u < pl->nu; u++)
        pl->U[u] = tl_tz_day_start(tz, d0 + u);
    pl->U[pl->nu] = req->to_excl;
    for (uint32_t b = 0; b < nb; b++) {
        int64_t e = period_next(iv, pl->label[b]) - 1;
        pl->b_unit[b] = (uint32_t)((e < req->td ? e : req->td) - d0);
    }
    return 0;
}

/* ---- output ---- */

void tl_query__put_label(tl_buf *out, int interval, int64_t label)
{
    int64_t y, day = interval == TL_QI_HOUR ? tl_floordiv(label, 24) : label;
    unsigned m, d;
    tl_civil_from_days(day, &y, &m, &d);
    if (interval == TL_QI_HOUR)
        tl_buf_printf(out, "\"%04lld-%02u-%02uT%02d:00\"", (long long)y, m, d,
                      (int)(label - day * 24));
    else
        tl_buf_printf(out, "\"%04lld-%02u-%02u\"", (long long)y, m, d);
}

uint32_t tl_query__bucket_of(const tl_qplan *pl, int64_t t)
{
    uint32_t lo = 0, hi = pl->nb;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pl->U[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void put_slot(tl_buf *out, tl_snap *sn, const tl_qslot *s)
{
    switch (s->kind) {
    case TL_QB_NUM: tl_buf_json_num(out, s->num); break;
    case TL_QB_STR: tl_buf_json_str(out, tl_snap_dict_str(sn, s->id)); break;
    case TL_QB_OTHER: tl_buf_adds(out, "\"$other\""); break;
    default: tl_buf_adds(out, "null"); break;
    }
}

static void answer(tl_buf *out, const tl_qreq *req, const tl_qplan *pl, const tl_qresult *res,
                   tl_snap *sn, int64_t t0)
{
    tl_buf_adds(out, "{\"columns\":[\"bucket\",");
    if (req->has_bd) {
        tl_buf_json_str(out, req->bd.name);
        tl_buf_addc(out, ',');
    }
    tl_buf_adds(out, "\"value\"],\"rows\":[");
    bool first = true;
    for (uint32_t b = 0; b < pl->nb; b++) {
        for (uint32_t s = 0; s < res->nslot; s++) {
            tl_buf_adds(out, first ? "[" : ",[");
            first = false;
            tl_query__put_label(out, req->interval, pl->label[b]);
            tl_buf_addc(out, ',');
            if (req->has_bd) {
                put_slot(out, sn, &res->slots[s]);
                tl_buf_addc(out, ',');
            }
            tl_buf_json_num(out, res->values[(size_t)b * res->nslot + s]);
            tl_buf_addc(out, ']');
        }
    }
    tl_buf_printf(out, "],\"took_ms\":%lld}", (long long)(tl_mono_ms() - t0));
}

int tl_query_run(tl_store *s, const tl_project_conf *p, const tl_json *q, tl_arena *a, tl_buf *out,
                 tl_err *err)
{
    int64_t t0 = tl_mono_ms();
    tl_tz *owned = NULL;
    tl_qctx c;
    tl_qreq req;
    tl_qplan pl;
    tl_qresult res;
    memset(&c, 0, sizeof c);
    memset(&res, 0, sizeof res);
    c.a = a;
    c.proj = p;
    int rc = req_parse(p, q, a, &req, &owned, err);
    if (!rc) rc = plan_build(&req, a, &pl, err);
    if (rc) goto done;
    rc = tl_store_snap(s, tl_str_c(p->name), &c.sn);
    if (rc == TL_ENOENT) {
        c.sn = NULL; /* no data yet: zeros */
        rc = 0;
    } else if (rc) {
        tl_err_set(err, rc, "store: %s", tl_strerror(rc));
        goto done;
    }
    if (c.sn) {
        c.persons = tl_snap_persons(c.sn);
        c.n_dids = tl_snap_n_dids(c.sn);
        c.dict_n = tl_snap_dict_n(c.sn);
        c.any_erased = tl_snap_any_erased(c.sn);
        /* calloc'd: pages are only touched for the strings a query meets */
        c.nstate = tl_query__scratch_sparse(&c, (size_t)c.dict_n + 1, 1);
        c.nval = tl_query__scratch_sparse(&c, (size_t)c.dict_n + 1, sizeof *c.nval);
    }
    switch (req.kind) {
    case TL_QK_TRENDS:
        if (req.metric < TL_QM_STICKINESS) {
            rc = tl_query__trends(&c, &req, &pl, &res, err);
            if (!rc) answer(out, &req, &pl, &res, c.sn, t0);
            break;
        }
        /* stickiness and lifecycle answer like the other kinds */
        /* fall through */
    default: {
        static int (*const run[TL_QK_COUNT])(tl_qctx *, tl_qreq *, const tl_qplan *,
                                             const tl_json *, tl_buf *, tl_err *) = {
            [TL_QK_FUNNEL] = tl_query__funnel,
            [TL_QK_RETENTION] = tl_query__retention,
            [TL_QK_SESSIONS] = tl_query__sessions,
            [TL_QK_PATHS] = tl_query__paths,
        };
        size_t mark = out->len;
        tl_qkind_fn *fn = req.kind == TL_QK_TRENDS ? tl_query__lifecycle : run[req.kind];
        rc = fn(&c, &req, &pl, q, out, err);
        if (rc)
            out->len = mark;
        else
            tl_buf_printf(out, ",\"took_ms\":%lld}", (long long)(tl_mono_ms() - t0));
    }
    }
done:
    tl_snap_free(c.sn);
    for (uint32_t i = 0; i < c.n_frees; i++)
        if (c.free_len[i])
            munmap(c.frees[i], c.free_len[i]);
        else
            free(c.frees[i]);
    for (uint32_t i = 0; i < c.n_warena; i++)
        tl_arena_free(c.warena[i]);
    free(c.frees);
    free(c.free_len);
    tl_tz_free(owned);
    return rc;
}
