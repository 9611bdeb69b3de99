/* Unit tests of the write-ahead log (src/log.h): round trip, group commit under concurrency,
 * segment roll and release, recovery from a cut at every byte of the tail, corruption before
 * the tail with and without repair, and sticky errors from injected write and fsync faults.
 * Every test works in its own mkdtemp directory. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "log.h"
#include "util/buf.h"
#include "util/crc.h"
#include "util/diag.h"
#include "util/fault.h"
#include "util/io.h"

#define HDR 20u

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tl_log_test.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

/* For tests that reopen the log hundreds of times to check recovery logic, not the disk:
 * tmpfs when the machine has one, where fsync costs nothing. */
static int setup_tmpfs(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/dev/shm/tl_log_test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return setup(state);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tl_fault_arm(TL_FAULT_NONE, 0);
    tl_rm_rf(f->dir);
    free(f);
    return 0;
}

static tl_log *open_log(const char *dir, uint64_t segment_bytes, bool repair)
{
    tl_log_opts o = {.segment_bytes = segment_bytes, .repair = repair};
    tl_log *log = NULL;
    tl_err err = {0};
    int rc = tl_log_open(dir, &o, &log, &err);
    if (rc) fprintf(stderr, "open failed: %s (%s)\n", err.msg, tl_strerror(rc));
    assert_int_equal(rc, 0);
    assert_non_null(log);
    return log;
}

static void seg_name(const char *dir, uint32_t seg, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%010" PRIu32 ".log", dir, seg);
}

static bool file_exists(const char *dir, uint32_t seg)
{
    char p[256];
    struct stat st;
    seg_name(dir, seg, p, sizeof p);
    return stat(p, &st) == 0;
}

static uint64_t file_size(const char *dir, uint32_t seg)
{
    char p[256];
    struct stat st;
    seg_name(dir, seg, p, sizeof p);
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

static void read_seg(const char *dir, uint32_t seg, tl_buf *b)
{
    char p[256];
    seg_name(dir, seg, p, sizeof p);
    b->len = 0;
    assert_int_equal(tl_read_file(p, b), 0);
}

static void write_seg(const char *dir, uint32_t seg, const void *data, size_t len)
{
    char p[256];
    seg_name(dir, seg, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Deterministic record i: "rec-00042-" then i % 61 letters, so sizes vary. */
static tl_str rec_text(int i, char *buf)
{
    int n = snprintf(buf, 128, "rec-%05d-", i);
    for (int k = 0; k < i % 61; k++)
        buf[n++] = (char)('a' + (i + k) % 26);
    return (tl_str){buf, (size_t)n};
}

static uint64_t append_one(tl_log *log, int i)
{
    char b[128];
    tl_str r = rec_text(i, b);
    uint64_t pos = 0;
    assert_int_equal(tl_log_append(log, &r, 1, &pos), 0);
    return pos;
}

/* Reads from `from` to the durable end, checking the records are rec_text(first ..). Returns
 * how many there were. */
static int expect_records(tl_log *log, uint64_t from, int first)
{
    tl_log_iter *it = NULL;
    assert_int_equal(tl_log_iter_new(log, from, &it), 0);
    int n = 0;
    tl_str rec;
    uint64_t next = 0, last = 0;
    int rc;
    while ((rc = tl_log_iter_next(it, &rec, &next)) == 1) {
        char b[128];
        tl_str want = rec_text(first + n, b);
        if (!tl_str_eq(rec, want)) fail_msg("record %d: got %.*s", first + n, (int)rec.len, rec.p);
        assert_true(next > last);
        last = next;
        n++;
    }
    assert_int_equal(rc, 0);
    assert_true(last == 0 || last <= tl_log_durable_pos(log));
    tl_log_iter_free(it);
    return n;
}

/* ---- round trip ------------------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 0, false);
    uint64_t start = (uint64_t)1 << 32 | HDR;
    assert_int_equal(tl_log_durable_pos(log), start);
    assert_int_equal(tl_log_start_pos(log), start);
    assert_int_equal(tl_log_error(log), 0);

    tl_str one = TL_STR("alpha");
    uint64_t p1 = 0, p2 = 0, p3 = 0;
    assert_int_equal(tl_log_append(log, &one, 1, &p1), 0);
    assert_int_equal(p1, start + 8 + 5);
    assert_int_equal(tl_log_durable_pos(log), p1);
    tl_str batch[3] = {TL_STR("b1"), TL_STR(""), TL_STR("b3-longer")};
    assert_int_equal(tl_log_append(log, batch, 3, &p2), 0);
    assert_int_equal(p2, p1 + 8 + 2 + 8 + 0 + 8 + 9);
    assert_int_equal(tl_log_append(log, NULL, 0, &p3), 0);
    assert_int_equal(p3, p2);

    tl_log_iter *it = NULL;
    assert_int_equal(tl_log_iter_new(log, 0, &it), 0);
    tl_str rec;
    uint64_t next;
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_true(tl_str_eqc(rec, "alpha"));
    assert_int_equal(next, p1);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_true(tl_str_eqc(rec, "b1"));
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_int_equal(rec.len, 0);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_true(tl_str_eqc(rec, "b3-longer"));
    assert_int_equal(next, p2);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 0);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 0);

    /* The iterator sees later appends. */
    tl_str late = TL_STR("late");
    assert_int_equal(tl_log_append(log, &late, 1, &p3), 0);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_true(tl_str_eqc(rec, "late"));
    assert_int_equal(next, p3);
    tl_log_iter_free(it);

    /* Starting in the middle, past the end, and before the start. */
    assert_int_equal(tl_log_iter_new(log, p1, &it), 0);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_true(tl_str_eqc(rec, "b1"));
    tl_log_iter_free(it);
    assert_int_equal(tl_log_iter_new(log, p3 + 1, &it), TL_EINVAL);
    assert_null(it);
    assert_int_equal(tl_log_iter_new(log, p3, &it), 0);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 0);
    tl_log_iter_free(it);
    tl_log_iter_free(NULL);

    /* tl_log_wait on what is already durable, and a timeout. */
    assert_int_equal(tl_log_wait(log, p3 - 1, 0), 0);
    assert_int_equal(tl_log_wait(log, p3, 0), TL_EAGAIN);
    assert_int_equal(tl_log_wait(log, p3, 20), TL_EAGAIN);

    tl_log_stats st;
    tl_log_get_stats(log, &st);
    assert_int_equal(st.appends, 3);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.bytes, 5 * 8 + 5 + 2 + 9 + 4);
    assert_int_equal(st.segments, 1);
    assert_true(st.fsyncs >= 3);
    tl_log_close(log);
    tl_log_close(NULL);

    tl_err err = {0};
    assert_int_equal(tl_log_check(f->dir, &err), 0);
}

