/* Private to the store module: the dictionary, the identity map, parts and partitions. */
#ifndef TL_STORE_INT_H
#define TL_STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "store.h"
#include "util/buf.h"

/* ---- dictionary: string <-> dense id (1..n), append-only file ---- */

typedef struct tl_dict {
    uint32_t n;    /* strings; ids are 1..n */
    uint32_t cap;  /* capacity of strs */
    tl_str *strs;  /* strs[id] (strs[0] unused) */
    char **chunks; /* string bytes; never move */
    uint32_t n_chunks;
    size_t chunk_used, chunk_cap;
    uint32_t *slots;     /* open addressing: id or 0 */
    uint32_t *slot_hash; /* low 32 bits of the hash, to skip compares */
    uint32_t mask;
    uint32_t n_synced; /* strings already in the file */
    uint64_t file_len; /* bytes of the file covering n_synced */
    void *map;         /* the file as loaded (strings of loaded entries point into it) */
    size_t map_len;
} tl_dict;

void tl_dict__init(tl_dict *d);
void tl_dict__fini(tl_dict *d);
uint32_t tl_dict__find(const tl_dict *d, tl_str s); /* 0 when absent */
uint32_t tl_dict__intern(tl_dict *d, tl_str s);
static inline tl_str tl_dict__str(const tl_dict *d, uint32_t id)
{
    return id && id <= d->n && d->strs[id].p ? d->strs[id] : TL_STR_NULL;
}
/* True for a scrubbed entry (tl_dict__scrub): its string is gone, its id stays taken. */
static inline bool tl_dict__dead(const tl_dict *d, uint32_t id)
{
    return id && id <= d->n && !d->strs[id].p;
}
/* File: a sequence of (varint length, bytes). Loads the first `len` bytes (the checkpoint's
 * length; more is cut off), and appends what is new on sync. */
int tl_dict__load(tl_dict *d, const char *path, uint64_t len, tl_err *err);
int tl_dict__sync(tl_dict *d, const char *path, tl_err *err);
/* Physical erasure: entries ids[0..n) (synced ones; others are skipped) become dead. Their
 * bytes in the file are overwritten in place with 0xFF (never valid UTF-8, so never a real
 * string; the length stays, so later ids and the checkpointed length do not move) and
 * fsynced; in memory the string is forgotten (tl_dict__str gives TL_STR_NULL, find no longer
 * sees it, and interning the same text again makes a new id). Load keeps dead entries dead.
 * Returns how many entries it killed through *n_dead (may be NULL). */
int tl_dict__scrub(tl_dict *d, const char *path, const uint32_t *ids, uint32_t n, uint32_t *n_dead,
                   tl_err *err);

/* ---- identity ---- */

/* A person property as set on one did: the latest $set (or the first $set_once) by event time.
 * Keys and string values are ids of the project dictionary. */
typedef struct tl_pprop {
    uint32_t did, key, next; /* next: index + 1 of the did's next property, 0 at the end */
    uint8_t type;            /* TL_PV_NUM / TL_PV_STR, | TL_PV_ONCE for $set_once */
    int64_t ts;
    double num;
    uint32_t str;
} tl_pprop;

typedef struct tl_ident {
    tl_dict ids;      /* distinct id string -> did + 1 */
    uint32_t n, cap;  /* dids */
    uint32_t *person; /* did -> root did, or TL_PERSON_ERASED */
    uint32_t *next;   /* did -> next member of its person (circular list) */
    uint32_t *size;   /* root -> members */
    uint32_t *user;   /* root -> did of its identified user id, or TL_DID_NONE */
    uint8_t *is_user; /* did -> 1 if it is a user_id */
    tl_buf ops;       /* operations not yet in the file */
    uint64_t ops_len; /* bytes of the ops file */
    uint64_t merges, refused;
    uint32_t erased; /* dids erased (so queries know when to look for them) */
    tl_pprop *props; /* person properties, per did through phead/next */
    uint32_t n_props, cap_props;
    uint32_t *phead; /* did -> index + 1 of its first property, 0: none (cap entries) */
} tl_ident;

void tl_ident__init(tl_ident *id);
void tl_ident__fini(tl_ident *id);
uint32_t tl_ident__did(tl_ident *id, tl_str s, bool user, bool create);
int tl_ident__merge(tl_ident *id, uint32_t a, uint32_t b, bool log_op);
void tl_ident__erase(tl_ident *id, uint32_t did, bool log_op);
/* Sets a property on did ($set: the latest ts wins, ties the later call; $set_once, type |
 * TL_PV_ONCE: the earliest ts wins). Logged as three ops: 'S'/'O' did key, 'T' ts,
 * 'N' number or 'V' string id. */
void tl_ident__set_prop(tl_ident *id, uint32_t did, uint32_t key, uint8_t type, int64_t ts,
                        double num, uint32_t str, bool log_op);
