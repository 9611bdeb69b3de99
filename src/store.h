/* The store: per project, the dictionary of strings, the identity map (distinct ids → dense
 * integers, persons as merges) and the event rows, in per-day partitions (UTC days of event
 * time) of immutable, compressed column parts plus one open in-memory part per partition.
 *
 * Writer side: only the indexer thread calls the tl_store_w_* functions, between
 * tl_store_w_begin and tl_store_w_end for a project (which hold that project's write lock).
 * Reader side: any thread takes a snapshot (tl_store_snap), which holds the project's read
 * lock until tl_snap_free; columns of sealed parts are loaded lazily through a shared cache.
 *
 * Durability: the store is made durable only by tl_store_checkpoint, which seals open parts
 * into files, syncs the dictionary and identity files and records the log position they cover.
 * After a crash, the store opens at its last checkpoint and the indexer replays the log. */
#ifndef TL_STORE_H
#define TL_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "record.h"
#include "util/err.h"
#include "util/str.h"

typedef struct tl_store tl_store;
typedef struct tl_snap tl_snap;

#define TL_DID_NONE      UINT32_MAX /* no such distinct id */
#define TL_PERSON_ERASED UINT32_MAX /* person[did] of an erased person */

typedef struct tl_store_opts {
    uint32_t seal_rows;      /* seal an open part at this many rows; 0 means 1 << 20 */
    uint64_t cache_bytes;    /* budget for decompressed columns; 0 means 1 GiB */
    uint32_t retention_days; /* projects without their own (tl_store_set_retention); 0: keep */
} tl_store_opts;

/* Opens (creating) the store under `dir`, loading the last checkpoint. Returns a new store
 * (free with tl_store_free), its checkpoint's log position in *log_pos and the caller's
 * value recorded with it (see tl_store_checkpoint) in *aux (both 0 for a new store). */
int tl_store_open(const char *dir, const tl_store_opts *opts, tl_store **out, uint64_t *log_pos,
                  uint64_t *aux, tl_err *err) TL_MUST_USE;
void tl_store_free(tl_store *s);

/* ---- writer side (indexer thread) ---- */

/* Finds or creates the project and takes its write lock. *pid is the project's index. */
int tl_store_w_begin(tl_store *s, tl_str project, uint32_t *pid) TL_MUST_USE;
void tl_store_w_end(tl_store *s, uint32_t pid);
/* The did of a distinct id, creating it when `create`; TL_DID_NONE when absent. `user` marks
 * an identified user id (user_id) as opposed to an anonymous one. */
uint32_t tl_store_w_did(tl_store *s, uint32_t pid, tl_str distinct_id, bool user, bool create);
/* Merges the persons of two dids. Returns 0 (merged or already one person), or TL_EEXIST
 * when both persons already contain a different identified user id (refused and counted). */
int tl_store_w_merge(tl_store *s, uint32_t pid, uint32_t a, uint32_t b);
/* Appends an event row for did. */
void tl_store_w_append(tl_store *s, uint32_t pid, const tl_record *r, uint32_t did);
/* Sets properties on the person of did ($set semantics: last write by event time wins). */
void tl_store_w_person_props(tl_store *s, uint32_t pid, uint32_t did, int64_t ts_ms,
                             const tl_prop *props, uint32_t n);
/* Erases the person that did belongs to: excluded from every later snapshot at once. The next
 * checkpoint removes its rows from the part files and, once it is durable, scrubs its distinct
 * ids and the strings nothing else uses from the dictionary files (docs/lifecycle.md). */
void tl_store_w_erase(tl_store *s, uint32_t pid, uint32_t did);

/* Retention of a project (it need not exist yet), in days: at each checkpoint, its UTC days
 * that ended more than `days` days ago are dropped whole (their part files deleted once the
 * checkpoint is durable). 0 keeps everything. Any thread. */
void tl_store_set_retention(tl_store *s, tl_str project, uint32_t days);

/* Seals every open part, syncs dictionaries and identity, and atomically records log_pos as
 * the position the store now covers. Takes each project's write lock in turn. Errors are
 * sticky (TL_EROFS afterwards). */
/* `aux` is recorded atomically with it (the indexer names its dedup manifest there). */
int tl_store_checkpoint(tl_store *s, uint64_t log_pos, uint64_t aux, tl_err *err) TL_MUST_USE;

