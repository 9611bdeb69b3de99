/* Fuzz target for the config file parser: the input is written to a temporary file and loaded
 * with `--config FILE`. Any bytes must load or fail with TL_EINVAL / TL_ENOENT and a reason,
 * never crash, over-read or leak; a config that loads must satisfy the documented rules
 * (every project named, with both keys, all keys distinct, positive session gap and
 * retention). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void check(const tl_config *c)
{
    for (uint32_t i = 0; i < c->n_projects; i++) {
        const tl_project_conf *p = &c->projects[i];
        if (!p->name[0] || !p->write_key[0] || !p->read_key[0] || !p->timezone[0] ||
            !p->session_gap_s || !p->retention_days || !strcmp(p->write_key, p->read_key))
            abort();
        if (tl_config_project(c, p->name) != p) abort();
        for (uint32_t j = 0; j < i; j++) {
            const tl_project_conf *q = &c->projects[j];
            if (!strcmp(p->write_key, q->write_key) || !strcmp(p->write_key, q->read_key) ||
                !strcmp(p->read_key, q->write_key) || !strcmp(p->read_key, q->read_key))
                abort();
        }
    }
    if (c->threads < 1 || c->threads > 256 || c->log_level < 0 || c->log_level > 3) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_path[0]) {
        snprintf(g_path, sizeof g_path, "/tmp/tl_fuzz_config.XXXXXX");
        int fd = mkstemp(g_path);
        if (fd < 0) abort();
        close(fd);
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    char *argv[] = {"tally", "--config", g_path, "rest", NULL};
    tl_config c;
    char **rest = NULL;
    int n_rest = 0;
    tl_err err = {0};
    int rc = tl_config_load(&c, TL_CFG_SERVE, 4, argv, &rest, &n_rest, &err);
    if (rc) {
        if ((rc != TL_EINVAL && rc != TL_ENOENT) || err.code != rc || !err.msg[0] || rest) abort();
    } else {
        if (n_rest != 1 || strcmp(rest[0], "rest")) abort();
        check(&c);
    }
    free(rest);
    tl_config_fini(&c);
    return 0;
}