static void test_too_big(void **state)
{
    fixture *f = *state;
    tl_log_opts o = {.max_record = 100};
    tl_log *log = NULL;
    assert_int_equal(tl_log_open(f->dir, &o, &log, NULL), 0);
    char big[101];
    memset(big, 'x', sizeof big);
    tl_str r[2] = {{big, 100}, {big, 101}};
    uint64_t pos = 0;
    assert_int_equal(tl_log_append(log, r, 2, &pos), TL_E2BIG);
    assert_int_equal(tl_log_error(log), 0);
    assert_int_equal(tl_log_append(log, r, 1, &pos), 0);
    assert_int_equal(pos, ((uint64_t)1 << 32) + HDR + 108);
    tl_log_close(log);
}

/* ---- concurrency and group commit ------------------------------------------------------ */

#define CT_THREADS 8
#define CT_APPENDS 1000

typedef struct ct_arg {
    tl_log *log;
    int t;
    uint64_t pos[CT_APPENDS];
    int failures;
} ct_arg;

static void *ct_main(void *p)
{
    ct_arg *a = p;
    for (int i = 0; i < CT_APPENDS; i++) {
        char b[64];
        int n = snprintf(b, sizeof b, "t%02d-%05d-payload-%0*d", a->t, i, i % 20, 0);
        tl_str r = {b, (size_t)n};
        if (tl_log_append(a->log, &r, 1, &a->pos[i]) != 0) a->failures++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 64 << 10, false); /* rolls a few times on the way */
    static ct_arg args[CT_THREADS];
    pthread_t th[CT_THREADS];
    for (int t = 0; t < CT_THREADS; t++) {
        args[t] = (ct_arg){.log = log, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, ct_main, &args[t]), 0);
    }
    for (int t = 0; t < CT_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < CT_THREADS; t++)
        assert_int_equal(args[t].failures, 0);

    static unsigned char seen[CT_THREADS][CT_APPENDS];
    memset(seen, 0, sizeof seen);
    int last_i[CT_THREADS];
    for (int t = 0; t < CT_THREADS; t++)
        last_i[t] = -1;
    tl_log_iter *it = NULL;
    assert_int_equal(tl_log_iter_new(log, tl_log_start_pos(log), &it), 0);
    tl_str rec;
    uint64_t next;
    int n = 0, rc;
    while ((rc = tl_log_iter_next(it, &rec, &next)) == 1) {
        int t, i;
        char b[64];
        snprintf(b, sizeof b, "%.*s", (int)rec.len, rec.p); /* records are not NUL-terminated */
        assert_int_equal(sscanf(b, "t%d-%d-", &t, &i), 2);
        assert_true(t >= 0 && t < CT_THREADS && i >= 0 && i < CT_APPENDS);
        seen[t][i]++;
        assert_true(i > last_i[t]); /* one thread's appends stay in order */
        last_i[t] = i;
        assert_int_equal(next, args[t].pos[i]); /* end_pos is where the record ends */
        n++;
    }
    assert_int_equal(rc, 0);
    tl_log_iter_free(it);
    assert_int_equal(n, CT_THREADS * CT_APPENDS);
    for (int t = 0; t < CT_THREADS; t++)
        for (int i = 0; i < CT_APPENDS; i++)
            assert_int_equal(seen[t][i], 1);

    tl_log_stats st;
    tl_log_get_stats(log, &st);
    assert_int_equal(st.appends, CT_THREADS * CT_APPENDS);
    assert_int_equal(st.records, CT_THREADS * CT_APPENDS);
    assert_true(st.segments > 1);
    fprintf(stderr, "  group commit: %" PRIu64 " appends, %" PRIu64 " fsyncs (%.1f per fsync)\n",
            st.appends, st.fsyncs, (double)st.appends / (double)st.fsyncs);
    assert_true(st.fsyncs * 2 < st.appends);
    tl_log_close(log);
    tl_err err = {0};
    assert_int_equal(tl_log_check(f->dir, &err), 0);
}

