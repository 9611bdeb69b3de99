/* Time zones by IANA name, read from the system's zoneinfo (TZif v1 to v4 files, including
 * the POSIX TZ footer rule for instants past the last transition). A tl_tz is immutable after
 * load and may be shared by any number of threads. */
#ifndef TL_TZ_H
#define TL_TZ_H

#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

typedef struct tl_tz tl_tz;

/* Loads zone `name` ("UTC", "Asia/Kathmandu", "America/New_York") from $TZDIR or
 * /usr/share/zoneinfo. Returns 0 and a new zone (free with tl_tz_free), TL_ENOENT for an
 * unknown zone, TL_EINVAL for a bad name (".." or absolute) or a malformed file, with err
 * saying which. "UTC" always works, even without zoneinfo. */
int tl_tz_load(const char *name, tl_tz **out, tl_err *err) TL_MUST_USE;
/* Parses a TZif image from memory (for tests and fuzzing). */
int tl_tz_parse(const void *data, size_t len, tl_tz **out, tl_err *err) TL_MUST_USE;
void tl_tz_free(tl_tz *tz);
const char *tl_tz_name(const tl_tz *tz);

/* Offset from UTC in seconds at the instant `utc_ms` (+20700 for Asia/Kathmandu). */
int32_t tl_tz_offset_at(const tl_tz *tz, int64_t utc_ms);

/* The UTC instant of local midnight starting local day `days` (days since 1970-01-01 in local
 * calendar terms). If midnight does not exist (a DST gap at 00:00), the first instant of that
 * local day. */
int64_t tl_tz_day_start(const tl_tz *tz, int64_t local_days);

/* The UTC instant at which local wall time `local_s` (seconds since 1970-01-01T00:00 local)
 * first occurs; for a wall time in a gap, the instant the gap ends. */
int64_t tl_tz_local_to_utc_ms(const tl_tz *tz, int64_t local_s);

/* Local calendar day (days since epoch) of instant utc_ms. */
int64_t tl_tz_local_day(const tl_tz *tz, int64_t utc_ms);

#endif
