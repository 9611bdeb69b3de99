/* Read routes besides the query API: person timelines, realtime and the report form. */
#include <stdlib.h>

#include "http/http_int.h"

struct tl_realtime {
    int unused;
};

tl_realtime *tl_realtime_new(void)
{
    return calloc(1, sizeof(tl_realtime));
}

void tl_realtime_free(tl_realtime *rt)
{
    free(rt);
}

void tl_realtime_feed(tl_realtime *rt, const tl_project_conf *p, const tl_record *recs, uint32_t n,
                      int64_t now_ms)
{
}

bool tl_http_route_reads(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                         const char *method, enum MHD_Result *ret)
{
    return false;
}
