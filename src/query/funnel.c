/* The funnel query (API.md "funnel"; semantics in docs/semantics.md, "Funnels").
 *
 * Request: steps (2..20, each {"event", "where"}), window_s (default 14 days), order
 * ("ordered" default, "strict", "any"), exclusions ([{"event", "where", "from_step",
 * "to_step"}], steps numbered from 1), plus the common range, tz, where and breakdown.
 *
 * Every person's events in [from, to] that pass the top-level where are taken in sequence
 * order (query/seq.c: time, then the lowest step an event matches, so at one instant an event
 * that can be step 1 comes before one that can be step 2). A chain is a subsequence of
 * events e1..ek matching steps 1..k, each event used once, with time(ek) - time(e1) ≤ window.
 *
 *  ordered  a person reaches the deepest k for which a chain exists (ClickHouse windowFunnel).
 *           One pass per person keeps, for each level, the chain with the latest start (it
 *           has the most window left, so it dominates), updating levels from the deepest
 *           down so one event never serves two steps.
 *  strict   as ordered, but e(i+1) must be the person's very next event after e(i) (any other
 *           event that passes the top-level where, in between, breaks the chain).
 *  any      the steps in any order: a person reaches k when, in the events from one of its
 *           step events through window_s after it, k different steps are matched (an event
 *           that matches several steps counts for each).
 * Exclusions: a chain is broken by an exclusion event x with pos(step from_step) < pos(x) <=
 * pos(step to_step) in sequence order (exclusion conditions rank after the steps, so at one
 * instant the other step events come first; an event that is both the to_step and an
 * exclusion breaks the chain). The person counts at the deepest level of its unbroken
 * chains.
 *
 * A person counts once, at its deepest step (persons[k] = persons that reached step k or
 * further). Its times between steps, and its breakdown value (the value at its step 1), are
 * those of the chain that first reached its deepest step (earliest completion; among chains
 * completing at the same event, the latest start). median / p90 of the times from the
 * previous step are exact nearest-rank percentiles over the persons that reached the step:
 * the value at rank ceil(p * n) of the sorted times, in seconds. */
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "query/query_int.h"
#include "util/bigmem.h"

#define MAX_STEPS      20
#define MAX_EXCLUSIONS 5
#define DEFAULT_WINDOW (14LL * 86400)

enum { ORDERED, STRICT, ANY };

typedef struct excl {
    uint32_t from, to; /* 0-based steps */
} excl;

typedef struct fspec {
    uint32_t n_steps, n_excl;
    tl_qcond conds[MAX_STEPS + MAX_EXCLUSIONS];
    tl_str names[MAX_STEPS];
    excl ex[MAX_EXCLUSIONS];
    int64_t window_ms;
    int order;
} fspec;

/* One person's result: deepest step (0-based; -1 none), its chain's times and step-1 value. */
typedef struct presult {
    int level;
    int64_t t[MAX_STEPS];
    uint32_t bd;
} presult;

/* ---- parsing ---- */

