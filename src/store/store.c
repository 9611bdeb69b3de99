/* The store: projects, their dictionaries, identity maps and day partitions; checkpoints;
 * read snapshots. See store.h for the contract and store_int.h for the pieces.
 *
 * Directory layout under the store's dir:
 *   CHECKPOINT                     the last durable state (format below), replaced atomically
 *   p/<project>/dict.dat           dictionary (tl_dict file)
 *   p/<project>/ids.dat, ident.ops identity (see ident.c)
 *   p/<project>/parts/<seq>.part   sealed parts (see part.c)
 *
 * CHECKPOINT, version 1 (little-endian): "TLCKPT01", u32 version, u64 log_pos, u64 aux,
 * u64 next_seq,
 * u32 n_projects, then per project: u32 name length, name, u64 dict_len, u64 ids_len,
 * u64 ops_len, u32 n_parts, n_parts × u64 seq; then u32 CRC-32C of everything before it.
 * Part files and dictionary bytes not named by the checkpoint are leftovers of a crash: parts
 * are deleted and dictionary files cut back at open, and the log replay recreates them.
 *
 * Invariants:
 *  1. A project's state changes only under its write lock; snapshots hold its read lock.
 *  2. The checkpoint names only fsynced files; files are deleted only after a checkpoint that
 *     no longer names them is durable.
 *  3. Rows of a partition all have ts in its UTC day. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <dirent.h>

#include "store/store_int.h"
#include "util/crc.h"
#include "util/diag.h"
#include "util/io.h"
#include "util/time.h"

#define MAX_PROJECTS   1024
#define TL_NAME_LEN    64
#define COMPACT_PARTS  8
#define COMPACT_MAXROW (8u << 20)

typedef struct project {
    char name[TL_NAME_LEN];
    uint32_t idx;
    char dir[1024];
    pthread_rwlock_t lock;
    tl_dict dict;
    tl_ident ident;
    tl_partition *parts; /* sorted by day */
    uint32_t n_parts, cap_parts;
    uint64_t open_rows;
    uint64_t rows;
    bool erase_pending; /* erased persons whose rows or strings may still be in files */
} project;

struct tl_store {
    char dir[1024];
    tl_store_opts opts;
    pthread_mutex_t mu; /* adding projects; one checkpoint at a time */
    project *projects[MAX_PROJECTS];
    _Atomic uint32_t n_projects;
    uint64_t next_seq;
    int sticky;
    _Atomic uint64_t open_rows;
    tl_part **doomed; /* replaced parts, unlinked after the next checkpoint */
    uint32_t n_doomed;
    tl_cache cache;        /* decoded columns of every project's parts */
    tl_proj *proj;         /* projections: columns in one event's row order (proj.c) */
    struct fcache *frames; /* single frames decoded for tl_cells (see there) */
    struct retention {
        char name[TL_NAME_LEN];
        uint32_t days;
    } * ret; /* per-project retention settings (under mu) */
    uint32_t n_ret;
    _Atomic uint64_t rows_expired, rows_erased, strings_scrubbed;
};

struct tl_snap {
    tl_store *s;
    project *p;
    size_t n;
    struct snap_part {
        tl_part *sealed;
        tl_open *open;
        tl_part_info info;
        const void **got; /* per directory entry: the column this snapshot pinned (under mu) */
    } * parts;
    void **allocs;
    size_t n_allocs;
    tl_pent **ppins; /* projections this snapshot reads (under mu) */
    size_t n_ppins, cap_ppins;
    pthread_mutex_t mu;
};

/* ---- projects ---- */

static bool name_ok(tl_str n)
{
    if (!n.len || n.len >= TL_NAME_LEN) return false;
    for (size_t i = 0; i < n.len; i++) {
        char c = n.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (c == '.' && i > 0)))
            return false;
    }
    return true;
}

static project *find_project(tl_store *s, tl_str name)
{
    uint32_t n = atomic_load(&s->n_projects);
    for (uint32_t i = 0; i < n; i++)
        if (tl_str_eqc(name, s->projects[i]->name)) return s->projects[i];
    return NULL;
}

static project *new_project(tl_store *s, tl_str name)
{
    project *p = tl_xcalloc(1, sizeof *p);
    memcpy(p->name, name.p, name.len);
    p->idx = atomic_load(&s->n_projects);
    snprintf(p->dir, sizeof p->dir, "%s/p/%s", s->dir, p->name);
    pthread_rwlockattr_t at;
    pthread_rwlockattr_init(&at);
    pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&p->lock, &at);
    pthread_rwlockattr_destroy(&at);
    tl_dict__init(&p->dict);
    tl_ident__init(&p->ident);
    return p;
}

static void free_project(project *p)
{
    for (uint32_t i = 0; i < p->n_parts; i++) {
        for (uint32_t k = 0; k < p->parts[i].n_sealed; k++)
            tl_part__unref(p->parts[i].sealed[k]);
        free(p->parts[i].sealed);
        tl_open__free(p->parts[i].open);
    }
    free(p->parts);
    tl_dict__fini(&p->dict);
    tl_ident__fini(&p->ident);
    pthread_rwlock_destroy(&p->lock);
    free(p);
}

static tl_partition *partition(project *p, int64_t day, bool create)
{
    uint32_t lo = 0, hi = p->n_parts;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (p->parts[mid].day < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->n_parts && p->parts[lo].day == day) return &p->parts[lo];
    if (!create) return NULL;
    if (p->n_parts == p->cap_parts) {
        p->cap_parts = p->cap_parts ? p->cap_parts * 2 : 64;
        p->parts = tl_xrealloc(p->parts, p->cap_parts * sizeof *p->parts);
    }
    memmove(&p->parts[lo + 1], &p->parts[lo], (p->n_parts - lo) * sizeof *p->parts);
    p->n_parts++;
    memset(&p->parts[lo], 0, sizeof p->parts[lo]);
    p->parts[lo].day = day;
    return &p->parts[lo];
}

static void add_sealed(tl_partition *pt, tl_part *part)
{
    if (pt->n_sealed == pt->cap_sealed) {
        pt->cap_sealed = pt->cap_sealed ? pt->cap_sealed * 2 : 4;
        pt->sealed = tl_xrealloc(pt->sealed, pt->cap_sealed * sizeof *pt->sealed);
    }
    /* Keep sealed parts ordered by min_ts. */
    uint32_t i = pt->n_sealed;
    while (i > 0 && pt->sealed[i - 1]->min_ts > part->min_ts) {
        pt->sealed[i] = pt->sealed[i - 1];
        i--;
    }
    pt->sealed[i] = part;
    pt->n_sealed++;
}

static void part_path(const project *p, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/parts/%016llx.part", p->dir, (unsigned long long)seq);
}

/* ---- open ---- */

static int scrub_project(tl_store *s, project *p, tl_err *err);

typedef struct ckpt_proj {
    tl_str name;
    uint64_t dict_len, ids_len, ops_len;
    uint32_t n_parts;
    const uint8_t *seqs;
} ckpt_proj;

static int remove_orphans(project *p, tl_err *err)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/parts", p->dir);
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        unsigned long long seq;
        char tail[16] = "";
        bool known = false;
        if (sscanf(e->d_name, "%16llx.%15s", &seq, tail) == 2 && !strcmp(tail, "part")) {
            for (uint32_t i = 0; i < p->n_parts && !known; i++)
                for (uint32_t k = 0; k < p->parts[i].n_sealed && !known; k++)
                    known = p->parts[i].sealed[k]->seq == seq;
        }
        if (!known) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            TL_INFO("store", "removing file not in the checkpoint path=%s", path);
            unlink(path);
        }
    }
    closedir(d);
    (void)err;
    return 0;
}

