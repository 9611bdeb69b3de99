/* Unit tests of the store's data lifecycle (docs/lifecycle.md): the column cache keeps to its
 * byte budget without freeing what a live snapshot uses; retention drops whole old days and
 * their files; erasing a person removes its rows from the part files and its ids and strings
 * from the dictionary files (searched for in every file, part columns decompressed). Every
 * test works in its own mkdtemp directory. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "record.h"
#include "store.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/io.h"
#include "util/time.h"

#define DAY TL_MS_PER_DAY

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tl_life_test.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tl_rm_rf(f->dir);
    free(f);
    return 0;
}

static tl_store *open_opts(const char *dir, const tl_store_opts *o)
{
    tl_store *s = NULL;
    uint64_t lp, ax;
    tl_err err = {0};
    int rc = tl_store_open(dir, o, &s, &lp, &ax, &err);
    if (rc) fail_msg("tl_store_open(%s): %d %s", dir, rc, err.msg);
    return s;
}

static void checkpoint(tl_store *s)
{
    tl_err err = {0};
    int rc = tl_store_checkpoint(s, 1, 0, &err);
    if (rc) fail_msg("checkpoint: %d %s", rc, err.msg);
}

static uint32_t begin(tl_store *s, const char *project)
{
    uint32_t pid = 0;
    assert_int_equal(tl_store_w_begin(s, tl_str_c(project), &pid), 0);
    return pid;
}

/* A row with a url, a session and two properties: "k" (string) and "n" (number). */
static void row(tl_store *s, uint32_t pid, uint32_t did, const char *event, const char *eid,
                int64_t ts, const char *url, const char *kval, double n)
{
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_EVENT;
    r.ts_ms = r.recv_ms = ts;
    r.event = tl_str_c(event);
    r.event_id = tl_str_c(eid);
    r.field[TL_F_URL] = tl_str_c(url);
    tl_prop props[2];
    memset(props, 0, sizeof props);
    props[0].key = TL_STR("k");
    props[0].type = TL_PV_STR;
    props[0].str = tl_str_c(kval);
    props[1].key = TL_STR("n");
    props[1].type = TL_PV_NUM;
    props[1].num = n;
    r.props = props;
    r.n_props = 2;
    tl_store_w_append(s, pid, &r, did);
}

/* Sum of n over the rows of live persons, and their count, read through a snapshot. */
static void totals(tl_snap *sn, double *sum, uint64_t *rows)
{
    *sum = 0;
    *rows = 0;
    uint32_t key;
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("n"), &key), 0);
    const uint32_t *person = tl_snap_persons(sn);
    for (size_t i = 0; i < tl_snap_n_parts(sn); i++) {
        tl_part_info in = tl_snap_part_info(sn, i);
        const uint32_t *did;
        const int64_t *ts;
        tl_prop_col pc;
        assert_int_equal(tl_snap_col_u32(sn, i, TL_COL_DID, &did), 0);
        assert_int_equal(tl_snap_col_ts(sn, i, &ts), 0);
        assert_int_equal(tl_snap_prop(sn, i, key, &pc), 0);
        for (uint32_t r = 0; r < in.n_rows; r++) {
            assert_true(ts[r] >= in.min_ts_ms && ts[r] <= in.max_ts_ms);
            if (person[did[r]] == TL_PERSON_ERASED) continue;
            assert_int_equal(pc.type[r], TL_PV_NUM);
            *sum += pc.num[r];
            ++*rows;
        }
    }
}

static tl_snap *snap(tl_store *s, const char *project)
{
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(s, tl_str_c(project), &sn), 0);
    return sn;
}

/* ---- the column cache ---- */

static void fill_days(tl_store *s, const char *project, int days, int per_day, int64_t t0)
{
    uint32_t pid = begin(s, project);
    for (int d = 0; d < days; d++)
        for (int i = 0; i < per_day; i++) {
            char id[32], eid[32];
            snprintf(id, sizeof id, "p%d", i % 37);
            snprintf(eid, sizeof eid, "e%d-%d", d, i);
            uint32_t did = tl_store_w_did(s, pid, tl_str_c(id), false, true);
            row(s, pid, did, i % 2 ? "view" : "buy", eid, t0 + d * DAY + i * 1000, "https://x/",
                i % 3 ? "a" : "b", i + d);
        }
    tl_store_w_end(s, pid);
}

