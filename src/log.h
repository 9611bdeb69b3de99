/* The write-ahead event log: append-only segment files of CRC-framed records, with group
 * commit. A record is durable (and its writer answered) only after the fdatasync that covers
 * it. The indexer tails the log through an iterator; nothing reads a byte that is not durable.
 *
 * Positions are 64-bit: segment number << 32 | byte offset in that segment. Positions only
 * grow; a position at the end of one segment is followed by (seg+1) << 32 | header size.
 *
 * Threads: tl_log_append may be called from any number of threads at once. The iterator is
 * used by one thread at a time. tl_log_release from the indexer thread. */
#ifndef TL_LOG_H
#define TL_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

typedef struct tl_log tl_log;
typedef struct tl_log_iter tl_log_iter;

typedef struct tl_log_opts {
    uint64_t segment_bytes; /* roll to a new segment past this size; 0 means 64 MiB */
    bool repair;            /* drop corrupt data before the tail instead of refusing to start */
    uint32_t max_record;    /* largest record accepted; 0 means 16 MiB */
} tl_log_opts;

/* Opens (creating when absent) the log in directory `dir` and recovers it: a torn or corrupt
 * tail of the last segment is truncated (logged with the number of bytes dropped); corruption
 * before the tail refuses to open with TL_EBADMSG and err naming the file and offset, unless
 * opts->repair, which truncates there and deletes later segments, saying how much was lost.
 * Starts the writer thread. Returns a new log (free with tl_log_close). */
int tl_log_open(const char *dir, const tl_log_opts *opts, tl_log **out, tl_err *err) TL_MUST_USE;

/* Stops the writer thread (after flushing what was appended) and frees the log. NULL-safe. */
void tl_log_close(tl_log *log);

/* Appends n records as one unit and blocks until they are durable. On success *end_pos (if not
 * NULL) is the position just after the last one. Errors: TL_EROFS once any write or fsync has
 * failed (sticky: the log never writes again in this process, and fsync is never retried),
 * TL_E2BIG for a record over max_record. Thread-safe; concurrent callers share one fsync. */
int tl_log_append(tl_log *log, const tl_str *recs, size_t n, uint64_t *end_pos) TL_MUST_USE;

/* The sticky error (negative) once the log has failed, else 0. */
int tl_log_error(const tl_log *log);

/* Position up to which records are durable. */
uint64_t tl_log_durable_pos(tl_log *log);

/* Blocks until the durable position is greater than `pos`, or timeout_ms passes, or the log
 * is closing. Returns 0 when it advanced, TL_EAGAIN on timeout, TL_ECANCELED when closing. */
int tl_log_wait(tl_log *log, uint64_t pos, int timeout_ms);

/* Oldest position still readable (the start of the oldest segment kept). */
uint64_t tl_log_start_pos(tl_log *log);

/* Returns a new iterator reading from `pos` (free with tl_log_iter_free). A pos before the
 * oldest segment starts at the oldest; TL_EINVAL for a pos past the durable end. */
int tl_log_iter_new(tl_log *log, uint64_t pos, tl_log_iter **out) TL_MUST_USE;
/* Next durable record: returns 1 and sets *rec (valid until the next call) and *next_pos (the
 * position after it), 0 at the durable end (call again later), or a negative error
 * (TL_EBADMSG with the file and offset logged) . */
int tl_log_iter_next(tl_log_iter *it, tl_str *rec, uint64_t *next_pos) TL_MUST_USE;
/* The position the iterator reads next. After tl_log_iter_next returned 0 it is the durable
 * end, also when the iterator had to skip from a deleted segment to the oldest kept one. */
uint64_t tl_log_iter_pos(const tl_log_iter *it);
void tl_log_iter_free(tl_log_iter *it);

/* Declares that everything before `pos` is safely elsewhere (sealed column files): segments
 * that end at or before pos are deleted. The active segment is never deleted. */
int tl_log_release(tl_log *log, uint64_t pos);

/* Asks that the segment holding position pos be rolled, however short, by the first
 * tl_log_release that covers pos, so that the next release after it deletes the segment: an
 * erased person's events and the erasure record leave the log within two checkpoints
 * (docs/lifecycle.md). Any thread. tl_log_open asks it for the end of the records found at
 * start, since a request made before a crash is lost with the process. */
void tl_log_expedite(tl_log *log, uint64_t pos);

/* Statistics for /metrics. */
typedef struct tl_log_stats {
    uint64_t appends, records, bytes, fsyncs, segments;
} tl_log_stats;
void tl_log_get_stats(tl_log *log, tl_log_stats *out);

/* Checks the log in `dir` without changing anything: 0 when tl_log_open (without repair)
 * would accept it — a torn tail in the last segment is accepted, since opening truncates it —
 * else TL_EBADMSG (or an I/O error) with err naming the file and offset. For tests and tools;
 * do not call while the log is being written. */
int tl_log_check(const char *dir, tl_err *err) TL_MUST_USE;

/* What tl_log_scan_image found in one segment image. */
typedef struct tl_log_scan {
    uint64_t valid_len; /* bytes from the start holding a good header and whole, good records
                           (0 when the header is bad) */
    uint64_t records;   /* records within valid_len */
    bool torn;          /* bytes follow valid_len and none of them starts a good record */
    bool corrupt;       /* bytes follow valid_len and a good record starts somewhere in them */
    const char *why;    /* static text for the first bad spot, or NULL */
} tl_log_scan;

/* Scans the bytes of segment file number `seg` held in memory (p may be NULL when len is 0);
 * the recovery in tl_log_open runs this on every segment. Returns 0 when the whole image is
 * valid, TL_EBADMSG otherwise; *out is filled either way. Reads only [p, p + len); pure, any
 * thread. Exposed for the fuzzer and tests. */
int tl_log_scan_image(const void *p, size_t len, uint32_t seg, tl_log_scan *out) TL_MUST_USE;

#endif
