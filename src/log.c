/* The write-ahead event log: every accepted event is appended here, and its HTTP answer waits
 * for the fdatasync that covers it. The indexer tails the log and, on restart, replays it from
 * its checkpoint, so this file is what makes "a 200 means the event is on disk" true.
 *
 * ON-DISK FORMAT, version 1
 *
 * A log is a directory of segment files named by their number in ten decimal digits
 * ("0000000001.log"), numbered consecutively from the oldest kept segment to the active one.
 * Other names in the directory are ignored. All integers are little-endian.
 *
 *   segment header, 20 bytes
 *   +------------+-----------+-----------+-------------+
 *   | "TLLOG001" |  version  |  segment  | header crc  |
 *   |  8 bytes   |  u32 = 1  |  u32 = N  |     u32     |
 *   +------------+-----------+-----------+-------------+
 *   header crc = CRC-32C of the 16 bytes before it; N is the number in the file name.
 *
 *   record, 8 + len bytes, repeated to the end of the file (no padding, no trailer)
 *   +-----------+-----------+---------------------------+
 *   |    len    |    crc    |  payload, len bytes       |
 *   |    u32    |    u32    |                           |
 *   +-----------+-----------+---------------------------+
 *   crc = CRC-32C of the 4 len bytes followed by the payload (never of the crc itself).
 *
 * A position is (segment << 32) | byte offset in it; the first record of a segment is at
 * offset 20. Offsets stay below 2^32 because segments roll near segment_bytes (≤ 1 GiB) and
 * one append is at most 1 GiB.
 *
 * GROUP COMMIT (Redis aof.c flushAppendOnlyFile, with the fsync always on)
 *
 * tl_log_append frames its records into the shared pending buffer under the mutex, queues a
 * waiter on its own stack and sleeps. The writer thread takes the whole pending buffer and
 * queue, fills in the CRCs, writes it with one write() and makes it durable with one
 * fdatasync, then publishes the durable position and wakes everyone. While the writer is in
 * fdatasync, the next group accumulates, so N concurrent appenders share one fsync. An append
 * that does not fit in what is left of the active segment makes the writer roll first (new
 * file, header, fdatasync, fsync of the directory); one append never spans two segments.
 *
 * WRITER STATES (SQLite pager.c)
 *
 *     OPEN --write or fsync fails--> ERROR (sticky)
 *       |                               |
 *       +------- tl_log_close ----------+--> CLOSED
 *
 *   OPEN:   groups are written; see write_group() and roll().
 *   ERROR:  set_failed(). Every waiting and later append fails with TL_EROFS. Nothing is ever
 *           written or fsynced again in this process: after a failed fsync the kernel may
 *           have dropped the dirty pages, so a retry that "succeeds" would be a lie. Bytes
 *           past the durable position are cut with a best-effort ftruncate, and recovery
 *           on the next open truncates whatever torn tail is left.
 *
 * INVARIANTS
 *   1. durable is at a record boundary, and every byte before it has been fdatasynced.
 *   2. Only the writer thread writes segment files, and it changes active, w_off and the
 *      segment table only while it is OPEN.
 *   3. Once err is set it never changes, and no write or fsync is issued after it.
 *   4. Every segment below the active one consists of whole, valid records up to seg_end[].
 *   5. The records of one append lie in one segment.
 *   6. Nothing reads past durable: iterators limit themselves to it.
 *
 * RECOVERY (tl_log_open) scans every segment. In the last one, a torn tail (an incomplete
 * header or record, or a bad one with no valid record anywhere after it) is what a crash
 * during a write leaves, and it is truncated. Anything else that is wrong — a bad record with
 * valid data after it, damage in a sealed segment, a missing segment number — means
 * acknowledged data was damaged, so opening refuses with TL_EBADMSG unless opts->repair. */
#include "log.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "util/buf.h"
#include "util/crc.h"
#include "util/diag.h"
#include "util/io.h"

#define HDR_LEN   20u
#define FRAME_LEN 8u
#define VERSION   1u
#define MAGIC     "TLLOG001"

/* Tuning. */
#define DEFAULT_SEGMENT_BYTES (64u << 20)
#define MIN_SEGMENT_BYTES     64u
#define MAX_SEGMENT_BYTES     (1u << 30)
#define DEFAULT_MAX_RECORD    (16u << 20)
#define MAX_APPEND_BYTES      (1u << 30) /* framed bytes of one append */
#define PENDING_MAX_BYTES     (32u << 20)
#define ITER_CHUNK_BYTES      (256u << 10)
#define PATH_CAP              4096

/* One tl_log_append in flight; lives on the appender's stack until done is set. */
typedef struct waiter {
    struct waiter *next;
    size_t len; /* framed bytes in the pending buffer */
    size_t n;   /* records */
    uint64_t end_pos;
    int rc;
    bool done;
} waiter;

struct tl_log {
    char *dir;
    uint64_t segment_bytes;
    uint32_t max_record;
    int lock_fd; /* flock on the directory: one process per log */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* writer: work queued, or closing */
    pthread_cond_t done_cv;  /* appenders, tl_log_wait: a group finished, or closing */
    pthread_cond_t space_cv; /* appenders: the writer took the pending buffer */
    pthread_t writer;
    bool writer_started;

