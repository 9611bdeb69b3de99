/* Fuzz target for sealed part files: the input is written as a part file, opened with the
 * store's tl_part__open and every column is loaded, then read the way snapshots read it
 * (n_rows values, event ids through their offsets). Must never crash, over-read or leak; a
 * damaged file fails with TL_EBADMSG. A part whose columns all load is also merged (the
 * compaction path) and the merged part must hold the same number of rows.
 *
 * Checksums stop most mutations at the door, so inputs of odd length get their column,
 * directory and header CRCs recomputed first: those reach the decoders behind them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "store/store_int.h"
#include "util/crc.h"
#include "util/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];
static char g_in[128], g_out[128];

static void init(void)
{
    /* tmpfs when there is one: the merge fsyncs its output. */
    snprintf(g_dir, sizeof g_dir, "/dev/shm/tl_fuzz_part.XXXXXX");
    if (!mkdtemp(g_dir)) {
        snprintf(g_dir, sizeof g_dir, "/tmp/tl_fuzz_part.XXXXXX");
        if (!mkdtemp(g_dir)) abort();
    }
    snprintf(g_in, sizeof g_in, "%s/in.part", g_dir);
    snprintf(g_out, sizeof g_out, "%s/out.part", g_dir);
    tl_diag_set_level(-1); /* corrupt columns are logged */
}

static volatile uint64_t g_sink;

/* Reads a loaded column as a snapshot reader would. */
static void touch(const tl_part *p, const tl_colent *c, const uint8_t *raw)
{
    uint64_t acc = 0;
    uint32_t n = p->n_rows;
    if (c->col == TL_COL_TS) {
        for (uint32_t r = 0; r < n; r++)
            acc += (uint64_t)((const int64_t *)(const void *)raw)[r];
    } else if (c->col == TL_COL_EVENT_ID) {
        const uint8_t *bytes = raw + (size_t)(n + 1) * 4;
        for (uint32_t r = 0; r < n; r++) {
            uint32_t a = tl_le32(raw + (size_t)r * 4), b = tl_le32(raw + (size_t)(r + 1) * 4);
            for (uint32_t k = a; k < b; k++)
                acc += bytes[k];
        }
    } else if (c->col == TL_COL_PROP) {
        for (uint32_t r = 0; r < n; r++)
            acc += raw[r] + tl_le32(raw + tl_prop__str_off(n) + (size_t)r * 4) +
                   tl_le64(raw + tl_prop__num_off(n) + (size_t)r * 8);
    } else if (c->col < TL_COL_N) {
        for (uint32_t r = 0; r < n; r++)
            acc += ((const uint32_t *)(const void *)raw)[r];
    }
    g_sink += acc;
}

/* Makes the checksums of a part image right (layout in src/store/part.c). */
static void fix_crcs(uint8_t *d, size_t size)
{
    if (size < 56) return;
    uint64_t n_cols = tl_le32(d + 36);
    if (56 + n_cols * 40 > size) return;
    for (uint64_t i = 0; i < n_cols; i++) {
        uint8_t *e = d + 56 + i * 40;
        uint64_t off = tl_le64(e + 8), clen = tl_le64(e + 16);
        if (off <= size && clen <= size - off)
            tl_put32(e + 32, tl_crc32c(0, d + off, (size_t)clen));
    }
    tl_put32(d + 48, tl_crc32c(0, d + 56, (size_t)n_cols * 40));
    tl_put32(d + 52, tl_crc32c(0, d, 52));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) init();
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    if (size % 2) fix_crcs(copy, size);
    FILE *f = fopen(g_in, "wb");
    if (!f) abort();
    if (size && fwrite(copy, 1, size, f) != size) abort();
    fclose(f);
    free(copy);
    tl_part *p = NULL;
    tl_err err = {0};
    int rc = tl_part__open(g_in, 1, 0, &p, &err);
    if (rc) {
        if (rc != TL_EBADMSG || !err.msg[0]) abort();
        return 0;
    }
    bool all = true;
    for (uint32_t i = 0; i < p->n_cols; i++) {
        const void *raw = NULL;
        rc = tl_part__load(p, i, &raw);
        if (rc) {
            if (rc != TL_EBADMSG) abort();
            all = false;
            continue;
        }
        touch(p, &p->cols[i], raw);
        /* A second load returns the cached column. */
        const void *again = NULL;
        if (tl_part__load(p, i, &again) || again != raw) abort();
    }
    /* Single frames of every column (person timelines read cells this way): they fail
     * cleanly, or equal their bytes of the whole column where that loaded (in the layouts
     * that decoding leaves as they are: not times, not properties). */
    static uint8_t frame[TL_PART_FRAME];
    for (uint32_t i = 0; i < p->n_cols; i++) {
        const tl_colent *c = &p->cols[i];
        const uint8_t *whole = NULL;
        if (c->col != TL_COL_TS && c->col != TL_COL_PROP &&
            tl_part__load(p, i, (const void **)&whole))
            whole = NULL;
        uint64_t k = (c->rawlen + TL_PART_FRAME - 1) / TL_PART_FRAME;
        for (uint64_t j = 0; j < k && j < 64; j++) {
            size_t len = 0;
            rc = tl_part__frame(p, i, j, frame, &len);
            if (rc && rc != TL_EBADMSG && rc != TL_ENOENT) abort();
            if (rc) break;
            if (len > TL_PART_FRAME || j * TL_PART_FRAME + len > c->rawlen) abort();
            if (whole && memcmp(frame, whole + j * TL_PART_FRAME, len)) abort();
        }
    }
    /* The merge needs every base column; it reads them all. */
    for (uint32_t c = 0; c <= TL_COL_EVENT_ID; c++)
        all = all && tl_part__find(p, c, 0) >= 0;
    if (all) {
        tl_part *m = NULL;
        rc = tl_part__merge(g_out, 2, 0, &p, 1, NULL, &m, &err);
        if (rc == 0) {
            if (m->n_rows != p->n_rows) abort();
            tl_part__unref(m);
        } else if (rc != TL_EBADMSG) {
            abort();
        }
        unlink(g_out);
    }
    tl_part__unref(p);
    return 0;
}
