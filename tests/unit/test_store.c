/* Unit tests of the store (src/store.h): the writer API (dense dids, user vs anonymous ids,
 * merges and their refusal, erasure), snapshot reads of open and sealed parts, checkpoint and
 * reopen (everything comes back identical), day partitions, compaction, and recovery from
 * what a crash or damage leaves on disk (stray parts, corrupt columns, dictionary bytes past
 * the checkpoint). Every test works in its own mkdtemp directory. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <zstd.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "record.h"
#include "store.h"
#include "util/buf.h"
#include "util/crc.h"
#include "util/diag.h"
#include "util/fault.h"
#include "util/io.h"
#include "util/time.h"

#define DAY    TL_MS_PER_DAY
#define T0     (20454 * DAY)  /* 2026-01-01T00:00:00Z */
#define ENTRY  40             /* part directory entry size (see part.c) */
#define PHDR   56             /* part header size */
#define COL_EI TL_COL_N       /* directory column number of the event ids */
#define COL_PR 1000           /* directory column number of properties */
#define COL_DS (TL_COL_N + 2) /* directory column number of the did set (version 3) */

typedef struct fixture {
    char dir[64];
    char sdir[96]; /* dir/store */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tl_store_test.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->sdir, sizeof f->sdir, "%s/store", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tl_fault_arm(TL_FAULT_NONE, 0);
    tl_diag_set_level(TL_LOG_INFO);
    tl_rm_rf(f->dir);
    free(f);
    return 0;
}

static tl_store *open_store(const char *dir, uint64_t *log_pos, uint64_t *aux)
{
    tl_store *s = NULL;
    uint64_t lp = 7, ax = 7;
    tl_err err = {0};
    int rc = tl_store_open(dir, NULL, &s, &lp, &ax, &err);
    if (rc) fail_msg("tl_store_open(%s): %d %s", dir, rc, err.msg);
    if (log_pos) *log_pos = lp;
    if (aux) *aux = ax;
    return s;
}

static void checkpoint(tl_store *s, uint64_t log_pos, uint64_t aux)
{
    tl_err err = {0};
    int rc = tl_store_checkpoint(s, log_pos, aux, &err);
    if (rc) fail_msg("checkpoint: %d %s", rc, err.msg);
}

static uint32_t begin(tl_store *s, const char *project)
{
    uint32_t pid = 99;
    assert_int_equal(tl_store_w_begin(s, tl_str_c(project), &pid), 0);
    return pid;
}

static uint32_t did(tl_store *s, uint32_t pid, const char *id, bool user)
{
    return tl_store_w_did(s, pid, tl_str_c(id), user, true);
}

/* One row: event name, event id, time, url field, session and up to 4 properties given as
 * "key=value" (a value starting with a digit or '-' is a number, else a string). */
static void append(tl_store *s, uint32_t pid, uint32_t d, const char *event, const char *eid,
                   int64_t ts, const char *url, const char *session, const char *const *props)
{
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_EVENT;
    r.ts_ms = ts;
    r.recv_ms = ts;
    r.event = tl_str_c(event);
    r.event_id = tl_str_c(eid);
    r.field[TL_F_URL] = tl_str_c(url);
    r.session_id = tl_str_c(session);
    tl_prop p[4];
    uint32_t n = 0;
    for (; props && props[n] && n < 4; n++) {
        const char *eq = strchr(props[n], '=');
        assert_non_null(eq);
        p[n].key = (tl_str){props[n], (size_t)(eq - props[n])};
        const char *v = eq + 1;
        if ((*v >= '0' && *v <= '9') || *v == '-') {
            p[n].type = TL_PV_NUM;
            p[n].num = strtod(v, NULL);
            p[n].str = TL_STR_NULL;
        } else {
            p[n].type = TL_PV_STR;
            p[n].num = 0;
            p[n].str = tl_str_c(v);
        }
    }
    r.props = p;
    r.n_props = n;
    tl_store_w_append(s, pid, &r, d);
}

#define PROPS(...) ((const char *const[]){__VA_ARGS__, NULL})

static tl_snap *snap(tl_store *s, const char *project)
{
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(s, tl_str_c(project), &sn), 0);
    return sn;
}

static bool str_is(tl_str s, const char *c)
{
    return tl_str_eqc(s, c);
}

/* ---- canonical dump of a project, for before/after comparisons ---- */

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks the part invariants and writes one line per row into rows (unsorted), leaving out
 * the rows of erased persons (which a checkpoint removes from the files). */
static void dump_rows(tl_snap *sn, char ***rows, size_t *n_rows)
{
    const uint32_t *person = tl_snap_persons(sn);
    size_t n = 0;
    for (size_t i = 0; i < tl_snap_n_parts(sn); i++)
        n += tl_snap_part_info(sn, i).n_rows;
    char **lines = calloc(n + 1, sizeof *lines);
    size_t k = 0;
    int64_t prev_min = INT64_MIN;
    for (size_t i = 0; i < tl_snap_n_parts(sn); i++) {
        tl_part_info in = tl_snap_part_info(sn, i);
        assert_true(in.n_rows > 0);
        /* Parts are ordered by min_ts, and each lies within one UTC day. */
        assert_true(in.min_ts_ms >= prev_min);
        prev_min = in.min_ts_ms;
        assert_int_equal(tl_floordiv(in.min_ts_ms, DAY), tl_floordiv(in.max_ts_ms, DAY));
        const int64_t *ts;
        assert_int_equal(tl_snap_col_ts(sn, i, &ts), 0);
        const uint32_t *col[TL_COL_N] = {0};
        for (int c = TL_COL_DID; c < TL_COL_N; c++)
            assert_int_equal(tl_snap_col_u32(sn, i, c, &col[c]), 0);
        uint32_t keys[256];
        uint32_t nk = tl_snap_part_prop_keys(sn, i, keys, 256);
        assert_true(nk <= 256);
        tl_prop_col pc[256];
        for (uint32_t q = 0; q < nk; q++)
            assert_int_equal(tl_snap_prop(sn, i, keys[q], &pc[q]), 0);
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (uint32_t r = 0; r < in.n_rows; r++) {
            if (in.sorted && r) assert_true(ts[r] >= ts[r - 1]);
            lo = ts[r] < lo ? ts[r] : lo;
            hi = ts[r] > hi ? ts[r] : hi;
            if (person[col[TL_COL_DID][r]] == TL_PERSON_ERASED) {
                n--;
                continue;
            }
            tl_buf b = TL_BUF_INIT;
            tl_str eid;
            assert_int_equal(tl_snap_event_id(sn, i, r, &eid), 0);
            tl_str ev = tl_snap_dict_str(sn, col[TL_COL_EVENT][r]);
            tl_str did_s = tl_snap_did_str(sn, col[TL_COL_DID][r]);
            tl_buf_printf(&b, "%" PRId64 " %.*s did=%u(%.*s) ev=%.*s", ts[r], (int)eid.len, eid.p,
                          col[TL_COL_DID][r], (int)did_s.len, did_s.p, (int)ev.len, ev.p);
            for (int c = TL_COL_FIELD; c < TL_COL_N; c++) {
                tl_str v = tl_snap_dict_str(sn, col[c][r]);
                if (col[c][r]) tl_buf_printf(&b, " c%d=%.*s", c, (int)v.len, v.p);
            }
            /* Properties in key-string order. */
            char *pl[256];
            uint32_t np = 0;
            for (uint32_t q = 0; q < nk; q++) {
                tl_str key = tl_snap_dict_str(sn, keys[q]);
                tl_buf pb = TL_BUF_INIT;
                if (pc[q].type[r] == TL_PV_NUM) {
                    tl_buf_printf(&pb, "%.*s=%.17g", (int)key.len, key.p, pc[q].num[r]);
                } else if (pc[q].type[r] == TL_PV_STR) {
                    tl_str v = tl_snap_dict_str(sn, pc[q].str[r]);
                    tl_buf_printf(&pb, "%.*s='%.*s'", (int)key.len, key.p, (int)v.len, v.p);
                } else {
                    assert_int_equal(pc[q].type[r], 0);
                    tl_buf_fini(&pb);
                    continue;
                }
                pl[np++] = tl_buf_cstr(&pb);
            }
            qsort(pl, np, sizeof *pl, cmp_lines);
            for (uint32_t q = 0; q < np; q++) {
                tl_buf_printf(&b, " %s", pl[q]);
                free(pl[q]);
            }
            lines[k++] = tl_buf_cstr(&b);
        }
        assert_int_equal(lo, in.min_ts_ms);
        assert_int_equal(hi, in.max_ts_ms);
    }
    assert_int_equal(k, n);
    *rows = lines;
    *n_rows = n;
}

/* Everything a reader can see of a project, as text: dictionary, dids, persons, rows (in a
 * canonical order, since sealing reorders rows and parts). */
