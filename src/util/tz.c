/* Time zones read from TZif files (RFC 8536), the format of /usr/share/zoneinfo.
 *
 * Why our own reader: libc's localtime_r works on one process-wide zone picked by $TZ, and
 * tzset() is neither thread-safe nor cheap, so a server that answers each query in its own zone
 * cannot use it. A tl_tz is a plain immutable table loaded once per zone and shared by threads.
 * tally only needs UTC offsets (to cut day and hour buckets), so abbreviations, isdst and the
 * standard/UT indicators are validated and then dropped.
 *
 * The file (all integers big-endian, signed where it says i):
 *
 *   +-------------------------------- header, 44 bytes -------------------------------------+
 *   | "TZif" | version: 0x00 (v1), '2' '3' '4' (later digits read as v4) | 15 unused         |
 *   | u32 isutcnt | u32 isstdcnt | u32 leapcnt | u32 timecnt | u32 typecnt | u32 charcnt      |
 *   +---------------------------------------------------------------------------------------+
 *   | v1 data block, TIME = 4 bytes     (read for v1; only length-checked and skipped in v2+) |
 *   +---------------------------------------------------------------------------------------+
 *   | v2+ only: a second header (same version), then the data block again with TIME = 8     |
 *   +---------------------------------------------------------------------------------------+
 *   | v2+ only: footer  '\n' POSIX-TZ-string '\n'   (the string may be empty)               |
 *   +---------------------------------------------------------------------------------------+
 *
 *   data block:
 *     timecnt  x iTIME     transition instants, UTC seconds, strictly ascending
 *     timecnt  x u8        type of each transition, < typecnt
 *     typecnt  x 6         ttinfo: i32 utoff (seconds east of UTC), u8 isdst (0/1),
 *                                  u8 desigidx (< charcnt)
 *     charcnt  x u8        abbreviations, each NUL-terminated ("LMT\0EST\0EDT\0")
 *     leapcnt  x iTIME+i32 leap-second records: occurrence, cumulative correction
 *     isstdcnt x u8        standard/wall indicators, 0/1 (isstdcnt is 0 or typecnt)
 *     isutcnt  x u8        UT/local indicators, 0/1 (isutcnt is 0 or typecnt; UT implies std)
 *
 * The footer (RFC 8536 3.3: POSIX TZ, with the 3.3.1 extension for rule times):
 *
 *     std offset [dst [offset] [,start[/time],end[/time]]]
 *     std, dst   [A-Za-z]{3,} or <[A-Za-z0-9+-]{3,}>
 *     offset     [+-]hh[:mm[:ss]], hh 0..24, positive WEST of UTC ("EST5" is UTC-5); the dst
 *                offset defaults to one hour ahead of std
 *     start, end Jn (1..365, Feb 29 never counted) | n (0..365, Feb 29 counted) |
 *                Mm.w.d (day d, 0 = Sunday, of week w 1..5 of month m; 5 = the last)
 *     time       [+-]hh[:mm[:ss]], hh -167..167, default 02:00; local wall time, so start is
 *                read in standard time and end in daylight time. A dst without a rule gets
 *                the US rule M3.2.0,M11.1.0, as glibc and tzcode do.
 *
 * What we keep, and the invariants every function below relies on:
 *   1. at[0..n) are POSIX UTC seconds in non-decreasing order (leap-counting instants of the
 *      right/ zones are corrected at load) and off[i] is the offset in effect from at[i].
 *   2. Before at[0] the offset is off0, the offset of time type 0 (RFC 8536 3.2).
 *   3. From at[n-1] on (or everywhere when n is 0) the footer rule decides, if there is one;
 *      otherwise the last offset stays in effect forever.
 *   4. Every offset, from the table or the rule, lies strictly inside +-TZ_OFF_SPAN (26 h), so
 *      the local wall time of an instant u is within 26 h of u.
 *
 * Local to UTC: the wall clock f(u) = u + offset(u) rises with slope 1 and jumps at
 * transitions (up over a gap, down into a repeated hour). The instant where wall time L first
 * occurs, or where the gap holding L ends, is the least u with f(u) >= L. By invariant 4 it lies
 * in (L - 26 h, L + 26 h], so we walk the few constant-offset segments of that window.
 *
 * Beyond the header's contracts: the UTC aliases (UTC, Etc/UTC, GMT, Zulu, ...) are built in
 * and never touch the disk; a zone from tl_tz_parse has the empty name; local times and days
 * beyond about +-292 million years are clamped so no arithmetic can overflow. */
