/* Error codes and the optional reason object. Functions that can fail return 0 or a negative
 * TL_E* code (errno values, negated, as libuv does); tl_strerror() gives text. Where a person
 * needs the reason, a function takes an optional tl_err * that names the field, file or offset. */
#ifndef TL_ERR_H
#define TL_ERR_H

#include <errno.h>
#include <stddef.h>

#define TL_MUST_USE     __attribute__((warn_unused_result))
#define TL_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum {
    TL_OK = 0,
    TL_ENOMEM = -ENOMEM,
    TL_EINVAL = -EINVAL,
    TL_EIO = -EIO,
    TL_ENOENT = -ENOENT,
    TL_EEXIST = -EEXIST,
    TL_ENOSPC = -ENOSPC,
    TL_E2BIG = -E2BIG,
    TL_EAGAIN = -EAGAIN,
    TL_EACCES = -EACCES,
    TL_ERANGE = -ERANGE,
    TL_EBADMSG = -EBADMSG, /* corrupt data: bad CRC, bad magic, bad framing */
    TL_ECANCELED = -ECANCELED,
    TL_EROFS = -EROFS, /* a sticky I/O error made the store read-only */
};

/* Reason for a failure, for people: "events[3].timestamp: not a number or ISO-8601 date". */
typedef struct tl_err {
    int code;
    char msg[256];
} tl_err;

/* Formats the reason into err (when err is not NULL) and returns code, so callers can write
 * `return tl_err_set(err, TL_EINVAL, "field %s: ...", name);`. */
int tl_err_set(tl_err *err, int code, const char *fmt, ...) TL_PRINTF(3, 4);

/* Text for a TL_E* code; never NULL. */
const char *tl_strerror(int code);

/* Always-on invariant check (not for input validation). */
void tl_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define TL_ASSERT(e) ((e) ? (void)0 : tl_assert_fail(#e, __FILE__, __LINE__))

#endif