static char *dump(tl_store *s, const char *project)
{
    tl_snap *sn = snap(s, project);
    tl_buf b = TL_BUF_INIT;
    uint32_t nd = tl_snap_dict_n(sn);
    tl_buf_printf(&b, "dict %u\n", nd);
    assert_true(tl_snap_dict_str(sn, 0).len == 0);
    for (uint32_t i = 1; i <= nd; i++) {
        tl_str v = tl_snap_dict_str(sn, i);
        if (!v.p) { /* scrubbed by an erasure: the id stays taken */
            tl_buf_printf(&b, "  %u -\n", i);
            continue;
        }
        uint32_t back = 0;
        assert_int_equal(tl_snap_dict_find(sn, v, &back), 0);
        assert_int_equal(back, i);
        tl_buf_printf(&b, "  %u %.*s\n", i, (int)v.len, v.p);
    }
    uint32_t n = tl_snap_n_dids(sn);
    const uint32_t *person = tl_snap_persons(sn);
    tl_buf_printf(&b, "dids %u\n", n);
    for (uint32_t d = 0; d < n; d++) {
        if (person[d] == TL_PERSON_ERASED) { /* its id is scrubbed from files at checkpoint */
            tl_buf_printf(&b, "  %u erased\n", d);
            continue;
        }
        tl_str v = tl_snap_did_str(sn, d);
        bool user = tl_snap_did_is_user(sn, d);
        tl_buf_printf(&b, "  %u %c %.*s person=%d\n", d, user ? 'u' : 'a', (int)v.len, v.p,
                      person[d] == TL_PERSON_ERASED ? -1 : (int)person[d]);
        if (person[d] != TL_PERSON_ERASED) assert_int_equal(person[person[d]], person[d]);
    }
    char **rows;
    size_t nr;
    dump_rows(sn, &rows, &nr);
    qsort(rows, nr, sizeof *rows, cmp_lines);
    tl_buf_printf(&b, "rows %zu\n", nr);
    for (size_t i = 0; i < nr; i++) {
        tl_buf_printf(&b, "  %s\n", rows[i]);
        free(rows[i]);
    }
    free(rows);
    tl_snap_free(sn);
    return tl_buf_cstr(&b);
}

static void assert_same_text(const char *a, const char *b)
{
    if (strcmp(a, b)) fail_msg("differs:\n--- before\n%s\n--- after\n%s", a, b);
}

/* Files in dir (not . and ..), or -1 when dir is missing. */
static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (e->d_name[0] != '.' && l >= sl && !strcmp(e->d_name + l - sl, suffix)) n++;
    }
    closedir(d);
    return n;
}

/* The path of the first part file (by name) of a project. */
static void first_part(const fixture *f, const char *project, char *out, size_t cap)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/p/%s/parts", f->sdir, project);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && (!best[0] || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    assert_true(best[0] != 0);
    snprintf(out, cap, "%s/%s", dir, best);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* ---- tests ---- */

static void test_open_empty(void **state)
{
    fixture *f = *state;
    uint64_t lp, ax;
    tl_store *s = open_store(f->sdir, &lp, &ax);
    assert_int_equal(lp, 0);
    assert_int_equal(ax, 0);
    tl_snap *sn = (tl_snap *)1;
    assert_int_equal(tl_store_snap(s, TL_STR("nope"), &sn), TL_ENOENT);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.rows + st.parts + st.dids + st.merges + st.merges_refused, 0);
    assert_int_equal(tl_store_open_rows(s), 0);
    /* A checkpoint of nothing still records the caller's values. */
    checkpoint(s, 123, 456);
    tl_store_free(s);
    s = open_store(f->sdir, &lp, &ax);
    assert_int_equal(lp, 123);
    assert_int_equal(ax, 456);
    tl_store_free(s);
    tl_store_free(NULL);
    tl_snap_free(NULL);
}

static void test_project_names(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid;
    const char *bad[] = {"",
                         "a/b",
                         "..",
                         ".hidden",
                         "sp ace",
                         "nul\n",
                         "a123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tl_store_w_begin(s, tl_str_c(bad[i]), &pid), TL_EINVAL);
    assert_int_equal(begin(s, "a"), 0);
    tl_store_w_end(s, 0);
    assert_int_equal(begin(s, "B-2_x.y"), 1);
    tl_store_w_end(s, 1);
    assert_int_equal(begin(s, "a"), 0);
    tl_store_w_end(s, 0);
    /* A project without rows has an empty snapshot. */
    tl_snap *sn = snap(s, "a");
    assert_int_equal(tl_snap_n_parts(sn), 0);
    assert_int_equal(tl_snap_n_dids(sn), 0);
    assert_int_equal(tl_snap_dict_n(sn), 0);
    tl_snap_free(sn);
    tl_store_free(s);
}

static void test_dids(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    assert_int_equal(did(s, pid, "a1", false), 0);
    assert_int_equal(did(s, pid, "a2", false), 1);
    assert_int_equal(did(s, pid, "a1", false), 0);
    /* The same text as a user id is another distinct id. */
    assert_int_equal(did(s, pid, "a1", true), 2);
    assert_int_equal(did(s, pid, "a1", true), 2);
    assert_int_equal(did(s, pid, "", false), 3);
    assert_int_equal(tl_store_w_did(s, pid, TL_STR("zz"), false, false), TL_DID_NONE);
    assert_int_equal(tl_store_w_did(s, pid, TL_STR("a2"), true, false), TL_DID_NONE);
    assert_int_equal(tl_store_w_did(s, pid, TL_STR("a2"), false, false), 1);
    /* A long id (past any stack buffer). */
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(did(s, pid, big, true), 4);
    assert_int_equal(did(s, pid, big, true), 4);
    tl_store_w_end(s, pid);
    /* Dids are per project. */
    uint32_t p2 = begin(s, "q");
    assert_int_equal(did(s, p2, "a2", false), 0);
    tl_store_w_end(s, p2);

    tl_snap *sn = snap(s, "p");
    assert_int_equal(tl_snap_n_dids(sn), 5);
    assert_true(str_is(tl_snap_did_str(sn, 0), "a1"));
    assert_true(str_is(tl_snap_did_str(sn, 2), "a1"));
    assert_true(str_is(tl_snap_did_str(sn, 4), big));
    assert_int_equal(tl_snap_did_str(sn, 3).len, 0);
    assert_int_equal(tl_snap_did_str(sn, 5).len, 0);
    assert_false(tl_snap_did_is_user(sn, 0));
    assert_true(tl_snap_did_is_user(sn, 2));
    assert_false(tl_snap_did_is_user(sn, 99));
    assert_int_equal(tl_snap_did_find(sn, TL_STR("a1")), 2); /* the user id first */
    assert_int_equal(tl_snap_did_find(sn, TL_STR("a2")), 1);
    assert_int_equal(tl_snap_did_find(sn, TL_STR("nope")), TL_DID_NONE);
    const uint32_t *person = tl_snap_persons(sn);
    for (uint32_t d = 0; d < 5; d++)
        assert_int_equal(person[d], d);
    tl_snap_free(sn);
    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.dids, 6);
    tl_store_free(s);
}

static void test_many_dids(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    char id[32];
    for (uint32_t i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "anon-%u", i);
        assert_int_equal(did(s, pid, id, i % 3 == 0), i);
    }
    /* Merge them in a chain: every one ends in one person (one user: did 0). */
    for (uint32_t i = 1; i < 5000; i++) {
        int rc = tl_store_w_merge(s, pid, i - 1, i);
        assert_int_equal(rc, i % 3 == 0 ? TL_EEXIST : 0);
    }
    tl_store_w_end(s, pid);
    tl_snap *sn = snap(s, "p");
    const uint32_t *person = tl_snap_persons(sn);
    /* Persons: the groups between two user ids. */
    for (uint32_t i = 0; i < 5000; i++)
        assert_int_equal(person[i], person[i - i % 3]);
    assert_true(person[0] != person[3]);
    tl_snap_free(sn);
    char *before = dump(s, "p");
    checkpoint(s, 1, 2);
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    free(before);
    free(after);
    tl_store_free(s);
}

static void test_merges(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t a = did(s, pid, "anon-a", false), u = did(s, pid, "alice", true);
    uint32_t b = did(s, pid, "anon-b", false), c = did(s, pid, "anon-c", false);
    uint32_t x = did(s, pid, "anon-x", false), u2 = did(s, pid, "bob", true);
    uint32_t y = did(s, pid, "anon-y", false);
    assert_int_equal(tl_store_w_merge(s, pid, a, u), 0);
    assert_int_equal(tl_store_w_merge(s, pid, a, u), 0); /* already one person */
    assert_int_equal(tl_store_w_merge(s, pid, u, a), 0);
    /* Transitive: b-c, then c-u. */
    assert_int_equal(tl_store_w_merge(s, pid, b, c), 0);
    assert_int_equal(tl_store_w_merge(s, pid, c, u), 0);
    /* Bob's device. */
    assert_int_equal(tl_store_w_merge(s, pid, x, u2), 0);
    /* Two identified users never merge, whichever dids are named. */
    assert_int_equal(tl_store_w_merge(s, pid, x, a), TL_EEXIST);
    assert_int_equal(tl_store_w_merge(s, pid, u, u2), TL_EEXIST);
    assert_int_equal(tl_store_w_merge(s, pid, b, x), TL_EEXIST);
    /* An anonymous person may join either. */
    assert_int_equal(tl_store_w_merge(s, pid, y, b), 0);
    assert_int_equal(tl_store_w_merge(s, pid, a, 1000), TL_EINVAL);
    tl_store_w_end(s, pid);

    tl_snap *sn = snap(s, "p");
    const uint32_t *person = tl_snap_persons(sn);
    uint32_t pa = person[a];
    assert_true(pa == a || pa == u || pa == b || pa == c || pa == y);
    assert_int_equal(person[pa], pa);
    assert_int_equal(person[u], pa);
    assert_int_equal(person[b], pa);
    assert_int_equal(person[c], pa);
    assert_int_equal(person[y], pa);
    assert_int_equal(person[x], person[u2]);
    assert_true(person[x] != pa);
    tl_snap_free(sn);

    tl_store_stats st;
    tl_store_get_stats(s, &st);
    assert_int_equal(st.merges, 5);
    assert_int_equal(st.merges_refused, 3);
    assert_int_equal(st.dids, 7);
    tl_store_free(s);
}

