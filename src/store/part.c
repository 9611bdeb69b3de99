/* Column parts. An open part is a set of growable arrays in memory; sealing writes it, sorted
 * by event time, as an immutable part file of zstd-compressed columns.
 *
 * Part file, version 3 (little-endian; versions 1 and 2 are read too: version 2 is version 3
 * without the did set and with each column one zstd frame, version 1 is version 2 without the
 * event index):
 *
 *   0      8   magic "TLPART01"
 *   8      4   version (3)
 *   12     4   n_rows
 *   16     8   min_ts_ms          24  8  max_ts_ms
 *   32     4   project index      36  4  n_cols
 *   40     8   part sequence number
 *   48     4   CRC-32C of the directory
 *   52     4   CRC-32C of bytes 0..51
 *   56     n_cols × 40-byte entries: u32 col, u32 key, u64 offset, u64 clen, u64 rawlen,
 *          u32 crc (of the compressed bytes), u32 reserved
 *   …      column blobs: in versions 1 and 2 one zstd frame each; in version 3 a frame
 *          table, then the column cut in frames of TL_PART_FRAME (16 KiB) raw bytes, each
 *          with its content checksum. The table is a zstd skippable frame: u32 magic
 *          0x184D2A50, u32 size = 4 + 4 × k, u32 k, u32 csize[k] (compressed size of each
 *          frame). Whole columns decode as before (zstd reads the frames in turn and skips
 *          the table); tl_part__frame decodes one frame alone, so a reader after a few rows
 *          (a person's timeline) decodes 16 KiB of a column instead of all of it.
 *
 * Column encodings before compression: TS: int64 deltas from the previous row (the first from
 * 0), so sorted times compress to almost nothing; u32 columns: raw; event ids: u32 offsets
 * [n+1] then bytes; a property (col TL_COL_PROP, key = dict id of the key): u8 type[n] then
 * u64 value[n] (double bits or dict id; 0 where absent); the event index (col TL_COL_EVIDX,
 * version 2): u32 n_ev, u32 event[n_ev] (dict ids, ascending), u32 first[n_ev + 1]
 * (first[n_ev] = n), u32 rows[n]: event k's rows, ascending, are rows[first[k] ..
 * first[k + 1]), so a filter on one event reads only its rows; the did set (col
 * TL_COL_DIDSET, version 3): u32 did[k], the distinct values of the did column, ascending,
 * so a person's timeline reads the did column only of parts that hold one of its dids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "store/store_int.h"
#include "util/crc.h"
#include "util/diag.h"
#include "util/io.h"

#define HDR_SIZE   56
#define ENT_SIZE   40
#define ZLEVEL     3
#define ZMAX_RATIO 32768       /* the most a zstd frame can expand (128 KiB per 4-byte block) */
#define SKIP_MAGIC 0x184D2A50u /* ZSTD_MAGIC_SKIPPABLE_START: the frame table of a column */

/* ---- open parts ---- */

tl_open *tl_open__new(void)
{
    tl_open *op = tl_xcalloc(1, sizeof *op);
    op->min_ts = INT64_MAX;
    op->max_ts = INT64_MIN;
    op->prop_mask = 63;
    op->prop_slot = tl_xcalloc(op->prop_mask + 1, sizeof *op->prop_slot);
    op->eid_off = tl_xcalloc(1, sizeof *op->eid_off);
    return op;
}

void tl_open__free(tl_open *op)
{
    if (!op) return;
    free(op->ts);
    for (int c = 0; c < TL_COL_N; c++)
        free(op->col[c]);
    tl_buf_fini(&op->eid);
    free(op->eid_off);
    for (uint32_t i = 0; i < op->n_props; i++) {
        free(op->props[i].type);
        free(op->props[i].val);
    }
    free(op->props);
    free(op->prop_slot);
    free(op);
}

tl_oprop *tl_open__prop(const tl_open *op, uint32_t key)
{
    for (uint32_t i = (key * 2654435761u) & op->prop_mask;; i = (i + 1) & op->prop_mask) {
        uint32_t s = op->prop_slot[i];
        if (!s) return NULL;
        if (op->props[s - 1].key == key) return &op->props[s - 1];
    }
}

static tl_oprop *prop_add(tl_open *op, uint32_t key)
{
    tl_oprop *p = tl_open__prop(op, key);
    if (p) return p;
    if (op->n_props == op->cap_props) {
        op->cap_props = op->cap_props ? op->cap_props * 2 : 16;
        op->props = tl_xrealloc(op->props, op->cap_props * sizeof *op->props);
    }
    if ((op->n_props + 1) * 2 > op->prop_mask + 1) {
        uint32_t nm = op->prop_mask * 2 + 1;
        uint32_t *slots = tl_xcalloc(nm + 1, sizeof *slots);
        for (uint32_t k = 0; k < op->n_props; k++) {
            uint32_t i = (op->props[k].key * 2654435761u) & nm;
            while (slots[i])
                i = (i + 1) & nm;
            slots[i] = k + 1;
        }
        free(op->prop_slot);
        op->prop_slot = slots;
        op->prop_mask = nm;
    }
    uint32_t i = (key * 2654435761u) & op->prop_mask;
    while (op->prop_slot[i])
        i = (i + 1) & op->prop_mask;
    op->prop_slot[i] = op->n_props + 1;
    p = &op->props[op->n_props++];
    memset(p, 0, sizeof *p);
    p->key = key;
    return p;
}

