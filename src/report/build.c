/* Building a report: the calendar periods, and the trends queries whose answers fill it.
 *
 * For a period P = [first, last] (local days) and the period before it, each side runs:
 *
 *   events      metric events,  interval P                (one bucket: the total)
 *   persons     metric persons, interval P                (distinct persons in the period)
 *   series      metric events and persons, interval day (hour for day reports) → the charts;
 *               the DAU average is the mean of the daily persons over the period's days
 *   wau, mau    metric wau / mau, interval day, from = to = last
 *   pageviews   events with event = $pageview, plus events with url set and event != $pageview
 *   tables      breakdown by url (events with url set), country, platform, app_version
 *               (persons) and event (events), interval P
 *
 * so every number in a report is an answer of the API for the same dates, and a reader can
 * reproduce any of them with one query. Interval P (day, week or month) matches the period
 * exactly because periods are calendar periods, as trends buckets are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "report/report_int.h"
#include "util/json.h"
#include "util/time.h"

const tl_report_mdef tl_report__metrics[TL_RM_N] = {
    {"events", "Events", "events in the period", TL_RFMT_INT},
    {"persons", "Persons", "distinct persons with an event in the period", TL_RFMT_INT},
    {"dau_avg", "Daily active (avg)", "mean over the period's days of the daily distinct persons",
     TL_RFMT_DEC},
    {"wau", "WAU", "distinct persons in the 7 days ending on the period's last day", TL_RFMT_INT},
    {"mau", "MAU", "distinct persons in the 30 days ending on the period's last day", TL_RFMT_INT},
    {"stickiness", "Stickiness (DAU/MAU)", "daily active average divided by MAU", TL_RFMT_PCT},
    {"pageviews", "Pageviews", "$pageview events and other events that carry a url", TL_RFMT_INT},
};

const tl_report_tdef tl_report__tables[TL_RT_N] = {
    {"top_pages", "Top pages", "url", "Page", "Pageviews", "events",
     "[{\"prop\":\"url\",\"op\":\"is_set\"}]"},
    {"countries", "Top countries", "country", "Country", "Persons", "persons", NULL},
    {"platforms", "Platforms", "platform", "Platform", "Persons", "persons", NULL},
    {"app_versions", "App versions", "app_version", "App version", "Persons", "persons", NULL},
    {"events", "Top events", "event", "Event", "Events", "events", NULL},
};

/* ---- periods ---- */

int tl_report_period_parse(const char *s, tl_report_period *out)
{
    static const char *const names[] = {"day", "week", "month"};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (tl_report_period)i;
            return 0;
        }
    return TL_EINVAL;
}

const char *tl_report_period_name(tl_report_period p)
{
    return p == TL_REPORT_DAY ? "day" : p == TL_REPORT_WEEK ? "week" : "month";
}

void tl_report_period_of(tl_report_period p, int64_t day, int64_t *first, int64_t *last)
{
    int64_t y;
    unsigned m, d;
    switch (p) {
    case TL_REPORT_WEEK:
        *first = day - (day + 3 - 7 * tl_floordiv(day + 3, 7)); /* 1970-01-01 was a Thursday */
        *last = *first + 6;
        return;
    case TL_REPORT_MONTH:
        tl_civil_from_days(day, &y, &m, &d);
        *first = tl_days_from_civil(y, m, 1);
        *last = (m == 12 ? tl_days_from_civil(y + 1, 1, 1) : tl_days_from_civil(y, m + 1, 1)) - 1;
        return;
    default: *first = *last = day; return;
    }
}

int64_t tl_report_last_complete(tl_report_period p, int64_t today)
{
    int64_t first, last;
    tl_report_period_of(p, today, &first, &last);
    return first - 1;
}

/* ---- queries ---- */

static void q_open(tl_buf *q, const char *project, const char *metric, const char *interval,
                   int64_t from, int64_t to)
{
    char f[16], t[16];
    tl_report__day_str(from, f);
    tl_report__day_str(to, t);
    q->len = 0;
    tl_buf_adds(q, "{\"project\":");
    tl_buf_json_str(q, tl_str_c(project));
    tl_buf_printf(q,
                  ",\"kind\":\"trends\",\"metric\":\"%s\",\"interval\":\"%s\",\"from\":\"%s\","
                  "\"to\":\"%s\"",
                  metric, interval, f, t);
}

/* Runs the query in q (closing its object) and returns the "rows" of the answer, parsed into
 * the report's arena. */
