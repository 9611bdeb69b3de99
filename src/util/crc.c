/* CRC-32C, slice-by-8 tables built on first use, plus the SSE4.2 instruction when the CPU has
 * it (runtime dispatch; the table version is the tested fallback). */
#include "util/crc.h"

#include <string.h>

#include <pthread.h>

static uint32_t g_tab[8][256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_hw;

static void init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        g_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            g_tab[t][i] = (g_tab[t - 1][i] >> 8) ^ g_tab[0][g_tab[t - 1][i] & 0xFF];
#if defined(__x86_64__)
    __builtin_cpu_init();
    g_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = g_tab[7][lo & 0xFF] ^ g_tab[6][(lo >> 8) & 0xFF] ^ g_tab[5][(lo >> 16) & 0xFF] ^
              g_tab[4][lo >> 24] ^ g_tab[3][hi & 0xFF] ^ g_tab[2][(hi >> 8) & 0xFF] ^
              g_tab[1][(hi >> 16) & 0xFF] ^ g_tab[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ g_tab[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t tl_crc32c(uint32_t crc, const void *p, size_t len)
{
    pthread_once(&g_once, init_tables);
    crc = ~crc;
#if defined(__x86_64__)
    if (g_hw) return ~crc_hw(crc, p, len);
#endif
    return ~crc_sw(crc, p, len);
}

#ifdef TL_TESTING
uint32_t tl_crc32c_sw_for_test(uint32_t crc, const void *p, size_t len);
uint32_t tl_crc32c_sw_for_test(uint32_t crc, const void *p, size_t len)
{
    pthread_once(&g_once, init_tables);
    return ~crc_sw(~crc, p, len);
}
#endif