#include "util/tz.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/io.h"
#include "util/time.h"

#define TZ_NAME_MAX   128       /* longest IANA name is ~32 bytes */
#define TZ_FILE_MAX   (1 << 20) /* real zone files are < 4 KiB */
#define TZ_HDR_LEN    44
#define TZ_OFF_MIN    (-89999) /* RFC 8536 3.2 utoff range, about -25 h .. +26 h */
#define TZ_OFF_MAX    93599
#define TZ_OFF_SPAN   93600 /* invariant 4: |offset| < TZ_OFF_SPAN */
#define TZ_LEAP_MAX   86400 /* bound on a leap correction, for overflow safety */
#define TZ_RULE_HOURS 167   /* RFC 8536 3.3.1 */
#define TZ_S_LIMIT    (INT64_MAX / 1000 - 8 * 86400) /* local seconds we accept without overflow */
#define TZ_RULE_YEARS 5                              /* most years of rule events looked at */

typedef struct tz_date {
    char kind; /* 'J', 'n' or 'M' */
    uint16_t day;
    uint8_t month, week, wday;
    int32_t time_s;
} tz_date;

typedef struct tz_rule {
    int32_t std_off, dst_off; /* east of UTC, like ttinfo.utoff */
    bool has_dst;
    bool tame; /* see date_tame */
    tz_date start, end;
} tz_rule;

struct tl_tz {
    size_t n;
    int64_t *at;
    int32_t *off;
    int32_t off0;
    bool has_rule;
    tz_rule rule;
    char name[TZ_NAME_MAX + 1];
};

typedef struct tz_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tz_counts;

/* ---- big-endian loads ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be_time(const uint8_t *p, unsigned tsize)
{
    if (tsize == 4) return (int32_t)be32(p);
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ---- POSIX TZ footer ---- */

typedef struct tz_cur {
    const char *p, *end;
} tz_cur;