static void test_cache_budget(void **state)
{
    fixture *f = *state;
    tl_store_opts o = {0};
    o.cache_bytes = 16384; /* a few columns */
    tl_store *s = open_opts(f->dir, &o);
    int64_t t0 = 20454 * DAY;
    fill_days(s, "p", 12, 500, t0);
    double want = 0;
    for (int d = 0; d < 12; d++)
        for (int i = 0; i < 500; i++)
            want += i + d;
    checkpoint(s);

    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.cache_budget, 16384);
    assert_int_equal(st.cache_bytes, 0);
    /* One snapshot pins what it reads: more than the budget, nothing freed under it. */
    tl_snap *a = snap(s, "p");
    const int64_t *ts0;
    assert_int_equal(tl_snap_col_ts(a, 0, &ts0), 0);
    int64_t first = ts0[0];
    double sum;
    uint64_t rows;
    totals(a, &sum, &rows);
    assert_true(sum == want);
    assert_int_equal(rows, 6000);
    tl_store_get_stats(s, &st);
    assert_true(st.cache_bytes > st.cache_budget);
    assert_int_equal(st.cache_evictions, 0);
    uint64_t misses = st.cache_misses;
    /* Another snapshot reads everything too, and goes: a's columns stay (a still pins them). */
    tl_snap *b = snap(s, "p");
    totals(b, &sum, &rows);
    assert_true(sum == want);
    tl_snap_free(b);
    assert_int_equal(ts0[0], first);
    tl_store_get_stats(s, &st);
    assert_int_equal(st.cache_misses, misses); /* b found a's columns */
    tl_snap_free(a);
    /* Unpinned, the cache trims itself to the budget. */
    tl_store_get_stats(s, &st);
    assert_true(st.cache_bytes <= st.cache_budget);
    assert_true(st.cache_evictions > 0);
    /* And reads again from the files, with the same answers. */
    tl_snap *c = snap(s, "p");
    totals(c, &sum, &rows);
    assert_true(sum == want);
    tl_snap_free(c);
    tl_store_get_stats(s, &st);
    assert_true(st.cache_misses > misses);
    assert_true(st.cache_bytes <= st.cache_budget);
    tl_store_free(s);
}

static void test_cache_hits(void **state)
{
    fixture *f = *state;
    tl_store *s = open_opts(f->dir, NULL); /* the default budget: 1 GiB */
    fill_days(s, "p", 3, 100, 20454 * DAY);
    checkpoint(s);
    double sum1, sum2;
    uint64_t r1, r2;
    tl_snap *a = snap(s, "p");
    totals(a, &sum1, &r1);
    tl_snap_free(a);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.cache_budget, (uint64_t)1 << 30);
    assert_int_equal(st.cache_misses, 9); /* 3 parts × (did, ts, n) */
    assert_int_equal(st.cache_hits, 0);
    a = snap(s, "p");
    totals(a, &sum2, &r2);
    tl_snap_free(a);
    tl_store_get_stats(s, &st);
    assert_int_equal(st.cache_misses, 9);
    assert_int_equal(st.cache_hits, 9);
    assert_int_equal(st.cache_evictions, 0);
    assert_true(sum1 == sum2 && r1 == r2);
    tl_store_free(s);
}

/* Threads reading through their own snapshots and a shared one, over a budget far smaller
 * than the data: evictions race with loads and pins (ASan would see a freed column read). */