static void test_erase(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t a = did(s, pid, "a", false), u = did(s, pid, "u", true), b = did(s, pid, "b", false);
    uint32_t other = did(s, pid, "other", false);
    assert_int_equal(tl_store_w_merge(s, pid, a, u), 0);
    assert_int_equal(tl_store_w_merge(s, pid, b, u), 0);
    append(s, pid, a, "e", "1", T0, "", "", NULL);
    append(s, pid, other, "e", "2", T0, "", "", NULL);
    tl_store_w_erase(s, pid, b); /* any did of the person */
    tl_store_w_erase(s, pid, b); /* twice is harmless */
    tl_store_w_erase(s, pid, 999);
    /* An erased person stays erased: merging a new id into it does nothing. */
    uint32_t c = did(s, pid, "c", false);
    assert_int_equal(tl_store_w_merge(s, pid, c, a), 0);
    tl_store_w_end(s, pid);
    tl_snap *sn = snap(s, "p");
    const uint32_t *person = tl_snap_persons(sn);
    assert_int_equal(person[a], TL_PERSON_ERASED);
    assert_int_equal(person[u], TL_PERSON_ERASED);
    assert_int_equal(person[b], TL_PERSON_ERASED);
    assert_int_equal(person[other], other);
    assert_int_equal(person[c], c);
    tl_snap_free(sn);
    char *before = dump(s, "p");
    checkpoint(s, 5, 6);
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    sn = snap(s, "p");
    assert_int_equal(tl_snap_persons(sn)[u], TL_PERSON_ERASED);
    tl_snap_free(sn);
    free(before);
    free(after);
    tl_store_free(s);
}

static void test_open_part_reads(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t d0 = did(s, pid, "a0", false), d1 = did(s, pid, "u1", true);
    /* Out of time order on purpose: open parts keep arrival order. */
    append(s, pid, d0, "view", "e0", T0 + 5000, "https://x/a", "s1", PROPS("price=9.5", "n=3"));
    append(s, pid, d1, "buy", "e1", T0 + 1000, "", "s1", PROPS("plan=pro", "price=-1"));
    append(s, pid, d0, "view", "e2", T0 + 3000, "https://x/b", "", NULL);
    /* A property first seen in a later row, and a row after its last value. */
    append(s, pid, d1, "view", "", T0 + 4000, "", "", PROPS("late=x"));
    append(s, pid, d1, "\xe2\x9c\x93", "e4", T0 + 2000, "", "", NULL);
    assert_int_equal(tl_store_open_rows(s), 5);
    tl_store_w_end(s, pid);

    tl_snap *sn = snap(s, "p");
    assert_int_equal(tl_snap_n_parts(sn), 1);
    tl_part_info in = tl_snap_part_info(sn, 0);
    assert_int_equal(in.n_rows, 5);
    assert_false(in.sorted);
    assert_int_equal(in.min_ts_ms, T0 + 1000);
    assert_int_equal(in.max_ts_ms, T0 + 5000);
    const int64_t *ts;
    assert_int_equal(tl_snap_col_ts(sn, 0, &ts), 0);
    const int64_t want_ts[] = {T0 + 5000, T0 + 1000, T0 + 3000, T0 + 4000, T0 + 2000};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ts[i], want_ts[i]);
    const uint32_t *dids, *ev, *url, *sess, *plat;
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_DID, &dids), 0);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_EVENT, &ev), 0);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_FIELD + TL_F_URL, &url), 0);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_FIELD + TL_F_PLATFORM, &plat), 0);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_SESSION, &sess), 0);
    const uint32_t *bad;
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_TS, &bad), TL_EINVAL);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_N, &bad), TL_EINVAL);
    const uint32_t want_did[] = {d0, d1, d0, d1, d1};
    const char *want_ev[] = {"view", "buy", "view", "view", "\xe2\x9c\x93"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(dids[i], want_did[i]);
        assert_true(str_is(tl_snap_dict_str(sn, ev[i]), want_ev[i]));
        assert_int_equal(plat[i], 0);
    }
    assert_int_equal(ev[0], ev[2]);
    assert_true(str_is(tl_snap_dict_str(sn, url[0]), "https://x/a"));
    assert_int_equal(url[1], 0);
    assert_true(str_is(tl_snap_dict_str(sn, url[2]), "https://x/b"));
    assert_true(str_is(tl_snap_dict_str(sn, sess[0]), "s1"));
    assert_int_equal(sess[1], sess[0]);
    assert_int_equal(sess[2], 0);
    /* Dictionary lookups. */
    uint32_t id = 0;
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("buy"), &id), 0);
    assert_int_equal(id, ev[1]);
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("nothing"), &id), TL_ENOENT);
    assert_int_equal(tl_snap_dict_str(sn, 0).len, 0);
    assert_int_equal(tl_snap_dict_str(sn, tl_snap_dict_n(sn) + 1).len, 0);
    /* Property columns: full length, 0 where absent. */
    uint32_t k_price, k_plan, k_late, k_n;
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("price"), &k_price), 0);
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("plan"), &k_plan), 0);
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("late"), &k_late), 0);
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("n"), &k_n), 0);
    tl_prop_col pc;
    assert_int_equal(tl_snap_prop(sn, 0, k_price, &pc), 0);
    assert_int_equal(pc.type[0], TL_PV_NUM);
    assert_true(pc.num[0] == 9.5);
    assert_int_equal(pc.type[1], TL_PV_NUM);
    assert_true(pc.num[1] == -1);
    for (int i = 2; i < 5; i++)
        assert_int_equal(pc.type[i], 0);
    assert_int_equal(tl_snap_prop(sn, 0, k_plan, &pc), 0);
    assert_int_equal(pc.type[0], 0);
    assert_int_equal(pc.type[1], TL_PV_STR);
    assert_true(str_is(tl_snap_dict_str(sn, pc.str[1]), "pro"));
    assert_int_equal(pc.type[4], 0); /* padded past the column's last value */
    assert_int_equal(tl_snap_prop(sn, 0, k_late, &pc), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pc.type[i], i == 3 ? TL_PV_STR : 0);
    uint32_t ev0 = ev[0];
    assert_int_equal(tl_snap_prop(sn, 0, ev0, &pc), TL_ENOENT); /* a string, not a key */
    uint32_t keys[8];
    assert_int_equal(tl_snap_part_prop_keys(sn, 0, keys, 8), 4);
    assert_int_equal(tl_snap_part_prop_keys(sn, 0, keys, 1), 4);
    assert_int_equal(tl_snap_part_prop_keys(sn, 0, NULL, 0), 4);
    /* Event ids, including an empty one. */
    tl_str eid;
    assert_int_equal(tl_snap_event_id(sn, 0, 0, &eid), 0);
    assert_true(str_is(eid, "e0"));
    assert_int_equal(tl_snap_event_id(sn, 0, 3, &eid), 0);
    assert_int_equal(eid.len, 0);
    assert_int_equal(tl_snap_event_id(sn, 0, 4, &eid), 0);
    assert_true(str_is(eid, "e4"));
    assert_int_equal(tl_snap_event_id(sn, 0, 5, &eid), TL_EINVAL);
    tl_snap_free(sn);

    /* The same reads after sealing: rows now sorted by time. */
    char *before = dump(s, "p");
    checkpoint(s, 0, 0);
    assert_int_equal(tl_store_open_rows(s), 0);
    sn = snap(s, "p");
    assert_int_equal(tl_snap_n_parts(sn), 1);
    in = tl_snap_part_info(sn, 0);
    assert_true(in.sorted);
    assert_int_equal(in.n_rows, 5);
    assert_int_equal(tl_snap_col_ts(sn, 0, &ts), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ts[i], T0 + 1000 * (i + 1));
    assert_int_equal(tl_snap_event_id(sn, 0, 0, &eid), 0);
    assert_true(str_is(eid, "e1"));
    assert_int_equal(tl_snap_event_id(sn, 0, 2, &eid), 0);
    assert_true(str_is(eid, "e2"));
    assert_int_equal(tl_snap_event_id(sn, 0, 3, &eid), 0);
    assert_int_equal(eid.len, 0);
    assert_int_equal(tl_snap_event_id(sn, 0, 5, &eid), TL_EINVAL);
    assert_int_equal(tl_snap_prop(sn, 0, k_late, &pc), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pc.type[i], i == 3 ? TL_PV_STR : 0);
    assert_int_equal(tl_snap_prop(sn, 0, ev0, &pc), TL_ENOENT);
    assert_int_equal(tl_snap_part_prop_keys(sn, 0, keys, 8), 4);
    tl_snap_free(sn);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    free(before);
    free(after);
    tl_store_free(s);
}

