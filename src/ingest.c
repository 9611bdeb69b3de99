/* STUB — being replaced by the ingest implementation. */
#include "ingest.h"

void tl_ingest_limits_default(tl_ingest_limits *l)
{
}
int tl_ingest_decode_body(tl_arena *a, tl_str body, tl_str content_encoding, uint64_t max_bytes,
                          tl_str *out, tl_err *err)
{
    *out = body;
    return 0;
}
int tl_ingest_native(tl_arena *a, tl_str body, tl_str content_type, const tl_ingest_ctx *ctx,
                     const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "not implemented");
}
int tl_ingest_event(tl_arena *a, const tl_json *obj, int64_t batch_sent_at_ms,
                    const tl_ingest_ctx *ctx, const tl_ingest_limits *lim, tl_record *out,
                    tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "not implemented");
}
int tl_ingest_pixel(tl_arena *a, const tl_str *keys, const tl_str *vals, size_t n,
                    const tl_ingest_ctx *ctx, const tl_ingest_limits *lim, tl_record *out,
                    tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "not implemented");
}
int tl_ingest_time(const tl_json *v, int64_t *ms)
{
    return TL_EINVAL;
}
