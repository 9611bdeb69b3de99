/* Reports: the overview of a project for one calendar period (day, week or month in the
 * project's zone) against the period before it, written as one self-contained HTML file
 * (inline CSS, inline SVG charts, no scripts, no external references) plus CSV tables, and
 * delivered on a schedule by the server into a directory or to a webhook.
 *
 * Every number comes from trends queries answered by tl_query_run (in-process) or by a
 * server's POST /api/v1/query (libcurl): reports have no query engine of their own, so a
 * report's numbers are by construction the API's numbers for the same ranges.
 *
 * Threads: a tl_report is built and used by one thread; the scheduler runs in its own thread
 * and only reads the const tl_config and queries the store (tl_query_run is thread-safe). */
#ifndef TL_REPORT_H
#define TL_REPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/str.h"

/* The scheduler looks for due reports this often (and once right after start-up). */
#define TL_REPORT_CHECK_MS       60000
/* A failed delivery is retried after 1, 2, 4, ... minutes, at most this far apart. */
#define TL_REPORT_RETRY_MAX_MS   3600000
/* Rows of each table shown in the HTML and the webhook summary (the CSVs have them all). */
#define TL_REPORT_TOP_N          10
/* How long one query or webhook request to a server may take. */
#define TL_REPORT_HTTP_TIMEOUT_S 60

/* ---- periods ---- */

typedef enum tl_report_period {
    TL_REPORT_DAY,
    TL_REPORT_WEEK, /* ISO week, Monday to Sunday */
    TL_REPORT_MONTH,
} tl_report_period;

/* "day" | "week" | "month" → *out; returns 0 or TL_EINVAL. */
int tl_report_period_parse(const char *s, tl_report_period *out) TL_MUST_USE;
const char *tl_report_period_name(tl_report_period p);
/* The calendar period that contains local day `day` (days since 1970-01-01): its first and
 * last day, inclusive. */
void tl_report_period_of(tl_report_period p, int64_t day, int64_t *first, int64_t *last);
/* The last day of the last period that is complete before local day `today` (yesterday for
 * days, last Sunday for weeks, the last day of the previous month for months). */
int64_t tl_report_last_complete(tl_report_period p, int64_t today);

/* ---- pieces with their own contracts (unit-tested) ---- */

/* A metric against the previous period. pct is (cur - prev) / prev * 100 and has_pct is
 * false when prev is 0 (no percentage of nothing: shown as "new" or "–"). */
typedef struct tl_report_change {
    double cur, prev, abs, pct;
    bool has_pct;
} tl_report_change;

tl_report_change tl_report_change_of(double cur, double prev);

/* Appends s with &, <, >, " and ' escaped, safe in HTML text and quoted attributes; bytes
 * that are not valid UTF-8 become U+FFFD and control characters other than tab and newline
 * are dropped, so no input can end an element or an attribute. */
void tl_report_html_escape(tl_buf *b, tl_str s);
/* Appends s as one CSV field (RFC 4180: quoted when it holds , " CR or LF, quotes doubled).
 * A text that a spreadsheet would run as a formula (starting with = + - @ tab or CR) gets a
 * leading ' (OWASP "CSV injection"); numbers are written by the caller, never through this. */
void tl_report_csv_field(tl_buf *b, tl_str s);

/* One line of a chart: n values (NaN: no point), drawn dashed for a previous period. */
typedef struct tl_report_series {
    const char *name;
    const double *v;
    bool dashed;
} tl_report_series;

/* Geometry of tl_report_svg_line, fixed so that tests can compute point positions: a
 * TL_SVG_W x TL_SVG_H view box, the plot inside the margins; x of point i of n is
 * L + i * (W - L - R) / (n - 1) (the middle when n is 1), y of value v is
 * T + (H - T - B) * (1 - v / top), where top is the smallest of 1, 2, 2.5, 5 times a power of
 * ten that is ≥ the largest value (1 when every value is 0 or absent). */
#define TL_SVG_W 640
#define TL_SVG_H 220
#define TL_SVG_L 56
#define TL_SVG_R 16
#define TL_SVG_T 16
#define TL_SVG_B 40

/* Appends an <svg> line chart (no xmlns needed inline in HTML, no script, no external
 * reference): a <title>, horizontal grid lines with their values, up to ~8 x labels out of
 * labels[0..n), one <polyline> per series (points with %.1f coordinates; a NaN value splits
 * the line) and a legend. Every text goes through tl_report_html_escape. */
void tl_report_svg_line(tl_buf *b, const char *title, const tl_str *labels, uint32_t n,
                        const tl_report_series *s, uint32_t ns);
/* The chart's top value for a maximum (see the geometry above). */
double tl_report_nice_top(double max);

/* ---- where answers come from ---- */

/* Answers one query (the JSON body of POST /api/v1/query) into *answer (appended). Returns 0,
 * or a negative code with err saying why. */
typedef int (*tl_report_query_fn)(void *ctx, tl_str query, tl_buf *answer, tl_err *err);

typedef struct tl_report_src {
    tl_report_query_fn query;
    void *ctx;
} tl_report_src;

/* In-process: ctx is a tl_report_local (borrowed store and project). */
typedef struct tl_report_local {
    tl_store *st;
    const tl_project_conf *p;
} tl_report_local;
int tl_report_query_local(void *ctx, tl_str query, tl_buf *answer, tl_err *err);

/* A running server: ctx is a tl_report_remote; POST {url}/api/v1/query with the read key.
 * Non-200 answers fail with the server's "error" text. Call curl_global_init first (the CLI
 * and the scheduler do, through tl_report_http_init). */
