/* The indexer thread: tails the durable log, drops duplicates, resolves identity and appends
 * rows to the store; checkpoints and releases log segments.
 *
 * Dedup set: the keys (XXH3-128 of project, NUL, event_id) of every stored event and
 * identify record, in a log-structured set of sorted run files with in-memory filters
 * (src/index/dedup.c): bounded memory, and a restart that does not scan the store. A
 * checkpoint first writes the keys since the last one as a run and a manifest naming every
 * run (tl_dedup__prepare), then records the manifest's generation as the store checkpoint's
 * aux, atomically with the log position, then deletes what was merged away
 * (tl_dedup__committed). So the set and the store always describe the same prefix of the
 * log, and a restart replays the log from there: every event counts exactly once.
 *
 * Threads: the indexer thread owns everything; tl_index_seen reads the set from any thread
 * under the set's read lock, which the indexer takes for writing once per batch of records;
 * tl_index_wait and tl_index_checkpoint synchronise through a mutex and condition variable. */
#include "index.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "index/index_int.h"
#include "record.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/hash.h"
#include "util/io.h"
#include "util/time.h"

#define BATCH          4096
/* The pending set (keys in the log, not yet indexed): a generation is retired once it holds
 * this many keys and the one before it is indexed (small, so that both stay in cache while
 * the indexer keeps up); past PENDING_MAX keys in all, appenders wait for the indexer (the
 * log may run at most that far ahead of it). */
#define PENDING_ROTATE (1u << 13)
#define PENDING_MAX    (1u << 19)
#define PENDING_SLOTS  (2 * PENDING_ROTATE) /* slots of an empty generation */

/* Keys of appends that are durable in the log up to max_end; open addressing from the key's
 * top bits, at most half full. */
typedef struct pend_gen {
    tl_h128 *slots; /* zero lo = empty (keys always have bit 0 of lo set) */
    uint32_t cap, n;
    uint64_t max_end;
} pend_gen;

struct tl_index {
    tl_store *store;
    tl_log *log;
    tl_index_opts opts;
    tl_dedup *dd;
    pthread_t thread;
    bool started;
    bool running; /* the thread is running (under mu) */
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t pos;         /* indexed up to here (under mu) */
    uint64_t ckpt_pos;    /* last checkpoint's position */
    uint64_t ckpt_done;   /* checkpoints completed (under mu) */
    uint64_t ckpt_wanted; /* checkpoints requested (under mu) */
    int ckpt_rc;
    int64_t last_ckpt_ms;
    _Atomic uint64_t indexed, duplicates, refused, checkpoints;
    bool dirty;
    /* The pending set: keys that appenders (tl_index_admit) put in the log and the indexer
     * has not reached yet, so tl_index_seen_keys answers repeats of them without waiting for
     * the indexer. pend[cur] takes new keys; the other generation is older. Under pmu,
     * which is taken before mu, never after. */
    pthread_mutex_t pmu;
    pend_gen pend[2];
    int cur;
};

/* ---- dedup set ---- */

/* Inserts the event ids of stored rows while migrating (see tl_index_open). */
typedef struct rebuild_ctx {
    tl_dedup *dd;
    int64_t now_ms;
    uint32_t flush_keys;
    uint64_t n;
    int rc;
    tl_err *err;
} rebuild_ctx;

static void rebuild_cb(void *ctx, tl_str project, tl_str event_id)
{
    rebuild_ctx *c = ctx;
    if (c->rc) return;
    tl_dedup__write_begin(c->dd);
    /* The event time is not at hand: the keys count as today's (they expire late, not
     * early). */
    int rc = tl_dedup__insert(c->dd, tl_dedup__key(project, event_id, c->now_ms));
    tl_dedup__write_end(c->dd);
    if (rc < 0) {
        c->rc = tl_err_set(c->err, rc, "rebuilding the dedup set: %s", tl_strerror(rc));
        return;
    }
    c->n += (uint64_t)rc;
    if (tl_dedup__mem_keys(c->dd) >= c->flush_keys) c->rc = tl_dedup__flush(c->dd, c->err);
}

