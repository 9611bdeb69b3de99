/* The dashboard's static assets and the first-party JS SDK, compiled into the binary. */
#include "http/http_int.h"

bool tl_http_route_web(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                       const char *method, enum MHD_Result *ret)
{
    return false;
}
