/* Private to the query module: the parsed request, the time plan (buckets and units), compiled
 * filters and the trends engine. query.c parses and answers; query/filter.c resolves
 * properties and evaluates filters; query/trends.c scans parts and computes metrics. */
#ifndef TL_QUERY_INT_H
#define TL_QUERY_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "query.h"
#include "util/tz.h"

/* ---- tuning ---- */

#define TL_Q_MAX_BUCKETS   10000       /* buckets in an answer */
#define TL_Q_MAX_DAYS      36600       /* days in a range (100 years) */
#define TL_Q_MAX_WHERE     64          /* filters in `where` */
#define TL_Q_MAX_VALUES    10000       /* values in one `in` list */
#define TL_Q_MAX_BREAKDOWN 100         /* breakdown values kept; the rest go under "$other" */
#define TL_Q_FLAT_LAST     (8u << 20)  /* window state as a flat array up to this many keys */
#define TL_Q_BITS_MAX      (32u << 20) /* bytes of per-unit person bitsets per worker */
#define TL_Q_WINDOW_OPS    (1u << 28)  /* word ORs allowed to count windows from unit bitsets */
#define TL_Q_PAR_ROWS      200000      /* rows from which the sweep is split among threads */
#define TL_Q_THREADS       8           /* at most this many threads per query */

enum tl_qkind {
    TL_QK_TRENDS,
    TL_QK_FUNNEL,
    TL_QK_RETENTION,
    TL_QK_SESSIONS,
    TL_QK_PATHS,
    TL_QK_COUNT
};
enum tl_qinterval { TL_QI_HOUR, TL_QI_DAY, TL_QI_WEEK, TL_QI_MONTH };
/* TL_QM_STICKINESS and TL_QM_LIFECYCLE are trends metrics answered by query/lifecycle.c. */
enum tl_qmetric {
    TL_QM_EVENTS,
    TL_QM_PERSONS,
    TL_QM_WAU,
    TL_QM_MAU,
    TL_QM_SUM,
    TL_QM_AVG,
    TL_QM_STICKINESS,
    TL_QM_LIFECYCLE
};

/* Filter operators. The negated forms are evaluated as their positive form, then inverted. */
enum tl_qop { TL_QO_EQ, TL_QO_CONTAINS, TL_QO_GT, TL_QO_GE, TL_QO_LT, TL_QO_LE, TL_QO_SET };

/* A property reference: a column of the part (event, built-in field, session_id) or a
 * property key. */
typedef struct tl_qprop {
    tl_str name;     /* as written in the request (errors, the breakdown column's name) */
    int col;         /* enum tl_col, or -1 for a property */
    tl_str key;      /* property key (after "properties.") */
    uint32_t key_id; /* its dict id once resolved; 0: absent everywhere */
} tl_qprop;

/* A filter value. */
typedef struct tl_qval {
    tl_jtype type; /* TL_JSTR, TL_JNUM, TL_JTRUE, TL_JFALSE */
    tl_str str;    /* string text ("true"/"false" for booleans) */
    double num;    /* TL_JNUM: the number; TL_JSTR: its value when num_text */
    bool num_text; /* a string whose whole text is a number */
    uint32_t sid;  /* dict id of str (strings, booleans) once resolved; 0: not in the dict */
} tl_qval;

/* How string-valued rows are tested. */
enum { TL_QS_NONE, TL_QS_ALL, TL_QS_ID1, TL_QS_IDS, TL_QS_MEMO };
/* How numeric rows are tested. */
enum { TL_QN_NONE, TL_QN_ALL, TL_QN_EQ, TL_QN_GT, TL_QN_GE, TL_QN_LT, TL_QN_LE };

typedef struct tl_qpred {
    tl_qprop prop;
    int op;   /* enum tl_qop */
    bool neg; /* !=, not_in, is_not_set: the positive test inverted (absent rows match) */
    tl_qval *vals;
    uint32_t n_vals;
    /* compiled against the snapshot */
    int smode, nmode;
    uint32_t sid1;  /* TL_QS_ID1 */
    uint8_t *sbits; /* TL_QS_IDS: bit per dict id up to sbits_max */
    uint32_t sbits_max;
    _Atomic uint8_t *memo; /* TL_QS_MEMO: per dict id 0 unknown, 1 false, 2 true */
    double *nums;          /* TL_QN_EQ */
    uint32_t n_nums;
    double cmp; /* TL_QN_GT.. */
} tl_qpred;

