/* Fuzz target for log recovery: the input is the image of a segment file. It runs the
 * in-memory scanner (tl_log_scan_image) and checks what it claims, then writes the image into
 * a temporary log directory and runs the real recovery (tl_log_open) and an iterator over the
 * result. Nothing may crash or read out of bounds, and recovery must agree with the scanner.
 *
 * Input: one mode byte, then the image.
 *   mode & 1  prepend a valid header for segment 1 (so mutations reach the records)
 *   mode & 2  add an empty, valid segment 2 after it (the image is then a sealed segment)
 *   mode & 4  open with repair */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "log.h"
#include "util/buf.h"
#include "util/crc.h"
#include "util/diag.h"
#include "util/io.h"

#define HDR 20u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void cleanup(void)
{
    if (g_dir[0]) tl_rm_rf(g_dir);
}

static void header(uint8_t h[HDR], uint32_t seg)
{
    memcpy(h, "TLLOG001", 8);
    tl_put32(h + 8, 1);
    tl_put32(h + 12, seg);
    tl_put32(h + 16, tl_crc32c(0, h, 16));
}

static void write_file(const char *path, const void *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) abort();
    if (len && write(fd, p, len) != (ssize_t)len) abort();
    close(fd);
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_log: check failed: %s (line %d)\n", #c, __LINE__);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!g_dir[0]) {
        tl_diag_set_level(-1); /* torn tails are expected; keep the output quiet */
        /* tmpfs when there is one: fsync is free there, and this target fsyncs a lot. */
        snprintf(g_dir, sizeof g_dir, "/dev/shm/tl_fuzz_log.XXXXXX");
        if (!mkdtemp(g_dir)) {
            snprintf(g_dir, sizeof g_dir, "/tmp/tl_fuzz_log.XXXXXX");
            if (!mkdtemp(g_dir)) abort();
        }
        atexit(cleanup);
    }
    uint8_t mode = data[0];
    data++;
    size--;

    /* An exact-size copy, so ASan sees any read past the image. */
    size_t len = size + (mode & 1 ? HDR : 0);
    uint8_t *img = malloc(len ? len : 1);
    if (mode & 1) header(img, 1);
    if (size) memcpy(img + (mode & 1 ? HDR : 0), data, size);

    tl_log_scan sc;
    int rc = tl_log_scan_image(img, len, 1, &sc);
    CHECK(sc.valid_len <= len);
    CHECK((rc == 0) == (sc.why == NULL));
    CHECK(rc == 0 ? !sc.torn && !sc.corrupt && sc.valid_len == len : sc.torn != sc.corrupt);
    if (sc.valid_len >= HDR) {
        tl_log_scan again; /* the valid prefix is a clean image with the same records */
        CHECK(tl_log_scan_image(img, sc.valid_len, 1, &again) == 0);
        CHECK(again.records == sc.records);
    } else {
        CHECK(sc.valid_len == 0 && sc.records == 0);
    }

    /* The real recovery over the same bytes. */
    char path[128];
    snprintf(path, sizeof path, "%s/0000000001.log", g_dir);
    write_file(path, img, len);
    bool sealed = mode & 2, repair = mode & 4;
    if (sealed) {
        uint8_t h2[HDR];
        header(h2, 2);
        snprintf(path, sizeof path, "%s/0000000002.log", g_dir);
        write_file(path, h2, HDR);
    }
    tl_err err = {0};
    CHECK(tl_log_check(g_dir, &err) == (rc == 0 || (!sealed && sc.torn) ? 0 : TL_EBADMSG));
    tl_log_opts o = {.repair = repair, .segment_bytes = 4096};
    tl_log *log = NULL;
    int orc = tl_log_open(g_dir, &o, &log, &err);
    bool should_open = rc == 0 || repair || (!sealed && sc.torn);
    CHECK(should_open ? orc == 0 : orc == TL_EBADMSG);
    if (log) {
        tl_log_iter *it = NULL;
        CHECK(tl_log_iter_new(log, 0, &it) == 0);
        tl_str rec;
        uint64_t next = 0, n = 0;
        int r;
        while ((r = tl_log_iter_next(it, &rec, &next)) == 1)
            n++;
        CHECK(r == 0);
        CHECK(n == sc.records); /* everything valid before the damage, nothing after it */
        tl_log_iter_free(it);
        tl_str one = TL_STR("after recovery");
        uint64_t pos = 0;
        CHECK(tl_log_append(log, &one, 1, &pos) == 0);
        tl_log_close(log);
    }
    tl_rm_rf(g_dir); /* recovery and the append may have made more segments */
    if (tl_mkdir_p(g_dir) != 0) abort();
    free(img);
    return 0;
}