/* A rich state over two projects and several days; returns the dumps. */
static void build_rich(tl_store *s)
{
    uint32_t pid = begin(s, "shop");
    uint32_t a = did(s, pid, "anon-1", false), u = did(s, pid, "alice", true);
    uint32_t b = did(s, pid, "anon-2", false), v = did(s, pid, "bob", true);
    uint32_t e = did(s, pid, "erased", false);
    assert_int_equal(tl_store_w_merge(s, pid, a, u), 0);
    assert_int_equal(tl_store_w_merge(s, pid, b, v), 0);
    assert_int_equal(tl_store_w_merge(s, pid, a, v), TL_EEXIST);
    char eid[32];
    for (int i = 0; i < 300; i++) {
        snprintf(eid, sizeof eid, "ev-%d", i);
        /* Days -2 .. +3 around T0, including times before the epoch of the day. */
        int64_t ts = T0 + (int64_t)(i % 6 - 2) * DAY + (int64_t)(i * 7919 % 86400) * 1000 + (i % 5);
        char price[32], cat[32];
        snprintf(price, sizeof price, "price=%d.25", i);
        snprintf(cat, sizeof cat, "cat=c%d", i % 4);
        const char *const props[] = {price, cat, i % 3 ? "flag=true" : "n=-7", NULL};
        /* Every day has rows of each person (the erased one's go at the next checkpoint). */
        append(s, pid,
               i / 6 % 3 == 0   ? a
               : i / 6 % 3 == 1 ? b
                                : e,
               i % 2 ? "view" : "buy", eid, ts, i % 4 ? "https://shop/x" : "", i % 5 ? "" : "sess",
               props);
    }
    tl_store_w_erase(s, pid, e);
    tl_store_w_end(s, pid);
    pid = begin(s, "blog");
    uint32_t w = did(s, pid, "anon-1", false); /* same text, other project */
    append(s, pid, w, "read", "r1", -DAY / 2, "", "", PROPS("words=1200"));
    append(s, pid, w, "read", "r2", 0, "", "", NULL);
    tl_store_w_end(s, pid);
}

static void test_checkpoint_reopen(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    build_rich(s);
    tl_store_stats st0;
    tl_store_get_stats(s, &st0);
    assert_int_equal(st0.rows, 302);
    assert_int_equal(st0.parts, 0);
    char *shop = dump(s, "shop"), *blog = dump(s, "blog");
    checkpoint(s, 0x100000014ull, 4242);
    tl_store_stats st1;
    tl_store_get_stats(s, &st1);
    assert_int_equal(st1.rows, 206); /* the erased person's 96 rows are gone from the files */
    assert_int_equal(st1.rows_erased, 96);
    assert_int_equal(st1.parts, 8); /* 6 days of shop, 2 of blog */
    assert_true(st1.bytes_on_disk > 0);
    assert_int_equal(tl_store_open_rows(s), 0);
    /* Sealing changes nothing a reader sees. */
    char *shop1 = dump(s, "shop"), *blog1 = dump(s, "blog");
    assert_same_text(shop, shop1);
    assert_same_text(blog, blog1);
    free(shop1);
    free(blog1);
    tl_store_free(s);

    uint64_t lp, ax;
    s = open_store(f->sdir, &lp, &ax);
    assert_int_equal(lp, 0x100000014ull);
    assert_int_equal(ax, 4242);
    char *shop2 = dump(s, "shop"), *blog2 = dump(s, "blog");
    assert_same_text(shop, shop2);
    assert_same_text(blog, blog2);
    tl_store_stats st2;
    tl_store_get_stats(s, &st2);
    assert_int_equal(st2.rows, st1.rows);
    assert_int_equal(st2.parts, st1.parts);
    assert_int_equal(st2.dids, st1.dids);
    assert_int_equal(st2.merges, st1.merges);
    assert_int_equal(st2.bytes_on_disk, st1.bytes_on_disk);
    /* One sealed part per UTC day, sorted. */
    tl_snap *sn = snap(s, "shop");
    assert_int_equal(tl_snap_n_parts(sn), 6);
    for (size_t i = 0; i < 6; i++) {
        tl_part_info in = tl_snap_part_info(sn, i);
        assert_true(in.sorted);
        assert_int_equal(in.n_rows, 34);
        assert_int_equal(tl_floordiv(in.min_ts_ms, DAY), T0 / DAY - 2 + (int64_t)i);
    }
    tl_snap_free(sn);
    sn = snap(s, "blog");
    assert_int_equal(tl_snap_n_parts(sn), 2);
    assert_int_equal(tl_snap_part_info(sn, 0).min_ts_ms, -DAY / 2);
    assert_int_equal(tl_snap_part_info(sn, 1).min_ts_ms, 0);
    tl_snap_free(sn);

    /* Writing goes on from where it was: dids and dictionary ids continue. */
    uint32_t pid = begin(s, "shop");
    assert_int_equal(tl_store_w_did(s, pid, TL_STR("alice"), true, false), 1);
    assert_int_equal(did(s, pid, "carol", true), 5);
    assert_int_equal(tl_store_w_merge(s, pid, 0, 5), TL_EEXIST);
    assert_int_equal(tl_store_w_merge(s, pid, 5, did(s, pid, "anon-3", false)), 0);
    append(s, pid, 5, "buy", "new-1", T0 + 10, "https://shop/new", "", PROPS("price=1"));
    append(s, pid, 5, "buy", "new-2", T0 + 11 * DAY, "", "", PROPS("newkey=v"));
    tl_store_w_end(s, pid);
    /* The open part of a day with sealed parts is ordered with them by min_ts. */
    sn = snap(s, "shop");
    assert_int_equal(tl_snap_n_parts(sn), 8);
    tl_snap_free(sn);
    free(shop);
    shop = dump(s, "shop");
    checkpoint(s, 0x100000099ull, 4343);
    tl_store_free(s);
    s = open_store(f->sdir, &lp, &ax);
    assert_int_equal(lp, 0x100000099ull);
    assert_int_equal(ax, 4343);
    free(shop2);
    shop2 = dump(s, "shop");
    assert_same_text(shop, shop2);
    blog2 = (free(blog2), dump(s, "blog"));
    assert_same_text(blog, blog2);
    tl_store_free(s);
    free(shop);
    free(shop2);
    free(blog);
    free(blog2);
}

static void test_compaction(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    char parts[256];
    snprintf(parts, sizeof parts, "%s/p/p/parts", f->sdir);
    char eid[32];
    int row = 0;
    for (int c = 1; c <= 12; c++) {
        uint32_t pid = begin(s, "p");
        uint32_t d = did(s, pid, c % 2 ? "x" : "y", false);
        for (int i = 0; i < 20; i++, row++) {
            snprintf(eid, sizeof eid, "e%d", row);
            char pv[32];
            snprintf(pv, sizeof pv, "k%d=%d", c, i); /* a new key in every part */
            append(s, pid, d, "ev", eid, T0 + (row * 7777) % DAY, "", "", PROPS(pv));
        }
        tl_store_w_end(s, pid);
        char *before = dump(s, "p");
        checkpoint(s, (uint64_t)c, 0);
        char *after = dump(s, "p");
        assert_same_text(before, after);
        free(before);
        free(after);
        tl_store_stats st;
        tl_store_get_stats(s, &st);
        assert_int_equal(st.rows, (uint64_t)row);
        /* Seven parts accumulate; the eighth triggers a merge into one. */
        uint64_t want = c < 8 ? (uint64_t)c : (uint64_t)(c - 7);
        assert_int_equal(st.parts, want);
        /* Replaced part files are gone once a checkpoint no longer names them. */
        assert_int_equal(count_files(parts, ".part"), (int)want);
        assert_int_equal(count_files(parts, ".tmp"), 0);
    }
    tl_snap *sn = snap(s, "p");
    assert_int_equal(tl_snap_n_parts(sn), 5);
    assert_int_equal(tl_snap_part_info(sn, 0).n_rows, 160);
    tl_snap_free(sn);
    char *before = dump(s, "p");
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    free(before);
    free(after);
    tl_store_free(s);
}

/* The event index of sealed parts (fresh and merged) lists exactly the rows a scan of the
 * event column finds, in order; open parts have none. */