    /* Under mu. */
    tl_buf pending;
    waiter *q_head, *q_tail;
    bool closing;
    bool roll_wanted;   /* tl_log_release asks the writer to start a new segment */
    uint64_t expedite;  /* 0, or a position whose segment must go soon (tl_log_expedite) */
    int waiting;        /* threads inside tl_log_wait */
    uint32_t first_seg; /* oldest kept segment */
    uint32_t *seg_end;  /* seg_end[i]: length of segment first_seg + i */
    size_t seg_n, seg_cap;
    tl_log_stats stats;
    _Atomic uint64_t durable; /* stored under mu, loaded anywhere */
    _Atomic int err;          /* sticky: the first failure; stored under mu */

    /* Writer thread only (stores to active also under mu, for readers of the table). */
    int fd;
    uint32_t active;
    uint32_t w_off; /* length of the active segment */
    tl_buf wbuf;
};

struct tl_log_iter {
    tl_log *log;
    uint32_t seg, off;
    uint32_t limit; /* readable end in seg as last seen; refreshed under mu when reached */
    int fd;
    char *buf;
    size_t cap, len;
    uint64_t buf_off; /* file offset of buf[0] */
};

/* ---- format ---------------------------------------------------------------------------- */

/* tl_log_release rolls a fully covered active segment longer than this. */
#define RELEASE_ROLL_MIN (1u << 20)

static void seg_path(const char *dir, uint32_t seg, char *out)
{
    snprintf(out, PATH_CAP, "%s/%010" PRIu32 ".log", dir, seg);
}

static void make_header(uint8_t h[HDR_LEN], uint32_t seg)
{
    memcpy(h, MAGIC, 8);
    tl_put32(h + 8, VERSION);
    tl_put32(h + 12, seg);
    tl_put32(h + 16, tl_crc32c(0, h, 16));
}

static bool header_ok(const uint8_t *p, uint32_t seg)
{
    return memcmp(p, MAGIC, 8) == 0 && tl_le32(p + 8) == VERSION && tl_le32(p + 12) == seg &&
           tl_le32(p + 16) == tl_crc32c(0, p, 16);
}

static uint32_t frame_crc(const uint8_t *frame, uint32_t len)
{
    return tl_crc32c(tl_crc32c(0, frame, 4), frame + FRAME_LEN, len);
}

/* A whole, valid record at p with avail bytes readable: its payload length, or -1. */
static int64_t frame_at(const uint8_t *p, size_t avail)
{
    if (avail < FRAME_LEN) return -1;
    uint32_t len = tl_le32(p);
    if (len > avail - FRAME_LEN || tl_le32(p + 4) != frame_crc(p, len)) return -1;
    return len;
}

int tl_log_scan_image(const void *img, size_t len, uint32_t seg, tl_log_scan *out)
{
    const uint8_t *p = img;
    memset(out, 0, sizeof *out);
    size_t off = 0;
    if (len < HDR_LEN) {
        out->why = "incomplete segment header";
    } else if (!header_ok(p, seg)) {
        out->why = "bad segment header";
    } else {
        off = HDR_LEN;
        while (off < len) {
            int64_t rl = frame_at(p + off, len - off);
            if (rl < 0) {
                if (len - off < FRAME_LEN || tl_le32(p + off) > len - off - FRAME_LEN)
                    out->why = "incomplete record";
                else
                    out->why = "bad record checksum";
                break;
            }
            off += FRAME_LEN + (size_t)rl;
            out->records++;
        }
    }
    out->valid_len = off;
    if (off == len && off >= HDR_LEN) {
        out->why = NULL;
        return 0;
    }
    /* Is anything valid after the bad spot? A crash tears only the end of what was being
     * written, so a valid record further on means the damage is elsewhere. */
    out->corrupt = false;
    for (size_t o = off + 1; o + FRAME_LEN <= len && !out->corrupt; o++)
        out->corrupt = frame_at(p + o, len - o) >= 0;
    out->torn = !out->corrupt;
    return TL_EBADMSG;
}

/* ---- recovery -------------------------------------------------------------------------- */

typedef struct seg_file {
    uint32_t num;
    uint64_t size;
    tl_log_scan scan;
} seg_file;

static int cmp_seg(const void *a, const void *b)
{
    uint32_t x = ((const seg_file *)a)->num, y = ((const seg_file *)b)->num;
    return x < y ? -1 : x > y;
}

/* Segment files of dir, sorted by number, with their sizes. */
static int list_segments(const char *dir, seg_file **out, size_t *out_n, tl_err *err)
{
    *out = NULL;
    *out_n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return tl_err_set(err, -errno, "log: cannot open directory %s: %s", dir,
                          tl_strerror(-errno));
    seg_file *s = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        if (strlen(name) != 14 || strcmp(name + 10, ".log") != 0) continue;
        uint64_t num = 0;
        bool digits = true;
        for (int i = 0; i < 10; i++) {
            digits = digits && name[i] >= '0' && name[i] <= '9';
            num = num * 10 + (uint64_t)(name[i] - '0');
        }
        if (!digits || num == 0 || num > UINT32_MAX) continue;
        struct stat st;
        if (fstatat(dirfd(d), name, &st, 0) < 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            s = tl_xrealloc(s, cap * sizeof *s);
        }
        s[n++] = (seg_file){.num = (uint32_t)num, .size = (uint64_t)st.st_size};
    }
    closedir(d);
    if (n) qsort(s, n, sizeof *s, cmp_seg);
    *out = s;
    *out_n = n;
    return 0;
}

