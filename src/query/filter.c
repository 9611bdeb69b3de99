/* Query filters: property names, the `where` list, and its evaluation over a part's columns.
 *
 * A filter is parsed once per query, compiled once per query against the snapshot's
 * dictionary (all parts share one dictionary), and evaluated per part as a pass over one
 * column that ANDs its result into a keep[] byte per row. Compilation turns string equality
 * into dictionary ids, so the per-row test is an integer compare; every other string test
 * (contains, numeric comparison of a string value, equality with a number) is memoised per
 * dictionary id, so each distinct string is examined once per query however many rows carry
 * it; the memos are relaxed atomics, so the workers of a query share them. The comparison rules
 * themselves are stated at the top of query.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <math.h>

#include "query/query_int.h"
#include "record.h"

static void *keep(tl_qctx *c, void *p, size_t map_len)
{
    if (c->n_frees == c->cap_frees) {
        c->cap_frees = c->cap_frees ? c->cap_frees * 2 : 16;
        c->frees = tl_xrealloc(c->frees, c->cap_frees * sizeof *c->frees);
        c->free_len = tl_xrealloc(c->free_len, c->cap_frees * sizeof *c->free_len);
    }
    c->frees[c->n_frees] = p;
    c->free_len[c->n_frees++] = map_len;
    return p;
}

void *tl_query__scratch(tl_qctx *c, size_t n, size_t size)
{
    return keep(c, tl_xcalloc(n ? n : 1, size), 0);
}

void *tl_query__scratch_sparse(tl_qctx *c, size_t n, size_t size)
{
    size_t len = (n ? n : 1) * size;
    if (len < ((size_t)64 << 10)) return tl_query__scratch(c, n, size);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return tl_query__scratch(c, n, size);
    return keep(c, p, len);
}

/* ---- numbers in strings ---- */

bool tl_query__parse_num(tl_str s, double *out)
{
    /* JSON number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    const char *p = s.p, *end = s.p + s.len;
    char buf[64];
    if (s.len == 0 || s.len >= sizeof buf) return false;
    if (p < end && *p == '-') p++;
    if (p >= end) return false;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return false;
    }
    if (p < end && *p == '.') {
        p++;
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d) return false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d) return false;
    }
    if (p != end) return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v)) return false;
    *out = v == 0 ? 0.0 : v; /* no negative zero */
    return true;
}

bool tl_query__str_num(tl_qctx *c, uint32_t id, double *out)
{
    if (!id || id > c->dict_n) return false;
    uint8_t st = atomic_load_explicit(&c->nstate[id], memory_order_acquire);
    if (st == 2) {
        *out = c->nval[id];
        return true;
    }
    if (st == 1) return false;
    /* Unknown (or being written by another worker): parse; the first to claim it stores. */
    double v;
    bool num = tl_query__parse_num(tl_snap_dict_str(c->sn, id), &v);
    uint8_t zero = 0;
    if (st == 0 && atomic_compare_exchange_strong_explicit(
                       &c->nstate[id], &zero, 3, memory_order_relaxed, memory_order_relaxed)) {
        if (num) c->nval[id] = v;
        atomic_store_explicit(&c->nstate[id], num ? 2 : 1, memory_order_release);
    }
    if (num) *out = v;
    return num;
}

/* ---- parsing ---- */

int tl_query__prop_parse(tl_str name, const char *field, tl_qprop *out, tl_err *err)
{
    memset(out, 0, sizeof *out);
    out->name = name;
    out->col = -1;
    int f;
    if (tl_str_eqc(name, "event")) {
        out->col = TL_COL_EVENT;
    } else if (tl_str_eqc(name, "session_id")) {
        out->col = TL_COL_SESSION;
    } else if ((f = tl_field_by_name(name)) >= 0) {
        out->col = TL_COL_FIELD + f;
    } else if (tl_str_has_prefix(name, "properties.") && name.len > 11) {
        out->key = (tl_str){name.p + 11, name.len - 11};
    } else {
        return tl_err_set(err, TL_EINVAL,
                          "%s: unknown property '%.*s' (event, session_id, platform, "
                          "app_version, country, url, referrer, browser, os, device_type, or "
                          "properties.<key>)",
                          field, (int)(name.len > 80 ? 80 : name.len), name.p ? name.p : "");
    }
    return 0;
}