/* Builds the dedup set from the event ids of every stored row, once: for a store written
 * before the set had files (its checkpoint's aux was a key count), or when the operator
 * removed the index directory. The set is then recorded with a checkpoint at the same log
 * position, so the next start reads it instead. */
static int rebuild(tl_index *ix, uint64_t log_pos, uint64_t aux, tl_err *err)
{
    int64_t t0 = tl_mono_ms();
    rebuild_ctx c = {ix->dd, tl_now_ms(), ix->opts.seal_rows, 0, 0, err};
    int rc = tl_store_scan_event_ids(ix->store, rebuild_cb, &c);
    if (rc) return tl_err_set(err, rc, "rebuilding the dedup set: %s", tl_strerror(rc));
    if (c.rc) return c.rc;
    if (!(aux & TL_DEDUP_AUX_TAG) && c.n != aux)
        TL_WARN("index", "event-id set has %llu ids, the checkpoint recorded %llu",
                (unsigned long long)c.n, (unsigned long long)aux);
    uint64_t naux;
    rc = tl_dedup__prepare(ix->dd, &naux, err);
    if (!rc) rc = tl_store_checkpoint(ix->store, log_pos, naux, err);
    if (rc) return rc;
    tl_dedup__committed(ix->dd, naux);
    if (c.n)
        TL_INFO("index", "dedup set built from the store: keys=%llu ms=%lld",
                (unsigned long long)c.n, (long long)(tl_mono_ms() - t0));
    return 0;
}

/* ---- indexing ---- */

static void apply(tl_index *ix, uint32_t pid, const tl_record *r)
{
    tl_store *s = ix->store;
    if (r->kind == TL_REC_ERASE) {
        /* The id may be known as a user id, an anonymous id, or both: erase every match. */
        tl_str id = r->user_id.len ? r->user_id : r->anonymous_id;
        uint32_t du = tl_store_w_did(s, pid, id, true, false);
        uint32_t da = tl_store_w_did(s, pid, id, false, false);
        if (du != TL_DID_NONE) tl_store_w_erase(s, pid, du);
        if (da != TL_DID_NONE) tl_store_w_erase(s, pid, da);
        return;
    }
    uint32_t da = TL_DID_NONE, du = TL_DID_NONE;
    if (r->anonymous_id.len) da = tl_store_w_did(s, pid, r->anonymous_id, false, true);
    if (r->user_id.len) du = tl_store_w_did(s, pid, r->user_id, true, true);
    if (da != TL_DID_NONE && du != TL_DID_NONE && tl_store_w_merge(s, pid, da, du) == TL_EEXIST) {
        atomic_fetch_add(&ix->refused, 1);
        TL_DEBUG("index", "merge refused: two identified users anonymous_id=%.*s user_id=%.*s",
                 (int)r->anonymous_id.len, r->anonymous_id.p, (int)r->user_id.len, r->user_id.p);
    }
    uint32_t did = du != TL_DID_NONE ? du : da;
    if (did == TL_DID_NONE) return;
    if (r->n_uprops) tl_store_w_person_props(s, pid, did, r->ts_ms, r->uprops, r->n_uprops);
    if (r->kind == TL_REC_EVENT) tl_store_w_append(s, pid, r, did);
}

/* Keys of events older than opts.retention_days (which includes the margin for events dated
 * in the future), and a day's slack, expire. */
static void set_horizon(tl_index *ix)
{
    if (!ix->opts.retention_days) return;
    int64_t today = tl_floordiv(tl_now_ms(), TL_MS_PER_DAY);
    int64_t h = today - (int64_t)ix->opts.retention_days - 1;
    tl_dedup__set_horizon(ix->dd, h > 0 ? (uint32_t)h : 0);
}

static int do_checkpoint(tl_index *ix, uint64_t pos)
{
    tl_err err = {0};
    uint64_t aux = 0;
    set_horizon(ix);
    int rc = tl_dedup__prepare(ix->dd, &aux, &err);
    if (!rc) rc = tl_store_checkpoint(ix->store, pos, aux, &err);
    if (rc) {
        TL_ERROR("index", "checkpoint failed: %s", err.msg);
        return rc;
    }
    tl_dedup__committed(ix->dd, aux);
    ix->ckpt_pos = pos;
    ix->dirty = false;
    ix->last_ckpt_ms = tl_mono_ms();
    atomic_fetch_add(&ix->checkpoints, 1);
    rc = tl_log_release(ix->log, pos);
    if (rc) TL_WARN("index", "log release failed: %s", tl_strerror(rc));
    return 0;
}

