/* Log lines to stderr. Errors are rate-limited per call site text: after 10 identical
 * messages in a second, the rest of that second is counted and summarised once. */
#include "util/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

static int g_level = TL_LOG_INFO; /* written once before threads start */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_last[128];
static time_t g_last_sec;
static unsigned g_repeat, g_dropped;

void tl_diag_set_level(int level)
{
    g_level = level;
}

int tl_diag_level(void)
{
    return g_level;
}

int tl_diag_parse_level(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void tl_diag_log(int level, const char *mod, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    time_t now = time(NULL);
    pthread_mutex_lock(&g_mu);
    if (strncmp(msg, g_last, sizeof g_last - 1) == 0 && now == g_last_sec) {
        if (++g_repeat > 10) {
            g_dropped++;
            pthread_mutex_unlock(&g_mu);
            return;
        }
    } else {
        if (g_dropped)
            fprintf(stderr, "warn diag: previous message repeated count=%u\n", g_dropped);
        g_repeat = 0;
        g_dropped = 0;
        snprintf(g_last, sizeof g_last, "%s", msg);
        g_last_sec = now;
    }
    fprintf(stderr, "%s %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], mod, msg);
    pthread_mutex_unlock(&g_mu);
}
