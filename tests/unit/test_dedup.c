/* Unit tests of the indexer's dedup set (src/index/index_int.h) in a mkdtemp directory: run
 * lifecycle (insert, flush at prepare, commit, reopen), lookups over many runs and the
 * filter's false-positive rate, the memtable's sort (also for keys that wrap around its end),
 * background merges, crashes between writing runs and the checkpoint that names them,
 * missing and damaged files. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include <dirent.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "index/index_int.h"
#include "util/diag.h"
#include "util/io.h"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tl_dedup_test.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tl_diag_set_level(TL_LOG_INFO);
    tl_rm_rf(f->dir);
    free(f);
    return 0;
}

#define DAY0 20454 /* 2026-01-01 */

/* The i-th test key of a series, of an event on `day`. */
static tl_h128 keyd(const char *series, uint64_t i, int64_t day)
{
    char id[64];
    snprintf(id, sizeof id, "%s-%" PRIu64, series, i);
    return tl_dedup__key(TL_STR("p"), tl_str_c(id), day * 86400000 + 1234);
}

static tl_h128 key(const char *series, uint64_t i)
{
    return keyd(series, i, DAY0);
}

/* One insert, as the writer does it. */
static int ins(tl_dedup *d, tl_h128 k)
{
    tl_dedup__write_begin(d);
    int rc = tl_dedup__insert(d, k);
    tl_dedup__write_end(d);
    return rc;
}

static tl_dedup *open_ok(const char *dir, uint64_t aux, bool want_rebuild)
{
    tl_dedup *d = NULL;
    bool rebuild = false;
    tl_err err = {0};
    int rc = tl_dedup__open(dir, aux, &rebuild, &d, &err);
    if (rc) fail_msg("open: %s", err.msg);
    assert_int_equal(rebuild, want_rebuild);
    return d;
}

/* One checkpoint: prepare, then (as if the store recorded it) commit. Returns the aux. */
static uint64_t checkpoint(tl_dedup *d)
{
    uint64_t aux = 0;
    tl_err err = {0};
    int rc = tl_dedup__prepare(d, &aux, &err);
    if (rc) fail_msg("prepare: %s", err.msg);
    assert_true(aux & TL_DEDUP_AUX_TAG);
    tl_dedup__committed(d, aux);
    return aux;
}

static void insert_range(tl_dedup *d, const char *series, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        assert_int_equal(ins(d, key(series, i)), 1);
}

static void assert_range(tl_dedup *d, const char *series, uint64_t from, uint64_t to, int want)
{
    for (uint64_t i = from; i < to; i++)
        if (tl_dedup__contains(d, key(series, i)) != want)
            fail_msg("%s-%" PRIu64 ": contains != %d", series, i, want);
}

/* Counts the directory's files whose names start with prefix. */
static int count_files(const char *dir, const char *prefix)
{
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dh)))
        if (!strncmp(de->d_name, prefix, strlen(prefix))) n++;
    closedir(dh);
    return n;
}