static void check_event_index(tl_snap *sn, const char *const *names, int n_names)
{
    for (size_t p = 0; p < tl_snap_n_parts(sn); p++) {
        tl_part_info in = tl_snap_part_info(sn, p);
        const uint32_t *evc, *rows;
        uint32_t nr;
        assert_int_equal(tl_snap_col_u32(sn, p, TL_COL_EVENT, &evc), 0);
        if (!in.sorted) {
            assert_int_equal(tl_snap_event_rows(sn, p, 1, &rows, &nr), TL_ENOENT);
            continue;
        }
        uint32_t total = 0;
        for (int k = 0; k < n_names; k++) {
            uint32_t id = 0;
            if (tl_snap_dict_find(sn, tl_str_c(names[k]), &id)) continue;
            assert_int_equal(tl_snap_event_rows(sn, p, id, &rows, &nr), 0);
            uint32_t j = 0;
            for (uint32_t r = 0; r < in.n_rows; r++)
                if (evc[r] == id) {
                    assert_true(j < nr);
                    assert_int_equal(rows[j++], r);
                }
            assert_int_equal(j, nr);
            total += nr;
        }
        assert_int_equal(total, in.n_rows);
        assert_int_equal(tl_snap_event_rows(sn, p, 999999, &rows, &nr), 0); /* no such event */
        assert_int_equal(nr, 0);
    }
}

static void test_event_index(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    static const char *const names[] = {"view", "cart", "buy", "a-much-longer-event-name"};
    char eid[32];
    uint32_t seed = 7;
    for (int c = 1; c <= 9; c++) { /* the eighth checkpoint merges seven parts */
        uint32_t pid = begin(s, "p");
        uint32_t d = did(s, pid, "x", false);
        for (int i = 0; i < 300; i++) {
            seed = seed * 1103515245u + 12345u;
            snprintf(eid, sizeof eid, "e%d-%d", c, i);
            append(s, pid, d, names[(seed >> 16) % 4], eid, T0 + (seed >> 8) % DAY, "", "", NULL);
        }
        tl_store_w_end(s, pid);
        tl_snap *sn = snap(s, "p");
        check_event_index(sn, names, 4); /* the open part: none */
        tl_snap_free(sn);
        checkpoint(s, (uint64_t)c, 0);
        sn = snap(s, "p");
        check_event_index(sn, names, 4);
        tl_snap_free(sn);
    }
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    tl_snap *sn = snap(s, "p");
    check_event_index(sn, names, 4);
    tl_snap_free(sn);
    tl_store_free(s);
}

/* The did set of every sealed part (fresh and merged) is the sorted distinct values of its did
 * column; open parts have none. */
static void check_did_sets(tl_snap *sn)
{
    for (size_t p = 0; p < tl_snap_n_parts(sn); p++) {
        tl_part_info in = tl_snap_part_info(sn, p);
        const uint32_t *dc, *ds;
        uint32_t nd;
        assert_int_equal(tl_snap_col_u32(sn, p, TL_COL_DID, &dc), 0);
        if (!in.sorted) {
            assert_int_equal(tl_snap_part_dids(sn, p, &ds, &nd), TL_ENOENT);
            continue;
        }
        assert_int_equal(tl_snap_part_dids(sn, p, &ds, &nd), 0);
        assert_true(nd >= 1 && nd <= in.n_rows);
        for (uint32_t i = 1; i < nd; i++)
            assert_true(ds[i - 1] < ds[i]);
        uint32_t n_dids = tl_snap_n_dids(sn), seen = 0;
        uint8_t *in_col = calloc(n_dids + 1, 1);
        for (uint32_t r = 0; r < in.n_rows; r++) {
            assert_true(dc[r] < n_dids);
            if (!in_col[dc[r]]) seen++;
            in_col[dc[r]] = 1;
            uint32_t lo = 0, hi = nd; /* every did of the column is in the set */
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (ds[mid] < dc[r])
                    lo = mid + 1;
                else
                    hi = mid;
            }
            assert_true(lo < nd && ds[lo] == dc[r]);
        }
        assert_int_equal(seen, nd); /* and nothing else */
        free(in_col);
    }
}

/* Rewrites part file `path` through fn(image, directory entry of the did set), then puts the
 * checksums of its header and directory right again. */
static void edit_part(const char *path, void (*fn)(tl_buf *b, size_t ent))
{
    tl_buf b = TL_BUF_INIT;
    assert_int_equal(tl_read_file(path, &b), 0);
    uint32_t n = tl_le32(b.p + 36);
    size_t ent = 0;
    for (uint32_t i = 0; i < n && !ent; i++)
        if (tl_le32(b.p + PHDR + (size_t)i * ENTRY) == COL_DS) ent = PHDR + (size_t)i * ENTRY;
    assert_true(ent != 0);
    fn(&b, ent);
    n = tl_le32(b.p + 36);
    tl_put32((uint8_t *)b.p + 48, tl_crc32c(0, b.p + PHDR, (size_t)n * ENTRY));
    tl_put32((uint8_t *)b.p + 52, tl_crc32c(0, b.p, 52));
    assert_int_equal(tl_write_file_atomic(path, b.p, b.len), 0);
    tl_buf_fini(&b);
}

/* A version 2 part: the same without its did set (the entry is taken out of the directory;
 * the blob stays behind, unnamed, as the offsets are absolute). */
static void make_v2(tl_buf *b, size_t ent)
{
    uint8_t *d = (uint8_t *)b->p;
    uint32_t n = tl_le32(d + 36);
    memmove(d + ent, d + ent + ENTRY, PHDR + (size_t)n * ENTRY - ent - ENTRY);
    tl_put32(d + 36, n - 1);
    tl_put32(d + 8, 2);
}

/* A did set that is not ascending, in a frame whose checksum is right: caught at load. */
static void unsort_did_set(tl_buf *b, size_t ent)
{
    uint32_t bad[3] = {5, 3, 9};
    char z[256];
    size_t zn = ZSTD_compress(z, sizeof z, bad, sizeof bad, 1);
    assert_false(ZSTD_isError(zn));
    uint8_t *e = (uint8_t *)b->p + ent;
    tl_put64(e + 8, b->len);
    tl_put64(e + 16, zn);
    tl_put64(e + 24, sizeof bad);
    tl_put32(e + 32, tl_crc32c(0, z, zn));
    tl_buf_add(b, z, zn);
}

static void test_did_set(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    char name[32], eid[32];
    uint32_t seed = 11;
    for (int c = 1; c <= 9; c++) { /* the eighth checkpoint merges seven parts */
        uint32_t pid = begin(s, "p");
        for (int i = 0; i < 200; i++) {
            seed = seed * 1103515245u + 12345u;
            /* dids made as they come: a few busy ones, many seen once */
            uint32_t k = (seed >> 16) % 4 ? (seed >> 20) % 5 : 100 + (uint32_t)(c * 200 + i);
            snprintf(name, sizeof name, "u%u", k);
            snprintf(eid, sizeof eid, "e%d-%d", c, i);
            uint32_t d = did(s, pid, name, false);
            append(s, pid, d, "ev", eid, T0 + (int64_t)((seed >> 8) % DAY), "", "", NULL);
        }
        tl_store_w_end(s, pid);
        tl_snap *sn = snap(s, "p");
        check_did_sets(sn); /* the open part: none */
        tl_snap_free(sn);
        checkpoint(s, (uint64_t)c, 0);
        sn = snap(s, "p");
        check_did_sets(sn);
        tl_snap_free(sn);
    }
    char *before = dump(s, "p");
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    tl_snap *sn = snap(s, "p");
    check_did_sets(sn);
    size_t n_parts = tl_snap_n_parts(sn);
    tl_snap_free(sn);
    tl_store_free(s);

    /* A version 2 part (no did set) still reads, all of it; it just has no set. */
    char part[512];
    first_part(f, "p", part, sizeof part);
    edit_part(part, make_v2);
    s = open_store(f->sdir, NULL, NULL);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    free(after);
    sn = snap(s, "p");
    assert_int_equal(tl_snap_n_parts(sn), n_parts);
    size_t no_set = 0;
    for (size_t p = 0; p < n_parts; p++) {
        const uint32_t *ds;
        uint32_t nd;
        int rc = tl_snap_part_dids(sn, p, &ds, &nd);
        assert_true(rc == 0 || rc == TL_ENOENT);
        no_set += rc == TL_ENOENT;
    }
    assert_int_equal(no_set, 1);
    tl_snap_free(sn);
    tl_store_free(s);

    /* A damaged did set (a valid frame, not ascending) fails as a corrupt column. */
    tl_diag_set_level(-1);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/p/p/parts", f->sdir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    part[0] = 0;
    while ((e = readdir(d)) && !part[0]) { /* a part that still has its set */
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tl_buf b = TL_BUF_INIT;
        assert_int_equal(tl_read_file(path, &b), 0);
        for (uint32_t i = 0; i < tl_le32(b.p + 36); i++)
            if (tl_le32(b.p + PHDR + (size_t)i * ENTRY) == COL_DS)
                snprintf(part, sizeof part, "%s", path);
        tl_buf_fini(&b);
    }
    closedir(d);
    assert_true(part[0] != 0);
    edit_part(part, unsort_did_set);
    s = open_store(f->sdir, NULL, NULL);
    sn = snap(s, "p");
    int bad = 0;
    for (size_t p = 0; p < tl_snap_n_parts(sn); p++) {
        const uint32_t *ds;
        uint32_t nd;
        bad += tl_snap_part_dids(sn, p, &ds, &nd) == TL_EBADMSG;
    }
    assert_int_equal(bad, 1);
    tl_snap_free(sn);
    tl_store_free(s);
    free(before);
}