typedef struct wait_arg {
    tl_log *log;
    uint64_t pos;
    int timeout_ms;
    int rc;
} wait_arg;

static void *wait_main(void *p)
{
    wait_arg *a = p;
    a->rc = tl_log_wait(a->log, a->pos, a->timeout_ms);
    return NULL;
}

static void test_wait(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 0, false);
    wait_arg a = {.log = log, .pos = tl_log_durable_pos(log), .timeout_ms = 10000, .rc = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_main, &a), 0);
    usleep(20000);
    append_one(log, 0);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, 0);

    /* A waiter with no timeout is released by close. */
    a = (wait_arg){.log = log, .pos = tl_log_durable_pos(log), .timeout_ms = -1, .rc = 1};
    assert_int_equal(pthread_create(&th, NULL, wait_main, &a), 0);
    usleep(20000);
    tl_log_close(log);
    pthread_join(th, NULL);
    assert_int_equal(a.rc, TL_ECANCELED);
}

/* ---- segments -------------------------------------------------------------------------- */

static void test_roll_and_release(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 256, false);
    char pay[40];
    memset(pay, 'p', sizeof pay);
    tl_str r = {pay, sizeof pay}; /* 48 bytes framed: 4 per segment */
    uint64_t pos[32];
    for (int i = 0; i < 10; i++)
        assert_int_equal(tl_log_append(log, &r, 1, &pos[i]), 0);
    /* 1: 4 records, 2: 4 records, 3: 2 records */
    assert_int_equal(pos[3] >> 32, 1);
    assert_int_equal(pos[4] >> 32, 2);
    assert_int_equal(pos[4], (uint64_t)2 << 32 | (HDR + 48));
    assert_int_equal(pos[9] >> 32, 3);
    assert_int_equal(file_size(f->dir, 1), HDR + 4 * 48);

    /* A batch of 3 does not fit after 2 records: it goes whole into segment 4. */
    tl_str batch[3] = {r, r, r};
    assert_int_equal(tl_log_append(log, batch, 3, &pos[10]), 0);
    assert_int_equal(pos[10], (uint64_t)4 << 32 | (HDR + 3 * 48));
    assert_int_equal(file_size(f->dir, 3), HDR + 2 * 48);
    /* A batch bigger than a segment gets a segment of its own. */
    tl_str huge[8] = {r, r, r, r, r, r, r, r};
    assert_int_equal(tl_log_append(log, huge, 8, &pos[11]), 0);
    assert_int_equal(pos[11], (uint64_t)5 << 32 | (HDR + 8 * 48));
    assert_int_equal(tl_log_append(log, &r, 1, &pos[12]), 0);
    assert_int_equal(pos[12], (uint64_t)6 << 32 | (HDR + 48));
    for (uint32_t s = 1; s <= 6; s++)
        assert_true(s == 5 || file_size(f->dir, s) <= 256);

    tl_log_stats st;
    tl_log_get_stats(log, &st);
    assert_int_equal(st.segments, 6);

    /* Iteration crosses every segment boundary, and every batch stays in one segment. */
    tl_log_iter *it = NULL;
    assert_int_equal(tl_log_iter_new(log, 0, &it), 0);
    tl_str rec;
    uint64_t next;
    int n = 0;
    uint32_t batch_seg[3];
    while (tl_log_iter_next(it, &rec, &next) == 1) {
        assert_true(tl_str_eq(rec, r));
        if (n >= 10 && n < 13) batch_seg[n - 10] = (uint32_t)(next >> 32);
        n++;
    }
    tl_log_iter_free(it);
    assert_int_equal(n, 10 + 3 + 8 + 1);
    assert_int_equal(batch_seg[0], 4);
    assert_int_equal(batch_seg[2], 4);

    /* A position at the end of segment 3 releases 1..3; the iterator then starts at 4. */
    assert_int_equal(tl_log_iter_new(log, pos[9], &it), 0);
    assert_int_equal(tl_log_iter_next(it, &rec, &next), 1);
    assert_int_equal(next >> 32, 4); /* the end of 3 is followed by the start of 4 */
    tl_log_iter_free(it);
    assert_int_equal(tl_log_release(log, pos[9] - 1), 0);
    assert_false(file_exists(f->dir, 1));
    assert_false(file_exists(f->dir, 2));
    assert_true(file_exists(f->dir, 3));
    assert_int_equal(tl_log_release(log, pos[9]), 0);
    assert_false(file_exists(f->dir, 3));
    assert_int_equal(tl_log_start_pos(log), (uint64_t)4 << 32 | HDR);
    assert_int_equal(tl_log_iter_new(log, 0, &it), 0);
    n = 0;
    while (tl_log_iter_next(it, &rec, &next) == 1)
        n++;
    tl_log_iter_free(it);
    assert_int_equal(n, 3 + 8 + 1);

    /* Releasing everything keeps the active segment. */
    assert_int_equal(tl_log_release(log, UINT64_MAX), 0);
    assert_true(file_exists(f->dir, 6));
    assert_false(file_exists(f->dir, 5));
    tl_log_get_stats(log, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(tl_log_start_pos(log), (uint64_t)6 << 32 | HDR);
    assert_int_equal(tl_log_durable_pos(log), pos[12]);
    tl_log_close(log);

    /* Reopening starts at the oldest kept segment and keeps appending after it. */
    log = open_log(f->dir, 256, false);
    assert_int_equal(tl_log_start_pos(log), (uint64_t)6 << 32 | HDR);
    assert_int_equal(tl_log_durable_pos(log), pos[12]);
    assert_int_equal(tl_log_append(log, &r, 1, &pos[13]), 0);
    assert_int_equal(pos[13], pos[12] + 48);
    tl_log_close(log);
}

