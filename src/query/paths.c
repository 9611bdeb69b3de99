/* The paths query (API.md "paths"; the rules are in docs/semantics.md, "Paths").
 *
 * A person's steps are its events inside [from, to] that pass the top-level `where`, in time
 * order (equal times: by step name, bytes), named by the event (`by: "event"`) or by the url
 * (`by: "url"`: only events that carry a url are steps). Consecutive repeats of one name are
 * one step ("view, view, buy" is "view, buy").
 *
 * direction "next" (the default, or with `start_event`): the path starts at the person's first
 * step named `start_event` in the range (without it: at the person's first step) and goes on
 * for at most `depth` more steps (1..10, default 5). direction "previous" (with `end_event`):
 * the path ends at the person's first step named `end_event` (without it: at the person's last
 * step) and reaches back at most `depth` steps. Paths are written in time order either way;
 * an edge's depth is its distance from the start (end) step: depth 1 joins it to its
 * neighbour. Each person counts once: in one path, and in at most one edge per depth.
 *
 * Answer: the persons who have the start (end) step, the top 100 paths by persons (ties by
 * their names, element by element, a prefix first), and per depth the top 100 edges by
 * persons (ties by from, then to), the persons of all other edges of that depth summed under
 * one edge from "$other" to "$other".
 *
 * Cost: one streaming scan (query/seq.c, no grouping by person) in which each person keeps a
 * 56-byte walk state (in an array over persons whose pages are touched only where used),
 * then sorts of one fixed-size record per person and one per edge: O(E + P log P). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/query_int.h"

#define PREFETCH 16 /* rows ahead whose person state is fetched (persons are far apart) */

#define TL_Q_PATH_DEPTH_MAX 10
#define TL_Q_PATHS_MAX      100 /* paths listed */
#define TL_Q_EDGES_MAX      100 /* edges listed per depth */

typedef struct qpath {
    uint32_t len;
    uint32_t step[TL_Q_PATH_DEPTH_MAX + 1];
} qpath;

typedef struct qedge {
    uint32_t depth, from, to;
    uint64_t n;
} qedge;

typedef struct pctx {
    tl_qctx *c;
    const tl_qseq *sq;
} pctx;

static int name_cmp(const pctx *x, uint32_t a, uint32_t b)
{
    return tl_query__seq_aux_cmp(x->c, x->sq, a, b);
}

/* Distinct keys (paths, edges) numbered 0, 1, … in order of first sight: an open-addressing
 * table of index + 1 and hash, the keys themselves in the caller's array. */
typedef struct dtab {
    uint32_t *slot; /* index + 1, 0: empty */
    uint64_t *hash; /* per index */
    uint32_t n, cap, mask;
} dtab;

static uint64_t mix(uint64_t h, uint32_t v)
{
    return (h ^ v) * 0x9E3779B97F4A7C15ull;
}

static uint64_t path_hash(const qpath *p)
{
    uint64_t h = mix(0, p->len);
    for (uint32_t i = 0; i < p->len; i++)
        h = mix(h, p->step[i]);
    return h ^ h >> 29;
}

static bool path_same(const void *keys, uint32_t i, const void *key)
{
    const qpath *x = (const qpath *)keys + i, *y = key;
    return x->len == y->len && !memcmp(x->step, y->step, x->len * sizeof *x->step);
}

static uint64_t edge_hash(const qedge *e)
{
    uint64_t h = mix(mix(mix(0, e->depth), e->from), e->to);
    return h ^ h >> 29;
}

static bool edge_same(const void *keys, uint32_t i, const void *key)
{
    const qedge *x = (const qedge *)keys + i, *y = key;
    return x->depth == y->depth && x->from == y->from && x->to == y->to;
}

/* The index of key (hash h) in keys, or t->n when it is not there yet. */
static uint32_t dtab_find(const dtab *t, uint64_t h, const void *keys, const void *key,
                          bool (*same)(const void *, uint32_t, const void *))
{
    if (!t->n) return 0;
    for (uint32_t j = (uint32_t)h & t->mask;; j = (j + 1) & t->mask) {
        uint32_t s = t->slot[j];
        if (!s) return t->n;
        if (t->hash[s - 1] == h && same(keys, s - 1, key)) return s - 1;
    }
}