static int scan_segment(const char *path, seg_file *sf, tl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tl_err_set(err, -errno, "log: cannot open %s: %s", path, tl_strerror(-errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = tl_err_set(err, -errno, "log: cannot stat %s: %s", path, tl_strerror(-errno));
        goto out;
    }
    sf->size = (uint64_t)st.st_size;
    if (sf->size > UINT32_MAX) {
        rc = tl_err_set(err, TL_EBADMSG, "log: %s: segment larger than 4 GiB", path);
        goto out;
    }
    void *map = NULL;
    if (sf->size) {
        map = mmap(NULL, sf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            rc = tl_err_set(err, -errno, "log: cannot map %s: %s", path, tl_strerror(-errno));
            goto out;
        }
    }
    int bad = tl_log_scan_image(map, sf->size, sf->num, &sf->scan); /* judged by recover() */
    (void)bad;
    if (map) munmap(map, sf->size);
out:
    close(fd);
    return rc;
}

/* Creates segment num holding just its header, durable together with its directory entry.
 * On success *fd_out (if not NULL) is open for writing at the end; on failure the file is
 * removed (best effort). *fsyncs counts the syncs issued. */
static int create_segment(const char *dir, uint32_t num, int *fd_out, uint64_t *fsyncs)
{
    char path[PATH_CAP];
    uint8_t h[HDR_LEN];
    seg_path(dir, num, path);
    make_header(h, num);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = tl_write_all(fd, h, HDR_LEN);
    if (!rc) {
        rc = tl_fdatasync(fd);
        ++*fsyncs;
    }
    if (!rc) {
        rc = tl_fsync_dir(dir);
        ++*fsyncs;
    }
    if (rc || !fd_out) {
        close(fd);
        if (rc) unlink(path);
    } else {
        *fd_out = fd;
    }
    return rc;
}

/* Cuts segment num to keep bytes; below a whole header it rewrites a fresh header. */
static int truncate_segment(const char *dir, uint32_t num, uint64_t keep)
{
    char path[PATH_CAP];
    seg_path(dir, num, path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = 0;
    if (keep < HDR_LEN) {
        uint8_t h[HDR_LEN];
        make_header(h, num);
        if (ftruncate(fd, 0) < 0) rc = -errno;
        if (!rc) rc = tl_pwrite_all(fd, h, HDR_LEN, 0);
    } else if (ftruncate(fd, (off_t)keep) < 0) {
        rc = -errno;
    }
    if (!rc) rc = tl_fdatasync(fd);
    close(fd);
    return rc;
}

/* Scans dir and, when apply, fixes it: truncates a torn tail, and with repair cuts at the
 * first damage. On success *out holds the kept segments with their valid lengths (at least
 * one segment when apply). Without apply nothing on disk changes (tl_log_check). */
static int recover(const char *dir, bool repair, bool apply, seg_file **out, size_t *out_n,
                   tl_err *err)
{
    seg_file *s = NULL;
    size_t n = 0;
    char path[PATH_CAP];
    uint64_t fsyncs = 0;
    int rc = list_segments(dir, &s, &n, err);
    if (rc) goto fail;
    if (n == 0) {
        if (apply) {
            rc = create_segment(dir, 1, NULL, &fsyncs);
            if (rc) {
                tl_err_set(err, rc, "log: cannot create the first segment in %s: %s", dir,
                           tl_strerror(rc));
                goto fail;
            }
            s = tl_xrealloc(s, sizeof *s);
            s[0] = (seg_file){.num = 1, .size = HDR_LEN};
            n = 1;
        }
        *out = s;
        *out_n = n;
        return 0;
    }

    size_t cut = n;       /* first damaged segment */
    bool cut_all = false; /* the whole of s[cut] goes (a gap before it) */
    for (size_t i = 0; i < n; i++) {
        seg_path(dir, s[i].num, path);
        if (i > 0 && s[i].num != s[i - 1].num + 1) {
            cut = i;
            cut_all = true;
            if (!repair) {
                rc = tl_err_set(err, TL_EBADMSG,
                                "log: segment %010" PRIu32 ".log is missing in %s (before %s)",
                                s[i - 1].num + 1, dir, path);
                goto fail;
            }
            break;
        }
        rc = scan_segment(path, &s[i], err);
        if (rc) goto fail;
        const tl_log_scan *sc = &s[i].scan;
        if (!sc->why) continue; /* all valid */
        if (i == n - 1 && sc->torn) {
            uint64_t dropped = s[i].size - sc->valid_len;
            if (apply) {
                rc = truncate_segment(dir, s[i].num, sc->valid_len);
                if (rc) {
                    tl_err_set(err, rc, "log: cannot truncate the torn tail of %s: %s", path,
                               tl_strerror(rc));
                    goto fail;
                }
                TL_WARN("log",
                        "truncated torn tail file=%s offset=%" PRIu64 " dropped_bytes=%" PRIu64
                        " reason=\"%s\"",
                        path, sc->valid_len, dropped, sc->why);
            }
            s[i].size = sc->valid_len < HDR_LEN ? HDR_LEN : sc->valid_len;
            continue;
        }
        cut = i;
        if (!repair) {
            uint64_t later = 0;
            for (size_t j = i + 1; j < n; j++)
                later += s[j].size;
            rc = tl_err_set(err, TL_EBADMSG,
                            "log: %s: %s at offset %" PRIu64 "%s; refusing to open (repair "
                            "would drop %" PRIu64 " bytes)",
                            path, sc->why, sc->valid_len,
                            i == n - 1 ? " with valid records after it" : " in a sealed segment",
                            s[i].size - sc->valid_len + later);
            goto fail;
        }
        break;
    }

    if (cut < n) {
        /* Repair: keep what is before the damage, drop the rest. */
        uint64_t dropped = 0;
        for (size_t j = cut + 1; j < n; j++)
            dropped += s[j].size;
        dropped += cut_all ? s[cut].size : s[cut].size - s[cut].scan.valid_len;
        seg_path(dir, s[cut].num, path);
        if (apply) {
            if (!cut_all) {
                rc = truncate_segment(dir, s[cut].num, s[cut].scan.valid_len);
                if (rc) {
                    tl_err_set(err, rc, "log: repair cannot truncate %s: %s", path,
                               tl_strerror(rc));
                    goto fail;
                }
            }
            for (size_t j = cut_all ? cut : cut + 1; j < n; j++) {
                char p2[PATH_CAP];
                seg_path(dir, s[j].num, p2);
                if (unlink(p2) < 0 && errno != ENOENT) {
                    rc = tl_err_set(err, -errno, "log: repair cannot delete %s: %s", p2,
                                    tl_strerror(-errno));
                    goto fail;
                }
            }
            rc = tl_fsync_dir(dir);
            if (rc) {
                tl_err_set(err, rc, "log: cannot fsync %s: %s", dir, tl_strerror(rc));
                goto fail;
            }
            TL_WARN("log",
                    "repair dropped data file=%s offset=%" PRIu64 " reason=\"%s\" "
                    "dropped_bytes=%" PRIu64 " deleted_segments=%zu",
                    path, cut_all ? 0 : s[cut].scan.valid_len,
                    cut_all ? "missing segment before it" : s[cut].scan.why, dropped,
                    n - cut - (cut_all ? 0 : 1));
        }
        if (!cut_all) {
            s[cut].size = s[cut].scan.valid_len < HDR_LEN ? HDR_LEN : s[cut].scan.valid_len;
            n = cut + 1;
        } else {
            n = cut; /* cut >= 1: a gap needs a segment before it */
        }
    }
    *out = s;
    *out_n = n;
    return 0;
fail:
    free(s);
    return rc;
}

int tl_log_check(const char *dir, tl_err *err)
{
    seg_file *s = NULL;
    size_t n = 0;
    int rc = recover(dir, false, false, &s, &n, err);
    free(s);
    return rc;
}

/* ---- writer ---------------------------------------------------------------------------- */

/* Enters the ERROR state (invariant 3). Called by the writer thread only. */
static void set_failed(tl_log *log, int rc, const char *what)
{
    char path[PATH_CAP];
    seg_path(log->dir, log->active, path);
    TL_ERROR("log",
             "%s failed file=%s offset=%" PRIu32 " error=\"%s\"; the log is read-only "
             "until restart",
             what, path, log->w_off, tl_strerror(rc));
    /* Best effort, never synced: drop bytes of the failed group so this process does not
     * leave records on disk that their writers were told failed. Recovery handles the rest. */
    if (log->fd >= 0 && ftruncate(log->fd, log->w_off) < 0)
        TL_WARN("log", "cannot truncate after failure file=%s error=\"%s\"", path,
                tl_strerror(-errno));
    pthread_mutex_lock(&log->mu);
    int zero = 0;
    atomic_compare_exchange_strong(&log->err, &zero, rc);
    pthread_mutex_unlock(&log->mu);
}

static int flush_span(tl_log *log, const char *p, size_t len)
{
    int rc = tl_write_all(log->fd, p, len);
    bool synced = false;
    if (!rc) {
        rc = tl_fdatasync(log->fd);
        synced = true;
    }
    pthread_mutex_lock(&log->mu);
    log->stats.fsyncs += synced;
    pthread_mutex_unlock(&log->mu);
    if (rc) {
        set_failed(log, rc, synced ? "fdatasync" : "write");
        return rc;
    }
    log->w_off += (uint32_t)len;
    pthread_mutex_lock(&log->mu);
    log->seg_end[log->active - log->first_seg] = log->w_off;
    atomic_store(&log->durable, (uint64_t)log->active << 32 | log->w_off);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

static int roll(tl_log *log)
{
    if (log->active == UINT32_MAX) {
        set_failed(log, TL_ERANGE, "roll (segment numbers exhausted)");
        return TL_ERANGE;
    }
    uint32_t next = log->active + 1;
    int fd = -1;
    uint64_t fsyncs = 0;
    int rc = create_segment(log->dir, next, &fd, &fsyncs);
    pthread_mutex_lock(&log->mu);
    log->stats.fsyncs += fsyncs;
    pthread_mutex_unlock(&log->mu);
    if (rc) {
        set_failed(log, rc, "creating the next segment");
        return rc;
    }
    close(log->fd);
    log->fd = fd;
    pthread_mutex_lock(&log->mu);
    if (log->seg_n == log->seg_cap) {
        log->seg_cap *= 2;
        log->seg_end = tl_xrealloc(log->seg_end, log->seg_cap * sizeof *log->seg_end);
    }
    log->seg_end[log->seg_n++] = HDR_LEN;
    log->active = next;
    log->w_off = HDR_LEN;
    log->stats.segments++;
    atomic_store(&log->durable, (uint64_t)next << 32 | HDR_LEN);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

static void fill_crcs(char *p, size_t len)
{
    for (size_t off = 0; off < len;) {
        uint8_t *f = (uint8_t *)p + off;
        uint32_t n = tl_le32(f);
        tl_put32(f + 4, frame_crc(f, n));
        off += FRAME_LEN + n;
    }
}

/* Writes one group: spans of consecutive appends, one write + one fdatasync per span, and a
 * roll between spans when the next append does not fit (invariant 5). Sets each waiter's
 * end_pos and rc; appends after a failure get TL_EROFS. */
static void write_group(tl_log *log, waiter *list, char *buf)
{
    size_t span = 0, cur = 0; /* buf: start of the unwritten span, end of assigned bytes */
    waiter *first = list;     /* first waiter of the unwritten span */
    int rc = 0;
    for (waiter *w = list; w; w = w->next) {
        uint64_t at = (uint64_t)log->w_off + (cur - span);
        if (at > HDR_LEN && at + w->len > log->segment_bytes) {
            if (cur > span) {
                rc = flush_span(log, buf + span, cur - span);
                if (rc) break;
                first = w;
                span = cur;
            }
            rc = roll(log);
            if (rc) break;
            at = HDR_LEN;
        }
        w->end_pos = (uint64_t)log->active << 32 | (at + w->len);
        cur += w->len;
    }
    if (!rc && cur > span) rc = flush_span(log, buf + span, cur - span);
    for (waiter *w = first; w; w = w->next)
        w->rc = rc ? TL_EROFS : 0;
}

static void *writer_main(void *arg)
{
    tl_log *log = arg;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        while (!log->q_head && !log->closing && !log->roll_wanted)
            pthread_cond_wait(&log->work_cv, &log->mu);
        if (!log->q_head && log->roll_wanted && !log->closing) {
            /* A released, fully covered active segment: start a new one so it can go. */
            bool failed = atomic_load(&log->err) != 0;
            pthread_mutex_unlock(&log->mu);
            if (!failed && log->w_off > HDR_LEN) (void)roll(log);
            pthread_mutex_lock(&log->mu);
            log->roll_wanted = false;
            pthread_cond_broadcast(&log->done_cv);
            continue;
        }
        if (!log->q_head) break; /* closing, and everything appended is written */
        waiter *list = log->q_head;
        log->q_head = log->q_tail = NULL;
        tl_buf t = log->wbuf;
        log->wbuf = log->pending;
        log->pending = t;
        log->pending.len = 0;
        pthread_cond_broadcast(&log->space_cv);
        bool failed = atomic_load(&log->err) != 0;
        pthread_mutex_unlock(&log->mu);

        if (failed) {
            for (waiter *w = list; w; w = w->next)
                w->rc = TL_EROFS;
        } else {
            fill_crcs(log->wbuf.p, log->wbuf.len);
            write_group(log, list, log->wbuf.p);
        }
        if (log->wbuf.cap > 2 * (size_t)PENDING_MAX_BYTES)
            tl_buf_fini(&log->wbuf); /* one huge append should not pin its memory */

        pthread_mutex_lock(&log->mu);
        for (waiter *w = list, *next; w; w = next) {
            next = w->next; /* w may be gone once done is seen (after we unlock) */
            if (!w->rc) {
                log->stats.appends++;
                log->stats.records += w->n;
                log->stats.bytes += w->len;
            }
            w->done = true;
        }
        pthread_cond_broadcast(&log->done_cv);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

/* ---- public ---------------------------------------------------------------------------- */

static void log_free(tl_log *log)
{
    if (!log) return;
    if (log->fd >= 0) close(log->fd);
    if (log->lock_fd >= 0) close(log->lock_fd);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->work_cv);
    pthread_cond_destroy(&log->done_cv);
    pthread_cond_destroy(&log->space_cv);
    tl_buf_fini(&log->pending);
    tl_buf_fini(&log->wbuf);
    free(log->seg_end);
    free(log->dir);
    free(log);
}

int tl_log_open(const char *dir, const tl_log_opts *opts, tl_log **out, tl_err *err)
{
    static const tl_log_opts defaults = {0};
    seg_file *segs = NULL;
    size_t n = 0;
    tl_log *log = NULL;
    int rc;
    *out = NULL;
    if (!opts) opts = &defaults;
    if (!dir || !*dir || strlen(dir) > PATH_CAP - 32)
        return tl_err_set(err, TL_EINVAL, "log: bad directory name");
    rc = tl_mkdir_p(dir);
    if (rc) return tl_err_set(err, rc, "log: cannot create %s: %s", dir, tl_strerror(rc));

    log = tl_xcalloc(1, sizeof *log);
    log->fd = -1;
    log->dir = tl_xstrndup(dir, strlen(dir));
    log->segment_bytes = opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT_BYTES;
    if (log->segment_bytes < MIN_SEGMENT_BYTES) log->segment_bytes = MIN_SEGMENT_BYTES;
    if (log->segment_bytes > MAX_SEGMENT_BYTES) log->segment_bytes = MAX_SEGMENT_BYTES;
    log->max_record = opts->max_record ? opts->max_record : DEFAULT_MAX_RECORD;
    if (log->max_record > MAX_APPEND_BYTES - FRAME_LEN)
        log->max_record = MAX_APPEND_BYTES - FRAME_LEN;
    pthread_mutex_init(&log->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&log->work_cv, NULL);
    pthread_cond_init(&log->space_cv, NULL);

    log->lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->lock_fd < 0) {
        rc = tl_err_set(err, -errno, "log: cannot open %s: %s", dir, tl_strerror(-errno));
        goto fail;
    }
    if (flock(log->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = tl_err_set(err, errno == EWOULDBLOCK ? TL_EAGAIN : -errno,
                        "log: %s is in use by another log instance", dir);
        goto fail;
    }

    rc = recover(dir, opts->repair, true, &segs, &n, err);
    if (rc) goto fail;
    TL_ASSERT(n >= 1);
    log->first_seg = segs[0].num;
    log->active = segs[n - 1].num;
    log->w_off = (uint32_t)segs[n - 1].size;
    log->seg_cap = n < 8 ? 8 : n;
    log->seg_n = n;
    log->seg_end = tl_xcalloc(log->seg_cap, sizeof *log->seg_end);
    for (size_t i = 0; i < n; i++)
        log->seg_end[i] = (uint32_t)segs[i].size;
    log->stats.segments = n;
    atomic_store(&log->durable, (uint64_t)log->active << 32 | log->w_off);
    /* Records from before this start may hold an erasure whose expedite request was lost with
     * the process: the first release that covers them rolls the segment, however short. */
    if (log->w_off > HDR_LEN) log->expedite = (uint64_t)log->active << 32 | log->w_off;

    char path[PATH_CAP];
    seg_path(dir, log->active, path);
    log->fd = open(path, O_WRONLY | O_CLOEXEC);
    if (log->fd < 0 || lseek(log->fd, log->w_off, SEEK_SET) < 0) {
        rc = tl_err_set(err, -errno, "log: cannot open %s: %s", path, tl_strerror(-errno));
        goto fail;
    }
    if (pthread_create(&log->writer, NULL, writer_main, log) != 0) {
        rc = tl_err_set(err, TL_ENOMEM, "log: cannot start the writer thread");
        goto fail;
    }
    log->writer_started = true;
    free(segs);
    TL_DEBUG("log",
             "opened dir=%s segments=%zu first=%" PRIu32 " active=%" PRIu32 " offset=%" PRIu32, dir,
             n, log->first_seg, log->active, log->w_off);
    *out = log;
    return 0;
fail:
    free(segs);
    log_free(log);
    return rc;
}

void tl_log_close(tl_log *log)
{
    if (!log) return;
    pthread_mutex_lock(&log->mu);
    log->closing = true;
    pthread_cond_signal(&log->work_cv);
    pthread_cond_broadcast(&log->done_cv);
    pthread_cond_broadcast(&log->space_cv);
    while (log->waiting)
        pthread_cond_wait(&log->done_cv, &log->mu);
    pthread_mutex_unlock(&log->mu);
    if (log->writer_started) pthread_join(log->writer, NULL);
    log_free(log);
}

int tl_log_append(tl_log *log, const tl_str *recs, size_t n, uint64_t *end_pos)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].len > log->max_record) return TL_E2BIG;
        total += FRAME_LEN + recs[i].len;
        if (total > MAX_APPEND_BYTES) return TL_E2BIG;
    }
    if (n == 0) {
        if (atomic_load(&log->err)) return TL_EROFS;
        if (end_pos) *end_pos = atomic_load(&log->durable);
        return 0;
    }
    waiter w = {.len = total, .n = n};
    pthread_mutex_lock(&log->mu);
    for (;;) {
        if (atomic_load(&log->err)) {
            pthread_mutex_unlock(&log->mu);
            return TL_EROFS;
        }
        if (log->closing) {
            pthread_mutex_unlock(&log->mu);
            return TL_ECANCELED;
        }
        if (log->pending.len == 0 || log->pending.len + total <= PENDING_MAX_BYTES) break;
        pthread_cond_wait(&log->space_cv, &log->mu);
    }
    /* Frame under the lock so the group is in queue order; the writer fills in the CRCs. */
    char *dst = tl_buf_reserve(&log->pending, total);
    for (size_t i = 0; i < n; i++) {
        uint32_t len = (uint32_t)recs[i].len;
        tl_put32(dst, len);
        tl_put32(dst + 4, 0);
        if (len) memcpy(dst + FRAME_LEN, recs[i].p, len);
        dst += FRAME_LEN + len;
    }
    log->pending.len += total;
    if (log->q_tail)
        log->q_tail->next = &w;
    else
        log->q_head = &w;
    log->q_tail = &w;
    if (log->q_head == &w) pthread_cond_signal(&log->work_cv);
    while (!w.done)
        pthread_cond_wait(&log->done_cv, &log->mu);
    pthread_mutex_unlock(&log->mu);
    if (!w.rc && end_pos) *end_pos = w.end_pos;
    return w.rc;
}

