/* Fault injection state (test builds only). */
#include "util/fault.h"

#ifdef TL_TESTING
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int g_kind;
static _Atomic unsigned g_skip;

void tl_fault_arm(tl_fault_kind kind, unsigned skip)
{
    atomic_store(&g_skip, skip);
    atomic_store(&g_kind, (int)kind);
}

void tl_fault_from_env(void)
{
    const char *s = getenv("TALLY_FAULT");
    if (!s) return;
    static const struct {
        const char *name;
        tl_fault_kind kind;
    } map[] = {{"enospc", TL_FAULT_ENOSPC},
               {"eio", TL_FAULT_EIO},
               {"short", TL_FAULT_SHORT},
               {"fsync", TL_FAULT_FSYNC}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i].name);
        if (strncmp(s, map[i].name, n) == 0) {
            unsigned skip = s[n] == ':' ? (unsigned)strtoul(s + n + 1, NULL, 10) : 0;
            tl_fault_arm(map[i].kind, skip);
        }
    }
}

tl_fault_kind tl_fault_check(bool is_sync)
{
    int k = atomic_load(&g_kind);
    if (k == TL_FAULT_NONE || (k == TL_FAULT_FSYNC) != is_sync) return TL_FAULT_NONE;
    unsigned s = atomic_load(&g_skip);
    if (s > 0) {
        atomic_store(&g_skip, s - 1);
        return TL_FAULT_NONE;
    }
    atomic_store(&g_kind, TL_FAULT_NONE);
    return (tl_fault_kind)k;
}
#endif