static void test_stray_files(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    build_rich(s);
    checkpoint(s, 1, 1);
    char *before = dump(s, "shop");
    tl_store_free(s);
    char part[512], copy[512], tmp[512], other[512], parts[300];
    first_part(f, "shop", part, sizeof part);
    snprintf(parts, sizeof parts, "%s/p/shop/parts", f->sdir);
    int n = count_files(parts, ".part");
    /* A whole, valid part file that the checkpoint does not name, a temporary file and a
     * file of another name: what a crash during a checkpoint can leave. */
    snprintf(copy, sizeof copy, "%s/00000000000000ff.part", parts);
    snprintf(tmp, sizeof tmp, "%s/0000000000000100.part.tmp", parts);
    snprintf(other, sizeof other, "%s/junk", parts);
    tl_buf b = TL_BUF_INIT;
    assert_int_equal(tl_read_file(part, &b), 0);
    assert_int_equal(tl_write_file_atomic(copy, b.p, b.len), 0);
    assert_int_equal(tl_write_file_atomic(tmp, b.p, 10), 0);
    assert_int_equal(tl_write_file_atomic(other, "x", 1), 0);
    tl_buf_fini(&b);
    s = open_store(f->sdir, NULL, NULL);
    assert_int_equal(access(copy, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(other, F_OK), -1);
    assert_int_equal(count_files(parts, ".part"), n);
    char *after = dump(s, "shop");
    assert_same_text(before, after);
    free(before);
    free(after);
    tl_store_free(s);
}

/* Offset and compressed length of the first directory entry of part file `path` for column
 * col (COL_PR: any property). */
static void find_column(const char *path, uint32_t col, uint64_t *off, uint64_t *clen)
{
    tl_buf b = TL_BUF_INIT;
    assert_int_equal(tl_read_file(path, &b), 0);
    assert_true(b.len >= PHDR);
    assert_memory_equal(b.p, "TLPART01", 8);
    uint32_t n = tl_le32(b.p + 36);
    for (uint32_t i = 0; i < n; i++) {
        const char *e = b.p + PHDR + (size_t)i * ENTRY;
        if (tl_le32(e) == col) {
            *off = tl_le64(e + 8);
            *clen = tl_le64(e + 16);
            tl_buf_fini(&b);
            return;
        }
    }
    fail_msg("column %u not in %s", col, path);
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x55;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* Cells of a multi-frame part read one by one (nothing decoded whole: frames only), kept as
 * text, one line per row: "event did url session eid k:type:value ...". */
#define CELL_ROWS 20000
static char *cells_dump(tl_snap *sn, size_t part, const uint32_t *rows, int n)
{
    tl_cells *c = tl_cells_new(sn);
    tl_buf b = TL_BUF_INIT;
    uint32_t keys[8];
    uint32_t nk = tl_snap_part_prop_keys(sn, part, keys, 8);
    for (int i = 0; i < n; i++) {
        uint32_t ev, d, url, sess;
        tl_str eid;
        assert_int_equal(tl_cells_u32(c, part, TL_COL_EVENT, rows[i], &ev), 0);
        assert_int_equal(tl_cells_u32(c, part, TL_COL_DID, rows[i], &d), 0);
        assert_int_equal(tl_cells_u32(c, part, TL_COL_FIELD + TL_F_URL, rows[i], &url), 0);
        assert_int_equal(tl_cells_u32(c, part, TL_COL_SESSION, rows[i], &sess), 0);
        assert_int_equal(tl_cells_event_id(c, part, rows[i], &eid), 0);
        tl_buf_printf(&b, "%u %u %u %u %.*s", ev, d, url, sess, (int)eid.len, eid.p);
        for (uint32_t k = 0; k < nk && k < 8; k++) {
            uint8_t t;
            double num;
            uint32_t str;
            assert_int_equal(tl_cells_prop(c, part, keys[k], rows[i], &t, &num, &str), 0);
            tl_buf_printf(&b, " %u:%u:%.17g:%u", keys[k], t, num, str);
        }
        uint8_t t;
        double num;
        uint32_t str;
        assert_int_equal(tl_cells_prop(c, part, 999999, rows[i], &t, &num, &str), 0);
        assert_int_equal(t, 0); /* no such key in the part */
        tl_buf_addc(&b, '\n');
    }
    assert_int_equal(tl_cells_u32(c, part, TL_COL_EVENT, CELL_ROWS * 10, &(uint32_t){0}),
                     TL_EINVAL);
    tl_cells_free(c);
    tl_buf_addc(&b, 0);
    return b.p;
}

/* The same rows through the whole-column readers. */
static char *cols_dump(tl_snap *sn, size_t part, const uint32_t *rows, int n)
{
    const uint32_t *ev, *d, *url, *sess;
    assert_int_equal(tl_snap_col_u32(sn, part, TL_COL_EVENT, &ev), 0);
    assert_int_equal(tl_snap_col_u32(sn, part, TL_COL_DID, &d), 0);
    assert_int_equal(tl_snap_col_u32(sn, part, TL_COL_FIELD + TL_F_URL, &url), 0);
    assert_int_equal(tl_snap_col_u32(sn, part, TL_COL_SESSION, &sess), 0);
    tl_buf b = TL_BUF_INIT;
    uint32_t keys[8];
    uint32_t nk = tl_snap_part_prop_keys(sn, part, keys, 8);
    for (int i = 0; i < n; i++) {
        uint32_t r = rows[i];
        tl_str eid;
        assert_int_equal(tl_snap_event_id(sn, part, r, &eid), 0);
        tl_buf_printf(&b, "%u %u %u %u %.*s", ev[r], d[r], url[r], sess[r], (int)eid.len, eid.p);
        for (uint32_t k = 0; k < nk && k < 8; k++) {
            tl_prop_col pc;
            assert_int_equal(tl_snap_prop(sn, part, keys[k], &pc), 0);
            tl_buf_printf(&b, " %u:%u:%.17g:%u", keys[k], pc.type[r],
                          pc.type[r] == TL_PV_NUM ? pc.num[r] : 0.0,
                          pc.type[r] == TL_PV_STR ? pc.str[r] : 0);
        }
        tl_buf_addc(&b, '\n');
    }
    tl_buf_addc(&b, 0);
    return b.p;
}

/* Rewrites the directory entry at ent as one zstd frame (how versions 1 and 2 store every
 * column), appended to the file. */
static void one_frame(tl_buf *b, size_t ent)
{
    uint8_t *e = (uint8_t *)b->p + ent;
    uint64_t off = tl_le64(e + 8), clen = tl_le64(e + 16), raw = tl_le64(e + 24);
    void *r = malloc(raw + 1), *z = malloc(ZSTD_compressBound(raw));
    assert_int_equal(ZSTD_decompress(r, raw, b->p + off, clen), raw);
    size_t zn = ZSTD_compress(z, ZSTD_compressBound(raw), r, raw, 1);
    assert_false(ZSTD_isError(zn));
    e = (uint8_t *)b->p + ent;
    tl_put64(e + 8, b->len);
    tl_put64(e + 16, zn);
    tl_put32(e + 32, tl_crc32c(0, z, zn));
    tl_buf_add(b, z, zn);
    free(r);
    free(z);
}

static uint32_t g_edit_col; /* the column edit_col rewrites */

static void edit_col(const char *path, void (*fn)(tl_buf *b, size_t ent))
{
    tl_buf b = TL_BUF_INIT;
    assert_int_equal(tl_read_file(path, &b), 0);
    uint32_t n = tl_le32(b.p + 36);
    size_t ent = 0;
    for (uint32_t i = 0; i < n && !ent; i++)
        if (tl_le32(b.p + PHDR + (size_t)i * ENTRY) == g_edit_col) ent = PHDR + (size_t)i * ENTRY;
    assert_true(ent != 0);
    fn(&b, ent);
    tl_put32((uint8_t *)b.p + 48, tl_crc32c(0, b.p + PHDR, (size_t)n * ENTRY));
    tl_put32((uint8_t *)b.p + 52, tl_crc32c(0, b.p, 52));
    assert_int_equal(tl_write_file_atomic(path, b.p, b.len), 0);
    tl_buf_fini(&b);
}

/* Single cells of a part of many frames equal the whole columns, read frame by frame before
 * anything is decoded whole, from a fresh store and again (frames then come from the frame
 * cache); a column stored as one frame (versions 1 and 2) reads whole instead; a damaged
 * frame fails as a corrupt column. */
static void test_cells(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    char name[32], eid[64], url[32], sess[32], pv1[32], pv2[32];
    uint32_t seed = 5;
    for (int i = 0; i < CELL_ROWS; i++) {
        seed = seed * 1103515245u + 12345u;
        snprintf(name, sizeof name, "d%u", (seed >> 16) % 3000);
        snprintf(eid, sizeof eid, "ev-%d-%.*s", i, (int)((seed >> 8) % 40), /* lengths vary */
                 "0123456789012345678901234567890123456789");
        snprintf(url, sizeof url, "/u%u", (seed >> 4) % 500);
        snprintf(sess, sizeof sess, "s%u", i / 7);
        snprintf(pv1, sizeof pv1, "price=%u.25", (seed >> 10) % 1000);
        snprintf(pv2, sizeof pv2, "cat=c%u", (seed >> 12) % 30);
        uint32_t d = did(s, pid, name, false);
        append(s, pid, d, i % 5 ? "view" : "buy", eid, T0 + (int64_t)i * 3000, i % 3 ? url : "",
               i % 4 ? sess : "",
               i % 2   ? PROPS(pv1, pv2)
               : i % 3 ? PROPS(pv2)
                       : NULL);
    }
    tl_store_w_end(s, pid);
    checkpoint(s, 1, 1);
    tl_store_free(s);
    static uint32_t rows[600];
    for (int i = 0; i < 600; i++) {
        seed = seed * 1103515245u + 12345u;
        rows[i] =
            i < 4 ? (uint32_t[]){0, 1, CELL_ROWS - 2, CELL_ROWS - 1}[i] : (seed >> 8) % CELL_ROWS;
    }
    char *by_cells[2];
    for (int round = 0; round < 2; round++) {
        s = open_store(f->sdir, NULL, NULL);
        tl_snap *sn = snap(s, "p");
        assert_int_equal(tl_snap_n_parts(sn), 1);
        by_cells[0] = cells_dump(sn, 0, rows, 600);
        tl_store_stats st;
        tl_store_get_stats(s, &st);
        if (!round) assert_int_equal(st.cache_bytes, 0); /* frames only, nothing whole */
        if (round) assert_true(st.cache_bytes > 0);      /* the one-frame columns, whole */
        by_cells[1] = cells_dump(sn, 0, rows, 600);      /* the frame cache's copies */
        assert_same_text(by_cells[0], by_cells[1]);
        char *by_cols = cols_dump(sn, 0, rows, 600);
        assert_same_text(by_cells[0], by_cols);
        free(by_cells[1]);
        by_cells[1] = cells_dump(sn, 0, rows, 600); /* now through the decoded columns */
        assert_same_text(by_cells[0], by_cells[1]);
        free(by_cells[0]);
        free(by_cells[1]);
        free(by_cols);
        tl_snap_free(sn);
        tl_store_free(s);
        /* Round 2: the event ids and the first property as one frame each. */
        char part[512];
        first_part(f, "p", part, sizeof part);
        g_edit_col = COL_EI;
        edit_col(part, one_frame);
        g_edit_col = COL_PR;
        edit_col(part, one_frame);
    }
    /* A damaged frame of the event ids (its checksums stop it). */
    char part[512];
    first_part(f, "p", part, sizeof part);
    uint64_t off, clen;
    find_column(part, TL_COL_DID, &off, &clen);
    flip_byte(part, off + clen - 3); /* in the last frame */
    tl_diag_set_level(-1);
    s = open_store(f->sdir, NULL, NULL);
    tl_snap *sn = snap(s, "p");
    tl_cells *c = tl_cells_new(sn);
    uint32_t v;
    assert_int_equal(tl_cells_u32(c, 0, TL_COL_DID, 0, &v), 0); /* the first frame is whole */
    assert_int_equal(tl_cells_u32(c, 0, TL_COL_DID, CELL_ROWS - 1, &v), TL_EBADMSG);
    tl_cells_free(c);
    tl_snap_free(sn);
    tl_store_free(s);
}

static void test_corrupt_column(void **state)
{
    fixture *f = *state;
    tl_diag_set_level(-1); /* the store logs each corrupt column */
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t d = did(s, pid, "a", false);
    char eid[32];
    for (int i = 0; i < 500; i++) {
        snprintf(eid, sizeof eid, "event-%d", i);
        char pv[32];
        snprintf(pv, sizeof pv, "v=%d", i * 31);
        append(s, pid, d, i % 2 ? "a" : "b", eid, T0 + i * 1000, "", "", PROPS(pv));
    }
    tl_store_w_end(s, pid);
    checkpoint(s, 1, 1);
    tl_store_free(s);
    char part[512];
    first_part(f, "p", part, sizeof part);
    const uint32_t cols[] = {TL_COL_DID, TL_COL_TS, COL_EI, COL_PR};
    uint64_t off[4], clen[4];
    for (int i = 0; i < 4; i++) {
        find_column(part, cols[i], &off[i], &clen[i]);
        flip_byte(part, off[i] + clen[i] / 2);
    }
    s = open_store(f->sdir, NULL, NULL);
    tl_snap *sn = snap(s, "p");
    const uint32_t *u;
    const int64_t *ts;
    tl_str e;
    tl_prop_col pc;
    uint32_t key;
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("v"), &key), 0);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_DID, &u), TL_EBADMSG);
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_DID, &u), TL_EBADMSG); /* not cached */
    assert_int_equal(tl_snap_col_ts(sn, 0, &ts), TL_EBADMSG);
    assert_int_equal(tl_snap_event_id(sn, 0, 0, &e), TL_EBADMSG);
    assert_int_equal(tl_snap_prop(sn, 0, key, &pc), TL_EBADMSG);
    /* The columns that were not touched still load. */
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_EVENT, &u), 0);
    assert_true(str_is(tl_snap_dict_str(sn, u[0]), "b"));
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_SESSION, &u), 0);
    tl_snap_free(sn);
    tl_store_free(s);

    /* Damage to the header or directory refuses the open, with the file named. */
    flip_byte(part, 20);
    tl_store *s2 = NULL;
    uint64_t lp, ax;
    tl_err err = {0};
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, ".part"));
    flip_byte(part, 20);
    flip_byte(part, PHDR + 9);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    flip_byte(part, PHDR + 9);
    /* A part cut short: its last column now runs past the end. */
    assert_int_equal(truncate(part, (off_t)(file_size(part) - 1)), 0);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    assert_int_equal(truncate(part, 30), 0);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    /* A missing part file. */
    assert_int_equal(unlink(part), 0);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_ENOENT);
    /* A corrupt checkpoint. */
    char ck[256];
    snprintf(ck, sizeof ck, "%s/CHECKPOINT", f->sdir);
    flip_byte(ck, 13);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "CHECKPOINT"));
}