int tl_log_error(const tl_log *log)
{
    return atomic_load(&((tl_log *)log)->err);
}

uint64_t tl_log_durable_pos(tl_log *log)
{
    return atomic_load(&log->durable);
}

int tl_log_wait(tl_log *log, uint64_t pos, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    int rc;
    pthread_mutex_lock(&log->mu);
    log->waiting++;
    for (;;) {
        if (atomic_load(&log->durable) > pos) {
            rc = 0;
            break;
        }
        if (log->closing) {
            rc = TL_ECANCELED;
            break;
        }
        if (timeout_ms == 0) {
            rc = TL_EAGAIN;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&log->done_cv, &log->mu);
        } else if (pthread_cond_timedwait(&log->done_cv, &log->mu, &deadline) == ETIMEDOUT) {
            rc = atomic_load(&log->durable) > pos ? 0 : TL_EAGAIN;
            break;
        }
    }
    if (--log->waiting == 0 && log->closing) pthread_cond_broadcast(&log->done_cv);
    pthread_mutex_unlock(&log->mu);
    return rc;
}

uint64_t tl_log_start_pos(tl_log *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t pos = (uint64_t)log->first_seg << 32 | HDR_LEN;
    pthread_mutex_unlock(&log->mu);
    return pos;
}

int tl_log_release(tl_log *log, uint64_t pos)
{
    pthread_mutex_lock(&log->mu);
    /* Everything durable is covered and the active segment holds more than a little: have the
     * writer roll, so the whole old segment can be deleted now rather than kept until full. */
    uint64_t durable = atomic_load(&log->durable);
    /* An erasure's segment is rolled however short, once pos covers the erasure. */
    bool expedite =
        log->expedite && pos >= log->expedite && (uint32_t)(log->expedite >> 32) == log->active;
    if (((pos >= durable && (uint32_t)durable >= RELEASE_ROLL_MIN) || expedite) &&
        !atomic_load(&log->err) && !log->closing && log->writer_started) {
        log->roll_wanted = true;
        pthread_cond_signal(&log->work_cv);
        while (log->roll_wanted && !log->closing)
            pthread_cond_wait(&log->done_cv, &log->mu);
    }
    if (log->expedite && (uint32_t)(log->expedite >> 32) < log->active) log->expedite = 0;
    uint32_t from = log->first_seg;
    size_t k = 0;
    while (from + k < log->active && ((uint64_t)(from + k) << 32 | log->seg_end[k]) <= pos)
        k++;
    if (k) {
        memmove(log->seg_end, log->seg_end + k, (log->seg_n - k) * sizeof *log->seg_end);
        log->seg_n -= k;
        log->first_seg += (uint32_t)k;
        log->stats.segments -= k;
    }
    pthread_mutex_unlock(&log->mu);
    /* Oldest first, each removal durable before the next, so a crash never leaves a gap. */
    int rc = 0;
    for (size_t i = 0; i < k; i++) {
        char path[PATH_CAP];
        seg_path(log->dir, from + (uint32_t)i, path);
        if (unlink(path) < 0 && errno != ENOENT && !rc) rc = -errno;
        int r2 = tl_fsync_dir(log->dir);
        if (!rc) rc = r2;
    }
    if (k) TL_DEBUG("log", "released segments=%zu first=%" PRIu32, k, from + (uint32_t)k);
    return rc;
}