/* Records decoded ahead of their turn (index_batch), so the dedup probes of a window can be
 * started together: each is a likely cache miss in a table of up to 32 MiB, and overlapped
 * they cost about one. */
#define WINDOW 16

typedef struct ahead {
    tl_record r;
    uint64_t pos, next; /* the record's log position and the one after it */
    tl_h128 key;
    bool bad, keyed;
    int fresh; /* keyed: 1 new, 0 a repeat */
} ahead;

/* Indexes up to BATCH records; returns how many, or a negative error. */
static int index_batch(tl_index *ix, tl_log_iter *it, tl_arena *a)
{
    int n = 0, rc = 0;
    /* The locked project's name is copied: r.project points into the log iterator's buffer,
     * which the next tl_log_iter_next may refill or move. Longer names never lock. */
    char cur[64];
    size_t cur_len = 0;
    uint32_t pid = 0;
    bool locked = false, failed = false;
    uint64_t pos = ix->pos;
    ahead w[WINDOW];
    tl_arena_reset(a);
    while (n < BATCH && !failed) {
        /* Read a window: the raw records are copied, as the iterator's buffer moves on. */
        int m = 0;
        uint64_t at = pos;
        while (m < WINDOW && n + m < BATCH) {
            tl_str raw;
            uint64_t next;
            rc = tl_log_iter_next(it, &raw, &next);
            if (rc <= 0) break;
            ahead *e = &w[m++];
            char *copy = tl_arena_alloc(a, raw.len ? raw.len : 1);
            memcpy(copy, raw.p, raw.len);
            tl_err err = {0};
            e->pos = at;
            e->next = at = next;
            e->bad = tl_record_decode(copy, raw.len, a, &e->r, &err) != 0;
            if (e->bad)
                TL_ERROR("index", "skipping undecodable record at pos=%llu: %s",
                         (unsigned long long)e->pos, err.msg);
            /* Events and identify records (a retried alias must not log a merge or a $set
             * twice) count once per (project, event_id); erasures always apply. */
            e->keyed = !e->bad && (e->r.kind == TL_REC_EVENT || e->r.kind == TL_REC_IDENTIFY) &&
                       e->r.event_id.len;
            if (e->keyed) {
                e->key = tl_dedup__key(e->r.project, e->r.event_id, e->r.ts_ms);
                tl_dedup__prefetch(ix->dd, e->key);
            }
        }
        /* The window's keys go in under the set's write lock, held this briefly so that
         * ingest lookups (tl_index_seen_keys) never wait long for it. */
        tl_dedup__write_begin(ix->dd);
        for (int j = 0; j < m; j++) {
            if (!w[j].keyed) continue;
            w[j].fresh = tl_dedup__insert(ix->dd, w[j].key);
            if (w[j].fresh < 0) {
                /* Not knowing whether it is a repeat, stop before it (its position is not
                 * reached): a restart replays it. Later keys of the window are not in. */
                TL_ERROR("index", "dedup lookup failed at pos=%llu: %s",
                         (unsigned long long)w[j].pos, tl_strerror(w[j].fresh));
                rc = w[j].fresh;
                failed = true;
                m = j;
                break;
            }
        }
        tl_dedup__write_end(ix->dd);
        for (int j = 0; j < m; j++) {
            ahead *e = &w[j];
            tl_record *r = &e->r;
            if (e->bad) {
                pos = e->next;
                n++;
                continue;
            }
            if (e->keyed) {
                if (!e->fresh) {
                    pos = e->next;
                    n++;
                    atomic_fetch_add(&ix->duplicates, 1);
                    continue;
                }
            }
            pos = e->next;
            n++;
            if (!locked || !tl_str_eq((tl_str){cur, cur_len}, r->project)) {
                if (locked) tl_store_w_end(ix->store, pid);
                locked = false;
                if (tl_store_w_begin(ix->store, r->project, &pid)) {
                    TL_ERROR("index", "bad project name in log: %.*s", (int)r->project.len,
                             r->project.p);
                    continue;
                }
                if (r->project.len > sizeof cur) {
                    tl_store_w_end(ix->store, pid);
                    continue;
                }
                locked = true;
                memcpy(cur, r->project.p, r->project.len);
                cur_len = r->project.len;
            }
            apply(ix, pid, r);
            atomic_fetch_add(&ix->indexed, 1);
        }
        if (rc <= 0) break;
    }
    if (locked) tl_store_w_end(ix->store, pid);
    bool moved = false;
    if (rc == 0 && tl_log_iter_pos(it) > pos) {
        /* At the durable end: the iterator may have stepped past released segments. */
        pos = tl_log_iter_pos(it);
        moved = true;
    }
    if (n > 0 || moved) {
        if (n > 0) ix->dirty = true;
        pthread_mutex_lock(&ix->mu);
        ix->pos = pos;
        pthread_cond_broadcast(&ix->cv);
        pthread_mutex_unlock(&ix->mu);
    }
    return rc < 0 ? rc : n;
}