typedef struct tl_qreq {
    int kind;                 /* enum tl_qkind */
    int64_t from_ms, to_excl; /* the rows' time range [from_ms, to_excl) */
    int64_t fd, td;           /* local days of from and of the last instant */
    const tl_tz *tz;
    int interval, metric;
    tl_qprop mprop; /* sum:/avg: property */
    tl_qpred *preds;
    uint32_t n_preds;
    bool has_bd;
    tl_qprop bd;
} tl_qreq;

/* The time plan. Buckets are what the answer shows; units are what rows are assigned to
 * (the buckets themselves, or local days for wau/mau). Unit i is [U[i], U[i+1]) in UTC ms;
 * U[0] and U[nu] are clipped to the rows' range. */
typedef struct tl_qplan {
    uint32_t nb;
    int64_t *label; /* per bucket: first local day (day/week/month) or local hour number */
    uint32_t nu;
    int64_t *U;       /* nu + 1 */
    uint32_t *b_unit; /* per bucket: the unit whose value it shows */
    uint32_t window;  /* units in a distinct window: 1 (persons), 7 (wau), 30 (mau) */
} tl_qplan;

/* Per-query context shared by filters and the engine. */
typedef struct tl_qctx {
    tl_snap *sn; /* NULL: the project has no data */
    tl_arena *a;
    const uint32_t *persons;
    uint32_t n_dids;
    bool any_erased;
    const tl_project_conf *proj; /* the queried project (settings such as session_timeout_s) */
    uint32_t dict_n;
    /* Numeric view of dict strings, filled as strings are met (by any worker): nstate is 0
     * unknown, 1 not a number, 2 a number in nval, 3 being written. */
    _Atomic uint8_t *nstate;
    double *nval;
    tl_arena *warena[TL_Q_THREADS]; /* workers' arenas, freed with the query */
    uint32_t n_warena;
    void **frees;     /* scratch freed at the end of the query */
    size_t *free_len; /* per entry: 0 for calloc'd, else the length of a mapping */
    uint32_t n_frees, cap_frees;
} tl_qctx;

/* The answer of the engine: values[b * nslot + s]; slot labels in display order. */
enum { TL_QB_NULL, TL_QB_NUM, TL_QB_STR, TL_QB_OTHER };
typedef struct tl_qslot {
    uint8_t kind;
    double num;
    uint32_t id;
} tl_qslot;

typedef struct tl_qresult {
    uint32_t nslot;
    tl_qslot *slots; /* NULL without breakdown */
    double *values;
} tl_qresult;