static const struct {
    const char *name;
    int op;
    bool neg;
} g_ops[] = {
    {"=", TL_QO_EQ, false},
    {"!=", TL_QO_EQ, true},
    {"in", TL_QO_EQ, false},
    {"not_in", TL_QO_EQ, true},
    {"contains", TL_QO_CONTAINS, false},
    {">", TL_QO_GT, false},
    {">=", TL_QO_GE, false},
    {"<", TL_QO_LT, false},
    {"<=", TL_QO_LE, false},
    {"is_set", TL_QO_SET, false},
    {"is_not_set", TL_QO_SET, true},
};

/* One scalar value of `where`; false when v is not a string, number or boolean. */
static bool val_parse(const tl_json *v, tl_qval *out)
{
    memset(out, 0, sizeof *out);
    out->type = v->type;
    switch (v->type) {
    case TL_JSTR:
        out->str = v->str;
        out->num_text = tl_query__parse_num(v->str, &out->num);
        return true;
    case TL_JNUM:
        if (!isfinite(v->num)) return false;
        out->num = v->num == 0 ? 0.0 : v->num;
        out->str = v->str;
        return true;
    case TL_JTRUE: out->str = TL_STR("true"); return true;
    case TL_JFALSE: out->str = TL_STR("false"); return true;
    default: return false;
    }
}

static int pred_parse(const tl_json *w, uint32_t i, tl_arena *a, tl_qpred *pd, tl_err *err)
{
    char f[48];
    memset(pd, 0, sizeof *pd);
    if (w->type != TL_JOBJ)
        return tl_err_set(err, TL_EINVAL, "where[%u]: expected an object {prop, op, value}", i);
    const tl_json *jp = tl_json_get(w, "prop"), *jo = tl_json_get(w, "op"),
                  *jv = tl_json_get(w, "value");
    if (!jp) return tl_err_set(err, TL_EINVAL, "where[%u].prop: required", i);
    if (jp->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "where[%u].prop: expected a string", i);
    snprintf(f, sizeof f, "where[%u].prop", i);
    int rc = tl_query__prop_parse(jp->str, f, &pd->prop, err);
    if (rc) return rc;
    if (!jo) return tl_err_set(err, TL_EINVAL, "where[%u].op: required", i);
    if (jo->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "where[%u].op: expected a string", i);
    size_t k = 0, nops = sizeof g_ops / sizeof g_ops[0];
    while (k < nops && !tl_str_eqc(jo->str, g_ops[k].name))
        k++;
    if (k == nops)
        return tl_err_set(err, TL_EINVAL,
                          "where[%u].op: unknown operator '%.*s' (=, !=, in, not_in, contains, "
                          ">, >=, <, <=, is_set, is_not_set)",
                          i, (int)(jo->str.len > 40 ? 40 : jo->str.len), jo->str.p);
    pd->op = g_ops[k].op;
    pd->neg = g_ops[k].neg;
    if (pd->op == TL_QO_SET) return 0; /* a value, if any, is ignored */
    if (!jv)
        return tl_err_set(err, TL_EINVAL, "where[%u].value: required for '%s'", i, g_ops[k].name);
    /* A list is accepted for every operator but the comparisons; a scalar is a list of one. */
    bool list = jv->type == TL_JARR;
    if (list && pd->op >= TL_QO_GT)
        return tl_err_set(err, TL_EINVAL, "where[%u].value: expected a number", i);
    uint32_t n = list ? jv->n : 1;
    if (n > TL_Q_MAX_VALUES)
        return tl_err_set(err, TL_EINVAL, "where[%u].value: more than %d values", i,
                          TL_Q_MAX_VALUES);
    pd->vals = tl_arena_alloc(a, (n ? n : 1) * sizeof *pd->vals);
    pd->n_vals = n;
    const tl_json *v = list ? jv->child : jv;
    for (uint32_t j = 0; j < n; j++, v = v->next) {
        char vf[48];
        if (list)
            snprintf(vf, sizeof vf, "where[%u].value[%u]", i, j);
        else
            snprintf(vf, sizeof vf, "where[%u].value", i);
        tl_qval *q = &pd->vals[j];
        if (!val_parse(v, q))
            return tl_err_set(err, TL_EINVAL, "%s: expected a string, number or boolean%s", vf,
                              v->type == TL_JNULL ? " (use is_set / is_not_set for absence)" : "");
        if (pd->op == TL_QO_CONTAINS && q->type != TL_JSTR)
            return tl_err_set(err, TL_EINVAL, "%s: expected a string", vf);
        if (pd->op >= TL_QO_GT && pd->op <= TL_QO_LE && q->type != TL_JNUM && !q->num_text)
            return tl_err_set(err, TL_EINVAL, "%s: expected a number", vf);
    }
    return 0;
}