/* Adds index k (== t->n) with hash h; true when the caller's key arrays must grow to t->cap. */
static bool dtab_add(dtab *t, uint64_t h, uint32_t k)
{
    bool grow = false;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->hash = tl_xrealloc(t->hash, t->cap * sizeof *t->hash);
        grow = true;
    }
    if ((t->n + 1) * 2 > t->mask + 1 || !t->slot) {
        uint32_t ns = t->slot ? (t->mask + 1) * 2 : 512;
        free(t->slot);
        t->slot = tl_xcalloc(ns, sizeof *t->slot);
        t->mask = ns - 1;
        for (uint32_t i = 0; i < t->n; i++) {
            uint32_t j = (uint32_t)t->hash[i] & t->mask;
            while (t->slot[j])
                j = (j + 1) & t->mask;
            t->slot[j] = i + 1;
        }
    }
    uint32_t j = (uint32_t)h & t->mask;
    while (t->slot[j])
        j = (j + 1) & t->mask;
    t->slot[j] = k + 1;
    t->hash[k] = h;
    t->n++;
    return grow;
}

static void dtab_free(dtab *t)
{
    free(t->slot);
    free(t->hash);
}

/* Paths with their counts (in qedge.n of a parallel array): most first, then by names. */
typedef struct qpathn {
    const qpath *p;
    uint64_t n;
} qpathn;

static int path_rank_cmp(const void *a, const void *b, void *arg)
{
    const qpathn *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    uint32_t n = x->p->len < y->p->len ? x->p->len : y->p->len;
    for (uint32_t i = 0; i < n; i++) {
        int r = name_cmp(arg, x->p->step[i], y->p->step[i]);
        if (r) return r;
    }
    return x->p->len < y->p->len ? -1 : x->p->len > y->p->len;
}

static int edge_rank_cmp(const void *a, const void *b, void *arg)
{
    const qedge *x = a, *y = b;
    if (x->depth != y->depth) return x->depth < y->depth ? -1 : 1;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    int r = name_cmp(arg, x->from, y->from);
    return r ? r : name_cmp(arg, x->to, y->to);
}

typedef struct popts {
    bool previous, by_url, has_anchor;
    tl_str anchor;
    uint32_t depth;
} popts;

static int opts_parse(const tl_json *q, popts *o, tl_err *err)
{
    memset(o, 0, sizeof *o);
    o->depth = 5;
    const tl_json *st = tl_json_get(q, "start_event"), *en = tl_json_get(q, "end_event");
    if (st && st->type == TL_JNULL) st = NULL;
    if (en && en->type == TL_JNULL) en = NULL;
    if (st && st->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "start_event: expected a string");
    if (en && en->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "end_event: expected a string");
    if (st && en)
        return tl_err_set(err, TL_EINVAL,
                          "end_event: give start_event (paths after it) or end_event (paths "
                          "before it), not both");
    const tl_json *v = tl_json_get(q, "direction");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JSTR || !(tl_str_eqc(v->str, "next") || tl_str_eqc(v->str, "previous")))
            return tl_err_set(err, TL_EINVAL, "direction: expected \"next\" or \"previous\"");
        o->previous = tl_str_eqc(v->str, "previous");
        if (o->previous && st)
            return tl_err_set(err, TL_EINVAL,
                              "direction: \"previous\" goes with end_event, not start_event");
        if (!o->previous && en)
            return tl_err_set(err, TL_EINVAL,
                              "direction: \"next\" goes with start_event, not end_event");
    }
    if (en) o->previous = true;
    if (st || en) {
        o->has_anchor = true;
        o->anchor = (st ? st : en)->str;
    }
    v = tl_json_get(q, "depth");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JNUM || !(v->num >= 1 && v->num <= TL_Q_PATH_DEPTH_MAX) ||
            v->num != (double)(int64_t)v->num)
            return tl_err_set(err, TL_EINVAL, "depth: expected a whole number from 1 to %d",
                              TL_Q_PATH_DEPTH_MAX);
        o->depth = (uint32_t)v->num;
    }
    v = tl_json_get(q, "by");
    if (v && v->type != TL_JNULL) {
        if (v->type != TL_JSTR || !(tl_str_eqc(v->str, "event") || tl_str_eqc(v->str, "url")))
            return tl_err_set(err, TL_EINVAL, "by: expected \"event\" or \"url\"");
        o->by_url = tl_str_eqc(v->str, "url");
    }
    return 0;
}