static int run(tl_report *r, const tl_report_src *src, tl_buf *q, const tl_json **rows, tl_err *err)
{
    tl_buf_addc(q, '}');
    tl_buf ans = TL_BUF_INIT;
    int rc = src->query(src->ctx, tl_buf_str(q), &ans, err);
    if (rc) {
        tl_buf_fini(&ans);
        return rc;
    }
    /* The tree points into its text: keep the text in the arena too. */
    char *text = tl_arena_alloc(r->a, ans.len + 1);
    if (ans.len) memcpy(text, ans.p, ans.len);
    text[ans.len] = 0;
    size_t len = ans.len;
    tl_buf_fini(&ans);
    tl_json *j = NULL;
    rc = tl_json_parse(r->a, text, len, NULL, &j, err);
    if (!rc) {
        *rows = tl_json_get(j, "rows");
        if (!*rows || (*rows)->type != TL_JARR)
            rc = tl_err_set(err, TL_EBADMSG, "query answer without rows: %.120s", text);
    }
    return rc;
}

/* The value (last element) of a row, 0 when it is not a number. */
static double row_value(const tl_json *row)
{
    const tl_json *v = row->child;
    while (v && v->next)
        v = v->next;
    return v && v->type == TL_JNUM ? v->num : 0;
}

static double rows_total(const tl_json *rows)
{
    double s = 0;
    for (const tl_json *w = rows->child; w; w = w->next)
        s += row_value(w);
    return s;
}

static int total(tl_report *r, const tl_report_src *src, tl_buf *q, double *out, tl_err *err)
{
    const tl_json *rows;
    int rc = run(r, src, q, &rows, err);
    if (!rc) *out = rows_total(rows);
    return rc;
}

static const char *period_interval(tl_report_period p)
{
    return tl_report_period_name(p);
}

/* One side's series: events and persons per hour or day, into r->events[k] / persons[k]. */
static int series(tl_report *r, const tl_report_src *src, tl_buf *q, int k, int64_t from,
                  int64_t to, tl_err *err)
{
    const char *iv = r->per == TL_REPORT_DAY ? "hour" : "day";
    const tl_json *ev, *pp;
    q_open(q, r->project, "events", iv, from, to);
    int rc = run(r, src, q, &ev, err);
    if (rc) return rc;
    q_open(q, r->project, "persons", iv, from, to);
    rc = run(r, src, q, &pp, err);
    if (rc) return rc;
    uint32_t n = ev->n < 31 ? ev->n : 31; /* a calendar period has ≤ 31 days, ≤ 25 hours */
    if (k == 0)
        r->n_cur = n;
    else
        r->n_prev = n;
    if (n > r->n_pts) r->n_pts = n; /* arrays are sized for 31 days or 25 hours, see build */
    uint32_t i = 0;
    for (const tl_json *w = ev->child; w && i < 31; w = w->next, i++) {
        r->events[k][i] = row_value(w);
        r->labels[k][i] = w->child && w->child->type == TL_JSTR ? w->child->str : TL_STR("");
    }
    i = 0;
    for (const tl_json *w = pp->child; w && i < 31; w = w->next, i++)
        r->persons[k][i] = row_value(w);
    return 0;
}

static int row_cmp(const void *x, const void *y)
{
    const tl_report_row *a = x, *b = y;
    if ((a->kind == TL_RROW_OTHER) != (b->kind == TL_RROW_OTHER))
        return a->kind == TL_RROW_OTHER ? 1 : -1;
    if (a->ch.cur != b->ch.cur) return a->ch.cur > b->ch.cur ? -1 : 1;
    if (a->ch.prev != b->ch.prev) return a->ch.prev > b->ch.prev ? -1 : 1;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    return tl_str_cmp(a->name, b->name);
}