/* Checks every run file of the directory with tl_dedup__check_run. */
static void check_runs(const char *dir)
{
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    struct dirent *de;
    char path[512];
    while ((de = readdir(dh))) {
        if (strncmp(de->d_name, "run-", 4)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        tl_err err = {0};
        if (tl_dedup__check_run(path, &err)) fail_msg("check: %s", err.msg);
    }
    closedir(dh);
}

static tl_dedup_stats stats(tl_dedup *d)
{
    tl_dedup_stats st;
    tl_dedup__get_stats(d, &st);
    return st;
}

/* ---- tests ---- */

static void test_lifecycle(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true); /* a new store: aux 0 */
    insert_range(d, "a", 0, 1000);
    assert_int_equal(ins(d, key("a", 7)), 0); /* memtable hit */
    assert_range(d, "a", 0, 1000, 1);
    assert_range(d, "b", 0, 1000, 0);
    assert_int_equal(tl_dedup__mem_keys(d), 1000);
    uint64_t aux = checkpoint(d);
    assert_int_equal(tl_dedup__mem_keys(d), 0);
    assert_int_equal(stats(d).runs, 1);
    assert_int_equal(ins(d, key("a", 7)), 0); /* run hit */
    assert_range(d, "a", 0, 1000, 1);
    /* A checkpoint without new keys keeps the generation. */
    assert_int_equal(checkpoint(d), aux);
    tl_dedup__free(d);
    assert_int_equal(count_files(f->dir, "run-"), 1);
    assert_int_equal(count_files(f->dir, "manifest-"), 1);
    check_runs(f->dir);

    d = open_ok(f->dir, aux, false);
    assert_range(d, "a", 0, 1000, 1);
    assert_range(d, "b", 0, 1000, 0);
    tl_dedup_stats st = stats(d);
    assert_int_equal(st.run_keys, 1000);
    assert_int_equal(st.mem_keys, 0);
    assert_true(st.disk_bytes > 1000 * 16);
    insert_range(d, "b", 0, 10);
    uint64_t aux2 = checkpoint(d);
    assert_true(aux2 != aux);
    tl_dedup__free(d);
    assert_int_equal(count_files(f->dir, "manifest-"), 1); /* the old one is gone */
    d = open_ok(f->dir, aux2, false);
    assert_range(d, "a", 0, 1000, 1);
    assert_range(d, "b", 0, 10, 1);
    tl_dedup__free(d);
}

/* Many runs: every key found in its run, absent keys rarely read a page (the filter). */
static void test_many_runs_and_filter(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    enum { RUNS = 3, PER = 20000 }; /* past tier 0, so no merge starts */
    uint64_t aux = 0;
    for (int r = 0; r < RUNS; r++) {
        insert_range(d, "k", (uint64_t)r * PER, (uint64_t)(r + 1) * PER);
        aux = checkpoint(d);
    }
    assert_int_equal(stats(d).runs, RUNS);
    tl_dedup__free(d);
    d = open_ok(f->dir, aux, false);
    assert_range(d, "k", 0, RUNS * PER, 1);
    uint64_t before = stats(d).page_reads;
    enum { ABSENT = 20000 };
    assert_range(d, "absent", 0, ABSENT, 0);
    double fp = (double)(stats(d).page_reads - before) / (ABSENT * RUNS);
    print_message("filter false positives: %.4f\n", fp);
    assert_true(fp < 0.02);
    for (uint64_t i = 0; i < RUNS * PER; i += 97)
        assert_int_equal(ins(d, key("k", i)), 0);
    tl_dedup__free(d);
    check_runs(f->dir);
}

/* Memtable growth and its near-linear sort, with keys that wrap around the table's end. */
static void test_memtable_sort(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    enum { N = 200000 };
    insert_range(d, "m", 0, N);
    /* Keys whose home slot is the last ones: their clusters wrap to slot 0. */
    for (uint64_t i = 0; i < 64; i++)
        assert_int_equal(ins(d, (tl_h128){(i << 17) | 1, UINT64_MAX - i / 4}), 1);
    for (uint64_t i = 0; i < 64; i++)
        assert_int_equal(ins(d, (tl_h128){(i << 17) | 1, i / 4}), 1);
    uint64_t aux = checkpoint(d);
    tl_dedup__free(d);
    check_runs(f->dir);
    d = open_ok(f->dir, aux, false);
    assert_range(d, "m", 0, N, 1);
    for (uint64_t i = 0; i < 64; i++) {
        assert_int_equal(tl_dedup__contains(d, (tl_h128){(i << 17) | 1, UINT64_MAX - i / 4}), 1);
        assert_int_equal(tl_dedup__contains(d, (tl_h128){(i << 17) | 1, i / 4}), 1);
    }
    assert_int_equal(stats(d).run_keys, N + 128);
    tl_dedup__free(d);
}