/* The streaming walk: rows come in sequence order across all persons (each person's in its
 * own order), and each person keeps what its path still needs: the last step (repeats are one
 * step) and the steps of the path so far — going forward, from the start step until depth
 * more are there; going back, the last depth + 1 steps in a ring, until the end step. */
enum { PW_LOOKING, PW_STARTED, PW_DONE };

typedef struct pwalk {
    uint32_t last; /* the last step, 0: none yet */
    uint32_t k;    /* steps in step[] (next), or steps seen so far (previous: a ring) */
    uint32_t state;
    uint32_t step[TL_Q_PATH_DEPTH_MAX + 1];
} pwalk;

typedef struct walkctx {
    const popts *o;
    uint32_t anchor;
    pwalk *st;      /* per person (canonical did), calloc'd: pages touched only where used */
    uint32_t *seen; /* persons met */
    size_t n_seen, cap_seen;
} walkctx;

static int walk_rows(void *arg, const uint32_t *who, const tl_qseq_ev *ev, size_t n)
{
    walkctx *x = arg;
    const popts *o = x->o;
    const uint32_t ring = o->depth + 1;
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH < n) __builtin_prefetch(&x->st[who[i + PREFETCH]], 1);
        pwalk *w = &x->st[who[i]];
        uint32_t s = ev[i].aux[0];
        if (w->state == PW_DONE || !s || s == w->last) continue;
        if (!w->last) {
            if (x->n_seen == x->cap_seen) {
                x->cap_seen = x->cap_seen ? x->cap_seen * 2 : 1024;
                x->seen = tl_xrealloc(x->seen, x->cap_seen * sizeof *x->seen);
            }
            x->seen[x->n_seen++] = who[i];
        }
        w->last = s;
        if (o->previous) {
            w->step[w->k % ring] = s;
            w->k++;
            if (o->has_anchor && s == x->anchor) w->state = PW_DONE;
        } else if (w->state == PW_STARTED) {
            w->step[w->k++] = s;
            if (w->k == ring) w->state = PW_DONE;
        } else if (!o->has_anchor || s == x->anchor) {
            w->step[0] = s;
            w->k = 1;
            w->state = PW_STARTED;
        }
    }
    return 0;
}

/* The path of a walked person into *p; false when it has no start (end) step. */
static bool walk_path(const pwalk *w, const popts *o, qpath *p)
{
    if (o->previous) {
        if (!w->k || (o->has_anchor && w->state != PW_DONE)) return false;
        uint32_t ring = o->depth + 1, len = w->k < ring ? w->k : ring;
        for (uint32_t i = 0; i < len; i++)
            p->step[i] = w->step[(w->k - len + i) % ring];
        p->len = len;
        return true;
    }
    if (w->state == PW_LOOKING) return false;
    p->len = w->k;
    memcpy(p->step, w->step, w->k * sizeof *p->step);
    return true;
}