void tl_open__append(tl_open *op, int64_t ts, const uint32_t cols[TL_COL_N], tl_str eid,
                     const uint32_t *pkeys, const uint8_t *ptypes, const uint64_t *pvals,
                     uint32_t n_props)
{
    if (op->n == op->cap) {
        op->cap = op->cap ? op->cap * 2 : 1024;
        op->ts = tl_xrealloc(op->ts, op->cap * sizeof *op->ts);
        for (int c = 1; c < TL_COL_N; c++)
            op->col[c] = tl_xrealloc(op->col[c], op->cap * sizeof *op->col[c]);
        op->eid_off = tl_xrealloc(op->eid_off, (op->cap + 1) * sizeof *op->eid_off);
    }
    uint32_t row = op->n++;
    op->ts[row] = ts;
    for (int c = 1; c < TL_COL_N; c++)
        op->col[c][row] = cols[c];
    tl_buf_addstr(&op->eid, eid);
    op->eid_off[row + 1] = (uint32_t)op->eid.len;
    if (ts < op->min_ts) op->min_ts = ts;
    if (ts > op->max_ts) op->max_ts = ts;
    for (uint32_t k = 0; k < n_props; k++) {
        tl_oprop *p = prop_add(op, pkeys[k]);
        if (row >= p->cap) {
            uint32_t ncap = p->cap ? p->cap : 64;
            while (ncap <= row)
                ncap *= 2;
            p->type = tl_xrealloc(p->type, ncap);
            p->val = tl_xrealloc(p->val, ncap * sizeof *p->val);
            memset(p->type + p->cap, 0, ncap - p->cap);
            memset(p->val + p->cap, 0, (ncap - p->cap) * sizeof *p->val);
            p->cap = ncap;
        }
        p->type[row] = ptypes[k];
        p->val[row] = pvals[k];
        if (row + 1 > p->len) p->len = row + 1;
    }
}

/* ---- writing ---- */

typedef struct colsrc {
    uint32_t col, key;
    const void *raw;
    size_t rawlen;
} colsrc;

static int write_part(const char *path, uint64_t seq, uint32_t project, uint32_t n, int64_t min_ts,
                      int64_t max_ts, const colsrc *cols, uint32_t n_cols, tl_err *err)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return tl_err_set(err, -errno, "%s: %s", tmp, tl_strerror(-errno));
    tl_buf dir = TL_BUF_INIT, zbuf = TL_BUF_INIT;
    uint64_t off = HDR_SIZE + (uint64_t)n_cols * ENT_SIZE;
    int rc = 0;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (!cc) abort();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, ZLEVEL);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    for (uint32_t i = 0; i < n_cols && !rc; i++) {
        /* The frame table, then each TL_PART_FRAME bytes of the column as its own frame. */
        size_t rawlen = cols[i].rawlen, k = (rawlen + TL_PART_FRAME - 1) / TL_PART_FRAME;
        size_t table = 12 + 4 * k, clen = table;
        zbuf.len = 0;
        tl_buf_reserve(&zbuf, table + k * ZSTD_compressBound(TL_PART_FRAME));
        uint8_t *z = (uint8_t *)zbuf.p;
        tl_put32(z, SKIP_MAGIC);
        tl_put32(z + 4, (uint32_t)(4 + 4 * k));
        tl_put32(z + 8, (uint32_t)k);
        for (size_t j = 0; j < k; j++) {
            size_t a = j * TL_PART_FRAME,
                   fl = rawlen - a < TL_PART_FRAME ? rawlen - a : TL_PART_FRAME;
            size_t got = ZSTD_compress2(cc, z + clen, ZSTD_compressBound(TL_PART_FRAME),
                                        (const uint8_t *)cols[i].raw + a, fl);
            if (ZSTD_isError(got)) {
                rc = tl_err_set(err, TL_EIO, "zstd: %s", ZSTD_getErrorName(got));
                break;
            }
            tl_put32(z + 12 + 4 * j, (uint32_t)got);
            clen += got;
        }
        if (rc) break;
        rc = tl_pwrite_all(fd, zbuf.p, clen, (off_t)off);
        if (rc) {
            tl_err_set(err, rc, "%s: %s", tmp, tl_strerror(rc));
            break;
        }
        tl_buf_u32(&dir, cols[i].col);
        tl_buf_u32(&dir, cols[i].key);
        tl_buf_u64(&dir, off);
        tl_buf_u64(&dir, clen);
        tl_buf_u64(&dir, cols[i].rawlen);
        tl_buf_u32(&dir, tl_crc32c(0, zbuf.p, clen));
        tl_buf_u32(&dir, 0);
        off += clen;
    }
    if (!rc) {
        uint8_t h[HDR_SIZE];
        memset(h, 0, sizeof h);
        memcpy(h, "TLPART01", 8);
        tl_put32(h + 8, 3);
        tl_put32(h + 12, n);
        tl_put64(h + 16, (uint64_t)min_ts);
        tl_put64(h + 24, (uint64_t)max_ts);
        tl_put32(h + 32, project);
        tl_put32(h + 36, n_cols);
        tl_put64(h + 40, seq);
        tl_put32(h + 48, tl_crc32c(0, dir.p, dir.len));
        tl_put32(h + 52, tl_crc32c(0, h, 52));
        rc = tl_pwrite_all(fd, h, HDR_SIZE, 0);
        if (!rc) rc = tl_pwrite_all(fd, dir.p, dir.len, HDR_SIZE);
        if (!rc) rc = tl_fdatasync(fd);
        if (rc) tl_err_set(err, rc, "%s: %s", tmp, tl_strerror(rc));
    }
    close(fd);
    ZSTD_freeCCtx(cc);
    tl_buf_fini(&dir);
    tl_buf_fini(&zbuf);
    if (!rc && rename(tmp, path) < 0)
        rc = tl_err_set(err, -errno, "%s: rename: %s", path, tl_strerror(-errno));
    if (rc) unlink(tmp);
    return rc;
}