/* FANOUT runs of tier 0 merge into one in the background; the inputs are deleted only after
 * the checkpoint that names the result. */
static void test_merge(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    uint64_t aux = 0;
    for (int r = 0; r < TL_DEDUP_FANOUT; r++) {
        insert_range(d, "g", (uint64_t)r * 500, (uint64_t)(r + 1) * 500);
        aux = checkpoint(d); /* the last commit starts the merge */
    }
    tl_dedup__wait_merge(d);
    assert_true(tl_dedup__merge_ready(d));
    assert_int_equal(stats(d).runs, TL_DEDUP_FANOUT); /* not installed yet */
    assert_int_equal(count_files(f->dir, "run-"), TL_DEDUP_FANOUT + 1);
    assert_range(d, "g", 0, TL_DEDUP_FANOUT * 500, 1);

    /* A crash after the merge was installed and its manifest written, before the store
     * recorded it: the old manifest's runs must all still be there. */
    uint64_t aux_pending = 0;
    tl_err err = {0};
    assert_int_equal(tl_dedup__prepare(d, &aux_pending, &err), 0);
    assert_true(aux_pending != aux);
    assert_int_equal(stats(d).runs, 1);
    assert_int_equal(count_files(f->dir, "run-"), TL_DEDUP_FANOUT + 1);
    char copy[128], cmd[400];
    snprintf(copy, sizeof copy, "%s/copy", f->dir);
    snprintf(cmd, sizeof cmd, "mkdir %s && cp -a %s/run-* %s/manifest-* %s/", copy, f->dir, f->dir,
             copy);
    assert_int_equal(system(cmd), 0);
    tl_dedup__committed(d, aux_pending);
    assert_int_equal(count_files(f->dir, "run-"), 1);
    assert_int_equal(count_files(f->dir, "manifest-"), 1);
    assert_int_equal(stats(d).merges, 1);
    assert_range(d, "g", 0, TL_DEDUP_FANOUT * 500, 1);
    tl_dedup__free(d);
    check_runs(f->dir);

    d = open_ok(f->dir, aux_pending, false);
    assert_int_equal(stats(d).runs, 1);
    assert_range(d, "g", 0, TL_DEDUP_FANOUT * 500, 1);
    assert_range(d, "h", 0, 100, 0);
    tl_dedup__free(d);

    /* The crashed copy opens at the old checkpoint: inputs kept, merge result deleted. */
    d = open_ok(copy, aux, false);
    assert_int_equal(stats(d).runs, TL_DEDUP_FANOUT);
    assert_range(d, "g", 0, TL_DEDUP_FANOUT * 500, 1);
    tl_dedup__free(d);
    assert_int_equal(count_files(copy, "run-"), TL_DEDUP_FANOUT);
    assert_int_equal(count_files(copy, "manifest-"), 1);
}

/* A merge still running when the set is freed is abandoned; its file does not survive. */
static void test_free_during_merge(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    uint64_t aux = 0;
    for (int r = 0; r < TL_DEDUP_FANOUT; r++) {
        insert_range(d, "s", (uint64_t)r * 1000, (uint64_t)(r + 1) * 1000);
        aux = checkpoint(d);
    }
    tl_dedup__free(d); /* maybe mid-merge, maybe done: either way no orphan is left */
    assert_int_equal(count_files(f->dir, "run-"), TL_DEDUP_FANOUT);
    d = open_ok(f->dir, aux, false);
    assert_range(d, "s", 0, TL_DEDUP_FANOUT * 1000, 1);
    tl_dedup__free(d);
}

/* A crash between writing a run (and its manifest) and the store's checkpoint: reopening at
 * the previous checkpoint deletes them, and their keys are absent (the log replay re-inserts
 * them). */
