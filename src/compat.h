/* Compatible ingestion formats: what the Segment, PostHog, Snowplow, Plausible and GA4 SDKs
 * send, turned into the same tl_records a native /collect body gives. Each parser maps the
 * wire event onto a native event object (a tl_json tree built in the arena) and hands it to
 * tl_ingest_event, so limits, clock-skew correction, property flattening and derived ids are
 * the native ones. Identity calls (Segment identify/alias/group, PostHog $identify,
 * $create_alias and $set) become TL_REC_IDENTIFY records: a merge and person properties, no
 * event row. The field-by-field mapping and the choices made are in docs/compat.md.
 *
 * Pure functions: no I/O, all output in the caller's arena; the HTTP layer (src/http/compat.c)
 * authenticates and stores. Thread-safe. */
#ifndef TL_COMPAT_H
#define TL_COMPAT_H

#include <stddef.h>

#include "ingest.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/str.h"

/* The event names every format's page views and screen views are stored under: PostHog's,
 * which tally.js sends and the pageviews report counts (Segment page/screen, Snowplow pv and
 * its screen_view, Plausible pageview, GA4 page_view/screen_view; docs/compat.md). */
#define TL_COMPAT_PAGEVIEW "$pageview"
#define TL_COMPAT_SCREEN   "$screen"

typedef enum tl_compat_fmt {
    TL_COMPAT_SEGMENT,
    TL_COMPAT_POSTHOG,
    TL_COMPAT_SNOWPLOW,
    TL_COMPAT_PLAUSIBLE,
    TL_COMPAT_GA4,
    TL_COMPAT_COUNT
} tl_compat_fmt;

/* One request as the parsers need it. Everything is borrowed and must outlive the batch. */
typedef struct tl_compat_in {
    tl_str path;             /* URL path without the query ("/v1/track", "/i/v0/e/") */
    tl_str body;             /* as received: may be gzip, base64 or a urlencoded form */
    tl_str content_type;     /* request header, or TL_STR_NULL */
    tl_str content_encoding; /* request header, or TL_STR_NULL */
    const tl_str *arg_k;     /* query-string arguments, URL-decoded */
    const tl_str *arg_v;
    size_t n_args;
    tl_str salt; /* Plausible: a secret mixed into the visitor hash (the HTTP layer passes the
                    project's read key), so the id cannot be reversed to the address */
} tl_compat_in;

/* "segment", "posthog", ... */
const char *tl_compat_name(tl_compat_fmt f);

/* The format whose ingestion endpoint path is (one trailing slash ignored), or -1. */
int tl_compat_by_path(tl_str path);

/* Parses one request of format f into *out: the good records in body order (project left
 * empty, as tl_ingest_native leaves it), a reason per rejected event, and in out->body_key
 * the key the body carries (Segment writeKey, PostHog api_key/token, Snowplow aid of the
 * first event, Plausible domain list; GA4 has none). Returns 0 when the body could be read
 * (even if every event was rejected), TL_EINVAL when it cannot (→ 400), TL_E2BIG over a body
 * limit (→ 413); err says why. lim may be NULL for the defaults. Everything is allocated in a;
 * records borrow from in->body and in->arg_v too. */
int tl_compat_parse(tl_compat_fmt f, tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                    const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;

/* The same, one format each (tl_compat_parse dispatches to them). */
int tl_compat_segment(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                      const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;
int tl_compat_posthog(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                      const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;
int tl_compat_snowplow(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                       const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;
int tl_compat_plausible(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                        const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;
int tl_compat_ga4(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                  const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;

/* Decoders shared with the HTTP layer. Both write into the arena and return the length, or
 * -1 on bad input. Base64 accepts the standard and the URL-safe alphabets, with or without
 * padding, and skips white space; URL decoding turns %XX into bytes and '+' into a space. */
long tl_compat_base64_decode(tl_arena *a, tl_str in, tl_str *out);
long tl_compat_url_decode(tl_arena *a, tl_str in, tl_str *out);

#endif