static int parse(tl_qctx *c, const tl_json *q, fspec *f, tl_err *err)
{
    memset(f, 0, sizeof *f);
    const tl_json *steps = tl_json_get(q, "steps");
    if (!steps || steps->type != TL_JARR)
        return tl_err_set(err, TL_EINVAL,
                          "steps: required, a list of 2 to %d {\"event\": E, \"where\": [...]}",
                          MAX_STEPS);
    if (steps->n < 2 || steps->n > MAX_STEPS)
        return tl_err_set(err, TL_EINVAL, "steps: %u steps; a funnel has 2 to %d", steps->n,
                          MAX_STEPS);
    f->n_steps = steps->n;
    char field[64];
    uint32_t i = 0;
    for (const tl_json *s = steps->child; s; s = s->next, i++) {
        snprintf(field, sizeof field, "steps[%u]", i);
        if (s->type != TL_JOBJ)
            return tl_err_set(err, TL_EINVAL, "%s: expected {\"event\": E, \"where\": [...]}",
                              field);
        const tl_json *ev = tl_json_get(s, "event");
        if (ev && ev->type != TL_JNULL && ev->type != TL_JSTR)
            return tl_err_set(err, TL_EINVAL, "%s.event: expected a string", field);
        int rc = tl_query__cond_parse(c, tl_json_get(s, "where"), ev, field, &f->conds[i], err);
        if (rc) return rc;
        f->names[i] = ev && ev->type == TL_JSTR ? ev->str : TL_STR_NULL;
    }
    const tl_json *v = tl_json_get(q, "window_s");
    f->window_ms = DEFAULT_WINDOW * 1000;
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JNUM || !(v->num > 0) || v->num > 3660.0 * 86400 ||
            v->num != floor(v->num))
            return tl_err_set(err, TL_EINVAL, "window_s: expected whole seconds, 1 to 316224000");
        f->window_ms = (int64_t)v->num * 1000;
    }
    v = tl_json_get(q, "order");
    f->order = ORDERED;
    if (v && v->type != TL_JNULL) {
        if (v->type == TL_JSTR && tl_str_eqc(v->str, "ordered"))
            f->order = ORDERED;
        else if (v->type == TL_JSTR && tl_str_eqc(v->str, "strict"))
            f->order = STRICT;
        else if (v->type == TL_JSTR && tl_str_eqc(v->str, "any"))
            f->order = ANY;
        else
            return tl_err_set(err, TL_EINVAL, "order: expected \"ordered\", \"strict\" or \"any\"");
    }
    v = tl_json_get(q, "exclusions");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JARR || v->n > MAX_EXCLUSIONS)
            return tl_err_set(err, TL_EINVAL,
                              "exclusions: expected a list of up to %d {\"event\", \"where\", "
                              "\"from_step\", \"to_step\"}",
                              MAX_EXCLUSIONS);
        if (v->n && f->order == ANY)
            return tl_err_set(err, TL_EINVAL, "exclusions: not with order \"any\"");
        i = 0;
        for (const tl_json *x = v->child; x; x = x->next, i++) {
            snprintf(field, sizeof field, "exclusions[%u]", i);
            if (x->type != TL_JOBJ)
                return tl_err_set(err, TL_EINVAL, "%s: expected an object", field);
            const tl_json *ev = tl_json_get(x, "event");
            if (ev && ev->type != TL_JNULL && ev->type != TL_JSTR)
                return tl_err_set(err, TL_EINVAL, "%s.event: expected a string", field);
            int rc = tl_query__cond_parse(c, tl_json_get(x, "where"), ev, field,
                                          &f->conds[f->n_steps + i], err);
            if (rc) return rc;
            if (!ev && !f->conds[f->n_steps + i].n_preds)
                return tl_err_set(err, TL_EINVAL, "%s: needs an event or a where", field);
            double a = 1, b = f->n_steps;
            const tl_json *fa = tl_json_get(x, "from_step"), *fb = tl_json_get(x, "to_step");
            if (fa && fa->type == TL_JNUM) a = fa->num;
            if (fb && fb->type == TL_JNUM) b = fb->num;
            if ((fa && fa->type != TL_JNUM && fa->type != TL_JNULL) ||
                (fb && fb->type != TL_JNUM && fb->type != TL_JNULL) || a != floor(a) ||
                b != floor(b) || a < 1 || b <= a || b > f->n_steps)
                return tl_err_set(err, TL_EINVAL,
                                  "%s: from_step and to_step must be steps 1..%u with from_step "
                                  "< to_step",
                                  field, f->n_steps);
            f->ex[i] = (excl){(uint32_t)a - 1, (uint32_t)b - 1};
        }
        f->n_excl = i;
    }
    return 0;
}

/* ---- one person ---- */

static void keep_best(presult *pr, int level, const int64_t *chain, uint32_t bd)
{
    pr->level = level;
    memcpy(pr->t, chain, (size_t)(level + 1) * sizeof *chain);
    pr->bd = bd;
}

/* ordered and strict: a person's state is a block of int64 (so all persons' states can sit in
 * one array for the streaming scan): [0] best level + 1 (0: none), [1] levels held (bits),
 * [2] the best chain's step-1 value, [3, 3+S) each level's step-1 value, [3+S, 3+2S) the best
 * chain's times, [3+2S, 3+2S+S*S) each level's chain times (level j at j*S). */