static int load_checkpoint(tl_store *s, uint64_t *log_pos, uint64_t *aux, tl_err *err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/CHECKPOINT", s->dir);
    tl_buf b = TL_BUF_INIT;
    int rc = tl_read_file(path, &b);
    if (rc == TL_ENOENT) {
        tl_buf_fini(&b);
        *log_pos = 0;
        *aux = 0;
        s->next_seq = 1;
        return 0;
    }
    if (rc) {
        tl_buf_fini(&b);
        return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    }
    const uint8_t *p = (const uint8_t *)b.p, *end = p + b.len;
    if (b.len < 40 || memcmp(p, "TLCKPT01", 8) || tl_le32(p + 8) != 1 ||
        tl_crc32c(0, p, b.len - 4) != tl_le32(end - 4)) {
        tl_buf_fini(&b);
        return tl_err_set(err, TL_EBADMSG, "%s: corrupt checkpoint", path);
    }
    *log_pos = tl_le64(p + 12);
    *aux = tl_le64(p + 20);
    s->next_seq = tl_le64(p + 28);
    uint32_t np = tl_le32(p + 36);
    p += 40;
    end -= 4;
    if (np > MAX_PROJECTS) rc = TL_EBADMSG;
    for (uint32_t i = 0; i < np && !rc; i++) {
        if (end - p < 4 || tl_le32(p) >= TL_NAME_LEN || (uint64_t)(end - p) < 4 + tl_le32(p) + 28) {
            rc = TL_EBADMSG;
            break;
        }
        ckpt_proj cp;
        cp.name = (tl_str){(const char *)p + 4, tl_le32(p)};
        p += 4 + cp.name.len;
        cp.dict_len = tl_le64(p);
        cp.ids_len = tl_le64(p + 8);
        cp.ops_len = tl_le64(p + 16);
        cp.n_parts = tl_le32(p + 24);
        p += 28;
        if ((uint64_t)(end - p) < (uint64_t)cp.n_parts * 8 || !name_ok(cp.name) ||
            find_project(s, cp.name)) {
            rc = TL_EBADMSG;
            break;
        }
        project *pr = new_project(s, cp.name);
        s->projects[atomic_load(&s->n_projects)] = pr;
        atomic_fetch_add(&s->n_projects, 1);
        char dpath[1100];
        snprintf(dpath, sizeof dpath, "%s/dict.dat", pr->dir);
        rc = tl_dict__load(&pr->dict, dpath, cp.dict_len, err);
        if (!rc) rc = tl_ident__load(&pr->ident, pr->dir, cp.ids_len, cp.ops_len, err);
        for (uint32_t d = 0; !rc && d < pr->ident.n && !pr->erase_pending; d++)
            pr->erase_pending =
                pr->ident.person[d] == TL_PERSON_ERASED && !tl_dict__dead(&pr->ident.ids, d + 1);
        for (uint32_t k = 0; k < cp.n_parts && !rc; k++) {
            uint64_t seq = tl_le64(p + (size_t)k * 8);
            char pp[1200];
            part_path(pr, seq, pp, sizeof pp);
            tl_part *part;
            rc = tl_part__open(pp, seq, pr->idx, &part, err);
            if (rc) break;
            part->cache = &s->cache;
            tl_partition *pt = partition(pr, tl_floordiv(part->min_ts, TL_MS_PER_DAY), true);
            add_sealed(pt, part);
            pr->rows += part->n_rows;
        }
        p += (size_t)cp.n_parts * 8;
        if (!rc) rc = remove_orphans(pr, err);
        if (rc) {
            tl_buf_fini(&b);
            return rc;
        }
    }
    tl_buf_fini(&b);
    if (rc) return tl_err_set(err, rc, "%s: corrupt checkpoint", path);
    return 0;
}

/* ---- the frame cache: single frames of version 3 columns, decoded for tl_cells ----
 *
 * Keyed by (part sequence number, directory entry, frame): sequence numbers are never reused,
 * so a frame of a part that compaction replaced is never mistaken for another part's; it just
 * ages out. A fixed number of TL_PART_FRAME slots (1/16 of the column cache's budget), reused
 * in clock order; a new frame's buffer is handed over, not copied; readers copy the bytes they
 * want out under the mutex. */

typedef struct fslot {
    uint64_t seq, j;
    uint32_t ent, len;
    uint32_t next; /* index + 1 of the next slot in its bucket, 0 at the end */
    bool used, live;
    uint8_t *buf;
} fslot;

struct fcache {
    pthread_mutex_t mu;
    fslot *slot;
    uint32_t n, hand, mask;
    uint32_t *bucket; /* index + 1 of the first slot */
};

static struct fcache *fcache_new(uint64_t bytes)
{
    struct fcache *f = tl_xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    uint64_t n = bytes / TL_PART_FRAME;
    f->n = n < 64 ? 64 : n > (1u << 20) ? 1u << 20 : (uint32_t)n;
    f->slot = tl_xcalloc(f->n, sizeof *f->slot);
    uint32_t b = 1;
    while (b < f->n * 2)
        b *= 2;
    f->mask = b - 1;
    f->bucket = tl_xcalloc(b, sizeof *f->bucket);
    return f;
}

static void fcache_free(struct fcache *f)
{
    if (!f) return;
    for (uint32_t i = 0; i < f->n; i++)
        free(f->slot[i].buf);
    free(f->slot);
    free(f->bucket);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static uint32_t fcache_hash(const struct fcache *f, uint64_t seq, uint32_t ent, uint64_t j)
{
    uint64_t h =
        (seq * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)ent << 40) ^ (j * 0xC2B2AE3D27D4EB4Full);
    return (uint32_t)(h ^ (h >> 29)) & f->mask;
}

/* Copies bytes [in, in + n) of the frame into dst if the cache holds it. */
static bool fcache_get(struct fcache *f, uint64_t seq, uint32_t ent, uint64_t j, size_t in,
                       size_t n, uint8_t *dst, size_t *len)
{
    pthread_mutex_lock(&f->mu);
    uint32_t k = f->bucket[fcache_hash(f, seq, ent, j)];
    while (k) {
        fslot *x = &f->slot[k - 1];
        if (x->seq == seq && x->ent == ent && x->j == j) {
            x->used = true;
            *len = x->len;
            bool ok = in < x->len;
            if (ok) memcpy(dst, x->buf + in, n < x->len - in ? n : x->len - in);
            pthread_mutex_unlock(&f->mu);
            return ok;
        }
        k = x->next;
    }
    pthread_mutex_unlock(&f->mu);
    return false;
}

/* Puts a decoded frame in the cache by handing over its buffer *buf (TL_PART_FRAME bytes):
 * *buf becomes the buffer of the slot it replaced (NULL when that one had none). */
static void fcache_put(struct fcache *f, uint64_t seq, uint32_t ent, uint64_t j, uint8_t **buf,
                       size_t len)
{
    pthread_mutex_lock(&f->mu);
    fslot *x;
    for (;;) { /* clock: a slot not used since the hand last passed */
        x = &f->slot[f->hand];
        f->hand = (f->hand + 1) % f->n;
        if (!x->live || !x->used) break;
        x->used = false;
    }
    uint32_t me = (uint32_t)(x - f->slot) + 1;
    if (x->live) { /* out of its bucket */
        uint32_t *at = &f->bucket[fcache_hash(f, x->seq, x->ent, x->j)];
        while (*at != me)
            at = &f->slot[*at - 1].next;
        *at = x->next;
    }
    uint8_t *old = x->buf;
    x->buf = *buf;
    *buf = old;
    x->seq = seq;
    x->ent = ent;
    x->j = j;
    x->len = (uint32_t)len;
    x->used = false;
    x->live = true;
    uint32_t *b = &f->bucket[fcache_hash(f, seq, ent, j)];
    x->next = *b;
    *b = me;
    pthread_mutex_unlock(&f->mu);
}