/* ---- recovery -------------------------------------------------------------------------- */

static void test_reopen(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 1024, false);
    uint64_t end = 0;
    for (int i = 0; i < 100; i++)
        end = append_one(log, i);
    tl_log_close(log);

    log = open_log(f->dir, 1024, false);
    assert_int_equal(tl_log_durable_pos(log), end);
    assert_int_equal(expect_records(log, 0, 0), 100);
    uint64_t p = append_one(log, 100);
    assert_true(p > end);
    tl_log_close(log);

    log = open_log(f->dir, 1024, false);
    assert_int_equal(expect_records(log, 0, 0), 101);
    tl_log_close(log);
}

/* Cuts the last segment at every byte offset (and, separately, overwrites its tail with
 * zeros, as a file system may after a crash): opening always succeeds and keeps exactly the
 * whole records before the cut, and the log keeps working after it. */
static void test_truncate_every_offset(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 600, false);
    int total = 0;
    while (tl_log_durable_pos(log) >> 32 < 2 || (uint32_t)tl_log_durable_pos(log) < 180)
        append_one(log, total++);
    uint32_t last = (uint32_t)(tl_log_durable_pos(log) >> 32);
    tl_log_close(log);

    tl_buf img = TL_BUF_INIT;
    read_seg(f->dir, last, &img);
    /* Record boundaries in the last segment, and how many records come before it. */
    uint32_t ends[64];
    int nends = 0;
    for (size_t off = HDR; off < img.len;) {
        off += 8 + tl_le32(img.p + off);
        ends[nends++] = (uint32_t)off;
    }
    assert_int_equal(ends[nends - 1], img.len);
    int before = total - nends;
    assert_true(nends >= 3);

    char *zeros = calloc(1, img.len);
    for (size_t cut = 0; cut <= img.len; cut++) {
        int keep = 0;
        while (keep < nends && ends[keep] <= cut)
            keep++;
        uint64_t want_len = keep ? ends[keep - 1] : HDR;

        write_seg(f->dir, last, img.p, cut);
        tl_err err = {0};
        assert_int_equal(tl_log_check(f->dir, &err), 0);
        log = open_log(f->dir, 600, false);
        assert_int_equal(file_size(f->dir, last), want_len);
        assert_int_equal(tl_log_durable_pos(log), (uint64_t)last << 32 | want_len);
        assert_int_equal(expect_records(log, 0, 0), before + keep);
        bool boundary = cut == want_len || cut == want_len + 1;
        if (boundary || cut % 7 == 0 || cut < HDR) {
            /* Appending after the cut works and survives another reopen (sampled for speed). */
            append_one(log, before + keep);
            tl_log_close(log);
            log = open_log(f->dir, 600, false);
            assert_int_equal(expect_records(log, 0, 0), before + keep + 1);
        }
        tl_log_close(log);

        /* Same length, but zeros from the cut on (sampled). */
        if (cut >= HDR && (boundary || cut % 3 == 0)) {
            tl_buf z = TL_BUF_INIT;
            tl_buf_add(&z, img.p, cut);
            tl_buf_add(&z, zeros, img.len - cut);
            write_seg(f->dir, last, z.p, z.len);
            tl_buf_fini(&z);
            log = open_log(f->dir, 600, false);
            assert_int_equal(expect_records(log, 0, 0), before + keep);
            tl_log_close(log);
        }
    }
    free(zeros);
    tl_buf_fini(&img);
}

