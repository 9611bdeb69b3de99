/* Private to the HTTP module: the server state and the helpers every route file shares.
 *
 * http.c owns the daemon, request bodies and the native routes. Each file under src/http/
 * owns one family of routes and exposes one router function; on_request asks them in turn:
 *
 *   compat.c   SDK-compatible ingestion (Segment, PostHog, Snowplow, Plausible, GA4)
 *   reads.c    person timelines, realtime (JSON and server-sent events), the report form
 *   sdk.c      the first-party JS SDK (/tally.js) and the CORS preflight of /collect
 *   web.c      the dashboard's static assets
 *
 * A router returns true when the URL is its own and it queued an answer into *ret. */
#ifndef TL_HTTP_INT_H
#define TL_HTTP_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "enrich.h"
#include "http.h"
#include "ingest.h"
#include "realtime.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/str.h"

struct tl_http {
    const tl_config *cfg;
    tl_log *log;
    tl_index *ix;
    tl_store *st;
    tl_realtime *rt; /* live counters fed by every stored batch (realtime.h) */
    /* GeoIP, user agent and bot filter (src/enrich.h), built at start. */
    tl_enrich *enrich;
    struct MHD_Daemon *d;
    uint16_t port;
    tl_ingest_limits lim;
    _Atomic uint64_t requests, events_accepted, events_rejected, events_duplicate, queries,
        errors_4xx, errors_5xx;
    _Atomic int stopping; /* set by tl_http_stop: long-lived streams end */
};

/* One request's state: the body collected so far. */
typedef struct tl_http_req {
    tl_buf body;
    bool too_big;
} tl_http_req;

/* Queues b (stolen) with the status; Content-Type ctype; Cache-Control no-store;
 * Access-Control-Allow-Origin * (browsers on any origin may read ingest answers). */
enum MHD_Result tl_http_send_buf(tl_http *h, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, tl_buf *b);
/* Queues {"error": msg} with the status. */
enum MHD_Result tl_http_send_error(tl_http *h, struct MHD_Connection *c, unsigned status,
                                   const char *msg);
/* A request header (TL_STR_NULL when absent). */
tl_str tl_http_header(struct MHD_Connection *c, const char *name);
/* A query-string argument, URL-decoded (TL_STR_NULL when absent). */
tl_str tl_http_arg(struct MHD_Connection *c, const char *name);
/* The query-string arguments (URL-decoded), up to TL_HTTP_MAX_ARGS of them, as arrays in a;
 * returns how many. */
#define TL_HTTP_MAX_ARGS 256
size_t tl_http_args(tl_arena *a, struct MHD_Connection *c, const tl_str **k, const tl_str **v);
/* The token of "Authorization: Bearer TOKEN" (TL_STR_NULL when absent). */
tl_str tl_http_bearer(struct MHD_Connection *c);
const tl_project_conf *tl_http_project_by_write_key(const tl_config *cfg, tl_str key);
const tl_project_conf *tl_http_project_by_read_key(const tl_config *cfg, tl_str key);
/* The project of the read key in the Authorization header, checked against ?project= when
 * given. NULL after queuing a 401 into *ret. */
const tl_project_conf *tl_http_read_auth(tl_http *h, struct MHD_Connection *c,
                                         enum MHD_Result *ret);
/* The client's address as text ("" when unknown). */
void tl_http_client_ip(struct MHD_Connection *c, char *out, size_t cap);
/* The ingest context of a request: now, client address (ip, cap ≥ 64: the peer, or behind a
 * trusted proxy the address its X-Forwarded-For / Forwarded names) and User-Agent. */
tl_ingest_ctx tl_http_ingest_ctx(struct MHD_Connection *c, char *ip, size_t cap);

/* Stores a parsed batch for project p: enriches every record (src/enrich.h) and leaves out
 * the ones the bot filter or deny lists drop (they still count as accepted in the answer: the
 * client is not told), drops repeats (inside the batch and already indexed), appends the rest
 * to the log, waits until durable and feeds the realtime counters. *dups gets the repeats
 * dropped. Returns 0 or a log error (TL_E2BIG: batch too large). */
int tl_http_store_batch(tl_http *h, tl_arena *a, const tl_project_conf *p, tl_ingest_batch *b,
                        uint32_t *dups);
/* Counts a stored batch in the metrics and queues the native answer
 * {"accepted","duplicates","rejected","errors"}. */
enum MHD_Result tl_http_reply_ingest(tl_http *h, struct MHD_Connection *c, tl_ingest_batch *b,
                                     uint32_t dups);
/* Queues the answer for a tl_http_store_batch failure (413 or 503). */
enum MHD_Result tl_http_reply_store_error(tl_http *h, struct MHD_Connection *c, int rc);

/* Routers (see the top of this file). */
bool tl_http_route_compat(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                          const char *method, enum MHD_Result *ret);
bool tl_http_route_reads(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                         const char *method, enum MHD_Result *ret);
bool tl_http_route_sdk(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                       const char *method, enum MHD_Result *ret);
bool tl_http_route_web(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                       const char *method, enum MHD_Result *ret);

#endif
