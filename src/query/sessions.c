/* The sessions query (API.md "sessions"; the rules are in docs/semantics.md, "Sessions").
 *
 * A session is a person's run of events with no gap over the timeout (the query's
 * `session_timeout_s`, else the project's, default 30 min), cut at 24 h: an event more than
 * the timeout after the previous one, or 24 h or more after the session's first event, starts
 * a new session. Sessions are derived at query time from the events inside [from, to] only,
 * so a visit that began before `from` is seen from its first event in the range, and one that
 * goes on past `to` ends at its last event in the range. Identity is resolved at query time,
 * so one person's devices form one timeline.
 *
 * The top-level `where` (and `event`) selects sessions, not events: sessions are cut from
 * all of the person's events, and a session counts when at least one of its events matches
 * (PostHog's rule for session filters). Its duration, event count, entry and exit pages come
 * from all its events.
 *
 * Per bucket of session start (and breakdown value, the value at the session's first event):
 * sessions, average and median duration (last event − first event, seconds; the median of an
 * even count is the mean of the two middle ones), bounce rate (sessions of one event /
 * sessions) and events per session; zeros when a bucket has no session. Over the whole range:
 * entry and exit pages, the url of the first / last event of the session that has one,
 * the top 100 by sessions (ties by url bytes).
 *
 * Cost: one streaming scan (query/seq.c, no grouping by person): each person keeps its open
 * session (40 bytes, in an array over persons whose pages are touched only where used), so
 * a pass over the rows in sequence order cuts every session; then sorts of the sessions (by
 * breakdown value, by cell for the medians, by url) — O(E + S log S). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"

#define PREFETCH 16 /* rows ahead whose person state is fetched (persons are far apart) */
#include "util/time.h"

#define DAY_MS          86400000LL
#define TL_Q_MAX_PAGES  100 /* entry / exit pages listed */
#define DEFAULT_TIMEOUT 1800

/* A kept session (its entry and exit pages are counted as it closes). */
typedef struct sess {
    uint32_t bucket;
    uint32_t bdv; /* breakdown value (aux), later its slot */
    uint32_t nev;
    uint32_t dur_ms; /* < 24 h */
} sess;

static int timeout_parse(tl_qctx *c, const tl_json *q, int64_t *gap_ms, tl_err *err)
{
    uint32_t s =
        c->proj && c->proj->session_timeout_s ? c->proj->session_timeout_s : DEFAULT_TIMEOUT;
    const tl_json *v = tl_json_get(q, "session_timeout_s");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JNUM || !(v->num >= 1 && v->num <= 86400) ||
            v->num != (double)(int64_t)v->num)
            return tl_err_set(err, TL_EINVAL,
                              "session_timeout_s: expected a whole number of seconds, 1 to 86400");
        s = (uint32_t)v->num;
    }
    *gap_ms = (int64_t)s * 1000;
    return 0;
}

/* The k-th smallest of d[0..n) (k < n), with every smaller one moved before it: quickselect
 * (Hoare partition, median-of-three pivot). */
static int64_t select_kth(int64_t *d, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (lo < hi) {
        int64_t a = d[lo], b = d[lo + (hi - lo) / 2], c = d[hi];
        int64_t piv = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (d[i] < piv)
                i++;
            while (d[j] > piv)
                j--;
            if (i <= j) {
                int64_t t = d[i];
                d[i++] = d[j];
                d[j--] = t;
            }
        }
        /* d[lo..j] <= piv, d[j+1..i-1] == piv, d[i..hi] >= piv */
        if (kk <= j)
            hi = j;
        else if (kk >= i)
            lo = i;
        else
            return d[kk];
    }
    return d[kk];
}

/* The median of d[0..n) (n > 0; the mean of the two middle values when n is even); reorders
 * d. */
static double median(int64_t *d, size_t n)
{
    int64_t hi = select_kth(d, n, n / 2);
    if (n % 2) return (double)hi;
    int64_t lo = d[0];
    for (size_t i = 1; i < n / 2; i++)
        if (d[i] > lo) lo = d[i];
    return ((double)lo + (double)hi) / 2;
}

/* A value with its count, for ranking. */
typedef struct vcount {
    uint32_t v;
    uint64_t n;
} vcount;

typedef struct rankctx {
    tl_qctx *c;
    const tl_qseq *sq;
} rankctx;

