/* UTC calendar arithmetic and ISO-8601 parsing. */
#include "util/time.h"

#include <stdio.h>

#include <time.h>

int64_t tl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tl_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void tl_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int digits(const char **p, const char *end, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || **p < '0' || **p > '9') return -1;
        v = v * 10 + (*(*p)++ - '0');
    }
    *out = v;
    return 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

static int parse_date(const char **p, const char *end, int64_t *days)
{
    int y, m, d;
    if (digits(p, end, 4, &y) || *p >= end || *(*p)++ != '-' || digits(p, end, 2, &m) ||
        *p >= end || *(*p)++ != '-' || digits(p, end, 2, &d))
        return TL_EINVAL;
    if (m < 1 || m > 12 || d < 1 || (unsigned)d > month_days(y, (unsigned)m)) return TL_EINVAL;
    *days = tl_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int tl_date_parse(tl_str s, int64_t *days)
{
    const char *p = s.p, *end = s.p + s.len;
    if (parse_date(&p, end, days) || p != end) return TL_EINVAL;
    return 0;
}

int tl_iso_parse(tl_str s, int64_t *ms)
{
    const char *p = s.p, *end = s.p + s.len;
    int64_t days;
    if (parse_date(&p, end, &days)) return TL_EINVAL;
    if (p == end) return TL_EINVAL; /* a bare date is not an instant */
    if (*p != 'T' && *p != 't' && *p != ' ') return TL_EINVAL;
    p++;
    int hh, mi, ss = 0;
    int64_t frac_ms = 0;
    if (digits(&p, end, 2, &hh) || p >= end || *p++ != ':' || digits(&p, end, 2, &mi))
        return TL_EINVAL;
    if (p < end && *p == ':') {
        p++;
        if (digits(&p, end, 2, &ss)) return TL_EINVAL;
        if (p < end && (*p == '.' || *p == ',')) {
            p++;
            int nd = 0, scale = 100;
            while (p < end && *p >= '0' && *p <= '9') {
                if (nd < 3) {
                    frac_ms += (*p - '0') * scale;
                    scale /= 10;
                }
                nd++;
                p++;
            }
            if (nd == 0) return TL_EINVAL;
        }
    }
    if (hh > 23 || mi > 59 || ss > 60) return TL_EINVAL;
    if (ss == 60) ss = 59; /* leap second: clamp */
    int64_t off_min = 0;
    if (p >= end) return TL_EINVAL;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (digits(&p, end, 2, &oh)) return TL_EINVAL;
        if (p < end && *p == ':') p++;
        if (p < end && digits(&p, end, 2, &om)) return TL_EINVAL;
        if (oh > 23 || om > 59) return TL_EINVAL;
        off_min = sign * (oh * 60 + om);
    } else {
        return TL_EINVAL;
    }
    if (p != end) return TL_EINVAL;
    *ms = ((days * 86400 + hh * 3600 + mi * 60 + ss) - off_min * 60) * 1000 + frac_ms;
    return 0;
}

void tl_iso_format(int64_t ms, char *out)
{
    int64_t days = tl_floordiv(ms, TL_MS_PER_DAY);
    int64_t rem = ms - days * TL_MS_PER_DAY;
    int64_t y;
    unsigned m, d;
    tl_civil_from_days(days, &y, &m, &d);
    snprintf(out, 32, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
}