/* Calls fn for each property of the person of did (all its dids): per key, the $set value
 * with the latest ts (ties: the did set last), or else the $set_once value with the
 * earliest ts. */
typedef void (*tl_ident_prop_fn)(void *ctx, const tl_pprop *p);
void tl_ident__person_props(const tl_ident *id, uint32_t did, tl_ident_prop_fn fn, void *ctx);
/* Files: ids.dat (distinct ids: one flag byte 'u'/'a' + the id, as dict entries) and
 * ident.ops (u8 op, u32 a, u32 b records). */
int tl_ident__load(tl_ident *id, const char *dir, uint64_t ids_len, uint64_t ops_len, tl_err *err);
int tl_ident__sync(tl_ident *id, const char *dir, tl_err *err);

/* ---- column cache: decoded columns of sealed parts, under one byte budget ----
 *
 * Every decoded column (tl_part.loaded[i]) is accounted here. A column is pinned while a
 * snapshot uses it (tl_part__pin / tl_part__unpin); unpinned columns sit in an LRU list and
 * are freed, least recently used first, while the cache holds more than its budget. Pinned
 * columns are never freed, so the budget can be exceeded by what live snapshots use. While
 * the cache is held (tl_cache__hold: checkpoints, whose compaction reads unpinned columns),
 * nothing is evicted. One mutex guards the cache and every part's loaded[] and cent[]. */

typedef struct tl_cent {
    struct tl_cent *prev, *next; /* in the LRU list while loaded and unpinned */
    struct tl_part *part;
    uint32_t idx;  /* directory entry */
    uint32_t pins; /* snapshots using it */
    size_t bytes;  /* of the decoded column */
} tl_cent;

typedef struct tl_cache {
    pthread_mutex_t mu;
    uint64_t budget, bytes;
    uint64_t hits, misses, evictions;
    uint32_t hold;
    tl_cent lru; /* sentinel: lru.next is the least recently used */
} tl_cache;

void tl_cache__init(tl_cache *c, uint64_t budget);
void tl_cache__fini(tl_cache *c); /* after every part using it is freed */
/* on: stop evicting until the matching call with off (which trims to the budget). */
void tl_cache__hold(tl_cache *c, bool on);
typedef struct tl_cache_stats {
    uint64_t budget, bytes, hits, misses, evictions;
} tl_cache_stats;
void tl_cache__stats(tl_cache *c, tl_cache_stats *out);

/* ---- projections (proj.c): columns gathered into one event's row order ----
 * A cache of them, keyed by part (project, sequence number), column (and property key) and
 * event; thread-safe. tl_proj__get returns the pinned data or NULL (not there: build it and
 * tl_proj__put it, which pins it too, or takes the copy another thread put first and frees
 * data). Every pin is released with tl_proj__unpin; unpinned entries are freed, least
 * recently used first, while the bytes exceed the budget. */
typedef struct tl_proj tl_proj;
typedef struct tl_pent tl_pent;
typedef struct tl_pkey {
    uint64_t seq;
    uint32_t project, col, key, event;
} tl_pkey;
tl_proj *tl_proj__new(uint64_t budget);
void tl_proj__free(tl_proj *pj); /* NULL-safe; no pins may be left */
const void *tl_proj__get(tl_proj *pj, const tl_pkey *k, tl_pent **pin);
const void *tl_proj__put(tl_proj *pj, const tl_pkey *k, void *data, size_t bytes, tl_pent **pin);
void tl_proj__unpin(tl_proj *pj, tl_pent *e); /* NULL-safe */
void tl_proj__stats(tl_proj *pj, uint64_t *bytes, uint64_t *hits, uint64_t *misses);

/* ---- parts ---- */

#define TL_COL_EVENT_ID TL_COL_N       /* strings: u32 offsets[n+1] + bytes */
#define TL_COL_PROP     1000           /* + key id in the directory entry */
#define TL_COL_EVIDX    (TL_COL_N + 1) /* the event index (part.c), version 2 */
#define TL_COL_DIDSET   (TL_COL_N + 2) /* the did set (part.c), version 3 */
#define TL_PART_FRAME   16384          /* raw bytes per zstd frame of a version 3 column */

typedef struct tl_colent {
    uint32_t col, key;
    uint64_t off, clen, rawlen;
    uint32_t crc;
} tl_colent;

typedef struct tl_part {
    uint64_t seq;
    uint32_t project;
    int fd;
    uint32_t n_rows;
    int64_t min_ts, max_ts;
    uint64_t file_bytes;
    uint32_t n_cols;
    tl_colent *cols;
    void **loaded;   /* per directory entry, decoded column, or NULL (under the cache's mu) */
    tl_cent *cent;   /* per directory entry, its cache bookkeeping */
    tl_cache *cache; /* NULL: a private, unbounded one (set by the store right after open) */
    pthread_mutex_t mu;
    atomic_int refs;
    bool doomed; /* replaced by compaction: unlink when the last reference goes */
    char path[512];
} tl_part;