/* The first index of sorted a[0..n) whose value is >= x (n when none). */
static inline uint32_t tl_query__lower_bound64(const int64_t *a, uint32_t n, int64_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first index of sorted a[0..n) whose value is >= x (n when none). */
static inline uint32_t tl_query__lower_bound32(const uint32_t *a, uint32_t n, uint32_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- query.c: shared by the engines ---- */

/* Writes a bucket label as a JSON string: its first local day ("2026-01-05"), or for hours
 * its local wall hour ("2026-01-05T13:00"). */
void tl_query__put_label(tl_buf *out, int interval, int64_t label);
/* The bucket of instant t in [U[0], U[nb]): the last i with U[i] <= t. */
uint32_t tl_query__bucket_of(const tl_qplan *pl, int64_t t);

/* ---- query/filter.c ---- */

/* Parses a property name ("country", "properties.plan"); err names `field`. */
int tl_query__prop_parse(tl_str name, const char *field, tl_qprop *out, tl_err *err);
/* Parses the `where` list (and the top-level `event`) into req->preds. */
int tl_query__where_parse(const tl_json *where, const tl_json *event, tl_arena *a, tl_qreq *req,
                          tl_err *err);
/* Resolves dictionary ids and compiles every filter against the snapshot. Returns true when
 * some filter can match no row at all (the scan can be skipped). */
bool tl_query__compile(tl_qctx *c, tl_qreq *req);
void tl_query__prop_resolve(tl_qctx *c, tl_qprop *p);
/* Narrows a selection of rows of part `part` to those that pass pd: the candidates are
 * src[lo..hi), or the rows lo..hi-1 when src is NULL; passing rows are written to sel (which
 * may be src) and counted in *n. Returns 0 or a store error. */
int tl_query__filter_sel(tl_qctx *c, const tl_qpred *pd, size_t part, const uint32_t *src,
                         uint32_t lo, uint32_t hi, uint32_t *sel, uint32_t *n, tl_err *err);
/* The same in event space: with event set (a dict id), candidates and results are positions
 * in that event's rows of the part (tl_snap_event_rows), read through its projections. */
int tl_query__filter_sel_ev(tl_qctx *c, const tl_qpred *pd, size_t part, uint32_t event,
                            const uint32_t *src, uint32_t lo, uint32_t hi, uint32_t *sel,
                            uint32_t *n, tl_err *err);
/* The numeric value of dict string id, if its whole text is a number. */
bool tl_query__str_num(tl_qctx *c, uint32_t id, double *out);
/* Loads a property's column for a part: *present false when no row has it. */
int tl_query__prop_col(tl_qctx *c, size_t part, const tl_qprop *p, const uint32_t **col,
                       tl_prop_col *pc, bool *present, tl_err *err);
/* With event set: its projection, indexed by position in the event's rows. */
int tl_query__prop_col_ev(tl_qctx *c, size_t part, uint32_t event, const tl_qprop *p,
                          const uint32_t **col, tl_prop_col *pc, bool *present, tl_err *err);
/* Strict JSON-number syntax check and conversion of a string (finite values only). */
bool tl_query__parse_num(tl_str s, double *out);
/* calloc that is freed with the query. */
void *tl_query__scratch(tl_qctx *c, size_t n, size_t size);
/* The same for large tables of which a query touches few entries (one per dictionary
 * string, say): zeroed pages mapped on first touch, never a memset of the whole (calloc
 * may take a big block from the heap and clear all of it). */
void *tl_query__scratch_sparse(tl_qctx *c, size_t n, size_t size);

/* ---- query/trends.c ---- */

#ifdef TL_TESTING
/* Test builds only: force the engine's alternative strategies so tests cover them. */
enum { TL_QT_THREADS = 1, TL_QT_NO_BITS = 2, TL_QT_NO_FLAT = 4 };
extern int tl_query__test_flags;
#endif

int tl_query__trends(tl_qctx *c, const tl_qreq *req, const tl_qplan *plan, tl_qresult *res,
                     tl_err *err);

/* ---- query/seq.c: per-person event sequences ----
 * The building block of funnels, retention, sessions and paths: the rows of [from, to_excl)
 * that pass the top-level filters, each tagged with the conditions it matches, grouped by
 * person (identity resolved at query time; erased persons left out) and in time order inside
 * a person. Rows with equal timestamps are ordered by the lowest condition they match (rows
 * that match none last), then by mask and aux values, so the order depends only on the data. */

#define TL_Q_MAX_CONDS 30

typedef struct tl_qcond {
    tl_qpred *preds; /* all must hold; none: every row */
    uint32_t n_preds;
    bool never; /* compiled: no row can match */
} tl_qcond;

typedef struct tl_qseq_ev {
    int64_t ts;
    uint32_t mask;   /* bit i: the row matches conds[i] */
    uint32_t aux[2]; /* values of aux[0], aux[1] (see tl_qseq_spec) */
} tl_qseq_ev;

typedef struct tl_qseq_spec {
    int64_t from, to_excl;
    const tl_qcond *conds; /* compiled against the snapshot (tl_query__cond_compile) */
    uint32_t n_conds;      /* ≤ TL_Q_MAX_CONDS */
    bool keep_all;         /* also keep rows that match no condition (mask 0) */
    /* Per row values to carry: a column or a property (NULL: none). Strings are dict ids,
     * 0 is absent, numbers are TL_QSEQ_NUM | an index into tl_qseq.nums. */
    tl_qprop *aux[2];
} tl_qseq_spec;

#define TL_QSEQ_NUM 0x80000000u

typedef struct tl_qseq {
    uint32_t n_persons;
    uint32_t *person; /* canonical did of each person, ascending */
    size_t *off;      /* events of person i: ev[off[i] .. off[i + 1]) */
    tl_qseq_ev *ev;
    double *nums; /* numeric aux values */
    uint32_t n_nums;
} tl_qseq;

/* Parses a `where` list (and an optional event name) into a condition; `field` prefixes
 * error messages ("steps[2]"). */
int tl_query__cond_parse(tl_qctx *c, const tl_json *where, const tl_json *event, const char *field,
                         tl_qcond *out, tl_err *err);
void tl_query__cond_compile(tl_qctx *c, tl_qcond *cond);
/* Builds the sequences (memory freed with the query). c->sn may be NULL: no persons. Compiles
 * req's filters and resolves the aux properties against the snapshot; the conditions must
 * be compiled already. */
int tl_query__seq_build(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qseq *out,
                        tl_err *err);
/* The same rows without grouping them: fn gets them in batches, in sequence order across all
 * persons (so each person's rows arrive in its own sequence order), who[i] being the person
 * of ev[i]. For engines that keep a small state per person: no sort by person at all. nums
 * gets the numeric aux values. fn returns 0 or an error that stops the scan. */
typedef int (*tl_qseq_fn)(void *ctx, const uint32_t *who, const tl_qseq_ev *ev, size_t n);
int tl_query__seq_stream(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qseq_fn fn,
                         void *ctx, tl_qseq *nums, tl_err *err);
/* Order-free: the kept rows of each part (who[j], ts[j], mask[j] for j < n, in the part's
 * row order), the parts split among up to TL_Q_THREADS workers (worker 0 is the calling
 * thread). Calls with one worker index come one after the other; calls of different workers
 * run at the same time. No aux values. fn returns 0 or an error that stops the scan. */
typedef int (*tl_qsel_fn)(void *ctx, uint32_t worker, const uint32_t *who, const int64_t *ts,
                          const uint32_t *mask, size_t n);
int tl_query__seq_parts(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qsel_fn fn,
                        void *ctx, tl_err *err);
/* The rows dealt into buckets of 2^shift consecutive persons: fn gets each non-empty bucket
 * once, in sequence order (so each person's rows in its own order), `base` being the
 * bucket's first person number. Buckets are split among *n_workers workers (set on return;
 * worker indexes < TL_Q_THREADS), as in tl_query__seq_parts. nums gets the numeric aux
 * values. */
typedef int (*tl_qbucket_fn)(void *ctx, uint32_t worker, uint32_t base, const uint32_t *who,
                             const tl_qseq_ev *ev, size_t n);
int tl_query__seq_buckets(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, uint32_t shift,
                          tl_qbucket_fn fn, void *ctx, uint32_t *n_workers, tl_qseq *nums,
                          tl_err *err);
/* Threads for work over `rows` rows in `max` pieces: 1 below TL_Q_PAR_ROWS rows, else up to
 * the CPUs (and TL_Q_THREADS). */
uint32_t tl_query__threads(uint64_t rows, uint64_t max);
/* The top-level filters and the aux properties against this snapshot; false when a filter
 * can pass no row at all. */
bool tl_query__seq_prepare(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp);
/* The parts that meet [from, to_excl), in snapshot order, split into nt contiguous ranges of
 * about equal rows: worker w takes parts idx[lim[w] .. lim[w + 1]) (idx freed with the
 * query). */
typedef struct tl_qparts {
    size_t *idx, n;
    size_t lim[TL_Q_THREADS + 1];
    uint32_t nt;
    uint64_t rows;
} tl_qparts;
void tl_query__plan_parts(tl_qctx *c, const tl_qseq_spec *sp, uint32_t max_threads, tl_qparts *pl);
/* Buckets [0, nb) into nt contiguous ranges of about equal rows (rows[w][k]: worker w's rows
 * in bucket k): range w is [lim[w], lim[w + 1]). */
void tl_query__split_buckets(const size_t *const *rows, uint32_t nt, uint32_t nb, uint32_t *lim);
/* Runs job(arg + w * size) for w < nt, worker 0 on the calling thread. */
void tl_query__run_workers(void *(*job)(void *), void *arg, size_t size, uint32_t nt);

/* ---- query/seqp.c: one person at a time, compact ----
 * The same rows and order as tl_query__seq_buckets, for specs without aux values whose
 * conditions are all "event = E" or empty (what funnels without breakdown and step filters
 * ask): each row travels as one 64-bit key, so the rows move a third of the bytes and each
 * person's rows are sorted on their own, in the cache. fn gets each person with kept rows
 * once, its keys ascending (that is, its rows in sequence order); persons are split among
 * *n_workers workers as in tl_query__seq_buckets. A key holds the row's time and mask: */
#define TL_QKEY_RANK_BITS 6
#define TL_QKEY_TIME_BITS 47
typedef struct tl_qkeys {
    int64_t from;
    uint32_t mask[1u << TL_QKEY_RANK_BITS]; /* by rank */
} tl_qkeys;
static inline int64_t tl_qkey_ts(const tl_qkeys *kd, uint64_t key)
{
    return kd->from + (int64_t)(key >> TL_QKEY_RANK_BITS & ((1ull << TL_QKEY_TIME_BITS) - 1));
}
static inline uint32_t tl_qkey_mask(const tl_qkeys *kd, uint64_t key)
{
    return kd->mask[key & ((1u << TL_QKEY_RANK_BITS) - 1)];
}
bool tl_query__seq_persons_fits(const tl_qseq_spec *sp);
typedef int (*tl_qperson_fn)(void *ctx, uint32_t worker, uint32_t person, const tl_qkeys *kd,
                             const uint64_t *keys, size_t n);
int tl_query__seq_persons(tl_qctx *c, const tl_qreq *req, const tl_qseq_spec *sp, tl_qperson_fn fn,
                          void *ctx, uint32_t *n_workers, tl_err *err);
/* Breakdown values met by an engine (funnels, retention): value → dense index, the caller
 * keeping its own payload per index, and the answer's order. */
typedef struct tl_qvals {
    uint32_t *value; /* per index */
    uint64_t *rank;  /* per index: what ranks the value (persons); the caller adds to it */
    uint32_t n, cap;
    uint32_t *map, mask; /* open addressing: index + 1 */
} tl_qvals;
/* The index of value, added when new (rank 0). */
uint32_t tl_query__vals_get(tl_qvals *v, uint32_t value);
/* ord (v->n entries): first the TL_Q_MAX_BREAKDOWN indexes with the highest rank (ties in
 * value order), in value order — *keep of them — then the rest, to be added up as "$other". */
void tl_query__vals_order(tl_qctx *c, const tl_qseq *sq, const tl_qvals *v, uint32_t *ord,
                          uint32_t *keep);
void tl_query__vals_free(tl_qvals *v);
/* Writes an aux value as JSON (a string, a number, or null when absent). */
void tl_query__seq_aux_json(tl_qctx *c, const tl_qseq *sq, uint32_t v, tl_buf *out);
/* Compares two aux values in answer order: null, numbers ascending, strings by bytes. */
int tl_query__seq_aux_cmp(tl_qctx *c, const tl_qseq *sq, uint32_t a, uint32_t b);

/* ---- the other kinds ----
 * Each reads its own fields of q (req holds the common ones: range, tz, interval, the
 * top-level where and breakdown; plan the interval's buckets), computes over c->sn (NULL when
 * the project has no data) and appends its answer to out as an unterminated JSON object
 * ('{"steps":[…]'); query.c adds ',"took_ms":N}'. Errors: TL_EINVAL naming the field. */
typedef int tl_qkind_fn(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q,
                        tl_buf *out, tl_err *err);
tl_qkind_fn tl_query__funnel;    /* query/funnel.c */
tl_qkind_fn tl_query__retention; /* query/retention.c */
tl_qkind_fn tl_query__sessions;  /* query/sessions.c */
tl_qkind_fn tl_query__paths;     /* query/paths.c */
/* Trends metrics stickiness and lifecycle (query/lifecycle.c); same protocol as the kinds. */
tl_qkind_fn tl_query__lifecycle;

#endif