/* Stable sort of row indexes by ts (merge sort; the data is often nearly sorted). */
static uint32_t *sort_rows(const int64_t *ts, uint32_t n)
{
    uint32_t *a = tl_xmalloc((size_t)n * sizeof *a), *b = tl_xmalloc((size_t)n * sizeof *b);
    bool sorted = true;
    for (uint32_t i = 0; i < n; i++) {
        a[i] = i;
        if (i && ts[i] < ts[i - 1]) sorted = false;
    }
    if (!sorted) {
        for (uint32_t w = 1; w < n; w *= 2) {
            for (uint32_t lo = 0; lo < n; lo += 2 * w) {
                uint32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
                uint32_t i = lo, j = mid, k = lo;
                while (i < mid && j < hi)
                    b[k++] = ts[a[j]] < ts[a[i]] ? a[j++] : a[i++];
                while (i < mid)
                    b[k++] = a[i++];
                while (j < hi)
                    b[k++] = a[j++];
            }
            uint32_t *t = a;
            a = b;
            b = t;
        }
    }
    free(b);
    return a;
}

/* Columns of n rows gathered in `order`, handed to write_part. */
typedef struct gathered {
    colsrc *cols;
    void **bufs;
    uint32_t n_cols;
} gathered;

static void gather_add(gathered *g, uint32_t col, uint32_t key, void *buf, size_t len)
{
    g->cols = tl_xrealloc(g->cols, (g->n_cols + 1) * sizeof *g->cols);
    g->bufs = tl_xrealloc(g->bufs, (g->n_cols + 1) * sizeof *g->bufs);
    g->cols[g->n_cols] = (colsrc){col, key, buf, len};
    g->bufs[g->n_cols++] = buf;
}

static void gather_free(gathered *g)
{
    for (uint32_t i = 0; i < g->n_cols; i++)
        free(g->bufs[i]);
    free(g->cols);
    free(g->bufs);
}

/* The event index of a part's event column ev[0..n) (format above): new memory, *bytes long.
 * Events are dict ids; a part holds few distinct ones, found with a small hash table. */
