/* Private to the report module: the built report (build.c fills it, render.c writes it, the
 * scheduler and the CLI deliver it). */
#ifndef TL_REPORT_INT_H
#define TL_REPORT_INT_H

#include "report.h"

/* Overview metrics, in the order they are shown. */
enum {
    TL_RM_EVENTS,
    TL_RM_PERSONS,    /* distinct persons in the whole period */
    TL_RM_DAU_AVG,    /* mean of the daily distinct persons over the period's days */
    TL_RM_WAU,        /* at the period's last day */
    TL_RM_MAU,        /* at the period's last day */
    TL_RM_STICKINESS, /* DAU average / MAU, a ratio */
    TL_RM_PAGEVIEWS,  /* $pageview events plus other events that carry a url */
    TL_RM_N
};

enum { TL_RFMT_INT, TL_RFMT_DEC, TL_RFMT_PCT };

typedef struct tl_report_mdef {
    const char *id, *title, *help;
    int fmt;
} tl_report_mdef;

extern const tl_report_mdef tl_report__metrics[TL_RM_N];

/* Breakdown tables. */
enum { TL_RT_PAGES, TL_RT_COUNTRIES, TL_RT_PLATFORMS, TL_RT_VERSIONS, TL_RT_EVENTS, TL_RT_N };

typedef struct tl_report_tdef {
    const char *id;    /* CSV file name without .csv, JSON member */
    const char *title; /* "Top pages" */
    const char *prop;  /* breakdown property, also the CSV key column */
    const char *key_title, *value_title;
    const char *metric; /* trends metric */
    const char *where;  /* JSON list or NULL */
} tl_report_tdef;

extern const tl_report_tdef tl_report__tables[TL_RT_N];

enum { TL_RROW_VALUE, TL_RROW_NULL, TL_RROW_OTHER };

typedef struct tl_report_row {
    tl_str name; /* in the report's arena; empty for NULL and OTHER rows */
    int kind;
    tl_report_change ch;
} tl_report_row;

typedef struct tl_report_table {
    tl_report_row *rows; /* sorted: by current value, then previous, then name; $other last */
    uint32_t n;
} tl_report_table;

struct tl_report {
    tl_arena *a;
    char project[TL_NAME_MAX];
    char tz[TL_NAME_MAX]; /* "" when not known */
    tl_report_period per;
    int64_t first, last, pfirst, plast; /* local days, inclusive */
    int64_t generated_ms;
    tl_report_change m[TL_RM_N];
    /* Series: hours of the day (day reports) or days of the period, current [0] and previous
     * [1]; n_pts is the longer of the two, NaN past a period's end. */
    uint32_t n_pts, n_cur, n_prev;
    tl_str *labels[2];
    double *events[2], *persons[2];
    tl_report_table t[TL_RT_N];
};

/* "YYYY-MM-DD" of a local day into out (≥ 16 bytes). */
void tl_report__day_str(int64_t day, char *out);

#endif