/* Adds the rows of one side's breakdown answer to the table (matching by value). */
static void table_add(tl_report *r, tl_report_table *t, uint32_t *cap, const tl_json *rows,
                      int side)
{
    for (const tl_json *w = rows->child; w; w = w->next) {
        const tl_json *bd = w->child ? w->child->next : NULL;
        if (!bd) continue;
        int kind = TL_RROW_VALUE;
        tl_str name = TL_STR("");
        if (bd->type == TL_JNULL)
            kind = TL_RROW_NULL;
        else if (bd->type == TL_JSTR && tl_str_eqc(bd->str, "$other"))
            kind = TL_RROW_OTHER;
        else if (bd->type == TL_JSTR || bd->type == TL_JNUM)
            name = bd->str;
        else
            name = bd->type == TL_JFALSE ? TL_STR("false") : TL_STR("true");
        double v = row_value(w);
        uint32_t i = 0;
        while (i < t->n && !(t->rows[i].kind == kind && tl_str_eq(t->rows[i].name, name)))
            i++;
        if (i == t->n) {
            if (t->n == *cap) {
                uint32_t nc = *cap ? *cap * 2 : 64;
                tl_report_row *nr = tl_arena_alloc(r->a, nc * sizeof *nr);
                if (t->n) memcpy(nr, t->rows, t->n * sizeof *nr);
                t->rows = nr;
                *cap = nc;
            }
            memset(&t->rows[i], 0, sizeof t->rows[i]);
            t->rows[i].kind = kind;
            t->rows[i].name = name;
            t->n++;
        }
        if (side == 0)
            t->rows[i].ch.cur += v;
        else
            t->rows[i].ch.prev += v;
    }
}

static int tables(tl_report *r, const tl_report_src *src, tl_buf *q, tl_err *err)
{
    for (int t = 0; t < TL_RT_N; t++) {
        const tl_report_tdef *d = &tl_report__tables[t];
        uint32_t cap = 0;
        for (int side = 0; side < 2; side++) {
            q_open(q, r->project, d->metric, period_interval(r->per), side ? r->pfirst : r->first,
                   side ? r->plast : r->last);
            tl_buf_printf(q, ",\"breakdown\":\"%s\"", d->prop);
            if (d->where) tl_buf_printf(q, ",\"where\":%s", d->where);
            const tl_json *rows;
            int rc = run(r, src, q, &rows, err);
            if (rc) return rc;
            table_add(r, &r->t[t], &cap, rows, side);
        }
        for (uint32_t i = 0; i < r->t[t].n; i++) {
            tl_report_row *w = &r->t[t].rows[i];
            w->ch = tl_report_change_of(w->ch.cur, w->ch.prev);
        }
        if (r->t[t].n) qsort(r->t[t].rows, r->t[t].n, sizeof *r->t[t].rows, row_cmp);
    }
    return 0;
}

/* The overview numbers of one side (k: 0 current, 1 previous) into vals[TL_RM_N]. */
static int overview(tl_report *r, const tl_report_src *src, tl_buf *q, int k, double *vals,
                    tl_err *err)
{
    int64_t first = k ? r->pfirst : r->first, last = k ? r->plast : r->last;
    const char *iv = period_interval(r->per);
    int rc;
    q_open(q, r->project, "events", iv, first, last);
    if ((rc = total(r, src, q, &vals[TL_RM_EVENTS], err))) return rc;
    q_open(q, r->project, "persons", iv, first, last);
    if ((rc = total(r, src, q, &vals[TL_RM_PERSONS], err))) return rc;
    q_open(q, r->project, "wau", "day", last, last);
    if ((rc = total(r, src, q, &vals[TL_RM_WAU], err))) return rc;
    q_open(q, r->project, "mau", "day", last, last);
    if ((rc = total(r, src, q, &vals[TL_RM_MAU], err))) return rc;
    double pv = 0, other = 0;
    q_open(q, r->project, "events", iv, first, last);
    tl_buf_adds(q, ",\"event\":\"$pageview\"");
    if ((rc = total(r, src, q, &pv, err))) return rc;
    q_open(q, r->project, "events", iv, first, last);
    tl_buf_adds(q, ",\"where\":[{\"prop\":\"url\",\"op\":\"is_set\"},{\"prop\":\"event\","
                   "\"op\":\"!=\",\"value\":\"$pageview\"}]");
    if ((rc = total(r, src, q, &other, err))) return rc;
    vals[TL_RM_PAGEVIEWS] = pv + other;
    /* DAU average over the period's days: for a day report, that day's persons. */
    if (r->per == TL_REPORT_DAY) {
        vals[TL_RM_DAU_AVG] = vals[TL_RM_PERSONS];
    } else {
        uint32_t n = k ? r->n_prev : r->n_cur;
        double s = 0;
        for (uint32_t i = 0; i < n; i++)
            s += r->persons[k][i];
        vals[TL_RM_DAU_AVG] = n ? s / n : 0;
    }
    vals[TL_RM_STICKINESS] = vals[TL_RM_MAU] > 0 ? vals[TL_RM_DAU_AVG] / vals[TL_RM_MAU] : 0;
    return 0;
}