void tl_log_expedite(tl_log *log, uint64_t pos)
{
    pthread_mutex_lock(&log->mu);
    if (pos > log->expedite) log->expedite = pos;
    pthread_mutex_unlock(&log->mu);
}

void tl_log_get_stats(tl_log *log, tl_log_stats *out)
{
    pthread_mutex_lock(&log->mu);
    *out = log->stats;
    pthread_mutex_unlock(&log->mu);
}

/* ---- iterator -------------------------------------------------------------------------- */

int tl_log_iter_new(tl_log *log, uint64_t pos, tl_log_iter **out)
{
    *out = NULL;
    pthread_mutex_lock(&log->mu);
    uint64_t d = atomic_load(&log->durable);
    uint32_t seg = (uint32_t)(pos >> 32), off = (uint32_t)pos;
    int rc = 0;
    if (pos > d) {
        rc = TL_EINVAL;
    } else if (seg < log->first_seg) {
        seg = log->first_seg;
        off = HDR_LEN;
    } else {
        if (off < HDR_LEN) off = HDR_LEN;
        if (seg < (uint32_t)(d >> 32) && off > log->seg_end[seg - log->first_seg]) rc = TL_EINVAL;
    }
    pthread_mutex_unlock(&log->mu);
    if (rc) return rc;
    tl_log_iter *it = tl_xcalloc(1, sizeof *it);
    it->log = log;
    it->seg = seg;
    it->off = off;
    it->fd = -1;
    *out = it;
    return 0;
}