static void test_corrupt_before_tail(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 0, false);
    for (int i = 0; i < 10; i++)
        append_one(log, i);
    tl_log_close(log);
    tl_buf img = TL_BUF_INIT;
    read_seg(f->dir, 1, &img);
    uint32_t off4 = HDR; /* start of record 4 */
    for (int i = 0; i < 4; i++)
        off4 += 8 + tl_le32(img.p + off4);

    /* A flipped payload byte, valid records after it. */
    img.p[off4 + 8 + 2] ^= 0x20;
    write_seg(f->dir, 1, img.p, img.len);
    tl_log_opts o = {0};
    tl_log *bad = NULL;
    tl_err err = {0};
    assert_int_equal(tl_log_open(f->dir, &o, &bad, &err), TL_EBADMSG);
    assert_null(bad);
    char want[64];
    snprintf(want, sizeof want, "offset %" PRIu32, off4);
    if (!strstr(err.msg, "0000000001.log") || !strstr(err.msg, want))
        fail_msg("message lacks file or offset: %s", err.msg);
    memset(&err, 0, sizeof err);
    assert_int_equal(tl_log_check(f->dir, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(file_size(f->dir, 1), img.len); /* refusing changes nothing */

    /* A damaged length field: "incomplete", but valid records follow, so still refused. */
    img.p[off4 + 8 + 2] ^= 0x20;
    tl_put32(img.p + off4, 0x7fffffff);
    write_seg(f->dir, 1, img.p, img.len);
    assert_int_equal(tl_log_open(f->dir, &o, &bad, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, want));

    /* Repair keeps records 0..3 and drops the rest. */
    log = open_log(f->dir, 0, true);
    assert_int_equal(file_size(f->dir, 1), off4);
    assert_int_equal(expect_records(log, 0, 0), 4);
    append_one(log, 4);
    tl_log_close(log);
    log = open_log(f->dir, 0, false);
    assert_int_equal(expect_records(log, 0, 0), 5);
    tl_log_close(log);
    tl_buf_fini(&img);
}

static void test_corrupt_sealed_segment(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 200, false);
    int total = 0;
    while (tl_log_durable_pos(log) >> 32 < 4)
        append_one(log, total++);
    tl_log_close(log);

    /* Segment 1 loses its last 3 bytes: in a sealed segment that is corruption. */
    tl_buf img = TL_BUF_INIT;
    read_seg(f->dir, 1, &img);
    int in1 = 0;
    uint32_t last_start = HDR;
    for (size_t off = HDR; off < img.len; in1++) {
        last_start = (uint32_t)off;
        off += 8 + tl_le32(img.p + off);
    }
    write_seg(f->dir, 1, img.p, img.len - 3);
    tl_log *bad = NULL;
    tl_err err = {0};
    tl_log_opts o = {.segment_bytes = 200};
    assert_int_equal(tl_log_open(f->dir, &o, &bad, &err), TL_EBADMSG);
    char want[64];
    snprintf(want, sizeof want, "offset %" PRIu32, last_start);
    if (!strstr(err.msg, "0000000001.log") || !strstr(err.msg, want))
        fail_msg("message lacks file or offset: %s", err.msg);

    /* Repair truncates segment 1 and deletes all later segments. */
    log = open_log(f->dir, 200, true);
    assert_false(file_exists(f->dir, 2));
    assert_false(file_exists(f->dir, 4));
    assert_int_equal(expect_records(log, 0, 0), in1 - 1);
    append_one(log, in1 - 1);
    tl_log_close(log);
    log = open_log(f->dir, 200, false);
    assert_int_equal(expect_records(log, 0, 0), in1);
    tl_log_close(log);
    tl_buf_fini(&img);
}