#define B_LEVEL 0
#define B_HAS   1
#define B_BD    2
#define B_LBD   3

static inline size_t block_len(uint32_t S)
{
    return 3 + 2 * (size_t)S + (size_t)S * S;
}

static void keep_block(int64_t *b, uint32_t S, uint32_t j, const int64_t *chain, uint32_t bd)
{
    b[B_LEVEL] = j + 1;
    b[B_BD] = bd;
    memcpy(b + 3 + S, chain, (j + 1) * sizeof *chain);
}

/* One event of the person whose state is b. */
static void step_ordered(const fspec *f, int64_t *b, const tl_qseq_ev *e)
{
    const uint32_t S = f->n_steps;
    const int64_t t = e->ts;
    const uint32_t m = e->mask, steps = S >= 32 ? ~0u : (1u << S) - 1;
    uint32_t has = (uint32_t)b[B_HAS];
    int64_t *lbd = b + B_LBD, *chain = b + 3 + 2 * S;
    /* Exclusions break every chain that is past its from step and not yet at its to step
     * (all of them, whatever their start, so the latest start still dominates). */
    for (uint32_t x = 0; x < f->n_excl; x++)
        if (m >> (S + x) & 1)
            for (uint32_t j = f->ex[x].from; j < f->ex[x].to; j++)
                has &= ~(1u << j);
    if (f->order == STRICT) {
        /* Chains live only from one event to the next. */
        uint32_t nhas = 0;
        for (uint32_t mm = m & steps; mm;) {
            const uint32_t j = 31 - (uint32_t)__builtin_clz(mm); /* the deepest step first */
            mm ^= 1u << j;
            if (j == 0) {
                nhas |= 1;
                chain[0] = t;
                lbd[0] = e->aux[0];
            } else if (has >> (j - 1) & 1 && t - chain[(j - 1) * S] <= f->window_ms) {
                nhas |= 1u << j;
                memcpy(chain + j * S, chain + (j - 1) * S, j * sizeof *chain);
                chain[j * S + j] = t;
                lbd[j] = lbd[j - 1];
            } else {
                continue;
            }
            if ((int64_t)j + 1 > b[B_LEVEL]) keep_block(b, S, j, chain + j * S, (uint32_t)lbd[j]);
        }
        b[B_HAS] = nhas;
        return;
    }
    for (uint32_t mm = m & steps; mm;) {
        const uint32_t j = 31 - (uint32_t)__builtin_clz(mm); /* the deepest step first */
        mm ^= 1u << j;
        if (j == 0) {
            if (has & 1 && chain[0] >= t) continue;
            has |= 1;
            chain[0] = t;
            lbd[0] = e->aux[0];
        } else {
            int64_t *prev = chain + (j - 1) * S, *cur = chain + j * S;
            if (!(has >> (j - 1) & 1) || t - prev[0] > f->window_ms) continue;
            if (has >> j & 1 && cur[0] >= prev[0]) continue;
            has |= 1u << j;
            memcpy(cur, prev, j * sizeof *chain);
            cur[j] = t;
            lbd[j] = lbd[j - 1];
        }
        if ((int64_t)j + 1 > b[B_LEVEL]) keep_block(b, S, j, chain + j * S, (uint32_t)lbd[j]);
    }
    b[B_HAS] = has;
}

static void block_result(const int64_t *b, uint32_t S, presult *pr)
{
    pr->level = (int)b[B_LEVEL] - 1;
    pr->bd = (uint32_t)b[B_BD];
    if (pr->level >= 0) memcpy(pr->t, b + 3 + S, (size_t)(pr->level + 1) * sizeof *pr->t);
}

static void person_ordered(const fspec *f, const tl_qseq_ev *ev, size_t n, presult *pr)
{
    int64_t b[3 + 2 * MAX_STEPS + MAX_STEPS * MAX_STEPS];
    memset(b, 0, block_len(f->n_steps) * sizeof *b);
    for (size_t e = 0; e < n; e++)
        step_ordered(f, b, &ev[e]);
    block_result(b, f->n_steps, pr);
}