static void *run(void *arg)
{
    tl_index *ix = arg;
    tl_arena *a = tl_arena_new();
    tl_log_iter *it = NULL;
    int rc = tl_log_iter_new(ix->log, ix->pos, &it);
    if (rc) {
        TL_ERROR("index", "cannot read the log from pos=%llu: %s", (unsigned long long)ix->pos,
                 tl_strerror(rc));
        goto out;
    }
    for (;;) {
        int n = index_batch(ix, it, a);
        if (n < 0) {
            TL_ERROR("index", "log read failed: %s; indexing stopped", tl_strerror(n));
            break;
        }
        bool stopping = atomic_load(&ix->stop);
        pthread_mutex_lock(&ix->mu);
        bool wanted = ix->ckpt_wanted > ix->ckpt_done;
        pthread_mutex_unlock(&ix->mu);
        /* A full batch means more is probably waiting; a checkpoint that is due still runs
         * between batches, or a steady stream would keep rows in memory without bound. */
        bool more = n == BATCH;
        /* The dedup memtable is bounded like the open rows; a finished merge is installed
         * (and its inputs' memory freed) at the next checkpoint, so it makes one due. */
        bool due = (ix->dirty && (tl_mono_ms() - ix->last_ckpt_ms >= ix->opts.checkpoint_ms ||
                                  tl_store_open_rows(ix->store) >= ix->opts.seal_rows ||
                                  tl_dedup__mem_keys(ix->dd) >= ix->opts.seal_rows)) ||
                   tl_dedup__merge_ready(ix->dd);
        if (more && !wanted && !due) continue;
        bool final = stopping && !more;
        if (due || wanted || (final && ix->dirty)) {
            int crc = ix->dirty || wanted || due ? do_checkpoint(ix, ix->pos) : 0;
            pthread_mutex_lock(&ix->mu);
            ix->ckpt_rc = crc;
            ix->ckpt_done = ix->ckpt_wanted;
            pthread_cond_broadcast(&ix->cv);
            pthread_mutex_unlock(&ix->mu);
        }
        if (final) break;
        if (n == 0) (void)tl_log_wait(ix->log, ix->pos, 100);
    }
out:
    tl_log_iter_free(it);
    tl_arena_free(a);
    /* Wake checkpoint requests that this thread will never serve (tl_index_checkpoint then
     * runs them itself). */
    pthread_mutex_lock(&ix->mu);
    ix->running = false;
    pthread_cond_broadcast(&ix->cv);
    pthread_mutex_unlock(&ix->mu);
    return NULL;
}

/* ---- pending set ---- */

static void gen_alloc(pend_gen *g, uint32_t cap)
{
    g->slots = tl_xcalloc(cap, sizeof *g->slots);
    g->cap = cap;
    g->n = 0;
}

static uint32_t gen_home(const pend_gen *g, tl_h128 k)
{
    return (uint32_t)(k.hi >> 32) & (g->cap - 1);
}

static bool gen_has(const pend_gen *g, tl_h128 k)
{
    if (!g->n) return false;
    for (uint32_t i = gen_home(g, k);; i = (i + 1) & (g->cap - 1)) {
        if (!g->slots[i].lo) return false;
        if (g->slots[i].lo == k.lo && g->slots[i].hi == k.hi) return true;
    }
}

