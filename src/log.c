/* STUB — being replaced by the segment log implementation. */
#include "log.h"

int tl_log_open(const char *dir, const tl_log_opts *opts, tl_log **out, tl_err *err)
{
    return tl_err_set(err, TL_EINVAL, "log: not implemented");
}
void tl_log_close(tl_log *log)
{
}
int tl_log_append(tl_log *log, const tl_str *recs, size_t n, uint64_t *end_pos)
{
    return TL_EIO;
}
int tl_log_error(const tl_log *log)
{
    return TL_EIO;
}
uint64_t tl_log_durable_pos(tl_log *log)
{
    return 0;
}
int tl_log_wait(tl_log *log, uint64_t pos, int timeout_ms)
{
    return TL_EAGAIN;
}
uint64_t tl_log_start_pos(tl_log *log)
{
    return 0;
}
int tl_log_iter_new(tl_log *log, uint64_t pos, tl_log_iter **out)
{
    return TL_EINVAL;
}
int tl_log_iter_next(tl_log_iter *it, tl_str *rec, uint64_t *next_pos)
{
    return 0;
}
void tl_log_iter_free(tl_log_iter *it)
{
}
int tl_log_release(tl_log *log, uint64_t pos)
{
    return 0;
}
void tl_log_get_stats(tl_log *log, tl_log_stats *out)
{
}