typedef struct tl_oprop {
    uint32_t key;
    uint32_t len, cap;
    uint8_t *type;
    uint64_t *val; /* double bits or dict id */
} tl_oprop;

typedef struct tl_open {
    uint32_t n, cap;
    int64_t *ts;
    uint32_t *col[TL_COL_N]; /* index by enum tl_col; col[TL_COL_TS] unused */
    tl_buf eid;
    uint32_t *eid_off; /* n + 1 */
    tl_oprop *props;
    uint32_t n_props, cap_props;
    uint32_t *prop_slot; /* key -> index + 1, open addressing */
    uint32_t prop_mask;
    int64_t min_ts, max_ts;
} tl_open;

typedef struct tl_partition {
    int64_t day; /* UTC day number */
    tl_part **sealed;
    uint32_t n_sealed, cap_sealed;
    tl_open *open; /* NULL when nothing is open */
} tl_partition;

/* Writes the open part as a sealed part file (rows sorted by ts), fsyncs it and returns the
 * part (refs = 1). */
int tl_part__write(const char *path, uint64_t seq, uint32_t project, const tl_open *op,
                   tl_part **out, tl_err *err);
/* Merges sealed parts into one new part file. */
int tl_part__merge(const char *path, uint64_t seq, uint32_t project, tl_part **parts, uint32_t n,
                   tl_dict *dict, tl_part **out, tl_err *err);
int tl_part__open(const char *path, uint64_t seq, uint32_t project, tl_part **out, tl_err *err);
void tl_part__unref(tl_part *p);
/* A loaded property column (TL_COL_PROP) is decoded to an aligned layout readers use in place:
 * u8 type[n] (padded to 8 bytes), then double num[n] (0 where not a number), then u32 str[n]
 * (dict id where a string, else 0). */
static inline size_t tl_prop__num_off(uint32_t n)
{
    return ((size_t)n + 7) & ~(size_t)7;
}
static inline size_t tl_prop__str_off(uint32_t n)
{
    return tl_prop__num_off(n) + (size_t)n * 8;
}

/* Loads directory entry i (decompressed), caching it. The column stays valid only while it is
 * pinned or the cache is held (see tl_cache); readers use tl_part__pin. */
int tl_part__load(tl_part *p, uint32_t i, const void **out);
/* Loads and pins directory entry i: valid until the matching tl_part__unpin. */
int tl_part__pin(tl_part *p, uint32_t i, const void **out);
void tl_part__unpin(tl_part *p, uint32_t i);
/* Decodes directory entry i into new memory the caller frees, leaving the cache alone (the
 * same layout tl_part__load gives). */
int tl_part__read(tl_part *p, uint32_t i, void **out);
/* Whether directory entry i is decoded in the cache now (it may be evicted right after). */
bool tl_part__loaded(tl_part *p, uint32_t i);
/* Frame j of directory entry i of a version 3 part, decoded alone into out (TL_PART_FRAME bytes
 * of room): the raw bytes [j × TL_PART_FRAME, + *len) of the column, before the decoding
 * tl_part__load does (times are still deltas, properties type[n] then u64 value[n]). The frame
 * table and the frame's checksum are checked; TL_ENOENT for a column of one frame (versions 1
 * and 2): decode it whole. Leaves the cache alone. */
int tl_part__frame(tl_part *p, uint32_t i, uint64_t j, uint8_t *out, size_t *len);
/* Index of the directory entry for (col, key), or -1. */
int tl_part__find(const tl_part *p, uint32_t col, uint32_t key);

/* Lifecycle (lifecycle.c). Rewrites `in` as a new part file at path without the rows whose
 * did is erased in person[0..n_dids) and with links to erased dids cleared. *dropped is the
 * number of rows left out; *out is the new part, or NULL when nothing had to change or no row
 * is left (*dropped == in->n_rows). */
int tl_part__filter(const char *path, uint64_t seq, uint32_t project, tl_part *in,
                    const uint32_t *person, uint32_t n_dids, tl_part **out, uint32_t *dropped,
                    tl_err *err);
/* Sets bit id of `bits` (n_bits bits) for every dictionary id the part uses: event names,
 * built-in fields, session ids, property keys and string values. */
int tl_part__dict_refs(tl_part *p, uint8_t *bits, uint32_t n_bits);

tl_open *tl_open__new(void);
void tl_open__free(tl_open *op);
void tl_open__append(tl_open *op, int64_t ts, const uint32_t cols[TL_COL_N], tl_str eid,
                     const uint32_t *pkeys, const uint8_t *ptypes, const uint64_t *pvals,
                     uint32_t n_props);
tl_oprop *tl_open__prop(const tl_open *op, uint32_t key);

#endif