static void test_missing_segment(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 200, false);
    int total = 0;
    while (tl_log_durable_pos(log) >> 32 < 4)
        append_one(log, total++);
    tl_log_close(log);
    tl_buf img = TL_BUF_INIT;
    read_seg(f->dir, 1, &img);
    int in1 = 0;
    for (size_t off = HDR; off < img.len; in1++)
        off += 8 + tl_le32(img.p + off);
    tl_buf_fini(&img);

    char p[256];
    seg_name(f->dir, 2, p, sizeof p);
    assert_int_equal(unlink(p), 0);
    tl_log *bad = NULL;
    tl_err err = {0};
    tl_log_opts o = {.segment_bytes = 200};
    assert_int_equal(tl_log_open(f->dir, &o, &bad, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "0000000002.log"));

    log = open_log(f->dir, 200, true);
    assert_false(file_exists(f->dir, 3));
    assert_int_equal(expect_records(log, 0, 0), in1);
    tl_log_close(log);
}

static void test_bad_last_header(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 200, false);
    int total = 0;
    while (tl_log_durable_pos(log) >> 32 < 2)
        append_one(log, total++); /* stops once one record is in segment 2 */
    tl_log_close(log);

    /* A last segment that is only a garbled header (a torn roll) is rewritten on open. */
    tl_buf img = TL_BUF_INIT;
    read_seg(f->dir, 2, &img);
    img.p[3] ^= 1;
    write_seg(f->dir, 2, img.p, HDR);
    log = open_log(f->dir, 200, false);
    assert_int_equal(tl_log_durable_pos(log), (uint64_t)2 << 32 | HDR);
    assert_int_equal(expect_records(log, 0, 0), total - 1);
    append_one(log, total - 1);
    tl_log_close(log);

    /* A bad header with records after it is refused. */
    read_seg(f->dir, 2, &img);
    img.p[12] ^= 1; /* the segment number */
    write_seg(f->dir, 2, img.p, img.len);
    tl_log *bad = NULL;
    tl_err err = {0};
    assert_int_equal(tl_log_open(f->dir, NULL, &bad, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "0000000002.log"));
    assert_non_null(strstr(err.msg, "offset 0"));
    tl_buf_fini(&img);
}

/* ---- scanner --------------------------------------------------------------------------- */

static void put_rec(tl_buf *b, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    char h[8];
    tl_put32(h, n);
    uint32_t crc = tl_crc32c(tl_crc32c(0, h, 4), s, n);
    tl_put32(h + 4, crc);
    tl_buf_add(b, h, 8);
    tl_buf_add(b, s, n);
}

