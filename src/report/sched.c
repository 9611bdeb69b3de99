/* The report scheduler of `tally serve`: one thread that, for every project with
 * report_period set, reports each period once, after it is complete.
 *
 * When is a period due? Shift the project's local wall time back by report_hour hours; the
 * last period complete before that shifted day is the one to report. With report_hour = 6 and
 * weekly reports, the week of Monday 16 to Sunday 22 is due from Monday 23 at 06:00 local
 * time until it is done; a server that was down then reports it when it comes back, and only
 * the latest complete period is ever reported (no backlog of missed ones).
 *
 * Invariants:
 *  1. A period is recorded as done in <data_dir>/reports.state (written atomically) only
 *     after every destination of the project took it: the directory is written and the
 *     webhook answered 2xx. So a restart never repeats a period that was delivered, and a
 *     period whose delivery failed is retried (after 1, 2, 4, ... minutes, at most an hour
 *     apart) until it is delivered or a newer period becomes due.
 *  2. Only this thread reads or writes the state file (the data directory is locked by the
 *     server process).
 *  3. tl_report_sched_stop wakes the thread, aborts a webhook transfer in flight and joins.
 *
 * State file: one line per project and period, "PROJECT PERIOD LAST-DAY-DONE", e.g.
 * "demo week 2026-11-22"; lines of projects no longer configured are kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

#include "report/report_int.h"
#include "util/diag.h"
#include "util/io.h"
#include "util/time.h"
#include "util/tz.h"

typedef struct job {
    const tl_project_conf *p;
    tl_report_period per;
    tl_tz *tz;
    int64_t done;     /* last day of the last period delivered; INT64_MIN: none */
    int64_t retry_at; /* monotonic ms before which a failed period is not retried */
    int64_t backoff_ms;
} job;

typedef struct entry {
    char key[TL_NAME_MAX + 16]; /* "project period" */
    int64_t day;
} entry;

struct tl_report_sched {
    const tl_config *cfg;
    tl_store *st;
    job *jobs;
    uint32_t n_jobs;
    entry *state;
    uint32_t n_state;
    char state_path[1200];
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    _Atomic int stop;
};

static void state_key(const job *j, char *out, size_t cap)
{
    snprintf(out, cap, "%s %s", j->p->name, tl_report_period_name(j->per));
}

static void state_load(tl_report_sched *s)
{
    tl_buf b = TL_BUF_INIT;
    if (tl_read_file(s->state_path, &b)) return; /* none yet */
    char *text = tl_buf_cstr(&b);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[TL_NAME_MAX], per[16], day[16];
        int64_t d;
        if (line[0] == '#' || sscanf(line, "%63s %15s %15s", name, per, day) != 3 ||
            tl_date_parse(tl_str_c(day), &d))
            continue;
        s->state = tl_xrealloc(s->state, (s->n_state + 1) * sizeof *s->state);
        entry *e = &s->state[s->n_state++];
        snprintf(e->key, sizeof e->key, "%s %s", name, per);
        e->day = d;
    }
    tl_buf_fini(&b);
}

static entry *state_find(tl_report_sched *s, const char *key)
{
    for (uint32_t i = 0; i < s->n_state; i++)
        if (!strcmp(s->state[i].key, key)) return &s->state[i];
    return NULL;
}

static int state_save(tl_report_sched *s)
{
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "# the last period each project's report was delivered for (tally serve)\n");
    for (uint32_t i = 0; i < s->n_state; i++) {
        char d[16];
        tl_report__day_str(s->state[i].day, d);
        tl_buf_printf(&b, "%s %s\n", s->state[i].key, d);
    }
    int rc = tl_write_file_atomic(s->state_path, b.p, b.len);
    tl_buf_fini(&b);
    return rc;
}

/* Builds and delivers one period of job j. Returns 0 when every destination took it. */
static int deliver(tl_report_sched *s, job *j, int64_t last, tl_err *err)
{
    tl_report_local l = {s->st, j->p};
    tl_report_src src = {tl_report_query_local, &l};
    tl_report *r = NULL;
    int rc = tl_report_build(&src, j->p->name, j->p->timezone, j->per, last, &r, err);
    if (!rc && j->p->report_dir[0]) {
        char dir[1200], first[16];
        int64_t f, l2;
        tl_report_range(r, &f, &l2);
        tl_report__day_str(f, first);
        snprintf(dir, sizeof dir, "%s/%s/%s-%s", j->p->report_dir, j->p->name,
                 tl_report_period_name(j->per), first);
        rc = tl_report_write_dir(r, dir, err);
        if (!rc) TL_INFO("report", "wrote %s/report.html", dir);
    }
    if (!rc && j->p->report_webhook[0]) {
        rc = tl_report_post(r, j->p->report_webhook, &s->stop, err);
        if (!rc)
            TL_INFO("report", "posted the %s report of %s to its webhook",
                    tl_report_period_name(j->per), j->p->name);
    }
    tl_report_free(r);
    return rc;
}