uint64_t tl_log_iter_pos(const tl_log_iter *it)
{
    return (uint64_t)it->seg << 32 | it->off;
}

void tl_log_iter_free(tl_log_iter *it)
{
    if (!it) return;
    if (it->fd >= 0) close(it->fd);
    free(it->buf);
    free(it);
}

static void iter_leave_segment(tl_log_iter *it, uint32_t seg, uint32_t off)
{
    if (it->fd >= 0) close(it->fd);
    it->fd = -1;
    it->len = 0;
    it->seg = seg;
    it->off = off;
    it->limit = 0;
}

/* Learns how far the current segment is readable. Returns 1 when there is more to read (or
 * the iterator moved to the next segment), 0 at the durable end. */
static int iter_refresh(tl_log_iter *it)
{
    tl_log *log = it->log;
    pthread_mutex_lock(&log->mu);
    uint64_t d = atomic_load(&log->durable);
    uint32_t dseg = (uint32_t)(d >> 32);
    if (it->seg < log->first_seg) /* released under us: what was there is safely elsewhere */
        iter_leave_segment(it, log->first_seg, HDR_LEN);
    uint32_t limit = it->seg < dseg ? log->seg_end[it->seg - log->first_seg] : (uint32_t)d;
    pthread_mutex_unlock(&log->mu);
    it->limit = limit;
    if (it->off < limit) return 1;
    if (it->seg < dseg) {
        iter_leave_segment(it, it->seg + 1, HDR_LEN);
        return 1;
    }
    return 0;
}