static void test_crash_before_checkpoint(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    insert_range(d, "old", 0, 300);
    uint64_t aux = checkpoint(d);
    insert_range(d, "new", 0, 300);
    uint64_t aux2 = 0;
    tl_err err = {0};
    assert_int_equal(tl_dedup__prepare(d, &aux2, &err), 0); /* run + manifest written */
    assert_true(aux2 != aux);
    tl_dedup__free(d); /* the crash: the store never recorded aux2 */
    assert_int_equal(count_files(f->dir, "run-"), 2);
    assert_int_equal(count_files(f->dir, "manifest-"), 2);
    /* A partly written run of a later flush, too. */
    char path[256];
    snprintf(path, sizeof path, "%s/run-00000000000000ff", f->dir);
    assert_int_equal(tl_write_file_atomic(path, "partial", 7), 0);

    tl_diag_set_level(TL_LOG_WARN); /* the removals are logged at info */
    d = open_ok(f->dir, aux, false);
    assert_int_equal(count_files(f->dir, "run-"), 1);
    assert_int_equal(count_files(f->dir, "manifest-"), 1);
    assert_range(d, "old", 0, 300, 1);
    assert_range(d, "new", 0, 300, 0);
    insert_range(d, "new", 0, 300); /* the replay */
    uint64_t aux3 = checkpoint(d);
    tl_dedup__free(d);
    d = open_ok(f->dir, aux3, false);
    assert_range(d, "old", 0, 300, 1);
    assert_range(d, "new", 0, 300, 1);
    tl_dedup__free(d);
}