static void test_dict_tail(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    build_rich(s);
    checkpoint(s, 1, 1);
    char *before = dump(s, "shop");
    tl_store_free(s);
    const char *names[] = {"dict.dat", "ids.dat", "ident.ops"};
    char path[3][300];
    uint64_t len[3];
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/p/shop/%s", f->sdir, names[i]);
        len[i] = file_size(path[i]);
        assert_true(len[i] > 0);
        /* Bytes past the checkpointed length: a crash after a sync, before the checkpoint. */
        FILE *fp = fopen(path[i], "ab");
        fputs("\x05garbage\x7f\x7f\x7f", fp);
        fclose(fp);
    }
    s = open_store(f->sdir, NULL, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(file_size(path[i]), len[i]); /* cut back */
    char *after = dump(s, "shop");
    assert_same_text(before, after);
    /* New entries land right after the checkpointed ones. */
    uint32_t pid = begin(s, "shop");
    uint32_t d = did(s, pid, "newcomer", false);
    assert_int_equal(tl_store_w_merge(s, pid, d, 0), 0);
    append(s, pid, d, "brand-new-event", "nn", T0, "", "", NULL);
    tl_store_w_end(s, pid);
    free(before);
    before = dump(s, "shop");
    checkpoint(s, 2, 2);
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    free(after);
    after = dump(s, "shop");
    assert_same_text(before, after);
    tl_store_free(s);
    free(before);
    free(after);

    /* A file shorter than the checkpoint says is damage, not a crash: refused. */
    for (int i = 0; i < 3; i++) {
        char save[320];
        snprintf(save, sizeof save, "%s.save", path[i]);
        tl_buf b = TL_BUF_INIT;
        assert_int_equal(tl_read_file(path[i], &b), 0);
        assert_int_equal(truncate(path[i], (off_t)(b.len - 1)), 0);
        tl_store *s2 = NULL;
        uint64_t lp, ax;
        tl_err err = {0};
        assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
        assert_non_null(strstr(err.msg, names[i]));
        assert_int_equal(tl_write_file_atomic(path[i], b.p, b.len), 0);
        tl_buf_fini(&b);
    }
    s = open_store(f->sdir, NULL, NULL);
    tl_store_free(s);
}

/* Dictionary files are not checksummed; what can be checked is: no repeated entry (it would
 * shift every later id) and a kind byte on every distinct id. */