/* Calls fn(ctx, project, event_id) for every stored row of every project (the indexer
 * rebuilds its dedup set with it at start). Event-id columns loaded for it are not kept in
 * the cache. Call before the indexer starts (no concurrent writer). */
typedef void (*tl_event_id_fn)(void *ctx, tl_str project, tl_str event_id);
int tl_store_scan_event_ids(tl_store *s, tl_event_id_fn fn, void *ctx) TL_MUST_USE;

/* Rows in open parts, over all projects (the indexer seals past opts.seal_rows). */
uint64_t tl_store_open_rows(tl_store *s);

/* ---- reader side ---- */

/* A read view of one project. TL_ENOENT when the project has no data yet. */
int tl_store_snap(tl_store *s, tl_str project, tl_snap **out) TL_MUST_USE;
void tl_snap_free(tl_snap *sn);

/* Identity. person[did] is the canonical did of did's person (person[p] == p for a person
 * p), or TL_PERSON_ERASED. Persons are resolved at query time: merges are retroactive. */
uint32_t tl_snap_n_dids(const tl_snap *sn);
const uint32_t *tl_snap_persons(const tl_snap *sn);
bool tl_snap_any_erased(const tl_snap *sn); /* some person[did] is TL_PERSON_ERASED */
tl_str tl_snap_did_str(const tl_snap *sn, uint32_t did);
uint32_t tl_snap_did_find(const tl_snap *sn, tl_str distinct_id); /* or TL_DID_NONE */
/* The dids of did's person: fills up to cap, returns how many there are (0 when erased). */
uint32_t tl_snap_person_members(const tl_snap *sn, uint32_t did, uint32_t *out, uint32_t cap);

/* Dictionary of event names, field values, property keys and property string values. Id 0
 * is "absent" and never a string. */
int tl_snap_dict_find(const tl_snap *sn, tl_str s, uint32_t *id); /* 0 or TL_ENOENT */
tl_str tl_snap_dict_str(const tl_snap *sn, uint32_t id);
uint32_t tl_snap_dict_n(const tl_snap *sn);

/* Parts, ordered by min_ts. Rows of a sealed part are sorted by ts; an open part's are not. */
typedef struct tl_part_info {
    int64_t min_ts_ms, max_ts_ms;
    uint32_t n_rows;
    bool sorted;
} tl_part_info;
size_t tl_snap_n_parts(const tl_snap *sn);
tl_part_info tl_snap_part_info(const tl_snap *sn, size_t part);

enum tl_col {
    TL_COL_TS,    /* int64 ms */
    TL_COL_DID,   /* uint32 */
    TL_COL_EVENT, /* uint32 dict id */
    TL_COL_FIELD, /* TL_COL_FIELD + f: uint32 dict id of built-in field f, 0 = absent */
    TL_COL_SESSION = TL_COL_FIELD + TL_F_COUNT, /* uint32 dict id of session_id */
    TL_COL_LINK, /* uint32: did + 1 of the anonymous_id an event also carried (its did column
                    is then the user_id's), else 0; keeps the link for export */
    TL_COL_N
};

/* Column arrays of n_rows entries, valid until the snapshot is freed. Thread-safe. */
int tl_snap_col_ts(tl_snap *sn, size_t part, const int64_t **out) TL_MUST_USE;
int tl_snap_col_u32(tl_snap *sn, size_t part, int col, const uint32_t **out) TL_MUST_USE;

/* The rows of a sealed part whose event is event_id (a dict id), ascending: *n of them (0
 * when none). TL_ENOENT when the part has no event index (an open part, or a part written
 * before the index existed): scan the event column instead. */
int tl_snap_event_rows(tl_snap *sn, size_t part, uint32_t event_id, const uint32_t **rows,
                       uint32_t *n) TL_MUST_USE;

/* The distinct dids of a sealed part's did column, ascending: *n of them. TL_ENOENT when the
 * part has none (an open part, or a part written before the did set existed): scan its did
 * column instead. A did absent from the set is on no row of the part. */
int tl_snap_part_dids(tl_snap *sn, size_t part, const uint32_t **dids, uint32_t *n) TL_MUST_USE;

/* Projections: the values of a u32 column (col < TL_COL_N), or of a property (in the
 * tl_prop_col layout below; all absent when no row has it), at the rows of event_id in a
 * sealed part, in the order tl_snap_event_rows gives them: value j is row rows[j]'s. Read as
 * dense arrays, where the rows themselves are scattered through the part (a rare event's
 * rows each on their own cache line). Built on first use and kept, under an eighth of the
 * cache budget (store/proj.c); valid until the snapshot is freed. TL_ENOENT as
 * tl_snap_event_rows. */