static int iter_corrupt(tl_log_iter *it, const char *why)
{
    char path[PATH_CAP];
    seg_path(it->log->dir, it->seg, path);
    TL_ERROR("log", "corrupt durable record file=%s offset=%" PRIu32 " reason=\"%s\"", path,
             it->off, why);
    return TL_EBADMSG;
}

/* Makes [off, off + need) of the current segment available in the buffer; need fits below
 * the limit. Reads ahead up to the buffer size, never past the limit (invariant 6). */
static int iter_fill(tl_log_iter *it, uint32_t off, size_t need)
{
    if (it->len && off >= it->buf_off && off + need <= it->buf_off + it->len) return 0;
    if (need > it->cap || !it->buf) {
        size_t cap = need > ITER_CHUNK_BYTES ? need : ITER_CHUNK_BYTES;
        char *b = realloc(it->buf, cap);
        if (!b) return TL_ENOMEM;
        it->buf = b;
        it->cap = cap;
    }
    if (it->fd < 0) {
        char path[PATH_CAP];
        seg_path(it->log->dir, it->seg, path);
        it->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (it->fd < 0) {
            int rc = -errno;
            TL_ERROR("log", "cannot open file=%s error=\"%s\"", path, tl_strerror(rc));
            return rc;
        }
    }
    size_t want = it->limit - off;
    if (want > it->cap) want = it->cap;
    it->len = 0;
    int rc = tl_pread_all(it->fd, it->buf, want, off);
    if (rc == TL_EBADMSG) return iter_corrupt(it, "segment shorter than its durable length");
    if (rc) return rc;
    it->buf_off = off;
    it->len = want;
    return 0;
}

int tl_log_iter_next(tl_log_iter *it, tl_str *rec, uint64_t *next_pos)
{
    while (it->off >= it->limit) {
        int rc = iter_refresh(it);
        if (rc <= 0) return rc;
    }
    if (it->limit - it->off < FRAME_LEN)
        return iter_corrupt(it, "incomplete record before the durable end");
    int rc = iter_fill(it, it->off, FRAME_LEN);
    if (rc) return rc;
    const uint8_t *f = (const uint8_t *)it->buf + (it->off - it->buf_off);
    uint32_t len = tl_le32(f);
    if (len > it->limit - it->off - FRAME_LEN)
        return iter_corrupt(it, "record runs past the durable end");
    rc = iter_fill(it, it->off, FRAME_LEN + (size_t)len);
    if (rc) return rc;
    f = (const uint8_t *)it->buf + (it->off - it->buf_off);
    if (tl_le32(f + 4) != frame_crc(f, len)) return iter_corrupt(it, "bad record checksum");
    rec->p = (const char *)f + FRAME_LEN;
    rec->len = len;
    it->off += FRAME_LEN + len;
    if (next_pos) *next_pos = (uint64_t)it->seg << 32 | it->off;
    return 1;
}