/* Most first, ties in answer order (aux order: null, numbers, strings by bytes). */
static int rank_cmp(const void *a, const void *b, void *arg)
{
    const vcount *x = a, *y = b;
    const rankctx *r = arg;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return tl_query__seq_aux_cmp(r->c, r->sq, x->v, y->v);
}

/* Dense indexes (vcount.v) of a vidx, compared through their values. */
typedef struct vctx {
    tl_qctx *c;
    const tl_qseq *sq;
    const vcount *val;
} vctx;

static int dense_rank_cmp(const void *a, const void *b, void *arg)
{
    const vcount *x = a, *y = b;
    const vctx *r = arg;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return tl_query__seq_aux_cmp(r->c, r->sq, r->val[x->v].v, r->val[y->v].v);
}

static int dense_value_cmp(const void *a, const void *b, void *arg)
{
    const vcount *x = a, *y = b;
    const vctx *r = arg;
    return tl_query__seq_aux_cmp(r->c, r->sq, r->val[x->v].v, r->val[y->v].v);
}

/* Distinct aux values numbered densely in order of first sight, with counts: the maps from
 * dict id and from number index are calloc'd scratch (pages touched only where used), so
 * counting is O(1) per value. */
typedef struct vidx {
    uint32_t *by_id, *by_num; /* value -> dense index + 1 */
    vcount *v;
    uint32_t n, cap;
} vidx;

static void vidx_init(vidx *x, tl_qctx *c, const tl_qseq *sq)
{
    memset(x, 0, sizeof *x);
    x->by_id = tl_query__scratch_sparse(c, (size_t)c->dict_n + 1, sizeof *x->by_id);
    x->by_num = tl_query__scratch(c, (size_t)sq->n_nums + 1, sizeof *x->by_num);
}

/* Counts one v; returns its dense index. */
static uint32_t vidx_add(vidx *x, uint32_t v)
{
    uint32_t *slot = v & TL_QSEQ_NUM ? &x->by_num[v & ~TL_QSEQ_NUM] : &x->by_id[v];
    if (!*slot) {
        if (x->n == x->cap) {
            x->cap = x->cap ? x->cap * 2 : 64;
            x->v = tl_xrealloc(x->v, x->cap * sizeof *x->v);
        }
        x->v[x->n++] = (vcount){v, 0};
        *slot = x->n;
    }
    x->v[*slot - 1].n++;
    return *slot - 1;
}

/* Writes the pages counted in x, most sessions first, and frees them. */
static void put_pages(tl_buf *out, tl_qctx *c, const tl_qseq *sq, const char *name, vidx *x)
{
    vcount *vc = x->v;
    uint32_t k = x->n;
    rankctx rc = {c, sq};
    if (k) qsort_r(vc, k, sizeof *vc, rank_cmp, &rc);
    tl_buf_printf(out, ",\"%s\":[", name);
    for (uint32_t i = 0; i < k && i < TL_Q_MAX_PAGES; i++) {
        tl_buf_adds(out, i ? ",{\"url\":" : "{\"url\":");
        tl_query__seq_aux_json(c, sq, vc[i].v, out);
        tl_buf_printf(out, ",\"sessions\":%llu}", (unsigned long long)vc[i].n);
    }
    tl_buf_addc(out, ']');
    free(vc);
}

/* The streaming cut: rows come in sequence order across all persons (each person's in its
 * own order), and each person keeps its open session; a row that does not continue it closes
 * it (kept when one of its events matched) and opens the next. */
typedef struct spers {
    int64_t first, last;  /* the open session's first and last event times */
    uint32_t nev;         /* its events; 0: the person has not been seen */
    uint32_t mask;        /* the conditions its events matched */
    uint32_t entry, exit; /* its first and last url so far, 0: none */
    uint32_t bdv;         /* the breakdown value at its first event */
} spers;

typedef struct cutctx {
    int64_t gap_ms;
    const tl_qplan *pl;
    spers *st;      /* per person (canonical did), calloc'd: pages touched only where used */
    uint32_t *seen; /* persons met, to close their last sessions */
    size_t n_seen, cap_seen;
    sess *ss;
    size_t ns, cap;
    vidx entry, exit; /* url dict ids (a column: never numbers) */
} cutctx;

static void close_session(cutctx *x, const spers *p)
{
    if (!p->mask) return;
    if (x->ns == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 1024;
        x->ss = tl_xrealloc(x->ss, x->cap * sizeof *x->ss);
    }
    x->ss[x->ns++] = (sess){tl_query__bucket_of(x->pl, p->first), p->bdv, p->nev,
                            (uint32_t)(p->last - p->first)};
    if (p->entry) vidx_add(&x->entry, p->entry);
    if (p->exit) vidx_add(&x->exit, p->exit);
}

