/* Part-level pieces of the data lifecycle (docs/lifecycle.md): rewriting a sealed part without
 * the rows of erased persons (physical erasure), and listing the dictionary ids a part's rows
 * use (so that the store can scrub dictionary strings nothing uses any more).
 *
 * Both read columns with tl_part__read (their own memory, not the shared cache): they run at
 * checkpoints, over parts that queries may not be using at all, and must not push the
 * queries' columns out of the cache. The rewrite goes through an open part and
 * tl_part__write, as compaction does, so the new file is an ordinary part of the current
 * format. */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"
#include "util/io.h"

static bool erased(const uint32_t *person, uint32_t n_dids, uint32_t did)
{
    return did < n_dids && person[did] == TL_PERSON_ERASED;
}

/* Reads every base column of p: cols[c] for c <= TL_COL_EVENT_ID, then the properties. */
typedef struct part_cols {
    void *cols[TL_COL_N + 1];
    uint32_t np;
    uint32_t *pkey;
    uint8_t **pv;
} part_cols;

static void cols_free(part_cols *pc)
{
    for (uint32_t c = 0; c <= TL_COL_EVENT_ID; c++)
        free(pc->cols[c]);
    for (uint32_t q = 0; q < pc->np; q++)
        free(pc->pv[q]);
    free(pc->pv);
    free(pc->pkey);
}

static int cols_read(tl_part *p, part_cols *pc)
{
    memset(pc, 0, sizeof *pc);
    int rc = 0;
    for (uint32_t c = 0; c <= TL_COL_EVENT_ID && !rc; c++) {
        int i = tl_part__find(p, c, 0);
        rc = i < 0 ? TL_EBADMSG : tl_part__read(p, (uint32_t)i, &pc->cols[c]);
    }
    for (uint32_t i = 0; i < p->n_cols; i++)
        pc->np += p->cols[i].col == TL_COL_PROP;
    pc->pkey = tl_xcalloc(pc->np + 1, sizeof *pc->pkey);
    pc->pv = tl_xcalloc(pc->np + 1, sizeof *pc->pv);
    for (uint32_t i = 0, j = 0; i < p->n_cols && !rc; i++) {
        if (p->cols[i].col != TL_COL_PROP) continue;
        pc->pkey[j] = p->cols[i].key;
        rc = tl_part__read(p, i, (void **)&pc->pv[j]);
        j++;
    }
    if (rc) cols_free(pc);
    return rc;
}

int tl_part__filter(const char *path, uint64_t seq, uint32_t project, tl_part *in,
                    const uint32_t *person, uint32_t n_dids, tl_part **out, uint32_t *dropped,
                    tl_err *err)
{
    *out = NULL;
    *dropped = 0;
    int di = tl_part__find(in, TL_COL_DID, 0), li = tl_part__find(in, TL_COL_LINK, 0);
    uint32_t *did = NULL, *link = NULL;
    int rc = di < 0 || li < 0 ? TL_EBADMSG : tl_part__read(in, (uint32_t)di, (void **)&did);
    if (!rc) rc = tl_part__read(in, (uint32_t)li, (void **)&link);
    uint32_t n = in->n_rows, gone = 0;
    bool relink = false;
    for (uint32_t r = 0; r < n && !rc; r++) {
        if (erased(person, n_dids, did[r]))
            gone++;
        else if (link[r] && erased(person, n_dids, link[r] - 1))
            relink = true;
    }
    free(did);
    free(link);
    if (rc) return tl_err_set(err, rc, "%s: cannot read its identity columns", in->path);
    *dropped = gone;
    if ((!gone && !relink) || gone == n) return 0;

    part_cols pc;
    rc = cols_read(in, &pc);
    if (rc) return tl_err_set(err, rc, "%s: cannot read its columns", in->path);
    tl_open *op = tl_open__new();
    uint32_t *keys = tl_xmalloc((pc.np + 1) * 4);
    uint8_t *types = tl_xmalloc(pc.np + 1);
    uint64_t *vals = tl_xmalloc((pc.np + 1) * 8);
    const uint8_t *e = pc.cols[TL_COL_EVENT_ID];
    const char *ebytes = (const char *)e + (size_t)(n + 1) * 4;
    for (uint32_t r = 0; r < n; r++) {
        uint32_t row[TL_COL_N];
        for (int c = 1; c < TL_COL_N; c++)
            row[c] = ((const uint32_t *)pc.cols[c])[r];
        if (erased(person, n_dids, row[TL_COL_DID])) continue;
        if (row[TL_COL_LINK] && erased(person, n_dids, row[TL_COL_LINK] - 1)) row[TL_COL_LINK] = 0;
        uint32_t a = tl_le32(e + (size_t)r * 4), b = tl_le32(e + (size_t)(r + 1) * 4);
        uint32_t m = 0;
        for (uint32_t q = 0; q < pc.np; q++) {
            const uint8_t *v = pc.pv[q];
            if (!v[r]) continue;
            keys[m] = pc.pkey[q];
            types[m] = v[r];
            if (types[m] == TL_PV_NUM)
                memcpy(&vals[m], v + tl_prop__num_off(n) + (size_t)r * 8, 8);
            else
                vals[m] = tl_le32(v + tl_prop__str_off(n) + (size_t)r * 4);
            m++;
        }
        tl_open__append(op, ((const int64_t *)pc.cols[TL_COL_TS])[r], row,
                        (tl_str){ebytes + a, b - a}, keys, types, vals, m);
    }
    free(keys);
    free(types);
    free(vals);
    cols_free(&pc);
    rc = tl_part__write(path, seq, project, op, out, err);
    tl_open__free(op);
    return rc;
}

static void set_bit(uint8_t *bits, uint32_t n_bits, uint32_t id)
{
    if (id < n_bits) bits[id >> 3] |= (uint8_t)(1u << (id & 7));
}

int tl_part__dict_refs(tl_part *p, uint8_t *bits, uint32_t n_bits)
{
    uint32_t n = p->n_rows;
    int rc = 0;
    for (uint32_t i = 0; i < p->n_cols && !rc; i++) {
        const tl_colent *c = &p->cols[i];
        bool dict_col = c->col == TL_COL_EVENT || c->col == TL_COL_SESSION ||
                        (c->col >= TL_COL_FIELD && c->col < TL_COL_FIELD + TL_F_COUNT);
        if (!dict_col && c->col != TL_COL_PROP) continue;
        void *raw = NULL;
        rc = tl_part__read(p, i, &raw);
        if (rc) break;
        if (dict_col) {
            const uint32_t *v = raw;
            for (uint32_t r = 0; r < n; r++)
                set_bit(bits, n_bits, v[r]);
        } else {
            const uint8_t *type = raw;
            const uint32_t *str = (const uint32_t *)(const void *)(type + tl_prop__str_off(n));
            bool any = false;
            for (uint32_t r = 0; r < n; r++) {
                any = any || type[r];
                if (type[r] == TL_PV_STR) set_bit(bits, n_bits, str[r]);
            }
            if (any) set_bit(bits, n_bits, c->key);
        }
        free(raw);
    }
    return rc;
}
