/* Realtime counters, fed from the ingest path (never by scanning the store): per project,
 * events per second over the last 60 s, distinct active ids over the last 5 minutes, top
 * pages over the last 30 minutes and the last events received. Times are receive times.
 * Thread-safe (a mutex per project); memory is bounded by what the windows hold. */
#ifndef TL_REALTIME_H
#define TL_REALTIME_H

#include <stdint.h>

#include "record.h"
#include "util/buf.h"

typedef struct tl_realtime tl_realtime;

#define TL_RT_SECONDS  60   /* events_per_s */
#define TL_RT_ACTIVE_S 300  /* active_persons_5m */
#define TL_RT_PAGES_S  1800 /* top_pages */
#define TL_RT_TOP      10   /* pages listed */
#define TL_RT_RECENT   20   /* last events listed */

/* n_projects: projects are numbered 0..n_projects-1 by the caller. */
tl_realtime *tl_realtime_new(uint32_t n_projects);
void tl_realtime_free(tl_realtime *rt);

/* Counts stored records of project `proj` received at now_ms. The active id of a record is
 * its user_id, else its anonymous_id; a page is the url of a record that has one. */
void tl_realtime_feed(tl_realtime *rt, uint32_t proj, const tl_record *recs, uint32_t n,
                      int64_t now_ms);

/* Appends the JSON state at now_ms: {"active_persons_5m":N,"events_per_s":[60 values, oldest
 * first, the current second last],"top_pages":[{"url":U,"views":N}],"recent":[{"event","url",
 * "distinct_id","timestamp"}], newest first, "events_60s":N}. */
void tl_realtime_json(tl_realtime *rt, uint32_t proj, int64_t now_ms, tl_buf *out);

#endif
