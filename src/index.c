/* STUB — being replaced. */
#include "index.h"

int tl_index_open(const char *dir, tl_store *store, tl_log *log, uint64_t log_pos,
                  const tl_index_opts *opts, tl_index **out, tl_err *err)
{
    return TL_EINVAL;
}

int tl_index_start(tl_index *ix)
{
    return TL_EINVAL;
}

void tl_index_free(tl_index *ix)
{
    
}

bool tl_index_seen(tl_index *ix, tl_str project, tl_str event_id)
{
    return false;
}

int tl_index_wait(tl_index *ix, uint64_t pos, int timeout_ms)
{
    return TL_EINVAL;
}

int tl_index_checkpoint(tl_index *ix)
{
    return TL_EINVAL;
}

void tl_index_get_stats(tl_index *ix, tl_index_stats *out)
{
    
}