static void test_scan_image(void **state)
{
    (void)state;
    tl_buf b = TL_BUF_INIT;
    uint8_t h[HDR];
    memcpy(h, "TLLOG001", 8);
    tl_put32(h + 8, 1);
    tl_put32(h + 12, 7);
    tl_put32(h + 16, tl_crc32c(0, h, 16));
    tl_buf_add(&b, h, HDR);
    put_rec(&b, "first");
    put_rec(&b, "second");
    tl_log_scan sc;
    assert_int_equal(tl_log_scan_image(b.p, b.len, 7, &sc), 0);
    assert_int_equal(sc.records, 2);
    assert_int_equal(sc.valid_len, b.len);
    assert_null(sc.why);
    assert_int_equal(tl_log_scan_image(b.p, b.len, 8, &sc), TL_EBADMSG); /* wrong number */
    assert_int_equal(sc.valid_len, 0);
    assert_true(sc.corrupt);
    assert_int_equal(tl_log_scan_image(NULL, 0, 7, &sc), TL_EBADMSG);
    assert_true(sc.torn);
    assert_int_equal(tl_log_scan_image(b.p, b.len - 1, 7, &sc), TL_EBADMSG);
    assert_true(sc.torn);
    assert_int_equal(sc.records, 1);
    assert_int_equal(sc.valid_len, HDR + 13);
    b.p[HDR + 9] ^= 1; /* "first" damaged, "second" intact after it */
    assert_int_equal(tl_log_scan_image(b.p, b.len, 7, &sc), TL_EBADMSG);
    assert_true(sc.corrupt);
    assert_false(sc.torn);
    assert_int_equal(sc.valid_len, HDR);
    assert_string_equal(sc.why, "bad record checksum");
    tl_buf_fini(&b);
}

/* ---- faults ---------------------------------------------------------------------------- */

/* Arms a fault, checks that the append that meets it and every later one fail with TL_EROFS
 * and that no fsync is tried after, then checks a reopened log holds exactly the records
 * acknowledged before. batch > 1 makes the failing append a multi-record one. */
static void fault_case(const char *dir, tl_fault_kind kind, int batch, int want_err)
{
    tl_log *log = open_log(dir, 0, false);
    for (int i = 0; i < 5; i++)
        append_one(log, i);
    uint64_t durable = tl_log_durable_pos(log);
    tl_log_stats st0, st1;
    tl_log_get_stats(log, &st0);

    tl_fault_arm(kind, 0);
    char bufs[16][128];
    tl_str recs[16];
    for (int k = 0; k < batch; k++)
        recs[k] = rec_text(5 + k, bufs[k]);
    uint64_t pos = 0;
    assert_int_equal(tl_log_append(log, recs, (size_t)batch, &pos), TL_EROFS);
    assert_int_equal(pos, 0);
    assert_int_equal(tl_log_error(log), want_err);
    tl_log_get_stats(log, &st1);
    for (int k = 0; k < 3; k++)
        assert_int_equal(tl_log_append(log, recs, 1, &pos), TL_EROFS);
    tl_log_stats st2;
    tl_log_get_stats(log, &st2);
    assert_int_equal(st2.fsyncs, st1.fsyncs); /* never retried */
    assert_int_equal(st2.appends, st0.appends);
    assert_int_equal(tl_log_durable_pos(log), durable);
    assert_int_equal(expect_records(log, 0, 0), 5); /* readers unaffected */
    tl_log_close(log);

    tl_fault_arm(TL_FAULT_NONE, 0);
    log = open_log(dir, 0, false);
    assert_int_equal(tl_log_durable_pos(log), durable);
    assert_int_equal(expect_records(log, 0, 0), 5);
    append_one(log, 5);
    assert_int_equal(expect_records(log, 0, 0), 6);
    tl_log_close(log);
}

static void test_fault_fsync(void **state)
{
    fixture *f = *state;
    fault_case(f->dir, TL_FAULT_FSYNC, 1, TL_EIO);
}

static void test_fault_enospc(void **state)
{
    fixture *f = *state;
    fault_case(f->dir, TL_FAULT_ENOSPC, 3, TL_ENOSPC);
}

static void test_fault_eio(void **state)
{
    fixture *f = *state;
    fault_case(f->dir, TL_FAULT_EIO, 1, TL_EIO);
}

static void test_fault_short_write(void **state)
{
    fixture *f = *state;
    fault_case(f->dir, TL_FAULT_SHORT, 16, TL_ENOSPC);
}