static uint32_t *event_index(const uint32_t *ev, uint32_t n, size_t *bytes)
{
    uint32_t mask = 255, n_ev = 0;
    uint32_t *key = tl_xcalloc(mask + 1, sizeof *key), *cnt = tl_xcalloc(mask + 1, sizeof *cnt);
    for (uint32_t r = 0; r < n; r++) {
        uint32_t e = ev[r] + 1, h = (e * 2654435761u) & mask; /* +1: 0 marks an empty slot */
        while (key[h] && key[h] != e)
            h = (h + 1) & mask;
        if (!key[h]) {
            key[h] = e;
            if (++n_ev * 2 > mask) { /* grow */
                uint32_t m2 = mask * 2 + 1;
                uint32_t *k2 = tl_xcalloc(m2 + 1, sizeof *k2), *c2 = tl_xcalloc(m2 + 1, sizeof *c2);
                for (uint32_t i = 0; i <= mask; i++) {
                    if (!key[i]) continue;
                    uint32_t j = (key[i] * 2654435761u) & m2;
                    while (k2[j])
                        j = (j + 1) & m2;
                    k2[j] = key[i];
                    c2[j] = cnt[i];
                }
                free(key);
                free(cnt);
                key = k2;
                cnt = c2;
                mask = m2;
                h = (e * 2654435761u) & mask;
                while (key[h] != e)
                    h = (h + 1) & mask;
            }
        }
        cnt[h]++;
    }
    /* The events in id order, each with its first position, then the rows. */
    uint32_t *ids = tl_xmalloc(((size_t)n_ev + 1) * sizeof *ids), k = 0;
    for (uint32_t i = 0; i <= mask; i++)
        if (key[i]) ids[k++] = i;         /* slot numbers, sorted by their key below */
    for (uint32_t i = 1; i < n_ev; i++) { /* insertion sort: few events */
        uint32_t v = ids[i], j = i;
        while (j && key[ids[j - 1]] > key[v]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
    *bytes = 4 + (size_t)n_ev * 8 + 4 + (size_t)n * 4;
    uint32_t *x = tl_xmalloc(*bytes + 4), *first = x + 1 + n_ev, *rows = first + n_ev + 1, acc = 0;
    x[0] = n_ev;
    for (uint32_t i = 0; i < n_ev; i++) {
        uint32_t slot = ids[i];
        x[1 + i] = key[slot] - 1;
        first[i] = acc;
        acc += cnt[slot];
        cnt[slot] = first[i]; /* now: the next position of the event's rows */
    }
    first[n_ev] = n;
    for (uint32_t r = 0; r < n; r++) {
        uint32_t e = ev[r] + 1, h = (e * 2654435761u) & mask;
        while (key[h] != e)
            h = (h + 1) & mask;
        rows[cnt[h]++] = r;
    }
    free(ids);
    free(key);
    free(cnt);
    return x; /* little-endian hosts only, as the rest of the format (store.h) */
}

/* Checks an event index against the format, so readers can trust its positions. */
static bool evidx_ok(const uint8_t *raw, size_t len, uint32_t n)
{
    if (len < 8) return false;
    uint32_t n_ev = tl_le32(raw);
    if (n_ev > n || len != 4 + (size_t)n_ev * 8 + 4 + (size_t)n * 4) return false;
    const uint8_t *ev = raw + 4, *first = ev + (size_t)n_ev * 4,
                  *rows = first + (size_t)n_ev * 4 + 4;
    if (tl_le32(first) != 0 || tl_le32(first + (size_t)n_ev * 4) != n) return false;
    for (uint32_t i = 0; i < n_ev; i++) {
        uint32_t lo = tl_le32(first + (size_t)i * 4), hi = tl_le32(first + (size_t)i * 4 + 4);
        if (hi < lo || hi > n) return false;
        if (i && tl_le32(ev + (size_t)i * 4) <= tl_le32(ev + (size_t)i * 4 - 4)) return false;
        for (uint32_t j = lo; j < hi; j++) {
            uint32_t r = tl_le32(rows + (size_t)j * 4);
            if (r >= n || (j > lo && r <= tl_le32(rows + (size_t)j * 4 - 4))) return false;
        }
    }
    return true;
}

/* The did set of a part's did column d[0..n) (format above): new memory, *bytes long. Dids are
 * dense (identity indexes), so a bitmap up to the largest one sorts them in one pass; a sort
 * only when the largest is far beyond what the rows can use. */
static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t *did_set(const uint32_t *d, uint32_t n, size_t *bytes)
{
    uint32_t max = 0, k = 0;
    for (uint32_t r = 0; r < n; r++)
        if (d[r] > max) max = d[r];
    uint32_t *out = tl_xmalloc((size_t)n * 4 + 4);
    if (max / 64 <= (uint64_t)n + 4096) {
        size_t nw = (size_t)max / 64 + 1;
        uint64_t *bits = tl_xcalloc(nw, 8);
        for (uint32_t r = 0; r < n; r++)
            bits[d[r] / 64] |= (uint64_t)1 << (d[r] % 64);
        for (size_t w = 0; w < nw; w++)
            for (uint64_t b = bits[w]; b; b &= b - 1)
                out[k++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(b));
        free(bits);
    } else {
        memcpy(out, d, (size_t)n * 4);
        qsort(out, n, 4, u32_cmp);
        for (uint32_t r = 0; r < n; r++)
            if (!k || out[r] != out[k - 1]) out[k++] = out[r];
    }
    *bytes = (size_t)k * 4;
    return out;
}

/* Checks a did set against the format: at most one entry per row, strictly ascending. */
static bool didset_ok(const uint8_t *raw, size_t len, uint32_t n)
{
    if (len % 4 || len / 4 > n) return false;
    for (size_t i = 4; i < len; i += 4)
        if (tl_le32(raw + i) <= tl_le32(raw + i - 4)) return false;
    return true;
}

int tl_part__write(const char *path, uint64_t seq, uint32_t project, const tl_open *op,
                   tl_part **out, tl_err *err)
{
    uint32_t n = op->n;
    uint32_t *ord = sort_rows(op->ts, n);
    gathered g = {0};
    int64_t *ts = tl_xmalloc((size_t)n * 8 + 8);
    int64_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        ts[i] = (int64_t)((uint64_t)op->ts[ord[i]] - (uint64_t)prev);
        prev = op->ts[ord[i]];
    }
    gather_add(&g, TL_COL_TS, 0, ts, (size_t)n * 8);
    for (int c = 1; c < TL_COL_N; c++) {
        uint32_t *v = tl_xmalloc((size_t)n * 4 + 4);
        for (uint32_t i = 0; i < n; i++)
            v[i] = op->col[c][ord[i]];
        gather_add(&g, (uint32_t)c, 0, v, (size_t)n * 4);
    }
    size_t eb = (size_t)(n + 1) * 4 + op->eid.len;
    uint8_t *e = tl_xmalloc(eb + 1);
    uint32_t o = 0;
    tl_put32(e, 0);
    uint8_t *bytes = e + (size_t)(n + 1) * 4;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t a = op->eid_off[ord[i]], b = op->eid_off[ord[i] + 1];
        if (b > a) /* eid.p is NULL while every event id so far is empty */
            memcpy(bytes + o, op->eid.p + a, b - a);
        o += b - a;
        tl_put32(e + (size_t)(i + 1) * 4, o);
    }
    gather_add(&g, TL_COL_EVENT_ID, 0, e, eb);
    size_t xb;
    uint32_t *x = event_index(g.bufs[TL_COL_EVENT], n, &xb);
    gather_add(&g, TL_COL_EVIDX, 0, x, xb);
    size_t db;
    uint32_t *ds = did_set(g.bufs[TL_COL_DID], n, &db);
    gather_add(&g, TL_COL_DIDSET, 0, ds, db);
    for (uint32_t k = 0; k < op->n_props; k++) {
        const tl_oprop *p = &op->props[k];
        uint8_t *v = tl_xcalloc((size_t)n * 9 + 1, 1);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t r = ord[i];
            if (r < p->len && p->type[r]) {
                v[i] = p->type[r];
                tl_put64(v + n + (size_t)i * 8, p->val[r]);
            }
        }
        gather_add(&g, TL_COL_PROP, p->key, v, (size_t)n * 9);
    }
    free(ord);
    int rc = write_part(path, seq, project, n, op->min_ts, op->max_ts, g.cols, g.n_cols, err);
    gather_free(&g);
    if (rc) return rc;
    return tl_part__open(path, seq, project, out, err);
}

