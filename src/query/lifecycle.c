/* Trends metrics stickiness and lifecycle (query_int.h). */
#include "query/query_int.h"

int tl_query__lifecycle(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q,
                        tl_buf *out, tl_err *err)
{
    (void)c, (void)req, (void)plan, (void)q, (void)out;
    return tl_err_set(err, TL_EINVAL, "metric: not available yet");
}
