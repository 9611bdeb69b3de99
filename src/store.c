/* STUB — being replaced. */
#include "store.h"

int tl_store_open(const char *dir, const tl_store_opts *opts, tl_store **out, uint64_t *log_pos,
                  tl_err *err)
{
    return TL_EINVAL;
}

void tl_store_free(tl_store *s)
{
    
}

int tl_store_w_begin(tl_store *s, tl_str project, uint32_t *pid)
{
    return TL_EINVAL;
}

void tl_store_w_end(tl_store *s, uint32_t pid)
{
    
}

uint32_t tl_store_w_did(tl_store *s, uint32_t pid, tl_str distinct_id, bool user, bool create)
{
    return 0;
}

int tl_store_w_merge(tl_store *s, uint32_t pid, uint32_t a, uint32_t b)
{
    return TL_EINVAL;
}

void tl_store_w_append(tl_store *s, uint32_t pid, const tl_record *r, uint32_t did)
{
    
}

void tl_store_w_person_props(tl_store *s, uint32_t pid, uint32_t did, int64_t ts_ms,
                             const tl_prop *props, uint32_t n)
{
    
}

void tl_store_w_erase(tl_store *s, uint32_t pid, uint32_t did)
{
    
}

int tl_store_checkpoint(tl_store *s, uint64_t log_pos, tl_err *err)
{
    return TL_EINVAL;
}

uint64_t tl_store_open_rows(tl_store *s)
{
    return 0;
}

int tl_store_snap(tl_store *s, tl_str project, tl_snap **out)
{
    return TL_EINVAL;
}

void tl_snap_free(tl_snap *sn)
{
    
}

uint32_t tl_snap_n_dids(const tl_snap *sn)
{
    return 0;
}

const uint32_t *tl_snap_persons(const tl_snap *sn)
{
    return NULL;
}

tl_str tl_snap_did_str(const tl_snap *sn, uint32_t did)
{
    return TL_STR_NULL;
}

uint32_t tl_snap_did_find(const tl_snap *sn, tl_str distinct_id)
{
    return 0;
}

int tl_snap_dict_find(const tl_snap *sn, tl_str s, uint32_t *id)
{
    return TL_EINVAL;
}

tl_str tl_snap_dict_str(const tl_snap *sn, uint32_t id)
{
    return TL_STR_NULL;
}

uint32_t tl_snap_dict_n(const tl_snap *sn)
{
    return 0;
}

size_t tl_snap_n_parts(const tl_snap *sn)
{
    return 0;
}

tl_part_info tl_snap_part_info(const tl_snap *sn, size_t part)
{
    tl_part_info i = {0}; return i;
}

int tl_snap_col_ts(tl_snap *sn, size_t part, const int64_t **out)
{
    return TL_EINVAL;
}

int tl_snap_col_u32(tl_snap *sn, size_t part, int col, const uint32_t **out)
{
    return TL_EINVAL;
}

int tl_snap_prop(tl_snap *sn, size_t part, uint32_t key_id, tl_prop_col *out)
{
    return TL_EINVAL;
}

int tl_snap_event_id(tl_snap *sn, size_t part, uint32_t row, tl_str *out)
{
    return TL_EINVAL;
}

void tl_snap_person_props(tl_snap *sn, uint32_t person, tl_person_prop_fn fn, void *ctx)
{
    
}

void tl_store_get_stats(tl_store *s, tl_store_stats *out)
{
    
}
