/* Queries: trends (and later funnels, retention, sessions, paths) over a store snapshot,
 * answered as JSON. Persons are resolved through the identity map at query time; buckets are
 * calendar periods in the query's time zone. Thread-safe: each call works in its own arena. */
#ifndef TL_QUERY_H
#define TL_QUERY_H

#include "config.h"
#include "store.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

/* Runs the query object q (the body of POST /api/v1/query) for project p and appends the JSON
 * answer (with "took_ms") to out. Returns 0, or TL_EINVAL with err naming the bad field (→ 400).
 * A project without data answers with zeros in every bucket. */
int tl_query_run(tl_store *s, const tl_project_conf *p, const tl_json *q, tl_arena *a, tl_buf *out,
                 tl_err *err) TL_MUST_USE;

/* The events of the person of distinct_id (every distinct id merged into it) with ts in
 * [from_ms, to_excl), oldest first (ties by event_id), events offset .. offset + limit - 1 of
 * them, with the person's distinct ids and properties, appended to out as JSON (API.md "Other
 * reads"). TL_ENOENT when no such (or an erased) person. */
int tl_query_person_events(tl_store *s, const tl_project_conf *p, tl_str distinct_id,
                           int64_t from_ms, int64_t to_excl, uint32_t offset, uint32_t limit,
                           tl_buf *out, tl_err *err) TL_MUST_USE;

#endif