int tl_snap_event_u32(tl_snap *sn, size_t part, uint32_t event_id, int col,
                      const uint32_t **out) TL_MUST_USE;
int tl_snap_event_ts(tl_snap *sn, size_t part, uint32_t event_id, const int64_t **out) TL_MUST_USE;
typedef struct tl_prop_col tl_prop_col;
int tl_snap_event_prop(tl_snap *sn, size_t part, uint32_t event_id, uint32_t key_id,
                       tl_prop_col *out) TL_MUST_USE;

/* A property column: for each row, type[i] is 0 (absent), TL_PV_NUM (num[i]) or TL_PV_STR
 * (str[i], a dict id). TL_ENOENT when no row of the part has the key. */
typedef struct tl_prop_col {
    const uint8_t *type;
    const double *num;
    const uint32_t *str;
} tl_prop_col;
int tl_snap_prop(tl_snap *sn, size_t part, uint32_t key_id, tl_prop_col *out) TL_MUST_USE;

/* The property keys (dict ids) present in a part: fills up to cap, returns how many exist. */
uint32_t tl_snap_part_prop_keys(tl_snap *sn, size_t part, uint32_t *keys, uint32_t cap);
/* True when did is an identified user id (user_id), false for an anonymous id. */
bool tl_snap_did_is_user(const tl_snap *sn, uint32_t did);

/* The event_id string of a row (for export and timelines). */
int tl_snap_event_id(tl_snap *sn, size_t part, uint32_t row, tl_str *out) TL_MUST_USE;

/* Single cells of a few rows (a person's timeline): from the decoded column when the cache
 * holds it or the part is open, else by decoding only the frame of the column that
 * holds the row (16 KiB, part format version 3; an older part's column is loaded whole, as the
 * tl_snap_* readers do), keeping the last frames decoded. So a page of a person's events reads
 * a few frames of each column of the parts it touches, not whole columns. One tl_cells per
 * thread, freed before its snapshot. */
typedef struct tl_cells tl_cells;
tl_cells *tl_cells_new(tl_snap *sn);
void tl_cells_free(tl_cells *c);
/* Column col (TL_COL_DID .. TL_COL_LINK) of row `row` of part. */
int tl_cells_u32(tl_cells *c, size_t part, int col, uint32_t row, uint32_t *out) TL_MUST_USE;
/* The event id of a row; *out is valid until the next call on c. */
int tl_cells_event_id(tl_cells *c, size_t part, uint32_t row, tl_str *out) TL_MUST_USE;
/* Property key_id of a row: *type 0 when absent (also when the part has no such key), else
 * TL_PV_NUM (*num) or TL_PV_STR (*str, a dict id). */
int tl_cells_prop(tl_cells *c, size_t part, uint32_t key_id, uint32_t row, uint8_t *type,
                  double *num, uint32_t *str) TL_MUST_USE;

/* Person properties of a person (any of its dids): calls fn for each key once, with the value
 * that wins ($set: latest event time; else $set_once: earliest; value->type may carry
 * TL_PV_ONCE). */
typedef void (*tl_person_prop_fn)(void *ctx, tl_str key, const tl_prop *value);
void tl_snap_person_props(tl_snap *sn, uint32_t person, tl_person_prop_fn fn, void *ctx);

/* Statistics for /metrics. */
typedef struct tl_store_stats {
    uint64_t rows, parts, bytes_on_disk, merges, merges_refused, dids;
    /* The column cache: budget and decoded bytes held (pinned columns of live snapshots can
     * take it past the budget), lookups that found the column or decoded it, columns freed
     * to stay within the budget. */
    uint64_t cache_budget, cache_bytes, cache_hits, cache_misses, cache_evictions;
    uint64_t proj_bytes, proj_hits, proj_misses; /* projections (tl_snap_event_u32) */
    /* Lifecycle since start: rows dropped by retention and by erasure, dictionary and
     * distinct-id strings scrubbed from files. */
    uint64_t rows_expired, rows_erased, strings_scrubbed;
} tl_store_stats;
void tl_store_get_stats(tl_store *s, tl_store_stats *out);

#endif