/* Missing or damaged files that the checkpoint names refuse to open, saying what to do. */
static void test_missing_and_damaged(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    insert_range(d, "x", 0, 5000);
    uint64_t aux = checkpoint(d);
    tl_dedup__free(d);
    char run[256], man[256], cmd[600];
    snprintf(run, sizeof run, "%s/run-0000000000000001", f->dir);
    snprintf(man, sizeof man, "%s/manifest-%016" PRIx64, f->dir, aux & ~TL_DEDUP_AUX_TAG);

    /* A flipped byte in the filter. */
    int fd = open(run, O_RDWR);
    assert_true(fd >= 0);
    off_t end = lseek(fd, 0, SEEK_END);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, end - 10), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, end - 10), 1);
    tl_err err = {0};
    bool rebuild = false;
    tl_dedup *bad = NULL;
    assert_int_equal(tl_dedup__open(f->dir, aux, &rebuild, &bad, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "run-0000000000000001"));
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, end - 10), 1);
    close(fd);

    /* The run gone. */
    snprintf(cmd, sizeof cmd, "mv %s %s.away", run, run);
    assert_int_equal(system(cmd), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(tl_dedup__open(f->dir, aux, &rebuild, &bad, &err), TL_ENOENT);
    assert_non_null(strstr(err.msg, "run-0000000000000001"));
    assert_non_null(strstr(err.msg, "remove the directory"));
    snprintf(cmd, sizeof cmd, "mv %s.away %s", run, run);
    assert_int_equal(system(cmd), 0);

    /* The manifest gone, then damaged. */
    snprintf(cmd, sizeof cmd, "mv %s %s.away", man, man);
    assert_int_equal(system(cmd), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(tl_dedup__open(f->dir, aux, &rebuild, &bad, &err), TL_ENOENT);
    assert_non_null(strstr(err.msg, "manifest-"));
    snprintf(cmd, sizeof cmd,
             "mv %s.away %s && printf X | dd of=%s bs=1 seek=30 conv=notrunc "
             "2>/dev/null",
             man, man, man);
    assert_int_equal(system(cmd), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(tl_dedup__open(f->dir, aux, &rebuild, &bad, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "corrupt dedup manifest"));

    /* The whole directory removed by the operator: opens empty, to be rebuilt. */
    tl_rm_rf(f->dir);
    tl_diag_set_level(TL_LOG_ERROR);
    d = open_ok(f->dir, aux, true);
    assert_range(d, "x", 0, 10, 0);
    tl_dedup__free(d);
}

/* A store from before the run files (aux was a key count): the set opens empty to be
 * rebuilt, and leftovers of an earlier interrupted rebuild are removed. */
static void test_old_aux_rebuilds(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    insert_range(d, "y", 0, 100);
    (void)checkpoint(d);
    tl_dedup__free(d);
    tl_diag_set_level(TL_LOG_WARN);
    d = open_ok(f->dir, 12345, true);
    assert_int_equal(count_files(f->dir, "run-"), 0);
    assert_int_equal(count_files(f->dir, "manifest-"), 0);
    assert_range(d, "y", 0, 100, 0);
    tl_dedup__free(d);
}

/* The day is not part of a key's identity: a retry whose corrected time moved to another day
 * is the same event. */
static void test_day_not_identity(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    assert_int_equal(ins(d, keyd("t", 1, DAY0)), 1);
    assert_int_equal(ins(d, keyd("t", 1, DAY0 + 1)), 0);
    assert_int_equal(tl_dedup__contains(d, keyd("t", 1, 0)), 1);
    uint64_t aux = checkpoint(d);
    assert_int_equal(ins(d, keyd("t", 1, DAY0 - 300)), 0);
    tl_dedup__free(d);
    d = open_ok(f->dir, aux, false);
    assert_int_equal(tl_dedup__contains(d, keyd("t", 1, DAY0 + 5)), 1);
    assert_int_equal(tl_dedup__contains(d, keyd("t", 2, DAY0)), 0);
    tl_dedup__free(d);
}

/* Past the horizon: a run of only expired keys is dropped whole, a mostly expired one is
 * rewritten without them, a mostly live one is kept as it is; merges leave expired keys out. */
static void test_expiry(void **state)
{
    fixture *f = *state;
    tl_dedup *d = open_ok(f->dir, 0, true);
    insert_range(d, "old", 0, 400); /* run A: all old */
    for (uint64_t i = 0; i < 400; i++)
        assert_int_equal(ins(d, keyd("old", i, DAY0 - 200)), 0); /* already there */
    checkpoint(d);
    for (uint64_t i = 0; i < 300; i++) /* run B: 3/4 old */
        assert_int_equal(ins(d, keyd("b", i, i < 225 ? DAY0 - 100 : DAY0 + 50)), 1);
    checkpoint(d);
    for (uint64_t i = 0; i < 300; i++) /* run C: 1/3 old */
        assert_int_equal(ins(d, keyd("c", i, i < 100 ? DAY0 - 100 : DAY0 + 50)), 1);
    checkpoint(d);
    assert_int_equal(stats(d).runs, 3);
    assert_int_equal(stats(d).run_keys, 1000);

    tl_dedup__set_horizon(d, DAY0 + 1); /* DAY0 - 200, DAY0 - 100 and DAY0 have expired */
    uint64_t aux = checkpoint(d);       /* drops A; starts the rewrite of B */
    assert_int_equal(stats(d).runs, 2);
    assert_int_equal(stats(d).expired, 400);
    tl_dedup__wait_merge(d);
    aux = checkpoint(d); /* installs B without its expired keys */
    tl_dedup_stats st = stats(d);
    assert_int_equal(st.runs, 2);
    assert_int_equal(st.expired, 625);
    assert_int_equal(st.run_keys, 75 + 300);
    assert_int_equal(count_files(f->dir, "run-"), 2);
    check_runs(f->dir);
    assert_range(d, "old", 0, 400, 0);
    assert_range(d, "b", 0, 225, 0);
    assert_range(d, "b", 225, 300, 1);
    assert_range(d, "c", 0, 300, 1); /* C kept whole: expired keys still count until merged */
    tl_dedup__free(d);
    d = open_ok(f->dir, aux, false);
    assert_range(d, "b", 225, 300, 1);
    assert_range(d, "c", 100, 300, 1);
    assert_int_equal(stats(d).run_keys, 375);
    tl_dedup__free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_runs_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memtable_sort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_during_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_aux_rebuilds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_day_not_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
