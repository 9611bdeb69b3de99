/* Private to the index module: the dedup set (src/index/dedup.c), a log-structured set of
 * 128-bit keys (XXH3-128 of project NUL event_id) in bounded memory. src/index.c owns one and
 * keeps it consistent with the store's checkpoint through the checkpoint's aux value.
 *
 * Threads: one writer at a time (the indexer thread, or whoever holds the indexer when that
 * thread is not running) calls every function except tl_dedup__contains and
 * tl_dedup__get_stats, which any thread may call at any time. A merge thread of the set's
 * own works in the background; it never changes what lookups see (its result is installed
 * by the writer in tl_dedup__prepare). */
#ifndef TL_INDEX_INT_H
#define TL_INDEX_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/str.h"

/* ---- tuning ---- */
#define TL_DEDUP_PAGE_KEYS  256  /* keys per 4 KiB page of a run file */
#define TL_DEDUP_BLOOM_BITS 10   /* Bloom filter bits per key (~1% false positives) */
#define TL_DEDUP_FANOUT     4    /* runs of one size tier merged into one */
#define TL_DEDUP_TIER0      4096 /* runs below this many keys form tier 0 */
#define TL_DEDUP_AUX_TAG    ((uint64_t)1 << 63) /* aux = TAG | manifest generation */

typedef struct tl_dedup tl_dedup;

/* The key of (project, event_id): XXH3-128 of project, NUL, event_id, of which 111 bits
 * identify it; the other 17 hold the UTC day of ts_ms (the event time; 0 when unknown), for
 * expiry, and a bit always set (zero marks an empty memtable slot). Keys that differ only in
 * their day are the same key. */
tl_h128 tl_dedup__key(tl_str project, tl_str event_id, int64_t ts_ms);

/* Opens the set in `dir` (created when absent) at the state the store's checkpoint names:
 * aux is the value recorded with it. When aux names a manifest (TL_DEDUP_AUX_TAG set) and
 * dir exists, the manifest and its runs are loaded; files they do not name (runs and
 * manifests written after that checkpoint, by a process that crashed before recording them)
 * are deleted. A missing or damaged manifest or run refuses to open (TL_ENOENT or
 * TL_EBADMSG, err naming the file and what to do). Otherwise (an older store whose aux was a
 * key count, a new store, or an index directory removed by the operator) the set opens empty
 * with *rebuild true: the caller inserts every stored key and checkpoints once. Returns a new
 * set (free with tl_dedup__free). */
int tl_dedup__open(const char *dir, uint64_t aux, bool *rebuild, tl_dedup **out,
                   tl_err *err) TL_MUST_USE;
/* Stops the merge thread (an unfinished merge is abandoned, its file deleted) and frees.
 * NULL-safe. */
void tl_dedup__free(tl_dedup *d);

/* The writer inserts between these two (they hold the set's write lock: lookups wait, so a
 * batch of inserts pays for the lock once, not per key). */
void tl_dedup__write_begin(tl_dedup *d);
void tl_dedup__write_end(tl_dedup *d);
/* Adds k: 1 when it was new, 0 when already present, or a negative error (a run could not be
 * read; the set is unchanged). Writer only, between tl_dedup__write_begin and _end. */
int tl_dedup__insert(tl_dedup *d, tl_h128 k) TL_MUST_USE;
/* 1 when k is present, 0 when not, negative on a read error. Any thread. */
int tl_dedup__contains(tl_dedup *d, tl_h128 k) TL_MUST_USE;
/* tl_dedup__contains for n keys under one lock, their memtable probes overlapped: found[i]
 * for keys[i]. 0, or a negative error when a run could not be read (found[] false for the
 * keys it concerned). Any thread. */
int tl_dedup__contains_n(tl_dedup *d, const tl_h128 *keys, uint32_t n, bool *found) TL_MUST_USE;
/* Starts loading the memtable slot where an insert or lookup of k begins. Writer only. */
void tl_dedup__prefetch(tl_dedup *d, tl_h128 k);
/* Keys in memory since the last flush (the indexer checkpoints past a limit). */
uint64_t tl_dedup__mem_keys(tl_dedup *d);
/* True when a background merge has finished and waits for tl_dedup__prepare. */
bool tl_dedup__merge_ready(tl_dedup *d);

/* Writes the in-memory keys as a new sorted run (fsynced). Writer only. */
int tl_dedup__flush(tl_dedup *d, tl_err *err) TL_MUST_USE;
/* Step 1 of a checkpoint: flushes, installs a finished merge and, when the set of runs
 * changed, writes a new manifest naming it (fsynced). *aux is the value to record with the
 * store's checkpoint. Writer only. */
int tl_dedup__prepare(tl_dedup *d, uint64_t *aux, tl_err *err) TL_MUST_USE;
/* Step 2, after the store recorded aux durably: deletes the runs merged away and the older
 * manifest, and starts a merge when a size tier is full. Writer only. */
void tl_dedup__committed(tl_dedup *d, uint64_t aux);
/* Keys of event days before `day` (UTC days since 1970) have expired: merges leave them out,
 * a run holding only such keys is dropped at the next tl_dedup__prepare, and a run that is
 * at least half expired is rewritten without them. 0 (the default) expires nothing. Until
 * dropped, an expired key still counts as present. Writer only. */
void tl_dedup__set_horizon(tl_dedup *d, uint32_t day);
/* Blocks until no merge is running (tests). */
void tl_dedup__wait_merge(tl_dedup *d);

/* Validates a run file completely: header, every key sorted and unique, the keys' checksum,
 * the page index and that the filter holds every key. 0 or TL_EBADMSG with err saying
 * where. For tests. */
int tl_dedup__check_run(const char *path, tl_err *err) TL_MUST_USE;

typedef struct tl_dedup_stats {
    uint64_t runs;       /* run files in use */
    uint64_t run_keys;   /* keys in them */
    uint64_t mem_keys;   /* keys in memory since the last flush */
    uint64_t mem_bytes;  /* resident bytes: filters, page indexes and the memtable */
    uint64_t disk_bytes; /* bytes of the run files in use */
    uint64_t flushes, merges;
    uint64_t expired;    /* keys dropped because their day passed the horizon */
    uint64_t page_reads; /* lookups that read a page (filter said maybe) */
} tl_dedup_stats;
void tl_dedup__get_stats(tl_dedup *d, tl_dedup_stats *out);

#endif
