/* The indexer thread: tails the durable log, drops duplicates, resolves identity and appends
 * rows to the store; checkpoints and releases log segments.
 *
 * Dedup set: the 128-bit XXH3 of (project, NUL, event_id) for every stored event, in an
 * open-addressing table (zero = empty slot), kept in memory (about 23 bytes per event). It is
 * not written anywhere: at open it is rebuilt from the event-id columns of the store's
 * checkpointed parts, so the set and the store always describe the same prefix of the log, at
 * no disk cost. A restart replays the log from the checkpoint and every event counts exactly
 * once. (The checkpoint records the set's size, checked at rebuild.)
 *
 * Threads: the indexer thread owns everything; tl_index_seen reads the set under a rwlock;
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

#include "record.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/hash.h"
#include "util/io.h"
#include "util/time.h"

#define BATCH 4096

typedef struct dedup {
    tl_h128 *slots;
    uint64_t mask, n;
} dedup;

struct tl_index {
    tl_store *store;
    tl_log *log;
    tl_index_opts opts;
    dedup dd;
    pthread_rwlock_t dd_lock;
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
};

/* ---- dedup set ---- */

static tl_h128 dedup_key(tl_str project, tl_str event_id)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, project.p, project.len);
    XXH3_128bits_update(&st, "", 1);
    XXH3_128bits_update(&st, event_id.p, event_id.len);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    return (tl_h128){h.low64 | 1, h.high64}; /* never all-zero: zero marks an empty slot */
}

static bool dd_find(const dedup *d, tl_h128 k, uint64_t *slot)
{
    for (uint64_t i = k.hi & d->mask;; i = (i + 1) & d->mask) {
        if (!d->slots[i].lo) {
            *slot = i;
            return false;
        }
        if (d->slots[i].lo == k.lo && d->slots[i].hi == k.hi) {
            *slot = i;
            return true;
        }
    }
}

static void dd_grow(dedup *d)
{
    uint64_t nmask = d->mask * 2 + 1;
    tl_h128 *ns = tl_xcalloc(nmask + 1, sizeof *ns);
    for (uint64_t i = 0; i <= d->mask; i++) {
        if (!d->slots[i].lo) continue;
        uint64_t j = d->slots[i].hi & nmask;
        while (ns[j].lo)
            j = (j + 1) & nmask;
        ns[j] = d->slots[i];
    }
    free(d->slots);
    d->slots = ns;
    d->mask = nmask;
}

/* Inserts k; returns false when it was already present. */
static bool dd_insert(dedup *d, tl_h128 k)
{
    uint64_t slot;
    if (dd_find(d, k, &slot)) return false;
    d->slots[slot] = k;
    d->n++;
    if (d->n * 10 > (d->mask + 1) * 7) dd_grow(d);
    return true;
}

static void dd_add_cb(void *ctx, tl_str project, tl_str event_id)
{
    dd_insert(ctx, dedup_key(project, event_id));
}

/* Rebuilds the set from the event ids of every stored row: the store's checkpoint and the set
 * then describe the same prefix of the log by construction. `expect` is the count recorded at
 * the last checkpoint, a consistency check. */
