/* File I/O helpers that retry on EINTR and short counts, with fault injection in test builds
 * (util/fault.h). All return 0 or a negative TL_E* code. */
#ifndef TL_IO_H
#define TL_IO_H

#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

int tl_write_all(int fd, const void *p, size_t len) TL_MUST_USE;
int tl_pwrite_all(int fd, const void *p, size_t len, off_t off) TL_MUST_USE;
/* Reads exactly len bytes at off; TL_EBADMSG when the file is shorter. */
int tl_pread_all(int fd, void *p, size_t len, off_t off) TL_MUST_USE;
int tl_fdatasync(int fd) TL_MUST_USE;
int tl_fsync_dir(const char *dir) TL_MUST_USE;
/* Reads a whole file into b (appending). */
int tl_read_file(const char *path, tl_buf *b) TL_MUST_USE;
/* Writes a whole file atomically: path.tmp, fsync, rename, fsync of the directory. */
int tl_write_file_atomic(const char *path, const void *p, size_t len) TL_MUST_USE;
/* mkdir -p. */
int tl_mkdir_p(const char *path) TL_MUST_USE;
/* Removes a directory tree (rm -rf); for tests and erasure. */
int tl_rm_rf(const char *path);

#endif
