/* Fuzz target for the dedup set's run files (src/index/dedup.c): the input is written as run
 * 1 and runs 2..4 (the same bytes), with a valid manifest naming them and the key count of
 * the input's header, then opened as at a restart. Must never crash, over-read or leak: a
 * damaged run fails with TL_EBADMSG (and a reason). An opened set answers lookups (of keys
 * taken from the input and of others), validates with tl_dedup__check_run, and merges its
 * four runs (the merge reads every key: unsorted or damaged keys fail it, never the process).
 *
 * The header's checksum stops most mutations at the door, so inputs of odd length get it
 * recomputed first: those reach the page index, the filter and the keys behind it. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "index/index_int.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void init(void)
{
    /* tmpfs when there is one: runs and manifests are fsynced. */
    snprintf(g_dir, sizeof g_dir, "/dev/shm/tl_fuzz_dedup.XXXXXX");
    if (!mkdtemp(g_dir)) {
        snprintf(g_dir, sizeof g_dir, "/tmp/tl_fuzz_dedup.XXXXXX");
        if (!mkdtemp(g_dir)) abort();
    }
    tl_diag_set_level(-1); /* damaged files are logged */
}

/* Makes the header's meta_hash right for the layout the header claims (see dedup.c). */
static void fix_hash(uint8_t *d, size_t size)
{
    if (size < 64) return;
    uint64_t n = tl_le64(d + 16);
    if (n > size / 16) return;
    uint64_t off = 64 + n * 16;
    if (off > size) return;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, d, 40);
    XXH3_64bits_update(&st, d + 48, 16);
    XXH3_64bits_update(&st, d + off, size - off);
    tl_put64(d + 40, XXH3_64bits_digest(&st));
}

static void write_file(const char *name, const void *p, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (len && fwrite(p, 1, len, f) != len) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) init();
    tl_rm_rf(g_dir);
    if (tl_mkdir_p(g_dir)) abort();
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    if (size % 2) fix_hash(copy, size);
    uint64_t n_keys = size >= 24 ? tl_le64(copy + 16) : 0;
    char name[64];
    for (int i = 1; i <= TL_DEDUP_FANOUT; i++) {
        snprintf(name, sizeof name, "run-%016x", i);
        write_file(name, copy, size);
    }
    /* manifest 1: the runs 1..FANOUT of n_keys each, next id FANOUT + 1 */
    tl_buf m = TL_BUF_INIT;
    tl_buf_add(&m, "TLDDMAN1", 8);
    tl_buf_u32(&m, 1);
    tl_buf_u32(&m, TL_DEDUP_FANOUT);
    tl_buf_u64(&m, 1);
    tl_buf_u64(&m, TL_DEDUP_FANOUT + 1);
    for (int i = 1; i <= TL_DEDUP_FANOUT; i++) {
        tl_buf_u64(&m, (uint64_t)i);
        tl_buf_u64(&m, n_keys);
    }
    tl_buf_u64(&m, XXH3_64bits(m.p, m.len));
    write_file("manifest-0000000000000001", m.p, m.len);
    tl_buf_fini(&m);

    tl_dedup *d = NULL;
    bool rebuild = false;
    tl_err err = {0};
    int rc = tl_dedup__open(g_dir, TL_DEDUP_AUX_TAG | 1, &rebuild, &d, &err);
    if (rc) {
        if (rc != TL_EBADMSG || !err.msg[0]) abort();
        free(copy);
        return 0;
    }
    /* Lookups: keys as stored in the input (where it has them), and made-up ones. */
    for (size_t off = 64; off + 16 <= size && off < 64 + 16 * 64; off += 16) {
        tl_h128 k = {tl_le64(copy + off), tl_le64(copy + off + 8)};
        if (tl_dedup__contains(d, k) > 1) abort();
    }
    for (uint64_t i = 0; i < 64; i++) {
        char id[32];
        snprintf(id, sizeof id, "id-%" PRIu64, i);
        if (tl_dedup__contains(d, tl_dedup__key(TL_STR("p"), tl_str_c(id), 0)) > 1) abort();
    }
    char path[256];
    snprintf(path, sizeof path, "%s/run-0000000000000001", g_dir);
    memset(&err, 0, sizeof err);
    rc = tl_dedup__check_run(path, &err);
    if (rc && (rc != TL_EBADMSG || !err.msg[0])) abort();
    /* A commit starts the merge of the four runs of one tier (when they are of tier 0), with
     * the keys of some days expired (the key at offset 64's day, if any). */
    if (size >= 80) tl_dedup__set_horizon(d, (uint32_t)(tl_le64(copy + 64) >> 1) & 0xFFFF);
    uint64_t aux = 0;
    if (tl_dedup__prepare(d, &aux, &err)) abort();
    tl_dedup__committed(d, aux);
    tl_dedup__wait_merge(d);
    if (tl_dedup__prepare(d, &aux, &err)) abort();
    tl_dedup__committed(d, aux);
    tl_dedup__free(d);
    free(copy);
    return 0;
}