/* ---- reading ---- */

int tl_part__open(const char *path, uint64_t seq, uint32_t project, tl_part **out, tl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tl_err_set(err, -errno, "%s: %s", path, tl_strerror(-errno));
    struct stat st;
    uint8_t h[HDR_SIZE];
    int rc = fstat(fd, &st) < 0 ? -errno : tl_pread_all(fd, h, HDR_SIZE, 0);
    if (rc) {
        close(fd);
        return tl_err_set(err, TL_EBADMSG, "%s: cannot read header", path);
    }
    uint32_t n_cols = tl_le32(h + 36);
    if (memcmp(h, "TLPART01", 8) || tl_le32(h + 8) < 1 || tl_le32(h + 8) > 3 ||
        tl_crc32c(0, h, 52) != tl_le32(h + 52) ||
        (uint64_t)n_cols * ENT_SIZE + HDR_SIZE > (uint64_t)st.st_size) {
        close(fd);
        return tl_err_set(err, TL_EBADMSG, "%s: bad part header", path);
    }
    uint8_t *dir = tl_xmalloc((size_t)n_cols * ENT_SIZE + 1);
    rc = tl_pread_all(fd, dir, (size_t)n_cols * ENT_SIZE, HDR_SIZE);
    if (rc || tl_crc32c(0, dir, (size_t)n_cols * ENT_SIZE) != tl_le32(h + 48)) {
        free(dir);
        close(fd);
        return tl_err_set(err, TL_EBADMSG, "%s: bad part directory", path);
    }
    tl_part *p = tl_xcalloc(1, sizeof *p);
    p->seq = seq;
    p->project = project;
    p->fd = fd;
    p->n_rows = tl_le32(h + 12);
    p->min_ts = (int64_t)tl_le64(h + 16);
    p->max_ts = (int64_t)tl_le64(h + 24);
    p->file_bytes = (uint64_t)st.st_size;
    p->n_cols = n_cols;
    p->cols = tl_xcalloc(n_cols + 1, sizeof *p->cols);
    p->loaded = tl_xcalloc(n_cols + 1, sizeof *p->loaded);
    p->cent = tl_xcalloc(n_cols + 1, sizeof *p->cent);
    /* Complete before any check can fail, so that tl_part__unref frees it all. */
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->refs, 1);
    snprintf(p->path, sizeof p->path, "%s", path);
    for (uint32_t i = 0; i < n_cols; i++) {
        const uint8_t *e = dir + (size_t)i * ENT_SIZE;
        p->cols[i] = (tl_colent){tl_le32(e),      tl_le32(e + 4),  tl_le64(e + 8),
                                 tl_le64(e + 16), tl_le64(e + 24), tl_le32(e + 32)};
        /* Written so that a huge offset or length cannot wrap around. */
        if (p->cols[i].off > p->file_bytes || p->cols[i].clen > p->file_bytes - p->cols[i].off) {
            free(dir);
            tl_part__unref(p);
            return tl_err_set(err, TL_EBADMSG, "%s: column %u past the end", path, i);
        }
    }
    free(dir);
    *out = p;
    return 0;
}

/* ---- the column cache (see store_int.h) ---- */

/* Parts opened outside a store (tools, fuzzers) share this one: no budget, never evicts. */
static tl_cache no_cache = {.mu = PTHREAD_MUTEX_INITIALIZER, .budget = UINT64_MAX};

static tl_cache *cache_of(const tl_part *p)
{
    return p->cache ? p->cache : &no_cache;
}

static void lru_unlink(tl_cent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(tl_cache *c, tl_cent *e) /* as the most recently used */
{
    if (!c->lru.next) c->lru.next = c->lru.prev = &c->lru;
    e->prev = c->lru.prev;
    e->next = &c->lru;
    c->lru.prev->next = e;
    c->lru.prev = e;
}

/* Frees unpinned columns, least recently used first, down to the budget; never `keep`. */
static void evict(tl_cache *c, const tl_cent *keep)
{
    tl_cent *e = c->lru.next;
    while (c->bytes > c->budget && !c->hold && e && e != &c->lru) {
        tl_cent *next = e->next;
        if (e != keep) {
            lru_unlink(e);
            free(e->part->loaded[e->idx]);
            e->part->loaded[e->idx] = NULL;
            c->bytes -= e->bytes;
            c->evictions++;
        }
        e = next;
    }
}

void tl_cache__init(tl_cache *c, uint64_t budget)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
    c->lru.next = c->lru.prev = &c->lru;
}

void tl_cache__fini(tl_cache *c)
{
    pthread_mutex_destroy(&c->mu);
}