typedef struct reader {
    tl_store *s;
    tl_snap *shared;
    double want;
    int bad;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    for (int k = 0; k < 20; k++) {
        tl_snap *sn = NULL;
        if (tl_store_snap(r->s, TL_STR("p"), &sn)) {
            r->bad++;
            continue;
        }
        double sum;
        uint64_t rows;
        totals(k % 2 ? sn : r->shared, &sum, &rows);
        r->bad += sum != r->want || rows != 3000;
        tl_snap_free(sn);
    }
    return NULL;
}

static void test_cache_threads(void **state)
{
    fixture *f = *state;
    tl_store_opts o = {0};
    o.cache_bytes = 8192;
    tl_store *s = open_opts(f->dir, &o);
    fill_days(s, "p", 6, 500, 20454 * DAY);
    checkpoint(s);
    double want = 0;
    for (int d = 0; d < 6; d++)
        for (int i = 0; i < 500; i++)
            want += i + d;
    tl_snap *shared = snap(s, "p");
    reader r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (reader){s, shared, want, 0};
        assert_int_equal(pthread_create(&th[i], NULL, read_loop, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].bad, 0);
    }
    tl_snap_free(shared);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_true(st.cache_evictions > 0);
    assert_true(st.cache_bytes <= st.cache_budget);
    tl_store_free(s);
}

/* ---- retention ---- */

static int count_parts(const char *sdir, const char *project)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/p/%s/parts", sdir, project);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_retention(void **state)
{
    fixture *f = *state;
    tl_store_opts o = {0};
    o.retention_days = 3;
    tl_store *s = open_opts(f->dir, &o);
    tl_store_set_retention(s, TL_STR("keep"), 0);      /* keeps everything */
    tl_store_set_retention(s, TL_STR("short"), 1);     /* overrides the default */
    tl_store_set_retention(s, TL_STR("bad name!"), 1); /* ignored */
    int64_t today = tl_floordiv(tl_now_ms(), DAY) * DAY;
    const int ago[] = {0, 1, 2, 3, 4, 10, 400};
    const char *projects[] = {"dflt", "keep", "short"};
    for (int p = 0; p < 3; p++) {
        uint32_t pid = begin(s, projects[p]);
        uint32_t did = tl_store_w_did(s, pid, TL_STR("x"), false, true);
        for (int k = 0; k < 7; k++)
            for (int i = 0; i < 10; i++) {
                char eid[32];
                snprintf(eid, sizeof eid, "d%d-%d", ago[k], i);
                row(s, pid, did, "e", eid, today - ago[k] * DAY + 1000 * i, "", "v", ago[k]);
            }
        tl_store_w_end(s, pid);
    }
    /* Sealed first (no retention yet), then a second checkpoint with more rows of old days
     * in open parts: both kinds go. */
    tl_store_set_retention(s, TL_STR("dflt"), 0);
    checkpoint(s);
    assert_int_equal(count_parts(f->dir, "dflt"), 7);
    tl_store_set_retention(s, TL_STR("dflt"), 3);
    uint32_t pid = begin(s, "dflt");
    row(s, pid, 0, "e", "late-old", today - 5 * DAY, "", "v", 5);
    row(s, pid, 0, "e", "late-new", today - 1 * DAY, "", "v", 1);
    tl_store_w_end(s, pid);
    checkpoint(s);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    /* dflt keeps days 0..3 ago (4 days, +1 late row), short days 0..1, keep all 7. */
    assert_int_equal(st.rows, 41 + 20 + 70);
    assert_int_equal(st.rows_expired, 31 + 50);
    const struct {
        const char *name;
        int parts, oldest;
    } want[] = {{"dflt", 5, 3}, {"keep", 7, 400}, {"short", 2, 1}};
    for (int p = 0; p < 3; p++) {
        tl_snap *sn = snap(s, want[p].name);
        int64_t oldest = INT64_MAX;
        for (size_t i = 0; i < tl_snap_n_parts(sn); i++) {
            int64_t m = tl_snap_part_info(sn, i).min_ts_ms;
            oldest = m < oldest ? m : oldest;
        }
        assert_int_equal((today - tl_floordiv(oldest, DAY) * DAY) / DAY, want[p].oldest);
        tl_snap_free(sn);
        /* The dropped days' files are gone (one part per remaining day and checkpoint). */
        assert_int_equal(count_parts(f->dir, want[p].name), want[p].parts);
    }
    tl_store_free(s);
    /* Reopened: the same (retention 0 by default here, nothing more goes). */
    s = open_opts(f->dir, NULL);
    tl_store_get_stats(s, &st);
    assert_int_equal(st.rows, 41 + 20 + 70);
    tl_store_free(s);
}

