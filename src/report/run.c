/* `tally report`: the flags of the command and the run itself. cli.c parses the shared
 * settings (--data, --config, ...) and opens the data directory; the rest is here, so the
 * command line and the scheduler build reports the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_int.h"
#include "util/time.h"

static const char *const g_flags[] = {"project", "period", "end", "out", "server", "key"};

char **tl_report_args_take(int argc, char **argv, tl_report_args *a, int *n)
{
    memset(a, 0, sizeof *a);
    const char **dst[] = {&a->project, &a->period, &a->end, &a->out, &a->server, &a->key};
    char **args = tl_xcalloc((size_t)argc + 1, sizeof *args);
    *n = 0;
    for (int i = 0; i < argc; i++) {
        int f = -1;
        const char *v = NULL;
        for (int k = 0; k < 6 && f < 0 && i > 0; k++) {
            size_t fl = strlen(g_flags[k]);
            if (strncmp(argv[i], "--", 2) || strncmp(argv[i] + 2, g_flags[k], fl)) continue;
            if (argv[i][2 + fl] == '=')
                f = k, v = argv[i] + 3 + fl;
            else if (!argv[i][2 + fl])
                f = k, v = i + 1 < argc ? argv[++i] : NULL;
        }
        if (f < 0) {
            args[(*n)++] = argv[i];
        } else if (!v) {
            a->missing = g_flags[f];
        } else {
            *dst[f] = v;
        }
    }
    if (!a->key) a->key = getenv("TALLY_READ_KEY");
    return args;
}

int tl_report_args_check(const tl_report_args *a, tl_err *err)
{
    tl_report_period per;
    int64_t day;
    if (a->missing) return tl_err_set(err, TL_EINVAL, "flag --%s needs a value", a->missing);
    if (a->period && tl_report_period_parse(a->period, &per))
        return tl_err_set(err, TL_EINVAL, "--period: expected day, week or month, got '%s'",
                          a->period);
    if (a->end && tl_date_parse(tl_str_c(a->end), &day))
        return tl_err_set(err, TL_EINVAL, "--end: expected a date YYYY-MM-DD, got '%s'", a->end);
    if (!a->out || !*a->out) return tl_err_set(err, TL_EINVAL, "--out DIR is required");
    if (a->server) {
        if (strncmp(a->server, "http://", 7) && strncmp(a->server, "https://", 8))
            return tl_err_set(err, TL_EINVAL, "--server: expected http://HOST:PORT");
        if (!a->project) return tl_err_set(err, TL_EINVAL, "--server needs --project");
        if (!a->key || !*a->key)
            return tl_err_set(err, TL_EINVAL, "--server needs --key READKEY (or TALLY_READ_KEY)");
    }
    return 0;
}

int tl_report_cli_run(const tl_report_args *a, tl_store *st, const tl_project_conf *p, tl_err *err)
{
    tl_report_period per = TL_REPORT_WEEK;
    if (a->period && tl_report_period_parse(a->period, &per))
        return tl_err_set(err, TL_EINVAL, "--period: expected day, week or month");
    tl_report_local local = {st, p};
    tl_report_remote remote = {a->server, a->key};
    tl_report_src src = {tl_report_query_local, &local};
    const char *project = p ? p->name : a->project;
    const char *tz = p ? p->timezone : NULL;
    if (a->server) {
        tl_report_http_init();
        src = (tl_report_src){tl_report_query_http, &remote};
    }
    int64_t day;
    int rc = 0;
    if (a->end) {
        rc = tl_date_parse(tl_str_c(a->end), &day);
        if (rc) return tl_err_set(err, rc, "--end: expected a date YYYY-MM-DD");
    } else {
        int64_t today;
        rc = tl_report_today(&src, project, tl_now_ms(), &today, err);
        if (rc) return rc;
        day = tl_report_last_complete(per, today);
    }
    tl_report *r = NULL;
    rc = tl_report_build(&src, project, tz, per, day, &r, err);
    if (!rc) rc = tl_report_write_dir(r, a->out, err);
    if (!rc) {
        int64_t f, l;
        char fs[16], ls[16];
        tl_report_range(r, &f, &l);
        tl_report__day_str(f, fs);
        tl_report__day_str(l, ls);
        printf("%s/report.html: %s report of %s, %s to %s\n", a->out, tl_report_period_name(per),
               project, fs, ls);
    }
    tl_report_free(r);
    return rc;
}