/* One pass over the jobs; returns the monotonic time of the next retry due (0: none). */
static int64_t check(tl_report_sched *s)
{
    int64_t next = 0;
    for (uint32_t i = 0; i < s->n_jobs && !s->stop; i++) {
        job *j = &s->jobs[i];
        int64_t mono = tl_mono_ms();
        if (j->retry_at > mono) {
            if (!next || j->retry_at < next) next = j->retry_at;
            continue;
        }
        int64_t now = tl_now_ms();
        int64_t local_s = tl_floordiv(now, 1000) + tl_tz_offset_at(j->tz, now);
        int64_t today = tl_floordiv(local_s - (int64_t)j->p->report_hour * 3600, 86400);
        int64_t last = tl_report_last_complete(j->per, today);
        if (j->done >= last) continue;
        tl_err err = {0};
        int rc = deliver(s, j, last, &err);
        if (s->stop) break;
        if (rc) {
            j->backoff_ms = j->backoff_ms ? j->backoff_ms * 2 : 60000;
            if (j->backoff_ms > TL_REPORT_RETRY_MAX_MS) j->backoff_ms = TL_REPORT_RETRY_MAX_MS;
            j->retry_at = tl_mono_ms() + j->backoff_ms;
            if (!next || j->retry_at < next) next = j->retry_at;
            TL_WARN("report", "%s %s report not delivered (retry in %lld s): %s", j->p->name,
                    tl_report_period_name(j->per), (long long)(j->backoff_ms / 1000),
                    err.msg[0] ? err.msg : tl_strerror(rc));
            continue;
        }
        j->done = last;
        j->backoff_ms = 0;
        j->retry_at = 0;
        char key[sizeof s->state->key];
        state_key(j, key, sizeof key);
        entry *e = state_find(s, key);
        if (!e) {
            s->state = tl_xrealloc(s->state, (s->n_state + 1) * sizeof *s->state);
            e = &s->state[s->n_state++];
            snprintf(e->key, sizeof e->key, "%s", key);
        }
        e->day = last;
        rc = state_save(s);
        if (rc)
            TL_ERROR("report",
                     "cannot record the delivered report in %s: %s (it may be sent "
                     "again after a restart)",
                     s->state_path, tl_strerror(rc));
    }
    return next;
}

static void *sched_main(void *arg)
{
    tl_report_sched *s = arg;
    while (!s->stop) {
        int64_t next = check(s);
        int64_t wait_ms = TL_REPORT_CHECK_MS;
        if (next && next - tl_mono_ms() < wait_ms) wait_ms = next - tl_mono_ms();
        if (wait_ms < 10) wait_ms = 10;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->mu);
        if (!s->stop) pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static void sched_free(tl_report_sched *s)
{
    for (uint32_t i = 0; i < s->n_jobs; i++)
        tl_tz_free(s->jobs[i].tz);
    free(s->jobs);
    free(s->state);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int tl_report_sched_start(const tl_config *cfg, tl_store *st, tl_report_sched **out, tl_err *err)
{
    *out = NULL;
    uint32_t n = 0;
    for (uint32_t i = 0; i < cfg->n_projects; i++)
        n += cfg->projects[i].report_period[0] != 0;
    if (!n) return 0;
    tl_report_sched *s = tl_xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->st = st;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(s->state_path, sizeof s->state_path, "%s/reports.state", cfg->data_dir);
    state_load(s);
    s->jobs = tl_xcalloc(n, sizeof *s->jobs);
    int rc = 0;
    for (uint32_t i = 0; i < cfg->n_projects && !rc; i++) {
        const tl_project_conf *p = &cfg->projects[i];
        if (!p->report_period[0]) continue;
        job *j = &s->jobs[s->n_jobs++];
        j->p = p;
        j->done = INT64_MIN;
        if (tl_report_period_parse(p->report_period, &j->per))
            rc = tl_err_set(err, TL_EINVAL, "project %s: report_period '%s'", p->name,
                            p->report_period);
        else
            rc = tl_tz_load(p->timezone[0] ? p->timezone : "UTC", &j->tz, err);
        char key[sizeof s->state->key];
        state_key(j, key, sizeof key);
        const entry *e = rc ? NULL : state_find(s, key);
        if (e) j->done = e->day;
    }
    if (!rc) {
        tl_report_http_init();
        rc = pthread_create(&s->th, NULL, sched_main, s);
        if (rc) rc = tl_err_set(err, -rc, "cannot start the report scheduler thread");
    }
    if (rc) {
        sched_free(s);
        return rc;
    }
    TL_INFO("report", "scheduler started for %u project(s)", s->n_jobs);
    *out = s;
    return 0;
}

void tl_report_sched_stop(tl_report_sched *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    sched_free(s);
}