static bool cur_peek(const tz_cur *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* An unsigned decimal of 1..max_digits digits. */
static bool parse_num(tz_cur *c, int max_digits, int *out)
{
    int v = 0, k = 0;
    while (c->p < c->end && is_digit(*c->p) && k < max_digits) {
        v = v * 10 + (*c->p++ - '0');
        k++;
    }
    if (k == 0 || (c->p < c->end && is_digit(*c->p))) return false;
    *out = v;
    return true;
}

static bool parse_abbr(tz_cur *c)
{
    const char *s = c->p;
    if (cur_peek(c, '<')) {
        s = ++c->p;
        while (c->p < c->end &&
               (is_alpha(*c->p) || is_digit(*c->p) || *c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p - s < 3 || !cur_peek(c, '>')) return false;
        c->p++;
        return true;
    }
    while (c->p < c->end && is_alpha(*c->p))
        c->p++;
    return c->p - s >= 3;
}

/* [+-]hh[:mm[:ss]] with hh <= max_h; the sign applies to the whole value. */
static bool parse_hms(tz_cur *c, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, s = 0;
    if (cur_peek(c, '+') || cur_peek(c, '-')) sign = *c->p++ == '-' ? -1 : 1;
    if (!parse_num(c, 3, &h) || h > max_h) return false;
    if (cur_peek(c, ':')) {
        c->p++;
        if (!parse_num(c, 2, &m) || m > 59) return false;
        if (cur_peek(c, ':')) {
            c->p++;
            if (!parse_num(c, 2, &s) || s > 59) return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool parse_date(tz_cur *c, tz_date *d)
{
    int v, w, wd;
    memset(d, 0, sizeof *d);
    if (cur_peek(c, 'J')) {
        c->p++;
        if (!parse_num(c, 3, &v) || v < 1 || v > 365) return false;
        d->kind = 'J';
        d->day = (uint16_t)v;
    } else if (cur_peek(c, 'M')) {
        c->p++;
        if (!parse_num(c, 2, &v) || v < 1 || v > 12 || !cur_peek(c, '.')) return false;
        c->p++;
        if (!parse_num(c, 1, &w) || w < 1 || w > 5 || !cur_peek(c, '.')) return false;
        c->p++;
        if (!parse_num(c, 1, &wd) || wd > 6) return false;
        d->kind = 'M';
        d->month = (uint8_t)v;
        d->week = (uint8_t)w;
        d->wday = (uint8_t)wd;
    } else {
        if (!parse_num(c, 3, &v) || v > 365) return false;
        d->kind = 'n';
        d->day = (uint16_t)v;
    }
    d->time_s = 7200;
    if (cur_peek(c, '/')) {
        c->p++;
        return parse_hms(c, TZ_RULE_HOURS, &d->time_s);
    }
    return true;
}

/* Parses a footer string; returns 0 or TL_EINVAL with the reason. */
static int parse_rule(const char *s, size_t len, tz_rule *r, tl_err *err)
{
    tz_cur c = {s, s + len};
    int32_t v;
    memset(r, 0, sizeof *r);
    if (!parse_abbr(&c)) return tl_err_set(err, TL_EINVAL, "footer: bad standard-time name");
    if (!parse_hms(&c, 24, &v))
        return tl_err_set(err, TL_EINVAL, "footer: bad standard-time offset");
    r->std_off = -v;
    r->dst_off = r->std_off;
    if (c.p == c.end) return 0;
    if (!parse_abbr(&c)) return tl_err_set(err, TL_EINVAL, "footer: bad daylight-time name");
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (c.p < c.end && (*c.p == '+' || *c.p == '-' || is_digit(*c.p))) {
        if (!parse_hms(&c, 24, &v))
            return tl_err_set(err, TL_EINVAL, "footer: bad daylight-time offset");
        r->dst_off = -v;
    }
    if (c.p == c.end) {
        r->start = (tz_date){.kind = 'M', .month = 3, .week = 2, .wday = 0, .time_s = 7200};
        r->end = (tz_date){.kind = 'M', .month = 11, .week = 1, .wday = 0, .time_s = 7200};
        return 0;
    }
    if (!cur_peek(&c, ',') || (c.p++, !parse_date(&c, &r->start)))
        return tl_err_set(err, TL_EINVAL, "footer: bad daylight-time start rule");
    if (!cur_peek(&c, ',') || (c.p++, !parse_date(&c, &r->end)))
        return tl_err_set(err, TL_EINVAL, "footer: bad daylight-time end rule");
    if (c.p != c.end)
        return tl_err_set(err, TL_EINVAL, "footer: trailing characters after the rule");
    return 0;
}

/* ---- footer rule evaluation ---- */

static bool is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Day number (days since 1970-01-01) on which date d falls in year y. */
static const uint16_t days_before_month[13] = {0,   0,   31,  59,  90,  120, 151,
                                               181, 212, 243, 273, 304, 334};

static unsigned month_len(int64_t y, unsigned m)
{
    static const uint8_t len[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return len[m] + (m == 2 && is_leap(y));
}

/* Day number (days since 1970-01-01) on which date d falls in year y. */
static int64_t date_day(const tz_date *d, int64_t y)
{
    if (d->kind != 'M') {
        int64_t jan1 = tl_days_from_civil(y, 1, 1);
        if (d->kind == 'J') return jan1 + d->day - 1 + (is_leap(y) && d->day >= 60);
        return jan1 + d->day;
    }
    int64_t first = tl_days_from_civil(y, d->month, 1);
    int64_t wd_first = first + 4 - tl_floordiv(first + 4, 7) * 7; /* 1970-01-01 was a Thu */
    unsigned mday = (unsigned)((d->wday - wd_first + 7) % 7) + (d->week - 1u) * 7;
    unsigned len = month_len(y, d->month);
    while (mday >= len)
        mday -= 7;
    return first + mday;
}

/* True when every transition the rule makes for year y falls inside UTC year y, whatever y:
 * its earliest and latest possible local days, moved by the rule time (up to +-167 h) and the
 * offset (under 26 h), stay clear of New Year. All real rules are like this, and then three
 * years of events around an instant suffice (see rule_events). */
static bool date_tame(const tz_date *d)
{
    int64_t lo, hi; /* 0-based day of the year */
    if (d->kind == 'J') {
        lo = d->day - 1;
        hi = d->day;
    } else if (d->kind == 'n') {
        lo = hi = d->day;
    } else {
        unsigned w0 = d->week == 5 ? 21 : (d->week - 1u) * 7;
        lo = days_before_month[d->month] + w0;
        hi = days_before_month[d->month] + 1 + (d->week == 5 ? 30 : w0 + 6);
    }
    return lo * 86400 + d->time_s - TZ_OFF_SPAN > 0 &&
           hi * 86400 + d->time_s + TZ_OFF_SPAN < 365 * 86400;
}

/* The rule's transitions in years y-k..y+k in time order (k = 1 for a tame rule, else 2), each
 * with the offset it starts; returns how many. Ties keep generation order, so a year's end
 * followed at the same instant by the next year's start reads as daylight time all year
 * (RFC 8536 3.3.1). Each transition comes about a year after its counterpart of the year
 * before, and even with +-167 h rule times a year's transitions stay within a week of it, so
 * for any instant of year y the window holds the last transition at or before it and the first
 * one after it. */
static int rule_events(const tz_rule *r, int64_t y, int64_t at[2 * TZ_RULE_YEARS],
                       int32_t off[2 * TZ_RULE_YEARS])
{
    int k = 0, span = r->tame ? 1 : 2;
    for (int64_t yy = y - span; yy <= y + span; yy++) {
        at[k] = date_day(&r->start, yy) * 86400 + r->start.time_s - r->std_off;
        off[k++] = r->dst_off;
        at[k] = date_day(&r->end, yy) * 86400 + r->end.time_s - r->dst_off;
        off[k++] = r->std_off;
    }
    for (int i = 1; i < k; i++) {
        int64_t a = at[i];
        int32_t o = off[i];
        int j = i;
        for (; j > 0 && at[j - 1] > a; j--) {
            at[j] = at[j - 1];
            off[j] = off[j - 1];
        }
        at[j] = a;
        off[j] = o;
    }
    return k;
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    unsigned m, d;
    tl_civil_from_days(tl_floordiv(t, 86400), &y, &m, &d);
    return y;
}

static int32_t rule_offset(const tz_rule *r, int64_t t)
{
    if (!r->has_dst) return r->std_off;
    int64_t at[2 * TZ_RULE_YEARS];
    int32_t off[2 * TZ_RULE_YEARS];
    int n = rule_events(r, year_of(t), at, off);
    int32_t o = r->std_off;
    for (int i = 0; i < n && at[i] <= t; i++)
        o = off[i];
    return o;
}

static int64_t rule_next(const tz_rule *r, int64_t t)
{
    if (!r->has_dst) return INT64_MAX;
    int64_t at[2 * TZ_RULE_YEARS];
    int32_t off[2 * TZ_RULE_YEARS];
    int n = rule_events(r, year_of(t), at, off);
    for (int i = 0; i < n; i++)
        if (at[i] > t) return at[i];
    return INT64_MAX;
}

/* ---- lookups (invariants 1-3) ---- */

/* Index of the first transition after t, in [0, n]. */
static size_t upper_bound(const tl_tz *tz, int64_t t)
{
    size_t lo = 0, hi = tz->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int32_t offset_s(const tl_tz *tz, int64_t t)
{
    if (tz->n == 0) return tz->has_rule ? rule_offset(&tz->rule, t) : tz->off0;
    if (t >= tz->at[tz->n - 1])
        return tz->has_rule ? rule_offset(&tz->rule, t) : tz->off[tz->n - 1];
    size_t i = upper_bound(tz, t);
    return i == 0 ? tz->off0 : tz->off[i - 1];
}

/* The first instant after t at which the offset may change, or INT64_MAX. */
static int64_t next_change(const tl_tz *tz, int64_t t)
{
    if (tz->n > 0 && t < tz->at[tz->n - 1]) return tz->at[upper_bound(tz, t)];
    return tz->has_rule ? rule_next(&tz->rule, t) : INT64_MAX;
}

/* Least u with u + offset(u) >= local_s (see the file comment). */
static int64_t local_to_utc_s(const tl_tz *tz, int64_t local_s)
{
    if (local_s > TZ_S_LIMIT) local_s = TZ_S_LIMIT;
    if (local_s < -TZ_S_LIMIT) local_s = -TZ_S_LIMIT;
    int64_t u = local_s - TZ_OFF_SPAN, stop = local_s + TZ_OFF_SPAN + 1;
    while (u < stop) {
        int32_t o = offset_s(tz, u);
        int64_t next = next_change(tz, u);
        int64_t end = next < stop ? next : stop;
        if (end + o > local_s) return local_s - o > u ? local_s - o : u;
        u = next;
    }
    return local_s - offset_s(tz, local_s); /* unreachable by invariant 4 */
}

/* ---- TZif parsing ---- */

static int read_header(const uint8_t *p, size_t len, size_t pos, tz_counts *c, tl_err *err)
{
    if (len - pos < TZ_HDR_LEN)
        return tl_err_set(err, TL_EINVAL, "truncated header at offset %zu", pos);
    if (memcmp(p + pos, "TZif", 4) != 0)
        return tl_err_set(err, TL_EINVAL, "bad magic at offset %zu (not a TZif file)", pos);
    const uint8_t *h = p + pos + 20;
    c->isut = be32(h);
    c->isstd = be32(h + 4);
    c->leap = be32(h + 8);
    c->time = be32(h + 12);
    c->type = be32(h + 16);
    c->chars = be32(h + 20);
    return 0;
}

static uint64_t block_len(const tz_counts *c, unsigned tsize)
{
    return (uint64_t)c->time * (tsize + 1) + (uint64_t)c->type * 6 + c->chars +
           (uint64_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Validates the data block at p (whose length was checked) and fills tz's table. */
static int parse_block(const uint8_t *p, const tz_counts *c, unsigned tsize, tl_tz *tz, tl_err *err)
{
    if (c->type == 0 || c->type > 256)
        return tl_err_set(err, TL_EINVAL, "typecnt %u not in 1..256", c->type);
    if (c->chars == 0) return tl_err_set(err, TL_EINVAL, "charcnt is 0");
    if (c->isstd != 0 && c->isstd != c->type)
        return tl_err_set(err, TL_EINVAL, "isstdcnt %u is neither 0 nor typecnt", c->isstd);
    if (c->isut != 0 && c->isut != c->type)
        return tl_err_set(err, TL_EINVAL, "isutcnt %u is neither 0 nor typecnt", c->isut);

    const uint8_t *times = p, *idx = times + (size_t)c->time * tsize;
    const uint8_t *types = idx + c->time, *chars = types + (size_t)c->type * 6;
    const uint8_t *leaps = chars + c->chars, *isstd = leaps + (size_t)c->leap * (tsize + 4);
    const uint8_t *isut = isstd + c->isstd;
    int32_t utoff[256];

    for (uint32_t i = 0; i < c->type; i++) {
        const uint8_t *t = types + (size_t)i * 6;
        int32_t o = (int32_t)be32(t);
        if (o < TZ_OFF_MIN || o > TZ_OFF_MAX)
            return tl_err_set(err, TL_EINVAL, "type %u: utoff %d out of range", i, o);
        if (t[4] > 1) return tl_err_set(err, TL_EINVAL, "type %u: isdst %u is not 0 or 1", i, t[4]);
        if (t[5] >= c->chars)
            return tl_err_set(err, TL_EINVAL, "type %u: abbreviation index %u out of range", i,
                              t[5]);
        utoff[i] = o;
    }
    if (chars[c->chars - 1] != 0)
        return tl_err_set(err, TL_EINVAL, "abbreviations not NUL-terminated");
    for (uint32_t i = 0; i < c->type; i++) {
        if (c->isstd && isstd[i] > 1)
            return tl_err_set(err, TL_EINVAL, "type %u: standard indicator not 0 or 1", i);
        if (c->isut && (isut[i] > 1 || (isut[i] && (!c->isstd || !isstd[i]))))
            return tl_err_set(err, TL_EINVAL, "type %u: bad UT indicator", i);
    }

    int64_t prev_occ = 0;
    for (uint32_t j = 0; j < c->leap; j++) {
        const uint8_t *l = leaps + (size_t)j * (tsize + 4);
        int64_t occ = be_time(l, tsize);
        int32_t corr = (int32_t)be32(l + tsize);
        if (j > 0 && occ <= prev_occ)
            return tl_err_set(err, TL_EINVAL, "leap record %u not after the previous one", j);
        if (corr < -TZ_LEAP_MAX || corr > TZ_LEAP_MAX)
            return tl_err_set(err, TL_EINVAL, "leap record %u: correction out of range", j);
        prev_occ = occ;
    }

    tz->n = c->time;
    tz->off0 = utoff[0];
    if (c->time == 0) return 0;
    tz->at = tl_trymalloc((size_t)c->time * sizeof *tz->at);
    tz->off = tl_trymalloc((size_t)c->time * sizeof *tz->off);
    if (!tz->at || !tz->off)
        return tl_err_set(err, TL_ENOMEM, "out of memory for %u transitions", c->time);
    uint32_t j = 0;
    int32_t corr = 0;
    for (uint32_t i = 0; i < c->time; i++) {
        int64_t t = be_time(times + (size_t)i * tsize, tsize);
        if (i > 0 && t <= be_time(times + (size_t)(i - 1) * tsize, tsize))
            return tl_err_set(err, TL_EINVAL, "transition %u not after the previous one", i);
        if (idx[i] >= c->type)
            return tl_err_set(err, TL_EINVAL, "transition %u: type %u out of range", i, idx[i]);
        /* Leap-counting instants (right/ zones) become POSIX seconds. */
        for (; j < c->leap; j++) {
            const uint8_t *l = leaps + (size_t)j * (tsize + 4);
            if (be_time(l, tsize) > t) break;
            corr = (int32_t)be32(l + tsize);
        }
        if (__builtin_sub_overflow(t, (int64_t)corr, &t))
            return tl_err_set(err, TL_EINVAL, "transition %u: time out of range", i);
        if (i > 0 && t < tz->at[i - 1])
            return tl_err_set(err, TL_EINVAL, "transition %u: out of order after leap seconds", i);
        tz->at[i] = t;
        tz->off[i] = utoff[idx[i]];
    }
    return 0;
}

static int parse_tzif(const uint8_t *p, size_t len, tl_tz *tz, tl_err *err)
{
    tz_counts c1, c2;
    int rc;
    if (len < TZ_HDR_LEN)
        return tl_err_set(err, TL_EINVAL, "file of %zu bytes is too short for a header", len);
    if ((rc = read_header(p, len, 0, &c1, err)) != 0) return rc;
    uint8_t ver = p[4];
    if (ver != 0 && (ver < '2' || ver > '9'))
        return tl_err_set(err, TL_EINVAL, "unknown TZif version byte 0x%02x", ver);
    uint64_t len1 = block_len(&c1, 4);
    if (len1 > len - TZ_HDR_LEN)
        return tl_err_set(err, TL_EINVAL, "v1 data block (%llu bytes) runs past the end",
                          (unsigned long long)len1);
    if (ver == 0) return parse_block(p + TZ_HDR_LEN, &c1, 4, tz, err);

    /* v2+: the 32-bit block only serves old readers; the 64-bit one is authoritative. */
    size_t pos = TZ_HDR_LEN + (size_t)len1;
    if ((rc = read_header(p, len, pos, &c2, err)) != 0) return rc;
    if (p[pos + 4] != ver)
        return tl_err_set(err, TL_EINVAL, "second header has a different version");
    pos += TZ_HDR_LEN;
    uint64_t len2 = block_len(&c2, 8);
    if (len2 > len - pos)
        return tl_err_set(err, TL_EINVAL, "v2 data block (%llu bytes) runs past the end",
                          (unsigned long long)len2);
    if ((rc = parse_block(p + pos, &c2, 8, tz, err)) != 0) return rc;
    pos += (size_t)len2;
    if (pos >= len || p[pos] != '\n')
        return tl_err_set(err, TL_EINVAL, "missing footer at offset %zu", pos);
    pos++;
    const uint8_t *nl = memchr(p + pos, '\n', len - pos);
    if (!nl) return tl_err_set(err, TL_EINVAL, "footer not terminated by a newline");
    size_t flen = (size_t)(nl - (p + pos));
    if (flen == 0) return 0; /* no rule: the last transition's offset stays (invariant 3) */
    if ((rc = parse_rule((const char *)p + pos, flen, &tz->rule, err)) != 0) return rc;
    tz->has_rule = true;
    tz->rule.tame = date_tame(&tz->rule.start) && date_tame(&tz->rule.end);
    return 0;
}

/* ---- public ---- */

int tl_tz_parse(const void *data, size_t len, tl_tz **out, tl_err *err)
{
    *out = NULL;
    if (!data && len > 0) return tl_err_set(err, TL_EINVAL, "no data");
    tl_tz *tz = calloc(1, sizeof *tz);
    if (!tz) return tl_err_set(err, TL_ENOMEM, "out of memory");
    int rc = parse_tzif(data, len, tz, err);
    if (rc != 0) {
        tl_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

static const char *const utc_names[] = {
    "UTC",  "Etc/UTC",  "UCT",       "Etc/UCT",       "GMT",       "Etc/GMT",
    "GMT0", "Etc/GMT0", "GMT+0",     "Etc/GMT+0",     "GMT-0",     "Etc/GMT-0",
    "Zulu", "Etc/Zulu", "Universal", "Etc/Universal", "Greenwich", "Etc/Greenwich",
};

static int check_name(const char *name, tl_err *err)
{
    if (!name || !*name) return tl_err_set(err, TL_EINVAL, "empty time zone name");
    size_t len = strlen(name);
    if (len > TZ_NAME_MAX)
        return tl_err_set(err, TL_EINVAL, "time zone name longer than %d bytes", TZ_NAME_MAX);
    if (name[0] == '/')
        return tl_err_set(err, TL_EINVAL, "time zone '%s': absolute paths are not allowed", name);
    if (strstr(name, ".."))
        return tl_err_set(err, TL_EINVAL, "time zone '%s': '..' is not allowed", name);
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!is_alpha(ch) && !is_digit(ch) && !strchr("/_-+.", ch))
            return tl_err_set(err, TL_EINVAL, "time zone '%s': bad character at %zu", name, i);
    }
    return 0;
}

int tl_tz_load(const char *name, tl_tz **out, tl_err *err)
{
    int rc, fd = -1;
    uint8_t *buf = NULL;
    tl_tz *tz = NULL;
    *out = NULL;
    if ((rc = check_name(name, err)) != 0) return rc;
    for (size_t i = 0; i < sizeof utc_names / sizeof *utc_names; i++) {
        if (strcmp(name, utc_names[i]) == 0) {
            /* Built in, so UTC works on hosts without tzdata. */
            if (!(tz = calloc(1, sizeof *tz))) return tl_err_set(err, TL_ENOMEM, "out of memory");
            strcpy(tz->name, name);
            *out = tz;
            return 0;
        }
    }

    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return tl_err_set(err, TL_EINVAL, "time zone '%s': path too long", name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return tl_err_set(err, TL_ENOENT, "unknown time zone '%s'", name);
        return tl_err_set(err, e == EACCES ? TL_EACCES : TL_EIO, "time zone '%s': %s: %s", name,
                          path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = tl_err_set(err, TL_EIO, "time zone '%s': %s: %s", name, path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = tl_err_set(err, TL_ENOENT, "unknown time zone '%s' (%s is not a file)", name, path);
        goto done;
    }
    if (st.st_size > TZ_FILE_MAX) {
        rc = tl_err_set(err, TL_EINVAL, "time zone '%s': %s is too large for a zone file", name,
                        path);
        goto done;
    }
    size_t len = (size_t)st.st_size;
    if (!(buf = tl_trymalloc(len ? len : 1))) {
        rc = tl_err_set(err, TL_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = tl_pread_all(fd, buf, len, 0)) != 0) {
        rc = tl_err_set(err, rc == TL_EBADMSG ? TL_EINVAL : rc, "time zone '%s': reading %s: %s",
                        name, path, tl_strerror(rc));
        goto done;
    }
    tl_err perr = {0};
    if ((rc = tl_tz_parse(buf, len, &tz, &perr)) != 0) {
        rc = tl_err_set(err, rc, "time zone '%s': %s: %s", name, path, perr.msg);
        goto done;
    }
    strcpy(tz->name, name);
    *out = tz;
done:
    free(buf);
    close(fd);
    return rc;
}

void tl_tz_free(tl_tz *tz)
{
    if (!tz) return;
    free(tz->at);
    free(tz->off);
    free(tz);
}

const char *tl_tz_name(const tl_tz *tz)
{
    return tz->name;
}

int32_t tl_tz_offset_at(const tl_tz *tz, int64_t utc_ms)
{
    return offset_s(tz, tl_floordiv(utc_ms, 1000));
}

int64_t tl_tz_day_start(const tl_tz *tz, int64_t local_days)
{
    const int64_t lim = TZ_S_LIMIT / 86400;
    if (local_days > lim) local_days = lim;
    if (local_days < -lim) local_days = -lim;
    return local_to_utc_s(tz, local_days * 86400) * 1000;
}

int64_t tl_tz_local_to_utc_ms(const tl_tz *tz, int64_t local_s)
{
    return local_to_utc_s(tz, local_s) * 1000;
}

int64_t tl_tz_local_day(const tl_tz *tz, int64_t utc_ms)
{
    int64_t s = tl_floordiv(utc_ms, 1000);
    return tl_floordiv(s + offset_s(tz, s), 86400);
}
