/* File I/O with EINTR/short-count loops and test-build fault injection. */
#include "util/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "util/fault.h"

static int inject_write(int fd, const void *p, size_t len, off_t off, bool positional)
{
#ifdef TL_TESTING
    tl_fault_kind k = tl_fault_check(false);
    if (k == TL_FAULT_ENOSPC) return TL_ENOSPC;
    if (k == TL_FAULT_EIO) return TL_EIO;
    if (k == TL_FAULT_SHORT) {
        size_t half = len / 2;
        if (half) {
            ssize_t n = positional ? pwrite(fd, p, half, off) : write(fd, p, half);
            (void)n;
        }
        return TL_ENOSPC;
    }
#else
    (void)fd, (void)p, (void)len, (void)off, (void)positional;
#endif
    return 0;
}

int tl_write_all(int fd, const void *p, size_t len)
{
    int rc = inject_write(fd, p, len, 0, false);
    if (rc) return rc;
    const char *c = p;
    while (len) {
        ssize_t n = write(fd, c, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

int tl_pwrite_all(int fd, const void *p, size_t len, off_t off)
{
    int rc = inject_write(fd, p, len, off, true);
    if (rc) return rc;
    const char *c = p;
    while (len) {
        ssize_t n = pwrite(fd, c, len, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        c += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

int tl_pread_all(int fd, void *p, size_t len, off_t off)
{
    char *c = p;
    while (len) {
        ssize_t n = pread(fd, c, len, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return TL_EBADMSG;
        c += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

int tl_fdatasync(int fd)
{
#ifdef TL_TESTING
    if (tl_fault_check(true) == TL_FAULT_FSYNC) return TL_EIO;
#endif
    return fdatasync(fd) < 0 ? -errno : 0;
}

int tl_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int tl_read_file(const char *path, tl_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    for (;;) {
        char *end = tl_buf_reserve(b, 65536);
        ssize_t n = read(fd, end, b->cap - b->len - 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            int rc = -errno;
            close(fd);
            return rc;
        }
        if (n == 0) break;
        b->len += (size_t)n;
    }
    close(fd);
    return 0;
}

int tl_write_file_atomic(const char *path, const void *p, size_t len)
{
    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = tl_write_all(fd, p, len);
    if (!rc) rc = tl_fdatasync(fd);
    close(fd);
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (!rc) rc = tl_fsync_dir(dir);
    if (rc) unlink(tmp);
    return rc;
}

int tl_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return TL_EINVAL;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
    return 0;
}

int tl_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -errno;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            tl_rm_rf(sub);
        }
        closedir(d);
        return rmdir(path) < 0 ? -errno : 0;
    }
    return unlink(path) < 0 ? -errno : 0;
}