void tl_cache__hold(tl_cache *c, bool on)
{
    pthread_mutex_lock(&c->mu);
    if (on) {
        c->hold++;
    } else if (c->hold && !--c->hold) {
        evict(c, NULL);
    }
    pthread_mutex_unlock(&c->mu);
}

void tl_cache__stats(tl_cache *c, tl_cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = (tl_cache_stats){c->budget, c->bytes, c->hits, c->misses, c->evictions};
    pthread_mutex_unlock(&c->mu);
}

void tl_part__unref(tl_part *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) != 1) return;
    if (p->doomed) unlink(p->path);
    tl_cache *c = cache_of(p);
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < p->n_cols; i++) {
        if (!p->loaded[i]) continue;
        if (p->cent[i].next) lru_unlink(&p->cent[i]);
        c->bytes -= p->cent[i].bytes;
        free(p->loaded[i]);
    }
    pthread_mutex_unlock(&c->mu);
    free(p->cent);
    free(p->loaded);
    free(p->cols);
    if (p->fd >= 0) close(p->fd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int tl_part__find(const tl_part *p, uint32_t col, uint32_t key)
{
    for (uint32_t i = 0; i < p->n_cols; i++)
        if (p->cols[i].col == col && p->cols[i].key == key) return (int)i;
    return -1;
}

static size_t expected_raw(const tl_part *p, const tl_colent *c)
{
    size_t n = p->n_rows;
    if (c->col == TL_COL_TS) return n * 8;
    if (c->col == TL_COL_PROP) return n * 9;
    if (c->col == TL_COL_EVENT_ID || c->col == TL_COL_EVIDX || c->col == TL_COL_DIDSET)
        return 0; /* variable */
    return n * 4;
}

/* A decompression context per thread, reused: ZSTD_decompress would allocate one (over 100 KiB,
 * fresh pages) for every column and every frame. Freed when its thread ends. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static __thread ZSTD_DCtx *dctx_mine; /* also here, so that leak checkers see it reachable */

static void dctx_free(void *d)
{
    ZSTD_freeDCtx(d);
}

static void dctx_init(void)
{
    if (pthread_key_create(&dctx_key, dctx_free)) abort();
}

static ZSTD_DCtx *dctx(void)
{
    if (!dctx_mine) {
        pthread_once(&dctx_once, dctx_init);
        dctx_mine = ZSTD_createDCtx();
        if (!dctx_mine) abort();
        pthread_setspecific(dctx_key, dctx_mine);
    }
    return dctx_mine;
}

/* The content size that the frames z[0..zl) declare (skippable ones: none), or UINT64_MAX
 * when one does not declare it or they do not fill zl exactly. */
static uint64_t frames_size(const uint8_t *z, size_t zl)
{
    uint64_t sum = 0;
    for (size_t at = 0; at < zl;) {
        size_t fl = ZSTD_findFrameCompressedSize(z + at, zl - at);
        if (ZSTD_isError(fl) || !fl || fl > zl - at) return UINT64_MAX;
        if ((tl_le32(z + at) & 0xFFFFFFF0u) != SKIP_MAGIC) {
            unsigned long long n = ZSTD_getFrameContentSize(z + at, zl - at);
            if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN) return UINT64_MAX;
            if (n > UINT64_MAX / 2 - sum) return UINT64_MAX;
            sum += n;
        }
        at += fl;
    }
    return sum;
}