static int cut_rows(void *arg, const uint32_t *who, const tl_qseq_ev *ev, size_t n)
{
    cutctx *x = arg;
    for (size_t i = 0; i < n; i++) {
        const tl_qseq_ev *e = &ev[i];
        if (i + PREFETCH < n) __builtin_prefetch(&x->st[who[i + PREFETCH]], 1);
        spers *p = &x->st[who[i]];
        if (p->nev && e->ts - p->last <= x->gap_ms && e->ts - p->first < DAY_MS) {
            p->last = e->ts;
            p->nev++;
            p->mask |= e->mask;
            if (e->aux[0]) {
                if (!p->entry) p->entry = e->aux[0];
                p->exit = e->aux[0];
            }
            continue;
        }
        if (p->nev) {
            close_session(x, p);
        } else {
            if (x->n_seen == x->cap_seen) {
                x->cap_seen = x->cap_seen ? x->cap_seen * 2 : 1024;
                x->seen = tl_xrealloc(x->seen, x->cap_seen * sizeof *x->seen);
            }
            x->seen[x->n_seen++] = who[i];
        }
        *p = (spers){e->ts, e->ts, 1, e->mask, e->aux[0], e->aux[0], e->aux[1]};
    }
    return 0;
}

int tl_query__sessions(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q,
                       tl_buf *out, tl_err *err)
{
    int64_t gap_ms = 0;
    int rc = timeout_parse(c, q, &gap_ms, err);
    if (rc) return rc;
    /* Sessions are cut from every event; the top-level filters become condition 0. */
    tl_qcond cond = {req->preds, req->n_preds, false};
    tl_query__cond_compile(c, &cond);
    tl_qreq all = *req;
    all.preds = NULL;
    all.n_preds = 0;
    tl_qprop url, bd = req->bd;
    rc = tl_query__prop_parse(tl_str_c("url"), "url", &url, err);
    if (rc) return rc;
    tl_query__prop_resolve(c, &url);
    if (req->has_bd) tl_query__prop_resolve(c, &bd);
    tl_qseq_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.from = req->from_ms;
    sp.to_excl = req->to_excl;
    sp.conds = &cond;
    sp.n_conds = 1;
    sp.keep_all = true;
    sp.aux[0] = &url;
    sp.aux[1] = req->has_bd ? &bd : NULL;
    tl_qseq sq; /* only its numeric aux values */
    memset(&sq, 0, sizeof sq);
    cutctx cx;
    memset(&cx, 0, sizeof cx);
    cx.gap_ms = gap_ms;
    cx.pl = plan;
    tl_qseq none;
    memset(&none, 0, sizeof none);
    vidx_init(&cx.entry, c, &none);
    vidx_init(&cx.exit, c, &none);
    if (!cond.never && c->sn) {
        cx.st = tl_query__scratch(c, (size_t)c->n_dids + 1, sizeof *cx.st);
        rc = tl_query__seq_stream(c, &all, &sp, cut_rows, &cx, &sq, err);
        for (size_t i = 0; !rc && i < cx.n_seen; i++)
            close_session(&cx, &cx.st[cx.seen[i]]);
        free(cx.seen);
        if (rc) {
            free(cx.ss);
            free(cx.entry.v);
            free(cx.exit.v);
            return rc;
        }
    }
    sess *ss = cx.ss;
    size_t ns = cx.ns;

    /* Breakdown slots: the values of the sessions, the top TL_Q_MAX_BREAKDOWN by sessions
     * (ties in value order) in value order, then "$other". */
    uint32_t nslot = 1, nkept = 0;
    vcount *slots = NULL; /* kept values in display order */
    if (req->has_bd) {
        vidx x;
        vidx_init(&x, c, &sq);
        for (size_t i = 0; i < ns; i++)
            ss[i].bdv = vidx_add(&x, ss[i].bdv);
        uint32_t ndist = x.n;
        slots = tl_xmalloc((ndist ? ndist : 1) * sizeof *slots);
        for (uint32_t i = 0; i < ndist; i++)
            slots[i] = (vcount){i, x.v[i].n}; /* dense indexes, ranked by their values */
        vctx vx = {c, &sq, x.v};
        qsort_r(slots, ndist, sizeof *slots, dense_rank_cmp, &vx);
        nkept = ndist < TL_Q_MAX_BREAKDOWN ? ndist : TL_Q_MAX_BREAKDOWN;
        qsort_r(slots, nkept, sizeof *slots, dense_value_cmp, &vx);
        nslot = nkept + (ndist > nkept);
        uint32_t *dslot = tl_xmalloc((ndist ? ndist : 1) * sizeof *dslot);
        for (uint32_t i = 0; i < ndist; i++)
            dslot[i] = nkept; /* "$other" unless kept */
        for (uint32_t s = 0; s < nkept; s++) {
            dslot[slots[s].v] = s;
            slots[s].v = x.v[slots[s].v].v; /* the value itself, for the answer */
        }
        for (size_t i = 0; i < ns; i++)
            ss[i].bdv = dslot[ss[i].bdv];
        free(dslot);
        free(x.v);
    } else {
        for (size_t i = 0; i < ns; i++)
            ss[i].bdv = 0;
    }

    /* Per cell (bucket, slot): counts and sums, and the durations grouped by cell (a counting
     * sort) for the medians. */
    size_t ncell = (size_t)plan->nb * nslot;
    uint64_t *cnt = tl_xcalloc(ncell + 1, sizeof *cnt), *bounce = tl_xcalloc(ncell, sizeof *bounce),
             *nev = tl_xcalloc(ncell, sizeof *nev);
    double *dsum = tl_xcalloc(ncell, sizeof *dsum);
    for (size_t i = 0; i < ns; i++) {
        size_t k = (size_t)ss[i].bucket * nslot + ss[i].bdv;
        cnt[k + 1]++;
        bounce[k] += ss[i].nev == 1;
        nev[k] += ss[i].nev;
        dsum[k] += (double)ss[i].dur_ms;
    }
    for (size_t k = 0; k < ncell; k++)
        cnt[k + 1] += cnt[k]; /* cnt[k] is now the start of cell k */
    int64_t *durs = tl_xmalloc((ns ? ns : 1) * sizeof *durs);
    {
        size_t *pos = tl_xmalloc((ncell + 1) * sizeof *pos);
        for (size_t k = 0; k <= ncell; k++)
            pos[k] = cnt[k];
        for (size_t i = 0; i < ns; i++)
            durs[pos[(size_t)ss[i].bucket * nslot + ss[i].bdv]++] = ss[i].dur_ms;
        free(pos);
    }

    tl_buf_adds(out, "{\"columns\":[\"bucket\",");
    if (req->has_bd) {
        tl_buf_json_str(out, req->bd.name);
        tl_buf_addc(out, ',');
    }
    tl_buf_adds(out, "\"sessions\",\"avg_duration_s\",\"median_duration_s\",\"bounce_rate\","
                     "\"events_per_session\"],\"rows\":[");
    bool first = true;
    for (uint32_t b = 0; b < plan->nb && (!req->has_bd || ns); b++) {
        for (uint32_t s = 0; s < nslot; s++) {
            size_t k = (size_t)b * nslot + s, n = cnt[k + 1] - cnt[k];
            tl_buf_adds(out, first ? "[" : ",[");
            first = false;
            tl_query__put_label(out, req->interval, plan->label[b]);
            tl_buf_addc(out, ',');
            if (req->has_bd) {
                if (s < nkept)
                    tl_query__seq_aux_json(c, &sq, slots[s].v, out);
                else
                    tl_buf_adds(out, "\"$other\"");
                tl_buf_addc(out, ',');
            }
            double med = n ? median(durs + cnt[k], n) : 0;
            tl_buf_printf(out, "%llu,", (unsigned long long)n);
            tl_buf_json_num(out, n ? dsum[k] / (double)n / 1000 : 0);
            tl_buf_addc(out, ',');
            tl_buf_json_num(out, med / 1000);
            tl_buf_addc(out, ',');
            tl_buf_json_num(out, n ? (double)bounce[k] / (double)n : 0);
            tl_buf_addc(out, ',');
            tl_buf_json_num(out, n ? (double)nev[k] / (double)n : 0);
            tl_buf_addc(out, ']');
        }
    }
    tl_buf_addc(out, ']');
    put_pages(out, c, &sq, "entry_pages", &cx.entry);
    put_pages(out, c, &sq, "exit_pages", &cx.exit);
    tl_buf_printf(out, ",\"session_timeout_s\":%lld", (long long)(gap_ms / 1000));
    free(durs);
    free(cnt);
    free(bounce);
    free(nev);
    free(dsum);
    free(slots);
    free(ss);
    return 0;
}
