/* Error text and assertion failure. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tl_err_set(tl_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *tl_strerror(int code)
{
    if (code == 0) return "success";
    if (code == TL_EBADMSG) return "corrupt data";
    if (code == TL_EROFS) return "storage failed earlier; writes refused";
    return strerror(-code);
}

void tl_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "FATAL assert: %s at %s:%d\n", expr, file, line);
    abort();
}