int tl_query__paths(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q, tl_buf *out,
                    tl_err *err)
{
    popts o;
    if (req->has_bd) return tl_err_set(err, TL_EINVAL, "breakdown: not supported by kind 'paths'");
    int rc = opts_parse(q, &o, err);
    if (rc) return rc;
    tl_qprop name;
    rc = tl_query__prop_parse(tl_str_c(o.by_url ? "url" : "event"), "by", &name, err);
    if (rc) return rc;
    uint32_t anchor = 0;
    bool none = !c->sn; /* nobody can have a path */
    if (c->sn && o.has_anchor && tl_snap_dict_find(c->sn, o.anchor, &anchor)) none = true;
    if (!none && tl_query__compile(c, req)) none = true;
    tl_qseq sq; /* only its numeric aux values (none: steps are dict ids) */
    memset(&sq, 0, sizeof sq);
    walkctx wx = {&o, anchor, NULL, NULL, 0, 0};
    if (!none) {
        tl_qseq_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.from = req->from_ms;
        sp.to_excl = req->to_excl;
        sp.keep_all = true;
        sp.aux[0] = &name;
        wx.st = tl_query__scratch(c, (size_t)c->n_dids + 1, sizeof *wx.st);
        rc = tl_query__seq_stream(c, req, &sp, walk_rows, &wx, &sq, err);
        if (rc) {
            free(wx.seen);
            return rc;
        }
    }

    /* Distinct paths with their persons, then distinct edges from them (a path has one edge
     * per depth, so an edge's persons are the sum over the paths that have it). */
    dtab dp, de;
    memset(&dp, 0, sizeof dp);
    memset(&de, 0, sizeof de);
    qpath *paths = NULL;
    uint64_t *pcount = NULL;
    qedge *edges = NULL;
    size_t np = 0;
    for (size_t i = 0; i < wx.n_seen; i++) {
        qpath p;
        if (!walk_path(&wx.st[wx.seen[i]], &o, &p)) continue;
        np++;
        uint64_t h = path_hash(&p);
        uint32_t k = dtab_find(&dp, h, paths, &p, path_same);
        if (k == dp.n) {
            if (dtab_add(&dp, h, k)) {
                paths = tl_xrealloc(paths, dp.cap * sizeof *paths);
                pcount = tl_xrealloc(pcount, dp.cap * sizeof *pcount);
            }
            paths[k] = p;
            pcount[k] = 0;
        }
        pcount[k]++;
    }
    free(wx.seen);
    for (uint32_t i = 0; i < dp.n; i++) {
        const qpath *p = &paths[i];
        for (uint32_t d = 1; d < p->len; d++) {
            uint32_t a = o.previous ? p->len - 1 - d : d - 1;
            qedge e = {d, p->step[a], p->step[a + 1], 0};
            uint64_t h = edge_hash(&e);
            uint32_t k = dtab_find(&de, h, edges, &e, edge_same);
            if (k == de.n) {
                if (dtab_add(&de, h, k)) edges = tl_xrealloc(edges, de.cap * sizeof *edges);
                edges[k] = e;
            }
            edges[k].n += pcount[i];
        }
    }
    pctx px = {c, &sq};
    qpathn *pn = tl_xmalloc(((size_t)dp.n + 1) * sizeof *pn);
    size_t npn = dp.n;
    for (uint32_t i = 0; i < dp.n; i++)
        pn[i] = (qpathn){&paths[i], pcount[i]};
    qsort_r(pn, npn, sizeof *pn, path_rank_cmp, &px);
    size_t nde = de.n;
    if (nde) qsort_r(edges, nde, sizeof *edges, edge_rank_cmp, &px);
    dtab_free(&dp);
    dtab_free(&de);

    tl_buf_printf(out, "{\"direction\":\"%s\",\"by\":\"%s\",\"depth\":%u,\"persons\":%zu",
                  o.previous ? "previous" : "next", o.by_url ? "url" : "event", o.depth, np);
    tl_buf_adds(out, ",\"paths\":[");
    for (size_t i = 0; i < npn && i < TL_Q_PATHS_MAX; i++) {
        tl_buf_adds(out, i ? ",{\"path\":[" : "{\"path\":[");
        for (uint32_t k = 0; k < pn[i].p->len; k++) {
            if (k) tl_buf_addc(out, ',');
            tl_query__seq_aux_json(c, &sq, pn[i].p->step[k], out);
        }
        tl_buf_printf(out, "],\"persons\":%llu}", (unsigned long long)pn[i].n);
    }
    tl_buf_adds(out, "],\"edges\":[");
    bool first = true;
    for (size_t i = 0; i < nde;) {
        size_t j = i;
        uint64_t rest = 0;
        for (; j < nde && edges[j].depth == edges[i].depth; j++) {
            if (j - i >= TL_Q_EDGES_MAX) {
                rest += edges[j].n;
                continue;
            }
            tl_buf_printf(out, "%s{\"depth\":%u,\"from\":", first ? "" : ",", edges[j].depth);
            first = false;
            tl_query__seq_aux_json(c, &sq, edges[j].from, out);
            tl_buf_adds(out, ",\"to\":");
            tl_query__seq_aux_json(c, &sq, edges[j].to, out);
            tl_buf_printf(out, ",\"persons\":%llu}", (unsigned long long)edges[j].n);
        }
        if (rest)
            tl_buf_printf(out,
                          ",{\"depth\":%u,\"from\":\"$other\",\"to\":\"$other\",\"persons\":%llu}",
                          edges[i].depth, (unsigned long long)rest);
        i = j;
    }
    tl_buf_addc(out, ']');
    free(pn);
    free(edges);
    free(paths);
    free(pcount);
    (void)plan;
    return 0;
}