int tl_store_open(const char *dir, const tl_store_opts *opts, tl_store **out, uint64_t *log_pos,
                  uint64_t *aux, tl_err *err)
{
    int rc = tl_mkdir_p(dir);
    if (rc) return tl_err_set(err, rc, "%s: %s", dir, tl_strerror(rc));
    tl_store *s = tl_xcalloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    if (opts) s->opts = *opts;
    if (!s->opts.seal_rows) s->opts.seal_rows = 1u << 20;
    if (!s->opts.cache_bytes) s->opts.cache_bytes = (uint64_t)1 << 30;
    pthread_mutex_init(&s->mu, NULL);
    tl_cache__init(&s->cache, s->opts.cache_bytes);
    s->proj = tl_proj__new(s->opts.cache_bytes / 8);
    s->frames = fcache_new(s->opts.cache_bytes / 16);
    rc = load_checkpoint(s, log_pos, aux, err);
    /* A crash between a checkpoint that recorded an erasure and the scrub after it. */
    for (uint32_t i = 0; i < atomic_load(&s->n_projects) && !rc; i++)
        if (s->projects[i]->erase_pending) rc = scrub_project(s, s->projects[i], err);
    if (rc) {
        tl_store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tl_store_free(tl_store *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < atomic_load(&s->n_projects); i++)
        free_project(s->projects[i]);
    for (uint32_t i = 0; i < s->n_doomed; i++)
        tl_part__unref(s->doomed[i]);
    free(s->doomed);
    free(s->ret);
    tl_cache__fini(&s->cache);
    tl_proj__free(s->proj);
    fcache_free(s->frames);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- writer side ---- */

int tl_store_w_begin(tl_store *s, tl_str name, uint32_t *pid)
{
    project *p = find_project(s, name);
    if (!p) {
        if (!name_ok(name)) return TL_EINVAL;
        pthread_mutex_lock(&s->mu);
        p = find_project(s, name);
        if (!p) {
            if (atomic_load(&s->n_projects) >= MAX_PROJECTS) {
                pthread_mutex_unlock(&s->mu);
                return TL_E2BIG;
            }
            p = new_project(s, name);
            int rc = tl_mkdir_p(p->dir);
            char pd[1100];
            snprintf(pd, sizeof pd, "%s/parts", p->dir);
            if (!rc) rc = tl_mkdir_p(pd);
            if (rc) {
                pthread_mutex_unlock(&s->mu);
                free_project(p);
                return rc;
            }
            s->projects[p->idx] = p;
            atomic_fetch_add(&s->n_projects, 1);
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_rwlock_wrlock(&p->lock);
    *pid = p->idx;
    return 0;
}

void tl_store_w_end(tl_store *s, uint32_t pid)
{
    pthread_rwlock_unlock(&s->projects[pid]->lock);
}

uint32_t tl_store_w_did(tl_store *s, uint32_t pid, tl_str distinct_id, bool user, bool create)
{
    return tl_ident__did(&s->projects[pid]->ident, distinct_id, user, create);
}

int tl_store_w_merge(tl_store *s, uint32_t pid, uint32_t a, uint32_t b)
{
    return tl_ident__merge(&s->projects[pid]->ident, a, b, true);
}

void tl_store_w_erase(tl_store *s, uint32_t pid, uint32_t did)
{
    project *p = s->projects[pid];
    if (did < p->ident.n && p->ident.person[did] != TL_PERSON_ERASED) p->erase_pending = true;
    tl_ident__erase(&p->ident, did, true);
}

void tl_store_set_retention(tl_store *s, tl_str name, uint32_t days)
{
    if (!name_ok(name)) return;
    pthread_mutex_lock(&s->mu);
    uint32_t i = 0;
    while (i < s->n_ret && !tl_str_eqc(name, s->ret[i].name))
        i++;
    if (i == s->n_ret) {
        s->ret = tl_xrealloc(s->ret, (s->n_ret + 1) * sizeof *s->ret);
        memset(&s->ret[i], 0, sizeof s->ret[i]);
        memcpy(s->ret[i].name, name.p, name.len);
        s->n_ret++;
    }
    s->ret[i].days = days;
    pthread_mutex_unlock(&s->mu);
}

void tl_store_w_person_props(tl_store *s, uint32_t pid, uint32_t did, int64_t ts_ms,
                             const tl_prop *props, uint32_t n)
{
    project *p = s->projects[pid];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t key = tl_dict__intern(&p->dict, props[i].key);
        bool num = TL_PV_TYPE(props[i].type) == TL_PV_NUM;
        uint32_t str = num ? 0 : tl_dict__intern(&p->dict, props[i].str);
        tl_ident__set_prop(&p->ident, did, key, props[i].type, ts_ms, num ? props[i].num : 0, str,
                           true);
    }
}

void tl_store_w_append(tl_store *s, uint32_t pid, const tl_record *r, uint32_t did)
{
    project *p = s->projects[pid];
    uint32_t cols[TL_COL_N] = {0};
    cols[TL_COL_DID] = did;
    cols[TL_COL_EVENT] = tl_dict__intern(&p->dict, r->event);
    for (int f = 0; f < TL_F_COUNT; f++)
        cols[TL_COL_FIELD + f] = r->field[f].len ? tl_dict__intern(&p->dict, r->field[f]) : 0;
    cols[TL_COL_SESSION] = r->session_id.len ? tl_dict__intern(&p->dict, r->session_id) : 0;
    if (r->anonymous_id.len && r->user_id.len) {
        uint32_t a = tl_ident__did(&p->ident, r->anonymous_id, false, false);
        cols[TL_COL_LINK] = a != TL_DID_NONE && a != did ? a + 1 : 0;
    }
    uint32_t keys[64], *pk = keys;
    uint8_t types[64], *pt = types;
    uint64_t vals[64], *pv = vals;
    if (r->n_props > 64) {
        pk = tl_xmalloc(r->n_props * sizeof *pk);
        pt = tl_xmalloc(r->n_props);
        pv = tl_xmalloc(r->n_props * sizeof *pv);
    }
    for (uint32_t i = 0; i < r->n_props; i++) {
        pk[i] = tl_dict__intern(&p->dict, r->props[i].key);
        pt[i] = r->props[i].type;
        if (pt[i] == TL_PV_NUM)
            memcpy(&pv[i], &r->props[i].num, 8);
        else
            pv[i] = tl_dict__intern(&p->dict, r->props[i].str);
    }
    tl_partition *part = partition(p, tl_floordiv(r->ts_ms, TL_MS_PER_DAY), true);
    if (!part->open) part->open = tl_open__new();
    tl_open__append(part->open, r->ts_ms, cols, r->event_id, pk, pt, pv, r->n_props);
    if (pk != keys) {
        free(pk);
        free(pt);
        free(pv);
    }
    p->open_rows++;
    p->rows++;
    atomic_fetch_add(&s->open_rows, 1);
}

int tl_store_scan_event_ids(tl_store *s, tl_event_id_fn fn, void *ctx)
{
    uint32_t np = atomic_load(&s->n_projects);
    for (uint32_t i = 0; i < np; i++) {
        project *p = s->projects[i];
        tl_str name = tl_str_c(p->name);
        pthread_rwlock_rdlock(&p->lock);
        for (uint32_t k = 0; k < p->n_parts; k++) {
            tl_partition *pt = &p->parts[k];
            for (uint32_t j = 0; j < pt->n_sealed; j++) {
                tl_part *sp = pt->sealed[j];
                int ci = tl_part__find(sp, TL_COL_EVENT_ID, 0);
                uint8_t *raw = NULL;
                int rc = ci < 0 ? TL_EBADMSG : tl_part__read(sp, (uint32_t)ci, (void **)&raw);
                if (rc) {
                    pthread_rwlock_unlock(&p->lock);
                    return rc;
                }
                const char *bytes = (const char *)raw + (size_t)(sp->n_rows + 1) * 4;
                for (uint32_t r = 0; r < sp->n_rows; r++) {
                    uint32_t a = tl_le32(raw + (size_t)r * 4),
                             b = tl_le32(raw + (size_t)(r + 1) * 4);
                    fn(ctx, name, (tl_str){bytes + a, b - a});
                }
                free(raw);
            }
            tl_open *op = pt->open;
            for (uint32_t r = 0; op && r < op->n; r++) {
                uint32_t a = op->eid_off[r], b = op->eid_off[r + 1];
                fn(ctx, name, a < b ? (tl_str){op->eid.p + a, b - a} : TL_STR(""));
            }
        }
        pthread_rwlock_unlock(&p->lock);
    }
    return 0;
}

uint64_t tl_store_open_rows(tl_store *s)
{
    return atomic_load(&s->open_rows);
}

/* ---- checkpoint ---- */

static int compact(tl_store *s, project *p, tl_partition *pt, tl_err *err)
{
    uint64_t rows = 0;
    uint32_t n = 0;
    /* Merge the smallest parts (up to the row cap), leaving big ones alone. */
    tl_part **sel = tl_xmalloc(pt->n_sealed * sizeof *sel);
    for (uint32_t i = 0; i < pt->n_sealed; i++)
        if (pt->sealed[i]->n_rows < COMPACT_MAXROW / 2 &&
            rows + pt->sealed[i]->n_rows <= COMPACT_MAXROW) {
            sel[n++] = pt->sealed[i];
            rows += pt->sealed[i]->n_rows;
        }
    int rc = 0;
    if (n >= 2) {
        char path[1200];
        uint64_t seq = s->next_seq++;
        part_path(p, seq, path, sizeof path);
        tl_part *merged;
        rc = tl_part__merge(path, seq, p->idx, sel, n, &p->dict, &merged, err);
        if (!rc) {
            merged->cache = &s->cache;
            uint32_t k = 0;
            for (uint32_t i = 0; i < pt->n_sealed; i++) {
                bool gone = false;
                for (uint32_t j = 0; j < n && !gone; j++)
                    gone = pt->sealed[i] == sel[j];
                if (!gone) pt->sealed[k++] = pt->sealed[i];
            }
            pt->n_sealed = k;
            add_sealed(pt, merged);
            s->doomed = tl_xrealloc(s->doomed, (s->n_doomed + n) * sizeof *s->doomed);
            for (uint32_t j = 0; j < n; j++)
                s->doomed[s->n_doomed++] = sel[j];
        }
    }
    free(sel);
    return rc;
}

/* ---- lifecycle: retention and physical erasure (docs/lifecycle.md) ---- */

static void doom(tl_store *s, tl_part *part)
{
    s->doomed = tl_xrealloc(s->doomed, (s->n_doomed + 1) * sizeof *s->doomed);
    s->doomed[s->n_doomed++] = part;
}

/* Drops the project's whole days that ended more than its retention ago. Under s->mu and the
 * project's write lock; the part files go with the other doomed parts after the checkpoint. */
static void expire_project(tl_store *s, project *p)
{
    uint32_t days = s->opts.retention_days;
    for (uint32_t i = 0; i < s->n_ret; i++)
        if (!strcmp(s->ret[i].name, p->name)) days = s->ret[i].days;
    if (!days) return;
    int64_t keep_from = tl_floordiv(tl_now_ms(), TL_MS_PER_DAY) - days;
    uint32_t k = 0;
    for (uint32_t i = 0; i < p->n_parts; i++) {
        tl_partition *pt = &p->parts[i];
        if (pt->day >= keep_from) {
            p->parts[k++] = *pt;
            continue;
        }
        uint64_t rows = 0;
        for (uint32_t j = 0; j < pt->n_sealed; j++) {
            rows += pt->sealed[j]->n_rows;
            doom(s, pt->sealed[j]);
        }
        free(pt->sealed);
        if (pt->open) {
            rows += pt->open->n;
            p->open_rows -= pt->open->n;
            atomic_fetch_sub(&s->open_rows, pt->open->n);
            tl_open__free(pt->open);
        }
        p->rows -= rows;
        atomic_fetch_add(&s->rows_expired, rows);
        TL_INFO("store", "retention: dropped day=%lld project=%s rows=%llu", (long long)pt->day,
                p->name, (unsigned long long)rows);
    }
    p->n_parts = k;
}

/* Rewrites every sealed part that holds rows of erased persons without them (or drops it when
 * nothing is left). Under s->mu and the project's write lock, after the open parts are
 * sealed. */
static int erase_rows(tl_store *s, project *p, tl_err *err)
{
    int rc = 0;
    int64_t t0 = tl_mono_ms();
    uint64_t rows = 0, parts = 0;
    for (uint32_t i = 0; i < p->n_parts && !rc; i++) {
        tl_partition *pt = &p->parts[i];
        uint32_t n = pt->n_sealed;
        tl_part **old = tl_xmalloc((n + 1) * sizeof *old);
        memcpy(old, pt->sealed, n * sizeof *old);
        pt->n_sealed = 0;
        for (uint32_t j = 0; j < n; j++) {
            tl_part *nw = NULL;
            uint32_t dropped = 0;
            char path[1200];
            part_path(p, s->next_seq, path, sizeof path);
            if (!rc)
                rc = tl_part__filter(path, s->next_seq, p->idx, old[j], p->ident.person, p->ident.n,
                                     &nw, &dropped, err);
            if (rc || (!dropped && !nw)) {
                add_sealed(pt, old[j]);
                continue;
            }
            if (nw) {
                s->next_seq++;
                nw->cache = &s->cache;
                add_sealed(pt, nw);
            }
            doom(s, old[j]);
            parts++;
            rows += dropped;
            p->rows -= dropped;
            atomic_fetch_add(&s->rows_erased, dropped);
        }
        free(old);
    }
    if (!rc)
        TL_INFO("store", "erasure: project=%s rows=%llu dropped from parts=%llu in %lld ms",
                p->name, (unsigned long long)rows, (unsigned long long)parts,
                (long long)(tl_mono_ms() - t0));
    return rc;
}

static void mark(uint8_t *bits, uint32_t n_bits, uint32_t id)
{
    if (id < n_bits) bits[id >> 3] |= (uint8_t)(1u << (id & 7));
}

/* After a checkpoint that recorded erasures (or at open, after a crash right after one):
 * scrubs from dict.dat every string no stored row or live person property uses any more, and
 * the erased persons' distinct ids themselves even if something else uses the same text;
 * then their entries in ids.dat. Under s->mu (no checkpoint, no part changes meanwhile); the
 * strings are found under the read lock, killed under the write lock. */
static int scrub_project(tl_store *s, project *p, tl_err *err)
{
    int64_t t0 = tl_mono_ms();
    pthread_rwlock_rdlock(&p->lock);
    tl_ident *id = &p->ident;
    uint32_t nd = p->dict.n, nbits = nd + 1;
    uint8_t *used = tl_xcalloc(nbits / 8 + 1, 1);
    int rc = 0;
    for (uint32_t i = 0; i < p->n_parts && !rc; i++) {
        tl_partition *pt = &p->parts[i];
        for (uint32_t j = 0; j < pt->n_sealed && !rc; j++)
            rc = tl_part__dict_refs(pt->sealed[j], used, nbits);
        tl_open *op = pt->open;
        for (uint32_t r = 0; op && r < op->n; r++) {
            mark(used, nbits, op->col[TL_COL_EVENT][r]);
            mark(used, nbits, op->col[TL_COL_SESSION][r]);
            for (int f = 0; f < TL_F_COUNT; f++)
                mark(used, nbits, op->col[TL_COL_FIELD + f][r]);
        }
        for (uint32_t k = 0; op && k < op->n_props; k++) {
            const tl_oprop *pr = &op->props[k];
            mark(used, nbits, pr->key);
            for (uint32_t r = 0; r < pr->len; r++)
                if (pr->type[r] == TL_PV_STR) mark(used, nbits, (uint32_t)pr->val[r]);
        }
    }
    for (uint32_t i = 0; i < id->n_props; i++) {
        const tl_pprop *pp = &id->props[i];
        if (pp->did >= id->n || id->person[pp->did] == TL_PERSON_ERASED) continue;
        mark(used, nbits, pp->key);
        if (TL_PV_TYPE(pp->type) == TL_PV_STR) mark(used, nbits, pp->str);
    }
    uint32_t *dids = tl_xmalloc(((size_t)id->n + 1) * sizeof *dids), n_dids = 0;
    for (uint32_t d = 0; d < id->n; d++) {
        if (id->person[d] != TL_PERSON_ERASED || tl_dict__dead(&id->ids, d + 1)) continue;
        dids[n_dids++] = d + 1;
        tl_str k = tl_dict__str(&id->ids, d + 1); /* flag byte + the id */
        uint32_t x = k.len > 1 ? tl_dict__find(&p->dict, (tl_str){k.p + 1, k.len - 1}) : 0;
        if (x) used[x >> 3] &= (uint8_t) ~(1u << (x & 7)); /* the id itself goes regardless */
    }
    uint32_t *kill = tl_xmalloc(((size_t)nd + 1) * sizeof *kill), n_kill = 0;
    for (uint32_t x = 1; x <= nd && !rc; x++)
        if (!(used[x >> 3] >> (x & 7) & 1) && !tl_dict__dead(&p->dict, x)) kill[n_kill++] = x;
    free(used);
    pthread_rwlock_unlock(&p->lock);

    uint32_t k1 = 0, k2 = 0;
    if (!rc) {
        char path[1100];
        pthread_rwlock_wrlock(&p->lock);
        /* The dictionary first: the ids still in ids.dat mark the work as unfinished. */
        snprintf(path, sizeof path, "%s/dict.dat", p->dir);
        rc = tl_dict__scrub(&p->dict, path, kill, n_kill, &k1, err);
        snprintf(path, sizeof path, "%s/ids.dat", p->dir);
        if (!rc) rc = tl_dict__scrub(&id->ids, path, dids, n_dids, &k2, err);
        if (!rc) p->erase_pending = false;
        pthread_rwlock_unlock(&p->lock);
    } else {
        tl_err_set(err, rc, "%s: erasure: cannot read a part: %s", p->name, tl_strerror(rc));
    }
    free(kill);
    free(dids);
    atomic_fetch_add(&s->strings_scrubbed, (uint64_t)k1 + k2);
    if (!rc)
        TL_INFO("store", "erasure: scrubbed project=%s distinct_ids=%u strings=%u in %lld ms",
                p->name, k2, k1, (long long)(tl_mono_ms() - t0));
    return rc;
}

static int seal_project(tl_store *s, project *p, tl_err *err)
{
    int rc = 0;
    expire_project(s, p); /* before sealing: expired open parts are never written */
    for (uint32_t i = 0; i < p->n_parts && !rc; i++) {
        tl_partition *pt = &p->parts[i];
        if (pt->open && pt->open->n) {
            char path[1200];
            uint64_t seq = s->next_seq++;
            part_path(p, seq, path, sizeof path);
            tl_part *part;
            rc = tl_part__write(path, seq, p->idx, pt->open, &part, err);
            if (rc) break;
            part->cache = &s->cache;
            atomic_fetch_sub(&s->open_rows, pt->open->n);
            p->open_rows -= pt->open->n;
            tl_open__free(pt->open);
            pt->open = NULL;
            add_sealed(pt, part);
        }
        if (pt->n_sealed >= COMPACT_PARTS) rc = compact(s, p, pt, err);
    }
    if (!rc && p->erase_pending) rc = erase_rows(s, p, err);
    char dpath[1100];
    snprintf(dpath, sizeof dpath, "%s/dict.dat", p->dir);
    if (!rc) rc = tl_dict__sync(&p->dict, dpath, err);
    if (!rc) rc = tl_ident__sync(&p->ident, p->dir, err);
    return rc;
}

int tl_store_checkpoint(tl_store *s, uint64_t log_pos, uint64_t aux, tl_err *err)
{
    pthread_mutex_lock(&s->mu);
    if (s->sticky) {
        pthread_mutex_unlock(&s->mu);
        return tl_err_set(err, TL_EROFS, "store: an earlier write failed");
    }
    tl_buf b = TL_BUF_INIT;
    uint32_t np = atomic_load(&s->n_projects);
    tl_buf_add(&b, "TLCKPT01", 8);
    tl_buf_u32(&b, 1);
    tl_buf_u64(&b, log_pos);
    tl_buf_u64(&b, aux);
    size_t seq_at = b.len;
    tl_buf_u64(&b, 0);
    tl_buf_u32(&b, np);
    int rc = 0;
    /* Compaction reads its inputs' columns unpinned: nothing is evicted meanwhile. */
    tl_cache__hold(&s->cache, true);
    for (uint32_t i = 0; i < np && !rc; i++) {
        project *p = s->projects[i];
        pthread_rwlock_wrlock(&p->lock);
        rc = seal_project(s, p, err);
        if (!rc) {
            size_t nl = strlen(p->name);
            tl_buf_u32(&b, (uint32_t)nl);
            tl_buf_add(&b, p->name, nl);
            tl_buf_u64(&b, p->dict.file_len);
            tl_buf_u64(&b, p->ident.ids.file_len);
            tl_buf_u64(&b, p->ident.ops_len);
            uint32_t n = 0;
            for (uint32_t k = 0; k < p->n_parts; k++)
                n += p->parts[k].n_sealed;
            tl_buf_u32(&b, n);
            for (uint32_t k = 0; k < p->n_parts; k++)
                for (uint32_t j = 0; j < p->parts[k].n_sealed; j++)
                    tl_buf_u64(&b, p->parts[k].sealed[j]->seq);
        }
        pthread_rwlock_unlock(&p->lock);
        if (!rc) {
            /* New files' names must be durable before the checkpoint names them: the parts
             * directory, and the project directory (dict.dat, ids.dat, ident.ops). */
            char pd[1100];
            snprintf(pd, sizeof pd, "%s/parts", p->dir);
            rc = tl_fsync_dir(pd);
            if (!rc) {
                snprintf(pd, sizeof pd, "%s", p->dir);
                rc = tl_fsync_dir(pd);
            }
            if (rc) tl_err_set(err, rc, "%s: fsync: %s", pd, tl_strerror(rc));
        }
    }
    tl_cache__hold(&s->cache, false);
    if (!rc && np) {
        /* ... and the directory that holds the project directories. */
        char pd[1100];
        snprintf(pd, sizeof pd, "%s/p", s->dir);
        rc = tl_fsync_dir(pd);
        if (rc) tl_err_set(err, rc, "%s: fsync: %s", pd, tl_strerror(rc));
    }
    if (!rc) {
        tl_put64(b.p + seq_at, s->next_seq);
        tl_buf_u32(&b, tl_crc32c(0, b.p, b.len));
        char path[1100];
        snprintf(path, sizeof path, "%s/CHECKPOINT", s->dir);
        rc = tl_write_file_atomic(path, b.p, b.len);
        if (rc) tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    }
    tl_buf_fini(&b);
    if (rc) {
        s->sticky = rc;
    } else {
        /* Parts replaced by compaction are no longer named: unlink when unreferenced. */
        for (uint32_t i = 0; i < s->n_doomed; i++) {
            s->doomed[i]->doomed = true;
            tl_part__unref(s->doomed[i]);
        }
        s->n_doomed = 0;
        /* The checkpoint records the erasures: now the strings can go from the files. A
         * failure leaves the project pending: the next checkpoint tries again. */
        for (uint32_t i = 0; i < np; i++) {
            tl_err e2 = {0};
            if (s->projects[i]->erase_pending && scrub_project(s, s->projects[i], &e2))
                TL_ERROR("store", "erasure: scrub failed, retried at the next checkpoint: %s",
                         e2.msg);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- reader side ---- */

int tl_store_snap(tl_store *s, tl_str name, tl_snap **out)
{
    project *p = find_project(s, name);
    if (!p) return TL_ENOENT;
    tl_snap *sn = tl_xcalloc(1, sizeof *sn);
    sn->s = s;
    sn->p = p;
    pthread_mutex_init(&sn->mu, NULL);
    pthread_rwlock_rdlock(&p->lock);
    size_t cap = 0;
    for (uint32_t i = 0; i < p->n_parts; i++)
        cap += p->parts[i].n_sealed + 1;
    sn->parts = tl_xcalloc(cap + 1, sizeof *sn->parts);
    for (uint32_t i = 0; i < p->n_parts; i++) {
        tl_partition *pt = &p->parts[i];
        /* Sealed parts are kept ordered by min_ts; the open part goes in its place among
         * them, so that the whole list is ordered by min_ts as the contract says. */
        tl_open *op = pt->open && pt->open->n ? pt->open : NULL;
        for (uint32_t k = 0; k <= pt->n_sealed; k++) {
            tl_part *sp = k < pt->n_sealed ? pt->sealed[k] : NULL;
            if (op && (!sp || op->min_ts < sp->min_ts)) {
                sn->parts[sn->n++] =
                    (struct snap_part){NULL, op, {op->min_ts, op->max_ts, op->n, false}, NULL};
                op = NULL;
            }
            if (sp)
                sn->parts[sn->n++] =
                    (struct snap_part){sp, NULL, {sp->min_ts, sp->max_ts, sp->n_rows, true}, NULL};
        }
    }
    *out = sn;
    return 0;
}

void tl_snap_free(tl_snap *sn)
{
    if (!sn) return;
    /* Unpinned while the read lock still keeps the parts alive. */
    for (size_t i = 0; i < sn->n; i++) {
        struct snap_part *sp = &sn->parts[i];
        if (!sp->got) continue;
        for (uint32_t k = 0; k < sp->sealed->n_cols; k++)
            if (sp->got[k]) tl_part__unpin(sp->sealed, k);
        free(sp->got);
    }
    for (size_t i = 0; i < sn->n_ppins; i++)
        tl_proj__unpin(sn->s->proj, sn->ppins[i]);
    free(sn->ppins);
    pthread_rwlock_unlock(&sn->p->lock);
    for (size_t i = 0; i < sn->n_allocs; i++)
        free(sn->allocs[i]);
    free(sn->allocs);
    free(sn->parts);
    pthread_mutex_destroy(&sn->mu);
    free(sn);
}

/* Directory entry ci of a sealed part, pinned for the snapshot's life (once per entry; later
 * calls only look it up here, without the cache's lock). */
static int snap_load(tl_snap *sn, struct snap_part *sp, uint32_t ci, const void **out)
{
    tl_part *p = sp->sealed;
    pthread_mutex_lock(&sn->mu);
    const void *v = sp->got ? sp->got[ci] : NULL;
    pthread_mutex_unlock(&sn->mu);
    if (v) {
        *out = v;
        return 0;
    }
    int rc = tl_part__pin(p, ci, &v);
    if (rc) return rc;
    pthread_mutex_lock(&sn->mu);
    if (!sp->got) sp->got = tl_xcalloc(p->n_cols + 1, sizeof *sp->got);
    bool raced = sp->got[ci] != NULL;
    sp->got[ci] = v;
    pthread_mutex_unlock(&sn->mu);
    if (raced) tl_part__unpin(p, ci); /* another thread pinned it first; its pin stays */
    *out = v;
    return 0;
}

static void *snap_alloc(tl_snap *sn, size_t n)
{
    void *p = tl_xcalloc(1, n ? n : 1);
    pthread_mutex_lock(&sn->mu);
    sn->allocs = tl_xrealloc(sn->allocs, (sn->n_allocs + 1) * sizeof *sn->allocs);
    sn->allocs[sn->n_allocs++] = p;
    pthread_mutex_unlock(&sn->mu);
    return p;
}

uint32_t tl_snap_n_dids(const tl_snap *sn)
{
    return sn->p->ident.n;
}

const uint32_t *tl_snap_persons(const tl_snap *sn)
{
    return sn->p->ident.person;
}

bool tl_snap_any_erased(const tl_snap *sn)
{
    return sn->p->ident.erased != 0;
}

tl_str tl_snap_did_str(const tl_snap *sn, uint32_t did)
{
    tl_str k = tl_dict__str(&sn->p->ident.ids, did + 1);
    if (k.len) {
        k.p++;
        k.len--;
    }
    return k;
}

uint32_t tl_snap_did_find(const tl_snap *sn, tl_str distinct_id)
{
    /* A distinct id may be known as a user id or as an anonymous id; prefer the user id. */
    tl_ident *id = &sn->p->ident;
    uint32_t d = tl_ident__did(id, distinct_id, true, false);
    return d != TL_DID_NONE ? d : tl_ident__did(id, distinct_id, false, false);
}

uint32_t tl_snap_person_members(const tl_snap *sn, uint32_t did, uint32_t *out, uint32_t cap)
{
    const tl_ident *id = &sn->p->ident;
    if (did >= id->n || id->person[did] == TL_PERSON_ERASED) return 0;
    uint32_t r = id->person[did], m = r, n = 0;
    do {
        if (n < cap) out[n] = m;
        n++;
        m = id->next[m];
    } while (m != r);
    return n;
}

int tl_snap_dict_find(const tl_snap *sn, tl_str s, uint32_t *id)
{
    uint32_t v = tl_dict__find(&sn->p->dict, s);
    if (!v) return TL_ENOENT;
    *id = v;
    return 0;
}

tl_str tl_snap_dict_str(const tl_snap *sn, uint32_t id)
{
    return tl_dict__str(&sn->p->dict, id);
}

uint32_t tl_snap_dict_n(const tl_snap *sn)
{
    return sn->p->dict.n;
}

size_t tl_snap_n_parts(const tl_snap *sn)
{
    return sn->n;
}

tl_part_info tl_snap_part_info(const tl_snap *sn, size_t part)
{
    return sn->parts[part].info;
}

int tl_snap_col_ts(tl_snap *sn, size_t part, const int64_t **out)
{
    struct snap_part *sp = &sn->parts[part];
    if (sp->open) {
        *out = sp->open->ts;
        return 0;
    }
    int i = tl_part__find(sp->sealed, TL_COL_TS, 0);
    if (i < 0) return TL_EBADMSG;
    return snap_load(sn, sp, (uint32_t)i, (const void **)out);
}

int tl_snap_col_u32(tl_snap *sn, size_t part, int col, const uint32_t **out)
{
    if (col <= TL_COL_TS || col >= TL_COL_N) return TL_EINVAL;
    struct snap_part *sp = &sn->parts[part];
    if (sp->open) {
        *out = sp->open->col[col];
        return 0;
    }
    int i = tl_part__find(sp->sealed, (uint32_t)col, 0);
    if (i < 0) return TL_EBADMSG;
    return snap_load(sn, sp, (uint32_t)i, (const void **)out);
}

int tl_snap_event_rows(tl_snap *sn, size_t part, uint32_t event_id, const uint32_t **rows,
                       uint32_t *n)
{
    struct snap_part *sp = &sn->parts[part];
    if (sp->open) return TL_ENOENT;
    int i = tl_part__find(sp->sealed, TL_COL_EVIDX, 0);
    if (i < 0) return TL_ENOENT; /* a version 1 part */
    const uint32_t *x;
    int rc = snap_load(sn, sp, (uint32_t)i, (const void **)&x);
    if (rc) return rc;
    uint32_t n_ev = x[0], lo = 0, hi = n_ev;
    const uint32_t *ev = x + 1, *first = ev + n_ev, *all = first + n_ev + 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ev[mid] < event_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n_ev && ev[lo] == event_id) {
        *rows = all + first[lo];
        *n = first[lo + 1] - first[lo];
    } else {
        *rows = all;
        *n = 0;
    }
    return 0;
}

/* Projection (col, key) of the rows of event_id in sealed part `part`, pinned for the
 * snapshot: made by build() when the cache does not have it. */
typedef int (*proj_build)(tl_snap *sn, size_t part, const tl_pkey *k, const uint32_t *rows,
                          uint32_t n, void **data, size_t *bytes);

static int snap_proj(tl_snap *sn, size_t part, uint32_t event_id, uint32_t col, uint32_t key,
                     proj_build build, const void **out, uint32_t *n_out)
{
    struct snap_part *sp = &sn->parts[part];
    const uint32_t *rows;
    uint32_t n;
    int rc = tl_snap_event_rows(sn, part, event_id, &rows, &n);
    if (rc) return rc;
    *n_out = n;
    tl_pkey k = {sp->sealed->seq, sp->sealed->project, col, key, event_id};
    tl_pent *pin;
    const void *v = tl_proj__get(sn->s->proj, &k, &pin);
    if (!v) {
        void *data;
        size_t bytes;
        rc = build(sn, part, &k, rows, n, &data, &bytes);
        if (rc) return rc;
        v = tl_proj__put(sn->s->proj, &k, data, bytes, &pin);
    }
    pthread_mutex_lock(&sn->mu);
    if (sn->n_ppins == sn->cap_ppins) {
        sn->cap_ppins = sn->cap_ppins ? sn->cap_ppins * 2 : 16;
        sn->ppins = tl_xrealloc(sn->ppins, sn->cap_ppins * sizeof *sn->ppins);
    }
    sn->ppins[sn->n_ppins++] = pin;
    pthread_mutex_unlock(&sn->mu);
    *out = v;
    return 0;
}

static int build_u32(tl_snap *sn, size_t part, const tl_pkey *k, const uint32_t *rows, uint32_t n,
                     void **data, size_t *bytes)
{
    const uint32_t *c;
    int rc = tl_snap_col_u32(sn, part, (int)k->col, &c);
    if (rc) return rc;
    uint32_t *v = tl_xmalloc((n ? n : 1) * sizeof *v);
    for (uint32_t j = 0; j < n; j++)
        v[j] = c[rows[j]];
    *data = v;
    *bytes = (size_t)n * sizeof *v;
    return 0;
}

static int build_ts(tl_snap *sn, size_t part, const tl_pkey *k, const uint32_t *rows, uint32_t n,
                    void **data, size_t *bytes)
{
    (void)k;
    const int64_t *ts;
    int rc = tl_snap_col_ts(sn, part, &ts);
    if (rc) return rc;
    int64_t *v = tl_xmalloc((n ? n : 1) * sizeof *v);
    for (uint32_t j = 0; j < n; j++)
        v[j] = ts[rows[j]];
    *data = v;
    *bytes = (size_t)n * sizeof *v;
    return 0;
}

int tl_snap_event_ts(tl_snap *sn, size_t part, uint32_t event_id, const int64_t **out)
{
    uint32_t n;
    return snap_proj(sn, part, event_id, TL_COL_TS, 0, build_ts, (const void **)out, &n);
}

int tl_snap_event_u32(tl_snap *sn, size_t part, uint32_t event_id, int col, const uint32_t **out)
{
    if (col <= TL_COL_TS || col >= TL_COL_N) return TL_EINVAL;
    uint32_t n;
    return snap_proj(sn, part, event_id, (uint32_t)col, 0, build_u32, (const void **)out, &n);
}

static int build_prop(tl_snap *sn, size_t part, const tl_pkey *k, const uint32_t *rows, uint32_t n,
                      void **data, size_t *bytes)
{
    tl_prop_col pc;
    int rc = tl_snap_prop(sn, part, k->key, &pc);
    if (rc && rc != TL_ENOENT) return rc;
    /* The loaded layout (store_int.h) for n rows; all absent when no row has the key. */
    size_t len = tl_prop__str_off(n) + (size_t)n * 4 + 8;
    uint8_t *d = tl_xcalloc(len, 1);
    double *num = (double *)(void *)(d + tl_prop__num_off(n));
    uint32_t *str = (uint32_t *)(void *)(d + tl_prop__str_off(n));
    for (uint32_t j = 0; j < n && !rc; j++) {
        uint32_t r = rows[j];
        d[j] = pc.type[r];
        num[j] = pc.num[r];
        str[j] = pc.str[r];
    }
    *data = d;
    *bytes = len;
    return 0;
}

int tl_snap_event_prop(tl_snap *sn, size_t part, uint32_t event_id, uint32_t key_id,
                       tl_prop_col *out)
{
    const uint8_t *d;
    uint32_t n;
    int rc = snap_proj(sn, part, event_id, TL_COL_PROP, key_id, build_prop, (const void **)&d, &n);
    if (rc) return rc;
    out->type = d;
    out->num = (const double *)(const void *)(d + tl_prop__num_off(n));
    out->str = (const uint32_t *)(const void *)(d + tl_prop__str_off(n));
    return 0;
}

int tl_snap_part_dids(tl_snap *sn, size_t part, const uint32_t **dids, uint32_t *n)
{
    struct snap_part *sp = &sn->parts[part];
    if (sp->open) return TL_ENOENT;
    int i = tl_part__find(sp->sealed, TL_COL_DIDSET, 0);
    if (i < 0) return TL_ENOENT; /* a version 1 or 2 part */
    int rc = snap_load(sn, sp, (uint32_t)i, (const void **)dids);
    if (!rc) *n = (uint32_t)(sp->sealed->cols[i].rawlen / 4);
    return rc;
}

/* ---- single cells (store.h) ---- */

struct tl_cells {
    tl_snap *sn;
    uint8_t *frame; /* TL_PART_FRAME bytes: a frame being decoded */
    tl_buf eid;     /* the last event id read */
};

tl_cells *tl_cells_new(tl_snap *sn)
{
    tl_cells *c = tl_xcalloc(1, sizeof *c);
    c->sn = sn;
    return c;
}

void tl_cells_free(tl_cells *c)
{
    if (!c) return;
    free(c->frame);
    tl_buf_fini(&c->eid);
    free(c);
}

/* Raw bytes [off, off + len) of entry ent of sealed part p, from its frames, through the
 * store's frame cache. TL_ENOENT: the column is one frame (versions 1 and 2). */
static int cells_raw(tl_cells *c, tl_part *p, uint32_t ent, uint64_t off, size_t len, void *dst)
{
    struct fcache *fc = c->sn->s->frames;
    uint8_t *d = dst;
    if (off > p->cols[ent].rawlen || len > p->cols[ent].rawlen - off) return TL_EBADMSG;
    while (len) {
        uint64_t j = off / TL_PART_FRAME;
        size_t in = (size_t)(off - j * TL_PART_FRAME), flen = 0;
        if (!fcache_get(fc, p->seq, ent, j, in, len, d, &flen)) {
            if (!c->frame) c->frame = tl_xmalloc(TL_PART_FRAME);
            int rc = tl_part__frame(p, ent, j, c->frame, &flen);
            if (rc) return rc;
            if (in >= flen) return TL_EBADMSG;
            memcpy(d, c->frame + in, len < flen - in ? len : flen - in);
            fcache_put(fc, p->seq, ent, j, &c->frame, flen);
        }
        size_t n = len < flen - in ? len : flen - in;
        d += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* How cell (col, key) of part is read: 1 through the snapshot's readers (open part, column
 * decoded already, or a part without frames), 0 from frames (*ent its directory entry),
 * TL_ENOENT when the part has no such column. */
static int cells_way(tl_cells *c, size_t part, uint32_t col, uint32_t key, int *ent)
{
    struct snap_part *sp = &c->sn->parts[part];
    if (sp->open) return 1;
    int i = tl_part__find(sp->sealed, col, key);
    if (i < 0) return TL_ENOENT;
    pthread_mutex_lock(&c->sn->mu);
    bool pinned = sp->got && sp->got[i];
    pthread_mutex_unlock(&c->sn->mu);
    if (pinned || tl_part__loaded(sp->sealed, (uint32_t)i)) return 1;
    *ent = i;
    return 0;
}

int tl_cells_u32(tl_cells *c, size_t part, int col, uint32_t row, uint32_t *out)
{
    struct snap_part *sp = &c->sn->parts[part];
    if (col <= TL_COL_TS || col >= TL_COL_N) return TL_EINVAL;
    if (row >= sp->info.n_rows) return TL_EINVAL;
    int ent = 0, way = cells_way(c, part, (uint32_t)col, 0, &ent);
    if (way == TL_ENOENT) return TL_EBADMSG;
    if (!way) {
        uint8_t v[4];
        int rc = cells_raw(c, sp->sealed, (uint32_t)ent, (uint64_t)row * 4, 4, v);
        if (rc != TL_ENOENT) {
            if (!rc) *out = tl_le32(v);
            return rc;
        }
    }
    const uint32_t *v;
    int rc = tl_snap_col_u32(c->sn, part, col, &v);
    if (!rc) *out = v[row];
    return rc;
}

int tl_cells_event_id(tl_cells *c, size_t part, uint32_t row, tl_str *out)
{
    struct snap_part *sp = &c->sn->parts[part];
    if (row >= sp->info.n_rows) return TL_EINVAL;
    int ent = 0, way = cells_way(c, part, TL_COL_EVENT_ID, 0, &ent);
    if (way == TL_ENOENT) return TL_EBADMSG;
    if (!way) {
        uint8_t ab[8];
        int rc = cells_raw(c, sp->sealed, (uint32_t)ent, (uint64_t)row * 4, 8, ab);
        if (rc != TL_ENOENT) {
            uint32_t a = tl_le32(ab), b = tl_le32(ab + 4);
            uint64_t at = ((uint64_t)sp->info.n_rows + 1) * 4 + a;
            if (!rc && (b < a || at + (b - a) > sp->sealed->cols[ent].rawlen)) rc = TL_EBADMSG;
            if (rc) return rc;
            c->eid.len = 0;
            tl_buf_reserve(&c->eid, b - a + 1);
            rc = cells_raw(c, sp->sealed, (uint32_t)ent, at, b - a, c->eid.p);
            if (!rc) *out = (tl_str){c->eid.p, b - a};
            return rc;
        }
    }
    return tl_snap_event_id(c->sn, part, row, out);
}

int tl_cells_prop(tl_cells *c, size_t part, uint32_t key_id, uint32_t row, uint8_t *type,
                  double *num, uint32_t *str)
{
    struct snap_part *sp = &c->sn->parts[part];
    uint32_t n = sp->info.n_rows;
    if (row >= n) return TL_EINVAL;
    *type = 0;
    *num = 0;
    *str = 0;
    int ent = 0, way = cells_way(c, part, TL_COL_PROP, key_id, &ent);
    if (way == TL_ENOENT) return 0;
    if (!way) {
        uint8_t t, v[8];
        int rc = cells_raw(c, sp->sealed, (uint32_t)ent, row, 1, &t);
        if (rc != TL_ENOENT) {
            if (!rc && t) rc = cells_raw(c, sp->sealed, (uint32_t)ent, n + (uint64_t)row * 8, 8, v);
            if (!rc && t && t != TL_PV_NUM && t != TL_PV_STR) rc = TL_EBADMSG;
            if (rc || !t) return rc;
            uint64_t x = tl_le64(v);
            *type = t;
            if (t == TL_PV_NUM)
                memcpy(num, &x, 8);
            else
                *str = (uint32_t)x;
            return 0;
        }
    }
    tl_prop_col pc;
    int rc = tl_snap_prop(c->sn, part, key_id, &pc);
    if (rc == TL_ENOENT) return 0;
    if (rc) return rc;
    *type = pc.type[row];
    if (*type == TL_PV_NUM) *num = pc.num[row];
    if (*type == TL_PV_STR) *str = pc.str[row];
    return 0;
}

int tl_snap_prop(tl_snap *sn, size_t part, uint32_t key_id, tl_prop_col *out)
{
    struct snap_part *sp = &sn->parts[part];
    uint32_t n = sp->info.n_rows;
    if (sp->open) {
        tl_oprop *p = tl_open__prop(sp->open, key_id);
        if (!p) return TL_ENOENT;
        /* The open column may be shorter than the part (rows after its last value); readers
         * get a full-length copy, padded with "absent". */
        uint8_t *type = snap_alloc(sn, n);
        uint64_t *val = snap_alloc(sn, (size_t)n * 8);
        uint32_t len = p->len < n ? p->len : n;
        memcpy(type, p->type, len);
        memcpy(val, p->val, (size_t)len * 8);
        uint32_t *str = snap_alloc(sn, (size_t)n * 4);
        for (uint32_t i = 0; i < len; i++)
            str[i] = type[i] == TL_PV_STR ? (uint32_t)val[i] : 0;
        out->type = type;
        out->num = (const double *)(void *)val;
        out->str = str;
        return 0;
    }
    int i = tl_part__find(sp->sealed, TL_COL_PROP, key_id);
    if (i < 0) return TL_ENOENT;
    const uint8_t *raw;
    int rc = snap_load(sn, sp, (uint32_t)i, (const void **)&raw);
    if (rc) return rc;
    /* Decoded at load to the aligned layout of store_int.h: used in place, no copy. */
    out->type = raw;
    out->num = (const double *)(const void *)(raw + tl_prop__num_off(n));
    out->str = (const uint32_t *)(const void *)(raw + tl_prop__str_off(n));
    return 0;
}

int tl_snap_event_id(tl_snap *sn, size_t part, uint32_t row, tl_str *out)
{
    struct snap_part *sp = &sn->parts[part];
    if (row >= sp->info.n_rows) return TL_EINVAL;
    if (sp->open) {
        uint32_t a = sp->open->eid_off[row], b = sp->open->eid_off[row + 1];
        *out = (tl_str){sp->open->eid.p + a, b - a};
        return 0;
    }
    int i = tl_part__find(sp->sealed, TL_COL_EVENT_ID, 0);
    const uint8_t *raw;
    int rc = i < 0 ? TL_EBADMSG : snap_load(sn, sp, (uint32_t)i, (const void **)&raw);
    if (rc) return rc;
    uint32_t a = tl_le32(raw + (size_t)row * 4), b = tl_le32(raw + (size_t)(row + 1) * 4);
    *out = (tl_str){(const char *)raw + (size_t)(sp->info.n_rows + 1) * 4 + a, b - a};
    return 0;
}

uint32_t tl_snap_part_prop_keys(tl_snap *sn, size_t part, uint32_t *keys, uint32_t cap)
{
    struct snap_part *sp = &sn->parts[part];
    uint32_t n = 0;
    if (sp->open) {
        for (uint32_t i = 0; i < sp->open->n_props; i++, n++)
            if (n < cap) keys[n] = sp->open->props[i].key;
        return n;
    }
    for (uint32_t i = 0; i < sp->sealed->n_cols; i++)
        if (sp->sealed->cols[i].col == TL_COL_PROP) {
            if (n < cap) keys[n] = sp->sealed->cols[i].key;
            n++;
        }
    return n;
}

bool tl_snap_did_is_user(const tl_snap *sn, uint32_t did)
{
    return did < sn->p->ident.n && sn->p->ident.is_user[did];
}

typedef struct pp_ctx {
    tl_snap *sn;
    tl_person_prop_fn fn;
    void *ctx;
} pp_ctx;

static void pp_one(void *arg, const tl_pprop *pp)
{
    pp_ctx *x = arg;
    tl_prop v;
    memset(&v, 0, sizeof v);
    v.key = tl_dict__str(&x->sn->p->dict, pp->key);
    v.type = pp->type;
    if (TL_PV_TYPE(pp->type) == TL_PV_NUM)
        v.num = pp->num;
    else
        v.str = tl_dict__str(&x->sn->p->dict, pp->str);
    x->fn(x->ctx, v.key, &v);
}

void tl_snap_person_props(tl_snap *sn, uint32_t person, tl_person_prop_fn fn, void *ctx)
{
    pp_ctx x = {sn, fn, ctx};
    tl_ident__person_props(&sn->p->ident, person, pp_one, &x);
}

void tl_store_get_stats(tl_store *s, tl_store_stats *out)
{
    memset(out, 0, sizeof *out);
    uint32_t np = atomic_load(&s->n_projects);
    for (uint32_t i = 0; i < np; i++) {
        project *p = s->projects[i];
        pthread_rwlock_rdlock(&p->lock);
        out->rows += p->rows;
        out->dids += p->ident.n;
        out->merges += p->ident.merges;
        out->merges_refused += p->ident.refused;
        for (uint32_t k = 0; k < p->n_parts; k++) {
            out->parts += p->parts[k].n_sealed;
            for (uint32_t j = 0; j < p->parts[k].n_sealed; j++)
                out->bytes_on_disk += p->parts[k].sealed[j]->file_bytes;
        }
        pthread_rwlock_unlock(&p->lock);
    }
    tl_cache_stats cs;
    tl_cache__stats(&s->cache, &cs);
    out->cache_budget = cs.budget;
    out->cache_bytes = cs.bytes;
    out->cache_hits = cs.hits;
    out->cache_misses = cs.misses;
    out->cache_evictions = cs.evictions;
    tl_proj__stats(s->proj, &out->proj_bytes, &out->proj_hits, &out->proj_misses);
    out->rows_expired = atomic_load(&s->rows_expired);
    out->rows_erased = atomic_load(&s->rows_erased);
    out->strings_scrubbed = atomic_load(&s->strings_scrubbed);
}