/* any order: windows that start at each step event. */
static void person_any(const fspec *f, const tl_qseq_ev *ev, size_t n, presult *pr)
{
    const uint32_t S = f->n_steps, all = S >= 32 ? ~0u : (1u << S) - 1;
    pr->level = -1;
    for (size_t i = 0; i < n; i++) {
        if (!(ev[i].mask & all)) continue;
        /* A start whose steps were all seen by an earlier start still in the window adds
         * nothing new only when that window reaches as far; simply evaluate each start. */
        const int64_t end = ev[i].ts + f->window_ms;
        uint32_t seen = 0;
        int64_t when[MAX_STEPS];
        int got = -1;
        for (size_t e = i; e < n && ev[e].ts <= end; e++) {
            uint32_t add = ev[e].mask & all & ~seen;
            if (!add) continue;
            seen |= add;
            int c = __builtin_popcount(seen) - 1;
            for (int k = got + 1; k <= c; k++)
                when[k] = ev[e].ts;
            got = c;
            if (seen == all) break;
        }
        if (got > pr->level) keep_best(pr, got, when, ev[i].aux[0]);
        if (pr->level == (int)S - 1) break;
    }
}

/* The streaming scan. Rows are first dealt into buckets of 2048 consecutive persons
 * (appending keeps each bucket in time order), then each bucket is run with one block of
 * states for its persons, reused from bucket to bucket and hot in the cache: stepping rows in
 * global time order straight away misses the cache on nearly every row. */
#define BUCKET_SHIFT 11 /* 2048 persons a bucket */

/* ---- groups (breakdown values) ---- */

typedef struct tvec {
    int64_t *v;
    size_t n, cap;
} tvec;

typedef struct group {
    uint64_t persons[MAX_STEPS];
    tvec times[MAX_STEPS];
} group;

static void tvec_push(tvec *t, int64_t x)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = tl_xrealloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = x;
}

static void group_add(group *g, const presult *pr)
{
    for (int k = 0; k <= pr->level; k++) {
        g->persons[k]++;
        if (k) tvec_push(&g->times[k], pr->t[k] - pr->t[k - 1]);
    }
}

static void group_merge(group *dst, const group *src, uint32_t S)
{
    for (uint32_t k = 0; k < S; k++) {
        dst->persons[k] += src->persons[k];
        for (size_t i = 0; i < src->times[k].n; i++)
            tvec_push(&dst->times[k], src->times[k].v[i]);
    }
}

static void group_free(group *g)
{
    for (uint32_t k = 0; k < MAX_STEPS; k++)
        free(g->times[k].v);
}

/* Puts the k-th smallest of v[lo..hi] at v[k], smaller ones before it and larger after it
 * (quickselect, median-of-three pivots): O(n), where sorting for two ranks was most of a
 * funnel's time. */
