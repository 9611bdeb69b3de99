/* STUB — being replaced by the query engine. */
#include "query.h"

int tl_query_run(tl_store *s, const tl_project_conf *p, const tl_json *q, tl_arena *a,
                 tl_buf *out, tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "kind: not implemented");
}
