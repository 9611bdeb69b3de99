/* Fuzz target for util/tz: parses the input as a TZif image and, when it is accepted, runs every
 * query on it and checks the properties any valid zone has (offsets within +-26 h; local to UTC
 * returns the least instant whose wall time reaches the asked-for time; a day starts on that
 * day). The probe instants come from fixed edge cases and from the input's last bytes, so the
 * fuzzer can steer them towards its own transitions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/time.h"
#include "util/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        if (!(e)) abort();                                                                         \
    } while (0)

static void probe_instant(const tl_tz *tz, int64_t ms)
{
    int32_t off = tl_tz_offset_at(tz, ms);
    CHECK(off > -26 * 3600 && off < 26 * 3600);
    int64_t s = tl_floordiv(ms, 1000);
    CHECK(tl_tz_local_day(tz, ms) == tl_floordiv(s + off, 86400));
}

/* local_s within +-2^50 s, far from the clamping limits, where the properties are exact. */
static void probe_local(const tl_tz *tz, int64_t local_s)
{
    int64_t u = tl_tz_local_to_utc_ms(tz, local_s);
    CHECK(u % 1000 == 0);
    int64_t us = u / 1000;
    CHECK(us + tl_tz_offset_at(tz, u) >= local_s);
    CHECK(us - 1 + tl_tz_offset_at(tz, u - 1000) < local_s);
    int64_t d = tl_floordiv(local_s, 86400);
    int64_t ds = tl_tz_day_start(tz, d);
    CHECK(tl_tz_local_day(tz, ds) >= d);
    CHECK(tl_tz_local_day(tz, ds - 1) < d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tl_tz *tz = NULL;
    tl_err err = {0};
    int rc = tl_tz_parse(data, size, &tz, &err);
    if (rc != 0) {
        CHECK(tz == NULL && err.msg[0] != 0 && (rc == TL_EINVAL || rc == TL_ENOMEM));
        return 0;
    }
    CHECK(tz != NULL);
    (void)tl_tz_name(tz);

    static const int64_t fixed_ms[] = {
        INT64_MIN,       INT64_MIN + 1,   -(1LL << 62), -2208988800000LL, -1,       0, 1,
        1773028800000LL, 4102444800000LL, 1LL << 62,    INT64_MAX - 1,    INT64_MAX};
    for (size_t i = 0; i < sizeof fixed_ms / sizeof *fixed_ms; i++) {
        probe_instant(tz, fixed_ms[i]);
        (void)tl_tz_local_to_utc_ms(tz, fixed_ms[i]); /* clamped, must not overflow */
        (void)tl_tz_day_start(tz, fixed_ms[i]);
    }
    static const int64_t fixed_s[] = {-(1LL << 40), -2208988800LL, -86400,   -1, 0, 1,
                                      1773028800,   4102444800LL,  1LL << 40};
    for (size_t i = 0; i < sizeof fixed_s / sizeof *fixed_s; i++)
        probe_local(tz, fixed_s[i]);

    /* Instants from the input's tail: each 8 bytes give one, folded into +-2^50 s. */
    for (size_t k = 0; k < 4 && size >= 8 * (k + 1); k++) {
        uint64_t v;
        memcpy(&v, data + size - 8 * (k + 1), 8);
        int64_t s = (int64_t)(v & ((1ULL << 51) - 1)) - (1LL << 50);
        probe_instant(tz, s * 1000 + (int64_t)(v >> 54));
        for (int64_t d = -2; d <= 2; d++)
            probe_local(tz, s + d * 1800);
    }
    tl_tz_free(tz);
    return 0;
}