/* ---- erasure ---- */

static bool mem_has(const void *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* How many files under dir hold needle: raw bytes of every file, and every column of every
 * part file decompressed. */
static int grep_dir(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int hits = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            hits += grep_dir(path, needle);
            continue;
        }
        tl_buf b = TL_BUF_INIT;
        assert_int_equal(tl_read_file(path, &b), 0);
        bool hit = mem_has(b.p, b.len, needle);
        tl_buf_fini(&b);
        size_t l = strlen(path);
        if (!hit && l > 5 && !strcmp(path + l - 5, ".part")) {
            tl_part *p;
            tl_err err = {0};
            assert_int_equal(tl_part__open(path, 1, 0, &p, &err), 0);
            for (uint32_t i = 0; i < p->n_cols && !hit; i++) {
                void *raw;
                assert_int_equal(tl_part__read(p, i, &raw), 0);
                hit = mem_has(raw, p->cols[i].rawlen, needle);
                free(raw);
            }
            tl_part__unref(p);
        }
        hits += hit;
    }
    closedir(d);
    return hits;
}

static void test_erase_physical(void **state)
{
    fixture *f = *state;
    tl_store *s = open_opts(f->dir, NULL);
    int64_t t0 = 20454 * DAY;
    uint32_t pid = begin(s, "p");
    uint32_t an = tl_store_w_did(s, pid, TL_STR("anon-zq81"), false, true);
    uint32_t us = tl_store_w_did(s, pid, TL_STR("user-zq81"), true, true);
    uint32_t bob = tl_store_w_did(s, pid, TL_STR("bob-77"), true, true);
    uint32_t bob_anon = tl_store_w_did(s, pid, TL_STR("bob-anon"), false, true);
    assert_int_equal(tl_store_w_merge(s, pid, an, us), 0);
    assert_int_equal(tl_store_w_merge(s, pid, bob_anon, bob), 0);
    for (int i = 0; i < 40; i++) {
        char eid[32];
        snprintf(eid, sizeof eid, "ev-zq81-%d", i);
        row(s, pid, i % 2 ? an : us, "view", eid, t0 + (i % 3) * DAY + i, "https://x/zq81-page",
            "mail-zq81@example.test", 1);
        snprintf(eid, sizeof eid, "ev-bob-%d", i);
        row(s, pid, bob, i % 2 ? "view" : "buy", eid, t0 + (i % 3) * DAY + i, "https://x/",
            "shared", 2);
    }
    tl_prop pp;
    memset(&pp, 0, sizeof pp);
    pp.key = TL_STR("plan-zq81");
    pp.type = TL_PV_STR;
    pp.str = TL_STR("gold-zq81");
    tl_store_w_person_props(s, pid, us, t0, &pp, 1);
    pp.key = TL_STR("plan");
    pp.str = TL_STR("silver");
    tl_store_w_person_props(s, pid, bob, t0, &pp, 1);
    tl_store_w_end(s, pid);
    checkpoint(s); /* sealed: the person is in the part files now */
    assert_true(grep_dir(f->dir, "user-zq81") > 0);
    assert_true(grep_dir(f->dir, "ev-zq81-7") > 0);
    assert_true(grep_dir(f->dir, "mail-zq81") > 0);

    /* More rows of the person in open parts, then the erasure (by its anonymous id). */
    pid = begin(s, "p");
    row(s, pid, an, "view", "ev-zq81-open", t0 + 5 * DAY, "", "mail-zq81@example.test", 1);
    tl_store_w_erase(s, pid, an);
    tl_store_w_end(s, pid);
    /* Logically gone at once; physically at the next checkpoint. */
    tl_snap *sn = snap(s, "p");
    double sum;
    uint64_t rows;
    totals(sn, &sum, &rows);
    assert_int_equal(rows, 40);
    tl_snap_free(sn);
    checkpoint(s);

    const char *gone[] = {"anon-zq81", "user-zq81", "ev-zq81",  "mail-zq81",
                          "plan-zq81", "gold-zq81", "zq81-page"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        if (grep_dir(f->dir, gone[i])) fail_msg("%s is still in a file", gone[i]);
    const char *kept[] = {"bob-77", "bob-anon", "ev-bob-39", "shared", "silver", "https://x/"};
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        if (!grep_dir(f->dir, kept[i])) fail_msg("%s is no longer in any file", kept[i]);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.rows, 40);
    assert_int_equal(st.rows_erased, 41);
    assert_true(st.strings_scrubbed >= 2 + 4);

    /* The same after a reopen; the ids are unknown now, and seen again they are new. */
    tl_store_free(s);
    s = open_opts(f->dir, NULL);
    sn = snap(s, "p");
    totals(sn, &sum, &rows);
    assert_int_equal(rows, 40);
    assert_true(sum == 80);
    assert_int_equal(tl_snap_did_find(sn, TL_STR("user-zq81")), TL_DID_NONE);
    assert_int_equal(tl_snap_did_find(sn, TL_STR("bob-77")), bob);
    assert_int_equal(tl_snap_persons(sn)[an], TL_PERSON_ERASED);
    assert_int_equal(tl_snap_persons(sn)[bob_anon], tl_snap_persons(sn)[bob]);
    uint32_t k;
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("mail-zq81@example.test"), &k), TL_ENOENT);
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("shared"), &k), 0);
    tl_snap_free(sn);
    pid = begin(s, "p");
    uint32_t again = tl_store_w_did(s, pid, TL_STR("user-zq81"), true, true);
    assert_true(again != us && again != TL_DID_NONE);
    row(s, pid, again, "view", "ev-new", t0, "", "mail-zq81@example.test", 4);
    tl_store_w_end(s, pid);
    sn = snap(s, "p");
    totals(sn, &sum, &rows);
    assert_int_equal(rows, 41);
    assert_true(sum == 84);
    tl_snap_free(sn);
    checkpoint(s);
    tl_store_free(s);
    s = open_opts(f->dir, NULL);
    sn = snap(s, "p");
    assert_int_equal(tl_snap_did_find(sn, TL_STR("user-zq81")), again);
    tl_snap_free(sn);
    tl_store_free(s);
}