static void gen_put(pend_gen *g, tl_h128 k)
{
    if ((g->n + 1) * 2 > g->cap) {
        pend_gen w;
        gen_alloc(&w, g->cap * 2);
        for (uint32_t i = 0; i < g->cap; i++)
            if (g->slots[i].lo) gen_put(&w, g->slots[i]);
        w.max_end = g->max_end;
        free(g->slots);
        *g = w;
    }
    uint32_t i = gen_home(g, k);
    while (g->slots[i].lo) {
        if (g->slots[i].lo == k.lo && g->slots[i].hi == k.hi) return;
        i = (i + 1) & (g->cap - 1);
    }
    g->slots[i] = k;
    g->n++;
}

static void gen_clear(pend_gen *g)
{
    if (g->cap > 4 * PENDING_SLOTS) { /* a stall made it large: back to the usual size */
        free(g->slots);
        gen_alloc(g, PENDING_SLOTS);
    } else if (g->n) {
        memset(g->slots, 0, (size_t)g->cap * sizeof *g->slots);
    }
    g->n = 0;
    g->max_end = 0;
}

/* ---- public ---- */

int tl_index_open(const char *dir, tl_store *store, tl_log *log, uint64_t log_pos, uint64_t aux,
                  const tl_index_opts *opts, tl_index **out, tl_err *err)
{
    tl_index *ix = tl_xcalloc(1, sizeof *ix);
    ix->store = store;
    ix->log = log;
    if (opts) ix->opts = *opts;
    if (!ix->opts.checkpoint_ms) ix->opts.checkpoint_ms = 5000;
    if (!ix->opts.seal_rows) ix->opts.seal_rows = 1u << 20;
    ix->pos = ix->ckpt_pos = log_pos;
    ix->last_ckpt_ms = tl_mono_ms();
    pthread_mutex_init(&ix->mu, NULL);
    pthread_cond_init(&ix->cv, NULL);
    pthread_mutex_init(&ix->pmu, NULL);
    gen_alloc(&ix->pend[0], PENDING_SLOTS);
    gen_alloc(&ix->pend[1], PENDING_SLOTS);
    bool need_rebuild = false; /* the set creates dir, after noticing whether it existed */
    int rc = tl_dedup__open(dir, aux, &need_rebuild, &ix->dd, err);
    if (!rc && need_rebuild) rc = rebuild(ix, log_pos, aux, err);
    if (rc) {
        tl_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

int tl_index_start(tl_index *ix)
{
    pthread_mutex_lock(&ix->mu);
    ix->running = true;
    pthread_mutex_unlock(&ix->mu);
    if (pthread_create(&ix->thread, NULL, run, ix)) {
        pthread_mutex_lock(&ix->mu);
        ix->running = false;
        pthread_mutex_unlock(&ix->mu);
        return TL_ENOMEM;
    }
    ix->started = true;
    return 0;
}

void tl_index_free(tl_index *ix)
{
    if (!ix) return;
    if (ix->started) {
        atomic_store(&ix->stop, true);
        pthread_join(ix->thread, NULL);
    }
    tl_dedup__free(ix->dd);
    for (int i = 0; i < 2; i++)
        free(ix->pend[i].slots);
    pthread_mutex_destroy(&ix->pmu);
    pthread_mutex_destroy(&ix->mu);
    pthread_cond_destroy(&ix->cv);
    free(ix);
}

bool tl_index_seen(tl_index *ix, tl_str project, tl_str event_id)
{
    tl_h128 k = tl_index_key(project, event_id);
    bool seen;
    tl_index_seen_keys(ix, &k, 1, &seen);
    return seen;
}

tl_h128 tl_index_key(tl_str project, tl_str event_id)
{
    return tl_dedup__key(project, event_id, 0);
}

void tl_index_seen_keys(tl_index *ix, const tl_h128 *keys, uint32_t n, bool *seen)
{
    /* The pending set first, then the indexed set: a key leaves the pending set only after
     * the indexer has inserted it, so one that is in neither at the moment each is looked
     * at was not in the log before this call began. */
    pthread_mutex_lock(&ix->pmu);
    for (uint32_t i = 0; i < n; i++)
        seen[i] = gen_has(&ix->pend[ix->cur], keys[i]) || gen_has(&ix->pend[!ix->cur], keys[i]);
    pthread_mutex_unlock(&ix->pmu);
    enum { CHUNK = 256 };
    tl_h128 ask[CHUNK];
    uint32_t at[CHUNK];
    bool found[CHUNK];
    for (uint32_t i = 0; i < n;) {
        uint32_t m = 0;
        for (; i < n && m < CHUNK; i++)
            if (!seen[i]) {
                ask[m] = keys[i];
                at[m++] = i;
            }
        /* A run that cannot be read answers "not seen": the indexer decides then. */
        int rc = tl_dedup__contains_n(ix->dd, ask, m, found);
        (void)rc;
        for (uint32_t j = 0; j < m; j++)
            seen[at[j]] = found[j];
    }
}

void tl_index_admit(tl_index *ix, const tl_h128 *keys, uint32_t n, uint64_t end_pos)
{
    pthread_mutex_lock(&ix->pmu);
    pthread_mutex_lock(&ix->mu);
    uint64_t pos = ix->pos;
    pthread_mutex_unlock(&ix->mu);
    pend_gen *cur = &ix->pend[ix->cur], *old = &ix->pend[!ix->cur];
    if (old->n && pos >= old->max_end) gen_clear(old);
    if (!old->n && cur->n >= PENDING_ROTATE) {
        ix->cur = !ix->cur;
        cur = &ix->pend[ix->cur];
        old = &ix->pend[!ix->cur];
    }
    for (uint32_t i = 0; i < n; i++)
        gen_put(cur, keys[i]);
    if (end_pos > cur->max_end) cur->max_end = end_pos;
    uint64_t wait_for = 0;
    if ((uint64_t)cur->n + old->n > PENDING_MAX) wait_for = old->n ? old->max_end : cur->max_end;
    pthread_mutex_unlock(&ix->pmu);
    /* Back-pressure: the indexer is far behind (a long checkpoint, or a slower disk). */
    if (wait_for) (void)tl_index_wait(ix, wait_for, 2000);
}

int tl_index_wait(tl_index *ix, uint64_t pos, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&ix->mu);
    int rc = 0;
    while (ix->pos < pos && rc == 0 && (ix->running || !ix->started))
        rc = pthread_cond_timedwait(&ix->cv, &ix->mu, &ts);
    bool ok = ix->pos >= pos, dead = ix->started && !ix->running;
    pthread_mutex_unlock(&ix->mu);
    return ok ? 0 : dead ? TL_ECANCELED : TL_EAGAIN;
}

int tl_index_checkpoint(tl_index *ix)
{
    pthread_mutex_lock(&ix->mu);
    uint64_t want = ++ix->ckpt_wanted;
    while (ix->running && ix->ckpt_done < want)
        pthread_cond_wait(&ix->cv, &ix->mu);
    int rc;
    if (ix->ckpt_done >= want) {
        rc = ix->ckpt_rc;
    } else {
        /* No thread (not started, or stopped by a log error): nothing else touches the
         * indexer's state, so the checkpoint runs here, under mu against other callers. */
        rc = do_checkpoint(ix, ix->pos);
        ix->ckpt_done = want;
    }
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

void tl_index_get_stats(tl_index *ix, tl_index_stats *out)
{
    out->indexed = atomic_load(&ix->indexed);
    out->duplicates = atomic_load(&ix->duplicates);
    out->merges_refused = atomic_load(&ix->refused);
    out->checkpoints = atomic_load(&ix->checkpoints);
    tl_dedup_stats ds;
    tl_dedup__get_stats(ix->dd, &ds);
    out->dedup_runs = ds.runs;
    out->dedup_keys = ds.run_keys + ds.mem_keys;
    out->dedup_mem_bytes = ds.mem_bytes;
    out->dedup_disk_bytes = ds.disk_bytes;
    pthread_mutex_lock(&ix->mu);
    out->pos = ix->pos;
    pthread_mutex_unlock(&ix->mu);
}