int tl_query__where_parse(const tl_json *where, const tl_json *event, tl_arena *a, tl_qreq *req,
                          tl_err *err)
{
    uint32_t n = 0;
    if (where && where->type != TL_JNULL) {
        if (where->type != TL_JARR)
            return tl_err_set(err, TL_EINVAL, "where: expected a list of {prop, op, value}");
        if (where->n > TL_Q_MAX_WHERE)
            return tl_err_set(err, TL_EINVAL, "where: more than %d filters", TL_Q_MAX_WHERE);
        n = where->n;
    }
    bool ev = event && event->type != TL_JNULL;
    if (ev && event->type != TL_JSTR)
        return tl_err_set(err, TL_EINVAL, "event: expected a string (an event name)");
    req->preds = tl_arena_alloc(a, (n + 1) * sizeof *req->preds);
    req->n_preds = 0;
    if (ev) {
        /* The event name filter goes first: it is the most selective and the cheapest. */
        tl_qpred *pd = &req->preds[req->n_preds++];
        memset(pd, 0, sizeof *pd);
        pd->prop = (tl_qprop){TL_STR("event"), TL_COL_EVENT, TL_STR_NULL, 0};
        pd->op = TL_QO_EQ;
        pd->vals = tl_arena_alloc(a, sizeof *pd->vals);
        pd->n_vals = 1;
        (void)val_parse(event, pd->vals);
    }
    const tl_json *w = n ? where->child : NULL;
    for (uint32_t i = 0; i < n; i++, w = w->next) {
        int rc = pred_parse(w, i, a, &req->preds[req->n_preds], err);
        if (rc) return rc;
        req->n_preds++;
    }
    return 0;
}

/* ---- compilation ---- */

void tl_query__prop_resolve(tl_qctx *c, tl_qprop *p)
{
    p->key_id = 0;
    if (p->col < 0 && c->sn && tl_snap_dict_find(c->sn, p->key, &p->key_id)) p->key_id = 0;
}

static uint32_t dict_id(tl_qctx *c, tl_str s)
{
    uint32_t id = 0;
    if (!c->sn || tl_snap_dict_find(c->sn, s, &id)) return 0;
    return id;
}