/* A person erased before anything was sealed: the rows never reach a part file for long. */
static void test_erase_before_seal(void **state)
{
    fixture *f = *state;
    tl_store *s = open_opts(f->dir, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t a = tl_store_w_did(s, pid, TL_STR("only-zq99"), true, true);
    uint32_t b = tl_store_w_did(s, pid, TL_STR("other"), true, true);
    for (int i = 0; i < 10; i++) {
        char eid[32];
        snprintf(eid, sizeof eid, "e%d", i);
        row(s, pid, i % 2 ? a : b, "view", eid, 20454 * DAY + i, "", "v", 1);
    }
    tl_store_w_erase(s, pid, a);
    tl_store_w_end(s, pid);
    checkpoint(s);
    assert_int_equal(grep_dir(f->dir, "only-zq99"), 0);
    assert_true(grep_dir(f->dir, "other") > 0);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.rows, 5);
    /* A person whose every row is erased leaves no part (nor empty day) behind. */
    pid = begin(s, "p");
    tl_store_w_erase(s, pid, b);
    tl_store_w_end(s, pid);
    checkpoint(s);
    assert_int_equal(count_parts(f->dir, "p"), 0);
    tl_snap *sn = snap(s, "p");
    assert_int_equal(tl_snap_n_parts(sn), 0);
    tl_snap_free(sn);
    tl_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_physical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_before_seal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