int tl_report_build(const tl_report_src *src, const char *project, const char *tz_name,
                    tl_report_period per, int64_t day, tl_report **out, tl_err *err)
{
    *out = NULL;
    if (!project || !*project || strlen(project) >= TL_NAME_MAX)
        return tl_err_set(err, TL_EINVAL, "project: missing or too long");
    tl_arena *a = tl_arena_new();
    tl_report *r = tl_arena_calloc(a, sizeof *r);
    r->a = a;
    snprintf(r->project, sizeof r->project, "%s", project);
    snprintf(r->tz, sizeof r->tz, "%s", tz_name ? tz_name : "");
    r->per = per;
    r->generated_ms = tl_now_ms();
    tl_report_period_of(per, day, &r->first, &r->last);
    tl_report_period_of(per, r->first - 1, &r->pfirst, &r->plast);
    /* 31 days, or 25 hours on a day that repeats an hour */
    enum { CAP = 31 };
    for (int k = 0; k < 2; k++) {
        r->labels[k] = tl_arena_calloc(a, CAP * sizeof *r->labels[k]);
        r->events[k] = tl_arena_alloc(a, CAP * sizeof *r->events[k]);
        r->persons[k] = tl_arena_alloc(a, CAP * sizeof *r->persons[k]);
        for (int i = 0; i < CAP; i++)
            r->events[k][i] = r->persons[k][i] = NAN;
    }
    tl_buf q = TL_BUF_INIT;
    double vals[2][TL_RM_N] = {{0}};
    int rc = series(r, src, &q, 0, r->first, r->last, err);
    if (!rc) rc = series(r, src, &q, 1, r->pfirst, r->plast, err);
    if (r->n_pts > CAP) r->n_pts = CAP;
    if (!rc) rc = overview(r, src, &q, 0, vals[0], err);
    if (!rc) rc = overview(r, src, &q, 1, vals[1], err);
    if (!rc) rc = tables(r, src, &q, err);
    tl_buf_fini(&q);
    if (rc) {
        tl_arena_free(a);
        return rc;
    }
    for (int m = 0; m < TL_RM_N; m++)
        r->m[m] = tl_report_change_of(vals[0][m], vals[1][m]);
    *out = r;
    return 0;
}

void tl_report_free(tl_report *r)
{
    if (r) tl_arena_free(r->a);
}

void tl_report_range(const tl_report *r, int64_t *first, int64_t *last)
{
    *first = r->first;
    *last = r->last;
}

bool tl_report_metric(const tl_report *r, const char *name, tl_report_change *out)
{
    for (int m = 0; m < TL_RM_N; m++)
        if (!strcmp(tl_report__metrics[m].id, name)) {
            *out = r->m[m];
            return true;
        }
    return false;
}

int tl_report_today(const tl_report_src *src, const char *project, int64_t now_ms, int64_t *today,
                    tl_err *err)
{
    tl_buf q = TL_BUF_INIT;
    tl_buf_adds(&q, "{\"project\":");
    tl_buf_json_str(&q, tl_str_c(project));
    tl_buf_printf(&q,
                  ",\"kind\":\"trends\",\"metric\":\"events\",\"interval\":\"day\",\"from\":%lld,"
                  "\"to\":%lld}",
                  (long long)(now_ms - 2 * TL_MS_PER_DAY), (long long)now_ms);
    tl_buf ans = TL_BUF_INIT;
    int rc = src->query(src->ctx, tl_buf_str(&q), &ans, err);
    tl_arena *a = tl_arena_new();
    tl_json *j = NULL;
    if (!rc) rc = tl_json_parse(a, ans.p ? ans.p : "", ans.len, NULL, &j, err);
    if (!rc) {
        const tl_json *rows = tl_json_get(j, "rows"), *last = NULL;
        for (const tl_json *w = rows && rows->type == TL_JARR ? rows->child : NULL; w; w = w->next)
            last = w;
        if (!last || !last->child || last->child->type != TL_JSTR ||
            tl_date_parse(last->child->str, today))
            rc = tl_err_set(err, TL_EBADMSG, "cannot read the project's date from the server");
    }
    tl_arena_free(a);
    tl_buf_fini(&ans);
    tl_buf_fini(&q);
    return rc;
}