static void pred_compile(tl_qctx *c, tl_qpred *pd)
{
    tl_query__prop_resolve(c, &pd->prop);
    for (uint32_t j = 0; j < pd->n_vals; j++) {
        tl_qval *v = &pd->vals[j];
        v->sid = v->type == TL_JNUM ? 0 : dict_id(c, v->str);
    }
    pd->smode = TL_QS_NONE;
    pd->nmode = TL_QN_NONE;
    switch (pd->op) {
    case TL_QO_SET:
        pd->smode = TL_QS_ALL;
        pd->nmode = TL_QN_ALL;
        break;
    case TL_QO_EQ: {
        bool any_num = false;
        uint32_t n_ids = 0, max_id = 0;
        pd->nums = tl_arena_alloc(c->a, (pd->n_vals ? pd->n_vals : 1) * sizeof *pd->nums);
        for (uint32_t j = 0; j < pd->n_vals; j++) {
            tl_qval *v = &pd->vals[j];
            if (v->type == TL_JNUM) {
                any_num = true;
                pd->nums[pd->n_nums++] = v->num;
            } else if (v->type == TL_JSTR && v->num_text) {
                pd->nums[pd->n_nums++] = v->num;
            }
            if (v->sid) {
                n_ids++;
                pd->sid1 = v->sid;
                if (v->sid > max_id) max_id = v->sid;
            }
        }
        if (pd->n_nums) pd->nmode = TL_QN_EQ;
        if (any_num) {
            pd->smode = TL_QS_MEMO; /* number = string: parse each distinct string once */
        } else if (n_ids == 1) {
            pd->smode = TL_QS_ID1;
        } else if (n_ids > 1) {
            pd->smode = TL_QS_IDS;
            pd->sbits_max = max_id;
            pd->sbits = tl_arena_calloc(c->a, max_id / 8 + 1);
            for (uint32_t j = 0; j < pd->n_vals; j++)
                if (pd->vals[j].sid)
                    pd->sbits[pd->vals[j].sid >> 3] |= (uint8_t)(1u << (pd->vals[j].sid & 7));
        }
        break;
    }
    case TL_QO_CONTAINS: pd->smode = pd->n_vals ? TL_QS_MEMO : TL_QS_NONE; break;
    default: /* comparisons */
        pd->smode = TL_QS_MEMO;
        pd->nmode = TL_QN_GT + (pd->op - TL_QO_GT);
        pd->cmp = pd->vals[0].num;
        break;
    }
    if (pd->smode == TL_QS_MEMO) {
        if (c->sn) {
            pd->memo = tl_query__scratch_sparse(c, (size_t)c->dict_n + 1, 1);
            atomic_init(&pd->memo[0], 1); /* id 0 is "absent", never a string */
        } else {
            pd->smode = TL_QS_NONE;
        }
    }
}

bool tl_query__compile(tl_qctx *c, tl_qreq *req)
{
    bool never = false;
    for (uint32_t i = 0; i < req->n_preds; i++) {
        tl_qpred *pd = &req->preds[i];
        pred_compile(c, pd);
        if (pd->neg) continue;
        bool col = pd->prop.col >= 0;
        if (pd->smode == TL_QS_NONE && (col || pd->nmode == TL_QN_NONE)) never = true;
        if (!col && !pd->prop.key_id) never = true;
    }
    return never;
}

/* ---- evaluation ---- */

static bool num_test(const tl_qpred *pd, double x)
{
    switch (pd->nmode) {
    case TL_QN_ALL: return true;
    case TL_QN_EQ:
        for (uint32_t j = 0; j < pd->n_nums; j++)
            if (x == pd->nums[j]) return true;
        return false;
    case TL_QN_GT: return x > pd->cmp;
    case TL_QN_GE: return x >= pd->cmp;
    case TL_QN_LT: return x < pd->cmp;
    case TL_QN_LE: return x <= pd->cmp;
    default: return false;
    }
}

/* The positive test of a string value, computed from its text (memoised by the caller). */
static bool str_truth(tl_qctx *c, const tl_qpred *pd, uint32_t id)
{
    double x;
    switch (pd->op) {
    case TL_QO_SET: return true;
    case TL_QO_EQ:
        for (uint32_t j = 0; j < pd->n_vals; j++) {
            const tl_qval *v = &pd->vals[j];
            if (v->sid == id) return true;
            if (v->type == TL_JNUM && tl_query__str_num(c, id, &x) && x == v->num) return true;
        }
        return false;
    case TL_QO_CONTAINS: {
        tl_str s = tl_snap_dict_str(c->sn, id);
        for (uint32_t j = 0; j < pd->n_vals; j++)
            if (tl_str_contains(s, pd->vals[j].str)) return true;
        return false;
    }
    default: return tl_query__str_num(c, id, &x) && num_test(pd, x);
    }
}

static inline bool str_test(tl_qctx *c, const tl_qpred *pd, uint32_t id)
{
    switch (pd->smode) {
    case TL_QS_ALL: return id != 0;
    case TL_QS_ID1: return id == pd->sid1;
    case TL_QS_IDS: return id <= pd->sbits_max && (pd->sbits[id >> 3] >> (id & 7) & 1);
    case TL_QS_MEMO: {
        /* Workers may race to fill an entry: they store the same value. */
        uint8_t m = atomic_load_explicit(&pd->memo[id], memory_order_relaxed);
        if (!m) {
            m = str_truth(c, pd, id) ? 2 : 1;
            atomic_store_explicit(&pd->memo[id], m, memory_order_relaxed);
        }
        return m == 2;
    }
    default: return false;
    }
}