/* Decodes directory entry i into *out (new memory, *bytes long). */
static int decode(tl_part *p, uint32_t i, void **out, size_t *bytes)
{
    const tl_colent *c = &p->cols[i];
    size_t nbytes = c->rawlen + 16;
    size_t want = expected_raw(p, c);
    int rc = 0;
    if ((want && c->rawlen != want) || c->rawlen > ((size_t)1 << 34) ||
        c->clen > c->rawlen + 4096 + c->rawlen / 8) {
        rc = TL_EBADMSG;
        goto done;
    }
    void *z = tl_xmalloc(c->clen + 1);
    rc = tl_pread_all(p->fd, z, c->clen, (off_t)c->off);
    if (!rc && tl_crc32c(0, z, c->clen) != c->crc) rc = TL_EBADMSG;
    uint8_t *raw = NULL;
    /* The frames must declare the size the directory gives (tally always writes it) before
     * that much memory is taken on the word of the directory alone. */
    if (!rc && frames_size(z, c->clen) != c->rawlen) rc = TL_EBADMSG;
    /* Nor more than zstd can produce from clen bytes: at best a 4-byte RLE block yields
     * 128 KiB. */
    if (!rc && c->rawlen / ZMAX_RATIO > c->clen) rc = TL_EBADMSG;
    if (!rc) {
        raw = tl_xmalloc(c->rawlen + 16);
        size_t got = ZSTD_decompressDCtx(dctx(), raw, c->rawlen, z, c->clen);
        if (ZSTD_isError(got) || got != c->rawlen) rc = TL_EBADMSG;
    }
    free(z);
    if (!rc && c->col == TL_COL_TS) {
        /* Sum the deltas modulo 2^64 (no signed overflow on damaged data), and check what
         * readers rely on: sorted, within the header's min and max. */
        int64_t *ts = (int64_t *)(void *)raw;
        uint64_t acc = 0;
        for (uint32_t r = 0; r < p->n_rows && !rc; r++) {
            acc += tl_le64(raw + (size_t)r * 8);
            ts[r] = (int64_t)acc;
            if (ts[r] < p->min_ts || ts[r] > p->max_ts || (r && ts[r] < ts[r - 1])) rc = TL_EBADMSG;
        }
    }
    if (!rc && c->col == TL_COL_EVENT_ID) {
        /* Validate offsets once so readers can trust them. */
        size_t hdr = (size_t)(p->n_rows + 1) * 4;
        if (c->rawlen < hdr) rc = TL_EBADMSG;
        for (uint32_t r = 0; !rc && r < p->n_rows; r++)
            if (tl_le32(raw + (size_t)r * 4) > tl_le32(raw + (size_t)(r + 1) * 4) ||
                hdr + tl_le32(raw + (size_t)(r + 1) * 4) > c->rawlen)
                rc = TL_EBADMSG;
    }
    if (!rc && c->col == TL_COL_EVIDX && !evidx_ok(raw, c->rawlen, p->n_rows)) rc = TL_EBADMSG;
    if (!rc && c->col == TL_COL_DIDSET && !didset_ok(raw, c->rawlen, p->n_rows)) rc = TL_EBADMSG;
    if (!rc && c->col == TL_COL_PROP) {
        /* Decode once to the aligned reader layout (store_int.h). */
        uint32_t n = p->n_rows;
        uint8_t *d = tl_xcalloc(tl_prop__str_off(n) + (size_t)n * 4 + 8, 1);
        double *num = (double *)(void *)(d + tl_prop__num_off(n));
        uint32_t *str = (uint32_t *)(void *)(d + tl_prop__str_off(n));
        for (uint32_t r = 0; r < n && !rc; r++) {
            uint64_t v = tl_le64(raw + n + (size_t)r * 8);
            d[r] = raw[r];
            if (raw[r] == TL_PV_NUM)
                memcpy(&num[r], &v, 8);
            else if (raw[r] == TL_PV_STR)
                str[r] = (uint32_t)v;
            else if (raw[r] != 0)
                rc = TL_EBADMSG;
        }
        free(raw);
        raw = d;
        nbytes = tl_prop__str_off(n) + (size_t)n * 4 + 8;
    }
    if (rc) {
        free(raw);
        TL_ERROR("store", "corrupt column file=%s entry=%u", p->path, i);
        goto done;
    }
    *out = raw;
    *bytes = nbytes;
done:
    return rc;
}

enum { GET_LOAD, GET_PIN };

static int cache_get(tl_part *p, uint32_t i, int how, const void **out)
{
    tl_cache *c = cache_of(p);
    tl_cent *e = &p->cent[i];
    pthread_mutex_lock(&c->mu);
    bool hit = p->loaded[i] != NULL;
    if (hit) c->hits++;
    pthread_mutex_unlock(&c->mu);
    void *raw = NULL;
    size_t bytes = 0;
    if (!hit) {
        /* Decoded outside the lock: other columns load meanwhile. Two threads may decode the
         * same column at once; the first to insert it wins. */
        int rc = decode(p, i, &raw, &bytes);
        if (rc) return rc;
    }
    pthread_mutex_lock(&c->mu);
    if (!hit) c->misses++;
    if (!p->loaded[i] && raw) {
        p->loaded[i] = raw;
        e->part = p;
        e->idx = i;
        e->pins = 0;
        e->bytes = bytes;
        c->bytes += bytes;
        lru_push(c, e);
        raw = NULL;
    } else if (!p->loaded[i]) {
        /* Evicted between the two locks: decode again. */
        pthread_mutex_unlock(&c->mu);
        return cache_get(p, i, how, out);
    }
    if (how == GET_PIN) {
        if (!e->pins++ && e->next) lru_unlink(e);
    } else if (!e->pins) {
        lru_unlink(e); /* touch: to the most recently used end */
        lru_push(c, e);
    }
    *out = p->loaded[i];
    evict(c, e);
    pthread_mutex_unlock(&c->mu);
    free(raw); /* a column another thread inserted first */
    return 0;
}

int tl_part__load(tl_part *p, uint32_t i, const void **out)
{
    return cache_get(p, i, GET_LOAD, out);
}

int tl_part__pin(tl_part *p, uint32_t i, const void **out)
{
    return cache_get(p, i, GET_PIN, out);
}

void tl_part__unpin(tl_part *p, uint32_t i)
{
    tl_cache *c = cache_of(p);
    pthread_mutex_lock(&c->mu);
    tl_cent *e = &p->cent[i];
    if (e->pins && !--e->pins) {
        lru_push(c, e);
        evict(c, NULL);
    }
    pthread_mutex_unlock(&c->mu);
}

int tl_part__read(tl_part *p, uint32_t i, void **out)
{
    size_t bytes;
    return decode(p, i, out, &bytes);
}

bool tl_part__loaded(tl_part *p, uint32_t i)
{
    tl_cache *c = cache_of(p);
    pthread_mutex_lock(&c->mu);
    bool v = p->loaded[i] != NULL;
    pthread_mutex_unlock(&c->mu);
    return v;
}

