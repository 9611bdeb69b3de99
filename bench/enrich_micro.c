/* bench/enrich_micro.c — the enricher alone, in one process: the (ip, user agent) pairs of
 * bench/enrich.sh's events (a TSV file) through tl_enrich_record, in batches of 1,000 with a
 * memo per batch as the HTTP layer does, first with every cache empty (a fresh enricher: what
 * a server pays for its first events) and then again. Prints the process CPU time per event
 * of both passes and of the enricher's start, as `key=value` lines. CPU time of one thread,
 * so other work on the machine moves it far less than the server's ingest rate.
 *
 *   enrich_micro PAIRS.tsv GEOIP_DB   (bench/enrich.sh builds and runs it) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "config.h"
#include "enrich.h"
#include "record.h"
#include "util/arena.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: enrich_micro PAIRS.tsv GEOIP_DB\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t n = 0, cap = 0;
    char **ip = NULL, **ua = NULL;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        tab[1 + strcspn(tab + 1, "\n")] = 0;
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            ip = realloc(ip, cap * sizeof *ip);
            ua = realloc(ua, cap * sizeof *ua);
        }
        ip[n] = strdup(line);
        ua[n] = strdup(tab + 1);
        n++;
    }
    fclose(f);
    if (!n) return 1;

    tl_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.enrich = true;
    cfg.bot_filter = true;
    snprintf(cfg.geoip_db, sizeof cfg.geoip_db, "%s", argv[2]);
    tl_project_conf p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "bench");
    tl_config_add_project(&cfg, &p);
    double t0 = cpu_s();
    tl_enrich *e;
    tl_err err = {0};
    if (tl_enrich_new(&cfg, &e, &err)) {
        fprintf(stderr, "enrich_micro: %s\n", err.msg);
        return 1;
    }
    printf("start_ms=%.1f\n", (cpu_s() - t0) * 1e3);
    for (int pass = 0; pass < 2; pass++) {
        double t = cpu_s();
        tl_arena *a = tl_arena_new();
        tl_enrich_memo memo = {0};
        for (size_t i = 0; i < n; i++) {
            if (i % 1000 == 0) {
                tl_arena_reset(a);
                memset(&memo, 0, sizeof memo);
            }
            tl_record r;
            memset(&r, 0, sizeof r);
            r.kind = TL_REC_EVENT;
            r.ip = tl_str_c(ip[i]);
            r.user_agent = tl_str_c(ua[i]);
            (void)tl_enrich_record(e, &cfg.projects[0], a, &r, &memo);
        }
        tl_arena_free(a);
        printf("%s_us_per_event=%.3f\n", pass ? "again" : "cold", (cpu_s() - t) * 1e6 / (double)n);
    }
    tl_enrich_free(e);
    tl_config_fini(&cfg);
    for (size_t i = 0; i < n; i++) {
        free(ip[i]);
        free(ua[i]);
    }
    free(ip);
    free(ua);
    return 0;
}
