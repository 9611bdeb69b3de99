/* Clock and ISO-8601 parsing/formatting in UTC. Zone rules live in util/tz.h. */
#ifndef TL_TIME_H
#define TL_TIME_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

#define TL_MS_PER_DAY 86400000LL

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
int64_t tl_now_ms(void);
/* Monotonic milliseconds, for timeouts and rates. */
int64_t tl_mono_ms(void);

/* Parses an ISO-8601 / RFC 3339 instant: YYYY-MM-DD[THH:MM[:SS[.fff…]]](Z|±HH[:MM]). A
 * date-time without a zone is refused (it would be ambiguous). Returns 0 or TL_EINVAL. */
int tl_iso_parse(tl_str s, int64_t *ms) TL_MUST_USE;
/* Parses YYYY-MM-DD into a day number (days since 1970-01-01). */
int tl_date_parse(tl_str s, int64_t *days) TL_MUST_USE;
/* Formats as 2026-01-02T03:04:05.678Z into out (≥ 32 bytes). */
void tl_iso_format(int64_t ms, char *out);
/* Civil date <-> days since the epoch (proleptic Gregorian; Howard Hinnant's algorithm). */
int64_t tl_days_from_civil(int64_t y, unsigned m, unsigned d);
void tl_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/* Floor division that rounds toward negative infinity. */
static inline int64_t tl_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

#endif