int tl_part__frame(tl_part *p, uint32_t i, uint64_t j, uint8_t *out, size_t *len)
{
    const tl_colent *c = &p->cols[i];
    uint64_t k = (c->rawlen + TL_PART_FRAME - 1) / TL_PART_FRAME;
    if (j >= k) return TL_EINVAL;
    if (c->clen < 12 + 4 * k) return TL_ENOENT; /* no table: one frame (versions 1 and 2) */
    /* The table: magic, its size, k, then the compressed sizes (one read up to frame j). */
    size_t tl = 12 + 4 * ((size_t)j + 1);
    uint8_t stack[1024], *t = tl <= sizeof stack ? stack : tl_xmalloc(tl);
    int rc = tl_pread_all(p->fd, t, tl, (off_t)c->off);
    if (!rc && tl_le32(t) != SKIP_MAGIC) rc = TL_ENOENT; /* one frame: versions 1 and 2 */
    if (!rc && (tl_le32(t + 4) != 4 + 4 * k || tl_le32(t + 8) != k)) rc = TL_EBADMSG;
    uint64_t at = 12 + 4 * k, zl = 0;
    for (uint64_t q = 0; !rc && q <= j; q++) {
        zl = tl_le32(t + 12 + 4 * q);
        if (q < j) at += zl;
    }
    if (t != stack) free(t);
    if (!rc && (at > c->clen || zl > c->clen - at)) rc = TL_EBADMSG;
    if (rc) return rc;
    size_t want = j + 1 < k ? TL_PART_FRAME : (size_t)(c->rawlen - j * TL_PART_FRAME);
    uint8_t *z = tl_xmalloc(zl + 1);
    rc = tl_pread_all(p->fd, z, zl, (off_t)(c->off + at));
    /* One whole frame of the size the table implies, with its checksum (checked as it is
     * decompressed). */
    if (!rc && (zl < 5 || tl_le32(z) != ZSTD_MAGICNUMBER || !(z[4] & 0x04) || /* checksum */
                frames_size(z, zl) != want))
        rc = TL_EBADMSG;
    if (!rc) {
        size_t got = ZSTD_decompressDCtx(dctx(), out, TL_PART_FRAME, z, zl);
        if (ZSTD_isError(got) || got != want) rc = TL_EBADMSG;
    }
    free(z);
    if (rc) {
        TL_ERROR("store", "corrupt column file=%s entry=%u frame=%llu", p->path, i,
                 (unsigned long long)j);
        return rc;
    }
    *len = want;
    return 0;
}

/* ---- merging (compaction) ---- */

int tl_part__merge(const char *path, uint64_t seq, uint32_t project, tl_part **parts, uint32_t n,
                   tl_dict *dict, tl_part **out, tl_err *err)
{
    (void)dict;
    /* Rebuild an open part from the inputs (all columns), then write it sorted. */
    tl_open *op = tl_open__new();
    int rc = 0;
    for (uint32_t k = 0; k < n && !rc; k++) {
        tl_part *p = parts[k];
        const void *cols[TL_COL_N + 1] = {0};
        for (uint32_t c = 0; c <= TL_COL_EVENT_ID && !rc; c++) {
            int i = tl_part__find(p, c, 0);
            rc = i < 0 ? TL_EBADMSG : tl_part__load(p, (uint32_t)i, &cols[c]);
        }
        uint32_t np = 0;
        for (uint32_t i = 0; i < p->n_cols; i++)
            np += p->cols[i].col == TL_COL_PROP;
        const uint8_t **pv = tl_xcalloc(np + 1, sizeof *pv);
        uint32_t *pk = tl_xcalloc(np + 1, sizeof *pk), j = 0;
        for (uint32_t i = 0; i < p->n_cols && !rc; i++) {
            if (p->cols[i].col != TL_COL_PROP) continue;
            pk[j] = p->cols[i].key;
            rc = tl_part__load(p, i, (const void **)&pv[j]);
            j++;
        }
        uint32_t *keys = tl_xmalloc((np + 1) * 4);
        uint8_t *types = tl_xmalloc(np + 1);
        uint64_t *vals = tl_xmalloc((np + 1) * 8);
        for (uint32_t r = 0; r < p->n_rows && !rc; r++) {
            uint32_t row[TL_COL_N];
            for (int c = 1; c < TL_COL_N; c++)
                row[c] = ((const uint32_t *)cols[c])[r];
            const uint8_t *e = cols[TL_COL_EVENT_ID];
            uint32_t a = tl_le32(e + (size_t)r * 4), b = tl_le32(e + (size_t)(r + 1) * 4);
            tl_str eid = {(const char *)e + (size_t)(p->n_rows + 1) * 4 + a, b - a};
            uint32_t m = 0;
            for (uint32_t q = 0; q < np; q++) {
                if (!pv[q][r]) continue;
                keys[m] = pk[q];
                types[m] = pv[q][r];
                if (types[m] == TL_PV_NUM)
                    memcpy(&vals[m], pv[q] + tl_prop__num_off(p->n_rows) + (size_t)r * 8, 8);
                else
                    vals[m] = tl_le32(pv[q] + tl_prop__str_off(p->n_rows) + (size_t)r * 4);
                m++;
            }
            tl_open__append(op, ((const int64_t *)cols[TL_COL_TS])[r], row, eid, keys, types, vals,
                            m);
        }
        free(keys);
        free(types);
        free(vals);
        free(pv);
        free(pk);
    }
    if (!rc)
        rc = tl_part__write(path, seq, project, op, out, err);
    else
        tl_err_set(err, rc, "compaction: cannot read an input part");
    tl_open__free(op);
    return rc;
}