static int dd_rebuild(dedup *d, tl_store *st, uint64_t expect, tl_err *err)
{
    d->mask = (1u << 16) - 1;
    while ((d->mask + 1) * 7 < expect * 10)
        d->mask = d->mask * 2 + 1;
    d->slots = tl_xcalloc(d->mask + 1, sizeof *d->slots);
    int rc = tl_store_scan_event_ids(st, dd_add_cb, d);
    if (rc) return tl_err_set(err, rc, "rebuilding the event-id set: %s", tl_strerror(rc));
    if (d->n != expect)
        TL_WARN("index", "event-id set has %llu ids, the checkpoint recorded %llu",
                (unsigned long long)d->n, (unsigned long long)expect);
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

static int do_checkpoint(tl_index *ix, uint64_t pos)
{
    tl_err err = {0};
    pthread_rwlock_rdlock(&ix->dd_lock);
    uint64_t n_ids = ix->dd.n;
    pthread_rwlock_unlock(&ix->dd_lock);
    int rc = tl_store_checkpoint(ix->store, pos, n_ids, &err);
    if (rc) {
        TL_ERROR("index", "checkpoint failed: %s", err.msg);
        return rc;
    }
    ix->ckpt_pos = pos;
    ix->dirty = false;
    ix->last_ckpt_ms = tl_mono_ms();
    atomic_fetch_add(&ix->checkpoints, 1);
    rc = tl_log_release(ix->log, pos);
    if (rc) TL_WARN("index", "log release failed: %s", tl_strerror(rc));
    return 0;
}

/* Indexes up to BATCH records; returns how many, or a negative error. */
static int index_batch(tl_index *ix, tl_log_iter *it, tl_arena *a)
{
    int n = 0, rc = 0;
    /* The locked project's name is copied: r.project points into the log iterator's buffer,
     * which the next tl_log_iter_next may refill or move. Longer names never lock. */
    char cur[64];
    size_t cur_len = 0;
    uint32_t pid = 0;
    bool locked = false;
    uint64_t pos = ix->pos;
    tl_arena_reset(a);
    pthread_rwlock_wrlock(&ix->dd_lock);
    while (n < BATCH) {
        tl_str raw;
        uint64_t next;
        rc = tl_log_iter_next(it, &raw, &next);
        if (rc <= 0) break;
        tl_record r;
        tl_err err = {0};
        if (tl_record_decode(raw.p, raw.len, a, &r, &err)) {
            TL_ERROR("index", "skipping undecodable record at pos=%llu: %s",
                     (unsigned long long)pos, err.msg);
            pos = next;
            n++;
            continue;
        }
        pos = next;
        n++;
        if (r.kind == TL_REC_EVENT && !dd_insert(&ix->dd, dedup_key(r.project, r.event_id))) {
            atomic_fetch_add(&ix->duplicates, 1);
            continue;
        }
        if (!locked || !tl_str_eq((tl_str){cur, cur_len}, r.project)) {
            if (locked) tl_store_w_end(ix->store, pid);
            locked = false;
            if (tl_store_w_begin(ix->store, r.project, &pid)) {
                TL_ERROR("index", "bad project name in log: %.*s", (int)r.project.len, r.project.p);
                continue;
            }
            if (r.project.len > sizeof cur) {
                tl_store_w_end(ix->store, pid);
                continue;
            }
            locked = true;
            memcpy(cur, r.project.p, r.project.len);
            cur_len = r.project.len;
        }
        apply(ix, pid, &r);
        atomic_fetch_add(&ix->indexed, 1);
    }
    if (locked) tl_store_w_end(ix->store, pid);
    pthread_rwlock_unlock(&ix->dd_lock);
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
        bool due = ix->dirty && (tl_mono_ms() - ix->last_ckpt_ms >= ix->opts.checkpoint_ms ||
                                 tl_store_open_rows(ix->store) >= ix->opts.seal_rows);
        if (more && !wanted && !due) continue;
        bool final = stopping && !more;
        if (due || wanted || (final && ix->dirty)) {
            int crc = ix->dirty || wanted ? do_checkpoint(ix, ix->pos) : 0;
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

/* ---- public ---- */

int tl_index_open(const char *dir, tl_store *store, tl_log *log, uint64_t log_pos, uint64_t aux,
                  const tl_index_opts *opts, tl_index **out, tl_err *err)
{
    int rc = tl_mkdir_p(dir);
    if (rc) return tl_err_set(err, rc, "%s: %s", dir, tl_strerror(rc));
    tl_index *ix = tl_xcalloc(1, sizeof *ix);
    ix->store = store;
    ix->log = log;
    if (opts) ix->opts = *opts;
    if (!ix->opts.checkpoint_ms) ix->opts.checkpoint_ms = 5000;
    if (!ix->opts.seal_rows) ix->opts.seal_rows = 1u << 20;
    ix->pos = ix->ckpt_pos = log_pos;
    ix->last_ckpt_ms = tl_mono_ms();
    pthread_rwlock_init(&ix->dd_lock, NULL);
    pthread_mutex_init(&ix->mu, NULL);
    pthread_cond_init(&ix->cv, NULL);
    rc = dd_rebuild(&ix->dd, store, aux, err);
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
    free(ix->dd.slots);
    pthread_rwlock_destroy(&ix->dd_lock);
    pthread_mutex_destroy(&ix->mu);
    pthread_cond_destroy(&ix->cv);
    free(ix);
}

bool tl_index_seen(tl_index *ix, tl_str project, tl_str event_id)
{
    tl_h128 k = dedup_key(project, event_id);
    uint64_t slot;
    pthread_rwlock_rdlock(&ix->dd_lock);
    bool found = dd_find(&ix->dd, k, &slot);
    pthread_rwlock_unlock(&ix->dd_lock);
    return found;
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
    pthread_mutex_lock(&ix->mu);
    out->pos = ix->pos;
    pthread_mutex_unlock(&ix->mu);
}
