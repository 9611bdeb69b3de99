/* Private to the compat module: building native event objects and batches, shared by the
 * per-format parsers (segment.c, posthog.c, snowplow.c, plausible.c, ga4.c).
 *
 * A parser walks the wire event and builds a native event object (API.md "An event") with
 * the builder below: members are shallow copies of wire nodes (their children stay shared,
 * read-only) or new strings and numbers, all in the request's arena. tl_compat__add then runs
 * it through tl_ingest_event, which applies every native rule. */
#ifndef TL_COMPAT_INT_H
#define TL_COMPAT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "compat.h"
#include "ingest.h"
#include "record.h"
#include "util/arena.h"
#include "util/json.h"
#include "util/str.h"

/* A JSON object under construction. */
typedef struct tl_cobj {
    tl_arena *a;
    tl_json *node;
    tl_json *last;
} tl_cobj;

/* Starts an empty object; extent is the wire event's source text (its length is what the
 * native per-event size limit measures). */
void tl_compat__obj(tl_cobj *o, tl_arena *a, tl_str extent);
/* Appends a member; absent values (v.p == NULL, or a NULL node) are skipped. A node is
 * copied shallowly under the new key. The first member of a name wins in tl_ingest_event,
 * so callers add the preferred source first. */
void tl_compat__str(tl_cobj *o, const char *key, tl_str v);
void tl_compat__num(tl_cobj *o, const char *key, double v);
void tl_compat__node(tl_cobj *o, const char *key, const tl_json *v);
void tl_compat__node_k(tl_cobj *o, tl_str key, const tl_json *v);
/* v when it is a non-empty string, else NULL: for built-in fields taken from an SDK's
 * optional context, where a wrong type should drop the field, not reject the event. */
const tl_json *tl_compat__strv(const tl_json *v);
/* A string member's value, or TL_STR_NULL (absent, null or not a string). */
tl_str tl_compat__get_str(const tl_json *obj, const char *key);
/* A string or integer member as text (ids that SDKs send as numbers), else TL_STR_NULL. */
tl_str tl_compat__get_id(tl_arena *a, const tl_json *obj, const char *key);
/* A string node from a slice (arena-allocated node). */
tl_json *tl_compat__jstr(tl_arena *a, tl_str s);
/* Parses JSON text with the ingest limits' nesting and size bounds; NULL when it is not
 * JSON (no error: callers decide). */
tl_json *tl_compat__parse_json(tl_arena *a, tl_str s, const tl_ingest_limits *lim);
/* An arena copy of the printf-style text. */
tl_str tl_compat__fmt(tl_arena *a, const char *fmt, ...) TL_PRINTF(2, 3);
/* A query argument by name, or TL_STR_NULL. */
tl_str tl_compat__arg(const tl_compat_in *in, const char *name);
/* Trims white space at both ends. */
tl_str tl_compat__trim(tl_str s);
/* Case-insensitive equality with a lower-case literal. */
bool tl_compat__eq_nocase(tl_str s, const char *lit);

/* A member that is present and not null, else NULL (also when o is not an object). */
const tl_json *tl_compat__get(const tl_json *o, const char *key);
/* True for two ASCII letters (a country code as ISO 3166-1 writes it, in either case). */
bool tl_compat__is_country(tl_str s);

/* The batch being filled. */
typedef struct tl_cbatch {
    tl_arena *a;
    const tl_ingest_ctx *ctx;
    const tl_ingest_limits *lim; /* the caller's, or dl */
    tl_ingest_limits dl;         /* the defaults, when the caller gave no limits */
    tl_ingest_batch *out;
    uint32_t cap;
    uint32_t index; /* position of the current wire event, for error reports */
} tl_cbatch;

/* How a format turns the request into the JSON text of its envelope (PostHog: forms, base64,
 * gzip). 0, or a negative TL_E* code with the reason in err. */
typedef int (*tl_compat_decoder)(tl_arena *a, const tl_compat_in *in, const tl_ingest_limits *lim,
                                 tl_str *body, tl_err *err);

/* What every parser starts with: the batch begun on out (emptied), with the default limits
 * when lim is NULL (then b->lim points into b: b must stay where it is), and the request's
 * body decoded into *body, white space trimmed at both ends. dec NULL: gzip by
 * Content-Encoding or magic bytes, within max_body_bytes. Returns 0 or the decoder's error
 * (out is then empty). */
int tl_compat__start(tl_cbatch *b, tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                     const tl_ingest_limits *lim, tl_ingest_batch *out, tl_compat_decoder dec,
                     tl_str *body, tl_err *err);
/* Parses the body as a JSON object within the batch's limits into *root: 0, or TL_EINVAL
 * "body: expected <what>" when it is empty, not JSON or not an object. */
int tl_compat__object(tl_cbatch *b, tl_str body, const char *what, const tl_json **root,
                      tl_err *err);
/* tl_compat__start (gzip) then tl_compat__object: the whole envelope of the formats whose body
 * is one JSON object (Segment, Plausible, GA4). */
int tl_compat__start_object(tl_cbatch *b, tl_arena *a, const tl_compat_in *in,
                            const tl_ingest_ctx *ctx, const tl_ingest_limits *lim,
                            tl_ingest_batch *out, const char *what, const tl_json **root,
                            tl_err *err);
/* Normalises one native event object into a new record of the given kind (event_id,
 * limits and time rules as /collect). Returns the record, or NULL after recording the
 * rejection under the current index. One wire event may give several records. */
tl_record *tl_compat__add(tl_cbatch *b, const tl_json *ev, int64_t sent_ms, uint8_t kind);
/* Records a rejection of the current wire event. */
void tl_compat__reject(tl_cbatch *b, const char *fmt, ...) TL_PRINTF(2, 3);
/* Counts the current wire event as seen (n_input) and moves to the next index. */
void tl_compat__next(tl_cbatch *b);
/* Decodes the body as gzip (header or magic bytes), within max_body_bytes. */
int tl_compat__gunzip(tl_arena *a, tl_str body, tl_str enc, const tl_ingest_limits *lim,
                      tl_str *out, tl_err *err);

#endif
