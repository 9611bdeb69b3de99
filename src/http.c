/* STUB — being replaced. */
#include "http.h"

int tl_http_start(const tl_config *cfg, tl_log *log, tl_index *ix, tl_store *st, tl_http **out,
                  tl_err *err)
{
    return TL_EINVAL;
}

uint16_t tl_http_port(const tl_http *h)
{
    return 0;
}

void tl_http_stop(tl_http *h)
{
    
}
