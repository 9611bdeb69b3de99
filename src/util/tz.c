/* STUB — being replaced by the TZif implementation. UTC only. */
#include "util/tz.h"

#include <stdlib.h>
#include <string.h>

#include "util/time.h"

struct tl_tz {
    char name[64];
};

int tl_tz_load(const char *name, tl_tz **out, tl_err *err)
{
    if (strcmp(name, "UTC"))
        return tl_err_set(err, TL_ENOENT, "unknown time zone '%s'", name);
    tl_tz *z = calloc(1, sizeof *z);
    strcpy(z->name, "UTC");
    *out = z;
    return 0;
}

int tl_tz_parse(const void *data, size_t len, tl_tz **out, tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "not implemented");
}

void tl_tz_free(tl_tz *tz)
{
    free(tz);
}

const char *tl_tz_name(const tl_tz *tz)
{
    return tz->name;
}

int32_t tl_tz_offset_at(const tl_tz *tz, int64_t utc_ms)
{
    return 0;
}

int64_t tl_tz_day_start(const tl_tz *tz, int64_t local_days)
{
    return local_days * TL_MS_PER_DAY;
}

int64_t tl_tz_local_to_utc_ms(const tl_tz *tz, int64_t local_s)
{
    return local_s * 1000;
}

int64_t tl_tz_local_day(const tl_tz *tz, int64_t utc_ms)
{
    return tl_floordiv(utc_ms, TL_MS_PER_DAY);
}