static void test_dict_damage(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t d = did(s, pid, "x", false);
    append(s, pid, d, "aa", "1", T0, "", "", NULL);
    append(s, pid, d, "bb", "2", T0, "", "", NULL);
    tl_store_w_end(s, pid);
    checkpoint(s, 1, 1);
    tl_store_free(s);
    char dict[256], ids[256];
    snprintf(dict, sizeof dict, "%s/p/p/dict.dat", f->sdir);
    snprintf(ids, sizeof ids, "%s/p/p/ids.dat", f->sdir);
    tl_buf b = TL_BUF_INIT;
    assert_int_equal(tl_read_file(dict, &b), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p,
                        "\x02"
                        "aa\x02"
                        "bb",
                        6);
    assert_int_equal(tl_write_file_atomic(dict,
                                          "\x02"
                                          "aa\x02"
                                          "aa",
                                          6),
                     0);
    tl_store *s2 = NULL;
    uint64_t lp, ax;
    tl_err err = {0};
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "dict.dat"));
    assert_int_equal(tl_write_file_atomic(dict,
                                          "\x02"
                                          "aa\x07"
                                          "bb",
                                          6),
                     0);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    assert_int_equal(tl_write_file_atomic(dict, b.p, b.len), 0);
    tl_buf_fini(&b);
    assert_int_equal(tl_write_file_atomic(ids, "\x02zx", 3), 0);
    assert_int_equal(tl_store_open(f->sdir, NULL, &s2, &lp, &ax, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "ids.dat"));
    assert_int_equal(tl_write_file_atomic(ids,
                                          "\x02"
                                          "ax",
                                          3),
                     0);
    s = open_store(f->sdir, NULL, NULL);
    char *text = dump(s, "p");
    assert_non_null(strstr(text, "0 a x person=0"));
    free(text);
    tl_store_free(s);
}

/* A crash between syncing the files of checkpoint 2 and writing its CHECKPOINT: the store
 * opens at checkpoint 1 exactly. */
static void test_crash_between_checkpoints(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    build_rich(s);
    checkpoint(s, 10, 20);
    char *at1 = dump(s, "shop"), *blog1 = dump(s, "blog");
    char ck[200], saved[200];
    snprintf(ck, sizeof ck, "%s/CHECKPOINT", f->sdir);
    snprintf(saved, sizeof saved, "%s/CHECKPOINT.1", f->dir);
    tl_buf b = TL_BUF_INIT;
    assert_int_equal(tl_read_file(ck, &b), 0);
    assert_int_equal(tl_write_file_atomic(saved, b.p, b.len), 0);
    /* More of everything, then checkpoint 2. */
    uint32_t pid = begin(s, "shop");
    uint32_t d = did(s, pid, "late", true);
    assert_int_equal(tl_store_w_merge(s, pid, d, did(s, pid, "anon-late", false)), 0);
    for (int i = 0; i < 50; i++) {
        char eid[32];
        snprintf(eid, sizeof eid, "late-%d", i);
        append(s, pid, d, "late-event", eid, T0 + i * DAY / 3, "https://late", "", NULL);
    }
    /* Erasing a person whose rows are all new: checkpoint 1's parts stay as they are (an
     * erasure that rewrote them would delete them once checkpoint 2 is durable, and a real
     * crash before that leaves them). */
    tl_store_w_erase(s, pid, did(s, pid, "anon-late", false));
    tl_store_w_end(s, pid);
    pid = begin(s, "newproj");
    append(s, pid, did(s, pid, "z", false), "e", "1", T0, "", "", NULL);
    tl_store_w_end(s, pid);
    checkpoint(s, 30, 40);
    char *at2 = dump(s, "shop");
    tl_store_free(s);
    /* Put checkpoint 1 back. */
    assert_int_equal(tl_write_file_atomic(ck, b.p, b.len), 0);
    tl_buf_fini(&b);
    uint64_t lp, ax;
    s = open_store(f->sdir, &lp, &ax);
    assert_int_equal(lp, 10);
    assert_int_equal(ax, 20);
    char *again = dump(s, "shop"), *blog_again = dump(s, "blog");
    assert_same_text(at1, again);
    assert_same_text(blog1, blog_again);
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(s, TL_STR("newproj"), &sn), TL_ENOENT);
    /* Redoing the same work (the log replay) gives checkpoint 2's state again. */
    pid = begin(s, "shop");
    d = did(s, pid, "late", true);
    assert_int_equal(tl_store_w_merge(s, pid, d, did(s, pid, "anon-late", false)), 0);
    for (int i = 0; i < 50; i++) {
        char eid[32];
        snprintf(eid, sizeof eid, "late-%d", i);
        append(s, pid, d, "late-event", eid, T0 + i * DAY / 3, "https://late", "", NULL);
    }
    /* Erasing a person whose rows are all new: checkpoint 1's parts stay as they are (an
     * erasure that rewrote them would delete them once checkpoint 2 is durable, and a real
     * crash before that leaves them). */
    tl_store_w_erase(s, pid, did(s, pid, "anon-late", false));
    tl_store_w_end(s, pid);
    pid = begin(s, "newproj");
    append(s, pid, did(s, pid, "z", false), "e", "1", T0, "", "", NULL);
    tl_store_w_end(s, pid);
    checkpoint(s, 30, 40);
    char *redo = dump(s, "shop");
    assert_same_text(at2, redo);
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    free(redo);
    redo = dump(s, "shop");
    assert_same_text(at2, redo);
    char *np = dump(s, "newproj");
    assert_non_null(strstr(np, "rows 1\n"));
    tl_store_free(s);
    free(np);
    free(redo);
    free(at1);
    free(at2);
    free(again);
    free(blog1);
    free(blog_again);
}

static void test_many_rows_and_props(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t d = did(s, pid, "a", false);
    /* An event with more than 64 properties (the heap path) and 3000 rows (array growth),
     * with 200 distinct keys in one open part (its key table grows). */
    tl_prop props[100];
    char keys[100][16];
    char eid[32];
    for (int row = 0; row < 3000; row++) {
        uint32_t n = row % 50 == 0 ? 100 : 2;
        for (uint32_t k = 0; k < n; k++) {
            snprintf(keys[k], sizeof keys[k], "key%d", (row / 50 * 3 + (int)k) % 200);
            props[k] = (tl_prop){tl_str_c(keys[k]), TL_PV_NUM, row + k * 0.5, TL_STR_NULL};
        }
        tl_record r;
        memset(&r, 0, sizeof r);
        r.kind = TL_REC_EVENT;
        r.ts_ms = T0 + (int64_t)((row * 104729) % 3000) * 1000;
        snprintf(eid, sizeof eid, "%d", row);
        r.event = TL_STR("e");
        r.event_id = tl_str_c(eid);
        r.props = props;
        r.n_props = n;
        tl_store_w_append(s, pid, &r, d);
    }
    tl_store_w_end(s, pid);
    char *before = dump(s, "p");
    checkpoint(s, 1, 1);
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    tl_snap *sn = snap(s, "p");
    assert_int_equal(tl_snap_part_prop_keys(sn, 0, NULL, 0), 200);
    tl_snap_free(sn);
    free(before);
    free(after);
    tl_store_free(s);
}

/* A part whose event ids are all empty (its id bytes were never allocated). */
static void test_empty_event_ids(void **state)
{
    fixture *f = *state;
    tl_store *s = open_store(f->sdir, NULL, NULL);
    uint32_t pid = begin(s, "p");
    uint32_t d = did(s, pid, "a", false);
    for (int i = 0; i < 3; i++)
        append(s, pid, d, "e", "", T0 + i, "", "", NULL);
    tl_store_w_end(s, pid);
    char *before = dump(s, "p");
    checkpoint(s, 1, 1);
    tl_store_free(s);
    s = open_store(f->sdir, NULL, NULL);
    char *after = dump(s, "p");
    assert_same_text(before, after);
    tl_snap *sn = snap(s, "p");
    tl_str eid = TL_STR("x");
    assert_int_equal(tl_snap_event_id(sn, 0, 2, &eid), 0);
    assert_int_equal(eid.len, 0);
    tl_snap_free(sn);
    free(before);
    free(after);
    tl_store_free(s);
}

static void test_checkpoint_failure_is_sticky(void **state)
{
    fixture *f = *state;
    tl_diag_set_level(-1);
    tl_store *s = open_store(f->sdir, NULL, NULL);
    build_rich(s);
    checkpoint(s, 1, 1);
    uint32_t pid = begin(s, "shop");
    append(s, pid, 0, "x", "after", T0, "", "", NULL);
    tl_store_w_end(s, pid);
    tl_fault_arm(TL_FAULT_FSYNC, 0);
    tl_err err = {0};
    int rc = tl_store_checkpoint(s, 2, 2, &err);
    assert_true(rc < 0);
    assert_true(err.msg[0] != 0);
    assert_int_equal(tl_store_checkpoint(s, 3, 3, &err), TL_EROFS);
    tl_store_free(s);
    /* The last good checkpoint is intact. */
    uint64_t lp, ax;
    s = open_store(f->sdir, &lp, &ax);
    assert_int_equal(lp, 1);
    tl_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_dids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_part_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dict_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dict_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_rows_and_props, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_event_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_failure_is_sticky, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_did_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cells, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
