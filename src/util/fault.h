/* Fault injection for tests: util/io.c consults these before each system call in test builds
 * (TL_TESTING). In release builds the checks compile away. */
#ifndef TL_FAULT_H
#define TL_FAULT_H

#include <stdbool.h>

typedef enum tl_fault_kind {
    TL_FAULT_NONE,
    TL_FAULT_ENOSPC, /* the next write fails with ENOSPC */
    TL_FAULT_EIO,    /* the next write fails with EIO */
    TL_FAULT_SHORT,  /* the next write writes half, then fails with ENOSPC */
    TL_FAULT_FSYNC,  /* the next fsync/fdatasync fails with EIO */
} tl_fault_kind;

#ifdef TL_TESTING
/* Arms a fault that fires after `skip` matching calls; it fires once. The environment
 * variable TALLY_FAULT="fsync:3" arms one in a test server at start-up. */
void tl_fault_arm(tl_fault_kind kind, unsigned skip);
void tl_fault_from_env(void);
/* Returns the armed fault if the call of this type should fail now. */
tl_fault_kind tl_fault_check(bool is_sync);
#else
static inline void tl_fault_from_env(void)
{
}
#endif

#endif
