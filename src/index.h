/* The indexer: one thread that tails the durable log in order and, for each record, drops
 * duplicates by (project, event_id) over the whole retention, resolves identity (distinct id →
 * dense integer, merges) and appends the row to the store. It checkpoints the store every
 * checkpoint_ms or seal_rows rows, and then releases the log segments that are covered.
 *
 * Exactly-once: the dedup set and the store are checkpointed together with the log position
 * they cover, so a restart replays the log from there and every event counts once. Identify
 * records (merges, $set) carrying an event_id are deduplicated like events; erasures are not.
 * docs/dedup.md describes the set's files, memory and restart. */
#ifndef TL_INDEX_H
#define TL_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "store.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/str.h"

typedef struct tl_index tl_index;

typedef struct tl_index_opts {
    uint32_t checkpoint_ms; /* 0 means 5000 */
    uint32_t seal_rows;     /* 0 means 1 << 20 */
    /* Keys of events older than this many days (plus 1) leave the dedup set; 0 keeps them
     * forever. The longest retention of any project plus the days an event may be dated
     * ahead (a repeat of an event that old falls outside every project's retention). */
    uint32_t retention_days;
} tl_index_opts;

/* Returns a new indexer (free with tl_index_free) that continues the store's checkpoint: log
 * position log_pos and aux (the dedup manifest recorded with it), both from tl_store_open.
 * `dir` is the indexer's own directory, holding the dedup set's run files: opening reads
 * only their filters and page indexes (about 1.3 bytes per stored event). A store whose
 * checkpoint predates those files (aux was a key count), or a removed `dir`, is migrated
 * once: the set is built from the stored event ids and recorded with a checkpoint. Errors:
 * a run or manifest that the checkpoint names is missing or damaged (err says which and
 * how to rebuild). Call tl_index_start to start its thread. */
int tl_index_open(const char *dir, tl_store *store, tl_log *log, uint64_t log_pos, uint64_t aux,
                  const tl_index_opts *opts, tl_index **out, tl_err *err) TL_MUST_USE;
int tl_index_start(tl_index *ix) TL_MUST_USE;
/* Stops the thread after indexing everything durable, checkpoints, and frees. NULL-safe. */
void tl_index_free(tl_index *ix);

/* True when (project, event_id) is already indexed, or in the log and admitted with
 * tl_index_admit. Thread-safe; a false answer may be stale for an append still in flight;
 * the indexer drops such a repeat then. */
bool tl_index_seen(tl_index *ix, tl_str project, tl_str event_id);

/* The dedup key of (project, event_id), for tl_index_seen_keys and tl_index_admit. */
tl_h128 tl_index_key(tl_str project, tl_str event_id);
/* tl_index_seen for n keys at once (one lock each for the pending and the indexed set,
 * their memory accesses overlapped): seen[i] answers keys[i]. Thread-safe. */
void tl_index_seen_keys(tl_index *ix, const tl_h128 *keys, uint32_t n, bool *seen);
/* Tells the indexer's readers that the events with these keys are durable in the log, in an
 * append ending at end_pos: until the indexer has passed them, tl_index_seen_keys finds them
 * here, so an appender may answer without waiting for the indexer and a client's next
 * request still has its repeats answered as duplicates. Blocks (up to 2 s) while the
 * indexer is more than about half a million admitted keys behind: the bound on how far
 * acknowledged events run ahead of queries. Thread-safe. */
void tl_index_admit(tl_index *ix, const tl_h128 *keys, uint32_t n, uint64_t end_pos);

/* Blocks until everything up to log position pos is indexed (visible to queries), or
 * timeout_ms passes: 0, TL_EAGAIN on timeout, or TL_ECANCELED when the indexer thread has
 * stopped (it logged why) and never will. */
int tl_index_wait(tl_index *ix, uint64_t pos, int timeout_ms);

/* Runs a checkpoint now (from any thread; waits for it). */
int tl_index_checkpoint(tl_index *ix) TL_MUST_USE;

typedef struct tl_index_stats {
    uint64_t indexed, duplicates, merges_refused, checkpoints, pos;
    /* The dedup set: run files, keys (on disk and in memory), resident bytes (filters, page
     * indexes, memtable) and bytes of its files. */
    uint64_t dedup_runs, dedup_keys, dedup_mem_bytes, dedup_disk_bytes;
} tl_index_stats;
void tl_index_get_stats(tl_index *ix, tl_index_stats *out);

#endif