int tl_query__prop_col(tl_qctx *c, size_t part, const tl_qprop *p, const uint32_t **col,
                       tl_prop_col *pc, bool *present, tl_err *err)
{
    return tl_query__prop_col_ev(c, part, 0, p, col, pc, present, err);
}

int tl_query__prop_col_ev(tl_qctx *c, size_t part, uint32_t event, const tl_qprop *p,
                          const uint32_t **col, tl_prop_col *pc, bool *present, tl_err *err)
{
    int rc;
    *present = false;
    *col = NULL;
    if (p->col >= 0) {
        rc = event ? tl_snap_event_u32(c->sn, part, event, p->col, col)
                   : tl_snap_col_u32(c->sn, part, p->col, col);
        if (rc)
            return tl_err_set(err, rc, "store: column of %.*s: %s", (int)p->name.len, p->name.p,
                              tl_strerror(rc));
        *present = true;
        return 0;
    }
    if (!p->key_id) return 0;
    rc = event ? tl_snap_event_prop(c->sn, part, event, p->key_id, pc)
               : tl_snap_prop(c->sn, part, p->key_id, pc);
    if (rc == TL_ENOENT) return 0;
    if (rc)
        return tl_err_set(err, rc, "store: column of %.*s: %s", (int)p->name.len, p->name.p,
                          tl_strerror(rc));
    *present = true;
    return 0;
}

/* Iterates the candidates: rows src[lo..hi) when src is set, else rows lo..hi-1; BODY sees r
 * and appends passing rows with `sel[k] = r; k += pass;` (in place when sel == src: k never
 * overtakes the read position). */
#define CANDIDATES(src, lo, hi, r, ...)                                                            \
    do {                                                                                           \
        if (src) {                                                                                 \
            for (uint32_t i_ = (lo); i_ < (hi); i_++) {                                            \
                uint32_t r = (src)[i_];                                                            \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            for (uint32_t r = (lo); r < (hi); r++) {                                               \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)

int tl_query__filter_sel(tl_qctx *c, const tl_qpred *pd, size_t part, const uint32_t *src,
                         uint32_t lo, uint32_t hi, uint32_t *sel, uint32_t *n, tl_err *err)
{
    return tl_query__filter_sel_ev(c, pd, part, 0, src, lo, hi, sel, n, err);
}

int tl_query__filter_sel_ev(tl_qctx *c, const tl_qpred *pd, size_t part, uint32_t event,
                            const uint32_t *src, uint32_t lo, uint32_t hi, uint32_t *sel,
                            uint32_t *n, tl_err *err)
{
    const uint32_t *col;
    tl_prop_col pc;
    bool present;
    int rc = tl_query__prop_col_ev(c, part, event, &pd->prop, &col, &pc, &present, err);
    if (rc) return rc;
    const uint32_t neg = pd->neg;
    uint32_t k = 0;
    if (!present || (col && pd->smode == TL_QS_NONE)) {
        /* No row can pass the positive test: all pass the negated one, none the other. */
        if (neg) CANDIDATES(src, lo, hi, r, sel[k++] = r;);
        *n = k;
        return 0;
    }
    if (col) {
        switch (pd->smode) {
        case TL_QS_ID1: {
            const uint32_t id = pd->sid1;
            CANDIDATES(src, lo, hi, r, {
                sel[k] = r;
                k += (uint32_t)(col[r] == id) ^ neg;
            });
            break;
        }
        case TL_QS_ALL:
            CANDIDATES(src, lo, hi, r, {
                sel[k] = r;
                k += (uint32_t)(col[r] != 0) ^ neg;
            });
            break;
        default:
            CANDIDATES(src, lo, hi, r, {
                sel[k] = r;
                k += (uint32_t)str_test(c, pd, col[r]) ^ neg;
            });
            break;
        }
        *n = k;
        return 0;
    }
    CANDIDATES(src, lo, hi, r, {
        bool t = false;
        if (pc.type[r] == TL_PV_STR)
            t = str_test(c, pd, pc.str[r]);
        else if (pc.type[r] == TL_PV_NUM)
            t = num_test(pd, pc.num[r]);
        sel[k] = r;
        k += (uint32_t)t ^ neg;
    });
    *n = k;
    return 0;
}
