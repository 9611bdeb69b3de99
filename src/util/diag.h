/* Logging: one `level module: message key=value` line per call, to stderr. The macros check
 * the level before evaluating their arguments (Redis serverLog). Hot paths keep counters. */
#ifndef TL_DIAG_H
#define TL_DIAG_H

#include "util/err.h"

enum { TL_LOG_ERROR, TL_LOG_WARN, TL_LOG_INFO, TL_LOG_DEBUG };

/* The level is set once at start-up, before threads start. */
void tl_diag_set_level(int level);
int tl_diag_level(void);
/* Parses "error|warn|info|debug"; returns the level or -1. */
int tl_diag_parse_level(const char *s);
void tl_diag_log(int level, const char *mod, const char *fmt, ...) TL_PRINTF(3, 4);

#define TL_LOG_AT(lvl, mod, ...)                                                                   \
    do {                                                                                           \
        if ((lvl) <= tl_diag_level()) tl_diag_log((lvl), (mod), __VA_ARGS__);                      \
    } while (0)
#define TL_ERROR(mod, ...) TL_LOG_AT(TL_LOG_ERROR, mod, __VA_ARGS__)
#define TL_WARN(mod, ...)  TL_LOG_AT(TL_LOG_WARN, mod, __VA_ARGS__)
#define TL_INFO(mod, ...)  TL_LOG_AT(TL_LOG_INFO, mod, __VA_ARGS__)
#define TL_DEBUG(mod, ...) TL_LOG_AT(TL_LOG_DEBUG, mod, __VA_ARGS__)

#endif