static void select_k(int64_t *v, size_t lo, size_t hi, size_t k)
{
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t a = v[lo], b = v[mid], c = v[hi];
        int64_t pv = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pv)
                i++;
            while (v[j] > pv)
                j--;
            if (i <= j) {
                int64_t t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* The nearest rank of p among n values: ceil(p * n), at least 1. */
static size_t rank_of(double p, size_t n)
{
    size_t r = (size_t)ceil(p * (double)n);
    return r < 1 ? 1 : r;
}

static void put_ratio(tl_buf *out, uint64_t a, uint64_t b)
{
    tl_buf_json_num(out, b ? (double)a / (double)b : 0);
}

static void put_steps(tl_buf *out, const fspec *f, group *g)
{
    tl_buf_addc(out, '[');
    for (uint32_t k = 0; k < f->n_steps; k++) {
        tl_buf_printf(out, "%s{\"step\":%u,\"event\":", k ? "," : "", k + 1);
        if (f->names[k].p)
            tl_buf_json_str(out, f->names[k]);
        else
            tl_buf_adds(out, "null");
        tl_buf_printf(
            out, ",\"persons\":%llu,\"conversion_from_first\":", (unsigned long long)g->persons[k]);
        put_ratio(out, g->persons[k], g->persons[0]);
        tl_buf_adds(out, ",\"conversion_from_previous\":");
        put_ratio(out, g->persons[k], k ? g->persons[k - 1] : g->persons[0]);
        tvec *t = &g->times[k];
        if (k && t->n) {
            /* p90 first; the values before it are all <= it, so the median is selected
             * among them. */
            size_t r90 = rank_of(0.9, t->n) - 1, r50 = rank_of(0.5, t->n) - 1;
            select_k(t->v, 0, t->n - 1, r90);
            if (r50 < r90) select_k(t->v, 0, r90 - 1, r50);
            tl_buf_adds(out, ",\"median_s_from_previous\":");
            tl_buf_json_num(out, (double)t->v[r50] / 1000.0);
            tl_buf_adds(out, ",\"p90_s_from_previous\":");
            tl_buf_json_num(out, (double)t->v[r90] / 1000.0);
        } else {
            tl_buf_adds(out, ",\"median_s_from_previous\":null,\"p90_s_from_previous\":null");
        }
        tl_buf_addc(out, '}');
    }
    tl_buf_addc(out, ']');
}

/* Groups by breakdown value (query/seq.c's value table, a group per index). */
typedef struct gtab {
    tl_qvals v;
    group *g;
    uint32_t cap;
} gtab;

static group *gtab_get(gtab *t, uint32_t value)
{
    uint32_t n0 = t->v.n, i = tl_query__vals_get(&t->v, value);
    if (t->v.n > n0) { /* a new value */
        if (i == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 64;
            t->g = tl_xrealloc(t->g, t->cap * sizeof *t->g);
        }
        memset(&t->g[i], 0, sizeof t->g[i]);
    }
    return &t->g[i];
}

static void gtab_free(gtab *t)
{
    for (uint32_t i = 0; i < t->v.n; i++)
        group_free(&t->g[i]);
    free(t->g);
    tl_query__vals_free(&t->v);
}

/* One worker's block of states (one bucket's persons, reused from bucket to bucket: no page
 * faults for a state array the size of all persons) and its persons' results. */
typedef struct fworker {
    int64_t *st;
    group total;
    gtab gt;
} fworker;

typedef struct streamctx {
    const fspec *f;
    size_t L;
    bool bd;
    fworker w[TL_Q_THREADS];
} streamctx;

static int bucket_run(void *arg, uint32_t worker, uint32_t base, const uint32_t *who,
                      const tl_qseq_ev *ev, size_t n)
{
    streamctx *x = arg;
    fworker *fw = &x->w[worker];
    const size_t per = (size_t)1 << BUCKET_SHIFT, L = x->L;
    if (!fw->st) fw->st = tl_big_alloc(per * L * sizeof *fw->st);
    for (size_t p = 0; p < per; p++) /* the rest of a block is written before it is read */
        fw->st[p * L + B_LEVEL] = fw->st[p * L + B_HAS] = 0;
    for (size_t i = 0; i < n; i++)
        step_ordered(x->f, fw->st + (size_t)(who[i] - base) * L, &ev[i]);
    for (size_t p = 0; p < per; p++) {
        const int64_t *blk = fw->st + p * L;
        if (!blk[B_LEVEL]) continue;
        presult pr;
        block_result(blk, x->f->n_steps, &pr);
        group_add(&fw->total, &pr);
        if (x->bd) group_add(gtab_get(&fw->gt, pr.bd), &pr);
    }
    return 0;
}

/* step_ordered for an ordered funnel without exclusions and an event of step j only, no
 * breakdown value. */
static inline void step_one(const fspec *f, int64_t *b, uint32_t j, int64_t t)
{
    const uint32_t S = f->n_steps;
    uint32_t has = (uint32_t)b[B_HAS];
    int64_t *chain = b + 3 + 2 * S, *cur = chain + j * S;
    if (j == 0) {
        if (has & 1 && cur[0] >= t) return;
        cur[0] = t;
    } else {
        const int64_t *prev = cur - S;
        if (!(has >> (j - 1) & 1) || t - prev[0] > f->window_ms) return;
        if (has >> j & 1 && cur[0] >= prev[0]) return;
        memcpy(cur, prev, j * sizeof *chain);
        cur[j] = t;
    }
    b[B_HAS] = has | 1u << j;
    if ((int64_t)j + 1 > b[B_LEVEL]) keep_block(b, S, j, cur, 0);
}

/* One person at a time (tl_query__seq_persons): each worker keeps its own totals. */
typedef struct personctx {
    const fspec *f;
    group total[TL_Q_THREADS];
    tl_qseq_ev *ev[TL_Q_THREADS]; /* a person's rows, for the step machines that take them */
    size_t ev_cap[TL_Q_THREADS];
} personctx;

static int person_run(void *arg, uint32_t worker, uint32_t person, const tl_qkeys *kd,
                      const uint64_t *keys, size_t n)
{
    personctx *x = arg;
    const fspec *f = x->f;
    presult pr;
    (void)person;
    if (f->order == ORDERED && !f->n_excl) {
        /* In a run of events that match one step j only (and nothing else in between), the
         * step machine takes the last of a run of step-1 events (the latest start dominates)
         * and the first of a run of step-j events for j > 1 (the next ones find the level
         * taken): the others are not stepped at all. */
        int64_t b[3 + 2 * MAX_STEPS + MAX_STEPS * MAX_STEPS];
        b[B_LEVEL] = b[B_HAS] = 0; /* the rest is written before it is read (as bucket_run) */
        uint32_t prev = 0;
        for (size_t e = 0; e < n; e++) {
            uint32_t m = tl_qkey_mask(kd, keys[e]), last = prev;
            prev = m;
            if (m == 1 ? e + 1 < n && tl_qkey_mask(kd, keys[e + 1]) == 1
                       : !(m & (m - 1)) && m == last)
                continue;
            if (m & (m - 1)) { /* an event of several steps: the general machine */
                tl_qseq_ev ev = {tl_qkey_ts(kd, keys[e]), m, {0, 0}};
                step_ordered(f, b, &ev);
            } else {
                step_one(f, b, (uint32_t)__builtin_ctz(m), tl_qkey_ts(kd, keys[e]));
            }
        }
        block_result(b, f->n_steps, &pr);
    } else {
        tl_qseq_ev *ev = x->ev[worker];
        if (n > x->ev_cap[worker]) {
            free(ev);
            x->ev_cap[worker] = n > 2 * x->ev_cap[worker] ? n : 2 * x->ev_cap[worker];
            x->ev[worker] = ev = tl_xmalloc(x->ev_cap[worker] * sizeof *ev);
        }
        for (size_t e = 0; e < n; e++)
            ev[e] = (tl_qseq_ev){tl_qkey_ts(kd, keys[e]), tl_qkey_mask(kd, keys[e]), {0, 0}};
        if (f->order == ANY)
            person_any(f, ev, n, &pr);
        else
            person_ordered(f, ev, n, &pr);
    }
    if (pr.level >= 0) group_add(&x->total[worker], &pr);
    return 0;
}

int tl_query__funnel(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q, tl_buf *out,
                     tl_err *err)
{
    fspec f;
    int rc = parse(c, q, &f, err);
    if (rc) return rc;
    uint32_t nc = f.n_steps + f.n_excl;
    for (uint32_t i = 0; i < nc; i++)
        tl_query__cond_compile(c, &f.conds[i]);
    tl_qseq_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.from = req->from_ms;
    sp.to_excl = req->to_excl;
    sp.conds = f.conds;
    sp.n_conds = nc;
    sp.keep_all = f.order == STRICT;
    sp.aux[0] = req->has_bd ? &req->bd : NULL;
    /* Persons → groups. Without a breakdown, and with steps (and exclusions) that are event
     * names, one person at a time from compact keys (query/seqp.c), in parallel. Otherwise
     * ordered and strict funnels stream every person's bucket with a small state each, and
     * `any` builds and walks each person's sequence. */
    group total;
    memset(&total, 0, sizeof total);
    gtab gt;
    memset(&gt, 0, sizeof gt);
    tl_qseq sq;
    memset(&sq, 0, sizeof sq);
    size_t L = block_len(f.n_steps);
    if (!req->has_bd && c->sn && tl_query__seq_persons_fits(&sp)) {
        /* No breakdown and steps that are event names: the compact per-person path. */
        personctx *px = tl_xcalloc(1, sizeof *px);
        px->f = &f;
        uint32_t nw = 1;
        rc = tl_query__seq_persons(c, req, &sp, person_run, px, &nw, err);
        for (uint32_t w = 0; w < TL_Q_THREADS; w++) {
            group_merge(&total, &px->total[w], f.n_steps);
            group_free(&px->total[w]);
            free(px->ev[w]);
        }
        free(px);
    } else if (f.order != ANY && c->sn) {
        streamctx *sx = tl_xcalloc(1, sizeof *sx);
        sx->f = &f;
        sx->L = L;
        sx->bd = req->has_bd;
        uint32_t nw = 1;
        rc = tl_query__seq_buckets(c, req, &sp, BUCKET_SHIFT, bucket_run, sx, &nw, &sq, err);
        for (uint32_t w = 0; w < TL_Q_THREADS; w++) {
            fworker *fw = &sx->w[w];
            tl_big_free(fw->st, ((size_t)1 << BUCKET_SHIFT) * L * sizeof *fw->st);
            group_merge(&total, &fw->total, f.n_steps);
            for (uint32_t i = 0; i < fw->gt.v.n; i++)
                group_merge(gtab_get(&gt, fw->gt.v.value[i]), &fw->gt.g[i], f.n_steps);
            group_free(&fw->total);
            gtab_free(&fw->gt);
        }
        free(sx);
    } else {
        rc = tl_query__seq_build(c, req, &sp, &sq, err);
        for (uint32_t i = 0; !rc && i < sq.n_persons; i++) {
            presult pr;
            const tl_qseq_ev *ev = sq.ev + sq.off[i];
            size_t n = sq.off[i + 1] - sq.off[i];
            if (f.order == ANY)
                person_any(&f, ev, n, &pr);
            else
                person_ordered(&f, ev, n, &pr);
            if (pr.level < 0) continue;
            group_add(&total, &pr);
            if (req->has_bd) group_add(gtab_get(&gt, pr.bd), &pr);
        }
    }
    if (rc) {
        group_free(&total);
        gtab_free(&gt);
        return rc;
    }
    tl_buf_adds(out, "{\"steps\":");
    put_steps(out, &f, &total);
    if (req->has_bd) {
        /* The TL_Q_MAX_BREAKDOWN values with the most persons; the rest as "$other". */
        uint32_t n = gt.v.n, keep;
        uint32_t *ord = tl_xmalloc((n + 1) * sizeof *ord);
        for (uint32_t i = 0; i < n; i++)
            gt.v.rank[i] = gt.g[i].persons[0];
        tl_query__vals_order(c, &sq, &gt.v, ord, &keep);
        tl_buf_adds(out, ",\"breakdown\":");
        tl_buf_json_str(out, req->bd.name);
        tl_buf_adds(out, ",\"breakdowns\":[");
        for (uint32_t i = 0; i < keep; i++) {
            tl_buf_adds(out, i ? ",{\"value\":" : "{\"value\":");
            tl_query__seq_aux_json(c, &sq, gt.v.value[ord[i]], out);
            tl_buf_adds(out, ",\"steps\":");
            put_steps(out, &f, &gt.g[ord[i]]);
            tl_buf_addc(out, '}');
        }
        if (keep < n) {
            group other;
            memset(&other, 0, sizeof other);
            for (uint32_t i = keep; i < n; i++)
                group_merge(&other, &gt.g[ord[i]], f.n_steps);
            tl_buf_adds(out, ",{\"value\":\"$other\",\"steps\":");
            put_steps(out, &f, &other);
            tl_buf_addc(out, '}');
            group_free(&other);
        }
        tl_buf_addc(out, ']');
        free(ord);
    }
    gtab_free(&gt);
    tl_buf_printf(out, ",\"order\":\"%s\",\"window_s\":%lld",
                  f.order == ANY      ? "any"
                  : f.order == STRICT ? "strict"
                                      : "ordered",
                  (long long)(f.window_ms / 1000));
    group_free(&total);
    (void)plan;
    return 0;
}
