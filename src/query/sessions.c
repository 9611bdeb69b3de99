/* The sessions query (API.md). */
#include "query/query_int.h"

int tl_query__sessions(tl_qctx *c, tl_qreq *req, const tl_qplan *plan, const tl_json *q,
                       tl_buf *out, tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "kind: 'sessions' is not available yet");
}