typedef struct tl_report_remote {
    const char *url; /* "http://127.0.0.1:8080" (a trailing / is fine) */
    const char *key; /* read key */
} tl_report_remote;
int tl_report_query_http(void *ctx, tl_str query, tl_buf *answer, tl_err *err);
/* Initialises libcurl once per process (not thread-safe: call before starting threads). */
void tl_report_http_init(void);

/* ---- building and writing ---- */

typedef struct tl_report tl_report;

/* The project's local day now, read from the answer of a one-row trends query (its bucket
 * label is the local date in the project's zone), so a remote project's zone need not be
 * known here. Returns 0 or the query's error. */
int tl_report_today(const tl_report_src *src, const char *project, int64_t now_ms, int64_t *today,
                    tl_err *err) TL_MUST_USE;

/* Builds the report of `project` for the period that contains local day `day`, compared with
 * the period before. tz_name (may be NULL: "the project's time zone") is only shown. Returns
 * 0 and a new report (free with tl_report_free), or the first failing query's error. */
int tl_report_build(const tl_report_src *src, const char *project, const char *tz_name,
                    tl_report_period per, int64_t day, tl_report **out, tl_err *err) TL_MUST_USE;
void tl_report_free(tl_report *r);

/* The period's first and last local day. */
void tl_report_range(const tl_report *r, int64_t *first, int64_t *last);
/* A metric of the overview by name ("events", "persons", "dau_avg", "wau", "mau",
 * "stickiness", "pageviews"); false when unknown. */
bool tl_report_metric(const tl_report *r, const char *name, tl_report_change *out);

/* The whole HTML document. */
void tl_report_html(const tl_report *r, tl_buf *out);
/* The JSON summary: project, period, ranges, metrics with their changes, the top rows of each
 * table, and with `html` the HTML document as a string member "html". */
void tl_report_json(const tl_report *r, bool html, tl_buf *out);
/* Writes report.html, summary.json and the CSVs (overview, series, top_pages, countries,
 * platforms, app_versions, events) into dir (created), each file atomically. Returns 0 or an
 * I/O error with err naming the file. */
int tl_report_write_dir(const tl_report *r, const char *dir, tl_err *err) TL_MUST_USE;
/* POSTs tl_report_json(r, true) to url (http or https only, no redirects). A non-2xx status
 * fails with TL_EIO. *cancel (may be NULL) becoming non-zero aborts the transfer. */
int tl_report_post(const tl_report *r, const char *url, _Atomic int *cancel,
                   tl_err *err) TL_MUST_USE;

/* ---- the command line (tally report; cli.c opens the data directory) ---- */

#define TL_REPORT_USAGE                                                                            \
    "usage: tally report --project P --period day|week|month [--end DATE] --out DIR\n"             \
    "                    [--data DIR | --server URL --key READKEY] [--config FILE]\n\n"            \
    "Writes the project's report for one period into DIR: report.html (self-contained: inline "    \
    "CSS and SVG charts, no scripts, nothing fetched), summary.json and one CSV per table. "       \
    "The period is the last complete day, week (Monday to Sunday) or month in the project's "      \
    "time zone, or the one that contains --end DATE (YYYY-MM-DD); every number is compared "       \
    "with the period before. With --server, the numbers come from a running server's query "       \
    "API (read key in --key or TALLY_READ_KEY); otherwise from the data directory.\n\n"            \
    "report flags:\n"                                                                              \
    "  --project P              project (default: the first; required with --server)\n"            \
    "  --period day|week|month  period length (default week)\n"                                    \
    "  --end DATE               report the period that contains DATE\n"                            \
    "  --out DIR                output directory (created)\n"                                      \
    "  --server URL             ask a running server instead of opening --data\n"                  \
    "  --key READKEY            the project's read key (with --server)\n"

typedef struct tl_report_args {
    const char *project, *period, *end, *out, *server, *key;
    const char *missing; /* a report flag given without its value */
} tl_report_args;

/* Takes the report flags out of argv: returns a new argv (free it) holding the rest, for
 * tl_config_load, in *n. Never fails; a flag without a value is noted in a->missing. */
char **tl_report_args_take(int argc, char **argv, tl_report_args *a, int *n);
/* Checks the flags (with or without --server). Returns 0 or TL_EINVAL with err. */
int tl_report_args_check(const tl_report_args *a, tl_err *err) TL_MUST_USE;
/* Runs `tally report`: from the store and project p (borrowed; both NULL with --server).
 * Prints where the files went on stdout. Returns 0 or an error with err. */
int tl_report_cli_run(const tl_report_args *a, tl_store *st, const tl_project_conf *p,
                      tl_err *err) TL_MUST_USE;

/* ---- the scheduler (tally serve) ---- */

typedef struct tl_report_sched tl_report_sched;

/* Starts the scheduler thread when some project has report_period set (otherwise *out is
 * NULL and nothing runs). Each project's last complete period is reported once its local time
 * passes report_hour on the day after it ends, into report_dir/<project>/<period>-<first day>/
 * and/or to report_webhook; the last period done is kept in <data_dir>/reports.state, so a
 * restart never reports the same period twice. cfg and st are borrowed until
 * tl_report_sched_stop. Returns 0 or an error (thread creation). */
int tl_report_sched_start(const tl_config *cfg, tl_store *st, tl_report_sched **out,
                          tl_err *err) TL_MUST_USE;
/* Stops the thread (aborting a webhook transfer in flight) and frees; NULL-safe. */
void tl_report_sched_stop(tl_report_sched *s);

#endif