/* A failure while creating the next segment. */
static void test_fault_roll(void **state)
{
    fixture *f = *state;
    for (int round = 0; round < 2; round++) {
        tl_log *log = open_log(f->dir, 256, false);
        char pay[100];
        memset(pay, 'r', sizeof pay);
        tl_str r = {pay, sizeof pay};
        uint64_t pos;
        while ((uint32_t)tl_log_durable_pos(log) + 108 <= 256)
            assert_int_equal(tl_log_append(log, &r, 1, &pos), 0);
        uint64_t durable = tl_log_durable_pos(log);
        uint32_t seg = (uint32_t)(durable >> 32);
        tl_log_stats st;
        tl_log_get_stats(log, &st);
        tl_fault_arm(round == 0 ? TL_FAULT_ENOSPC : TL_FAULT_FSYNC, 0);
        assert_int_equal(tl_log_append(log, &r, 1, &pos), TL_EROFS);
        assert_int_equal(tl_log_append(log, &r, 1, &pos), TL_EROFS);
        assert_false(file_exists(f->dir, seg + 1)); /* the failed segment was removed */
        assert_int_equal(tl_log_durable_pos(log), durable);
        tl_log_close(log);
        tl_fault_arm(TL_FAULT_NONE, 0);
        log = open_log(f->dir, 256, false);
        assert_int_equal(tl_log_durable_pos(log), durable);
        tl_log_stats st2;
        tl_log_get_stats(log, &st2);
        assert_int_equal(st2.segments, st.segments);
        assert_int_equal(tl_log_append(log, &r, 1, &pos), 0);
        assert_int_equal(pos >> 32, seg + 1);
        tl_log_close(log);
    }
}

#define FT_THREADS 4
#define FT_MAX     2000

typedef struct ft_arg {
    tl_log *log;
    int t;
    int ok[FT_MAX];
    int n_ok;
    bool refused_after; /* every append after the first failure failed too */
} ft_arg;

static void *ft_main(void *p)
{
    ft_arg *a = p;
    a->refused_after = true;
    int failed = 0;
    for (int i = 0; i < FT_MAX; i++) {
        char b[64];
        int n = snprintf(b, sizeof b, "t%d-%d", a->t, i);
        tl_str r = {b, (size_t)n};
        int rc = tl_log_append(a->log, &r, 1, NULL);
        if (rc == 0 && failed) a->refused_after = false;
        if (rc == 0)
            a->ok[a->n_ok++] = i;
        else if (rc != TL_EROFS)
            a->refused_after = false;
        else if (++failed == 5)
            break;
    }
    return NULL;
}

/* Concurrent appenders meet an fsync failure: each sees TL_EROFS from then on, and after a
 * reopen the log holds exactly the records that were acknowledged. */
static void test_fault_concurrent(void **state)
{
    fixture *f = *state;
    tl_log *log = open_log(f->dir, 0, false);
    static ft_arg args[FT_THREADS];
    pthread_t th[FT_THREADS];
    tl_fault_arm(TL_FAULT_FSYNC, 40);
    for (int t = 0; t < FT_THREADS; t++) {
        args[t] = (ft_arg){.log = log, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, ft_main, &args[t]), 0);
    }
    for (int t = 0; t < FT_THREADS; t++)
        pthread_join(th[t], NULL);
    int acked = 0;
    for (int t = 0; t < FT_THREADS; t++) {
        assert_true(args[t].refused_after);
        assert_true(args[t].n_ok < FT_MAX);
        acked += args[t].n_ok;
    }
    assert_int_equal(tl_log_error(log), TL_EIO);
    tl_log_close(log);

    log = open_log(f->dir, 0, false);
    tl_log_iter *it = NULL;
    assert_int_equal(tl_log_iter_new(log, 0, &it), 0);
    tl_str rec;
    uint64_t next;
    int idx[FT_THREADS] = {0}, n = 0;
    while (tl_log_iter_next(it, &rec, &next) == 1) {
        int t, i;
        char b[64];
        snprintf(b, sizeof b, "%.*s", (int)rec.len, rec.p);
        assert_int_equal(sscanf(b, "t%d-%d", &t, &i), 2);
        assert_true(t >= 0 && t < FT_THREADS);
        assert_true(idx[t] < args[t].n_ok);
        assert_int_equal(i, args[t].ok[idx[t]++]);
        n++;
    }
    tl_log_iter_free(it);
    assert_int_equal(n, acked);
    tl_log_close(log);
}

int main(void)
{
    tl_diag_set_level(TL_LOG_ERROR); /* recovery warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_and_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_every_offset, setup_tmpfs, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_before_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_sealed_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_last_header, setup, teardown),
        cmocka_unit_test(test_scan_image),
        cmocka_unit_test_setup_teardown(test_fault_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_eio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_short_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
