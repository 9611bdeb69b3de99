/* Ingest: turns request bodies into validated, normalised tl_records. It decodes gzip (by
 * header or by magic bytes), accepts every native body form ({"events":[…]}, an array, one
 * object, NDJSON), validates each event with a reason per rejection, corrects clock skew with
 * sent_at, flattens properties to dotted keys and derives an event_id from the content when
 * the client sent none. It does no I/O: the HTTP layer authenticates, then hands the records
 * to the log. Thread-safe: all state lives in the caller's arena. */
#ifndef TL_INGEST_H
#define TL_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "record.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"
#include "util/str.h"

typedef struct tl_ingest_limits {
    uint64_t max_body_bytes;   /* decompressed body */
    uint32_t max_event_bytes;  /* one event */
    uint32_t max_string_bytes; /* one string value */
    uint32_t max_props;        /* properties per event after flattening */
    uint32_t max_depth;        /* properties nesting (the properties object is level 1) */
    int64_t max_future_ms;     /* later than receive time + this: rejected */
} tl_ingest_limits;

/* Fills l with the defaults: 20 MiB body, 32 KiB event, 8 KiB string, 1000 properties,
 * properties nested 16 deep, 24 h into the future. The config overrides them. */
void tl_ingest_limits_default(tl_ingest_limits *l);

/* Fixed limits: event names, ids and short built-in fields (platform, app_version, browser,
 * os, device_type); flattened property keys ("cart.total"). */
#define TL_INGEST_MAX_ID_BYTES  200
#define TL_INGEST_MAX_KEY_BYTES 256

/* Fills l with the defaults, then the limits the configuration sets (body, event, string,
 * property count, depth, future tolerance). */
void tl_ingest_limits_from_config(tl_ingest_limits *l, const tl_config *c);

/* What the request itself tells about every event in it. */
typedef struct tl_ingest_ctx {
    int64_t recv_ms;
    tl_str ip;         /* client address (after trusted-proxy handling) */
    tl_str user_agent; /* the request's User-Agent */
} tl_ingest_ctx;

#define TL_INGEST_MAX_ERRORS 100

typedef struct tl_ingest_error {
    uint32_t index;  /* position of the event in the body */
    const char *msg; /* arena string: "timestamp: not a number or ISO-8601 date" */
} tl_ingest_error;

typedef struct tl_ingest_batch {
    tl_record *recs; /* the good events, in body order (project left empty) */
    uint32_t n;
    uint32_t n_input;        /* events in the body */
    uint32_t rejected;       /* n_input - n */
    tl_ingest_error *errors; /* the first TL_INGEST_MAX_ERRORS rejections */
    uint32_t n_errors;
    tl_str body_key; /* "api_key" from the body envelope or the first event, if any */
} tl_ingest_batch;

/* Decompresses a gzip body (Content-Encoding gzip or x-gzip, or magic 1f 8b; concatenated
 * members are one stream) into the arena; other bodies are returned as they are. TL_E2BIG
 * past max_bytes (compressed or not), TL_EINVAL for a corrupt or truncated stream or an
 * unsupported Content-Encoding (anything but gzip, x-gzip, identity or empty). */
int tl_ingest_decode_body(tl_arena *a, tl_str body, tl_str content_encoding, uint64_t max_bytes,
                          tl_str *out, tl_err *err) TL_MUST_USE;

/* Parses a native /collect body (already decoded). Returns 0 when the body could be read
 * (even if every event was rejected: see out->rejected), TL_EINVAL when it is not parseable
 * at all (→ 400), TL_E2BIG over a body limit (→ 413); err says why. Everything in *out is
 * allocated in a, and the records borrow strings from body: both must outlive them. lim may
 * be NULL for the defaults. Body forms and field rules: see the comment atop ingest.c. */
int tl_ingest_native(tl_arena *a, tl_str body, tl_str content_type, const tl_ingest_ctx *ctx,
                     const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err) TL_MUST_USE;

/* Normalises one native event object into *out. batch_sent_at_ms is the envelope's sent_at
 * or INT64_MIN. Returns 0, or TL_EINVAL with err->msg naming the field ("user_id: ..."). Also
 * used by the compatible formats after they map onto the native object. */
int tl_ingest_event(tl_arena *a, const tl_json *obj, int64_t batch_sent_at_ms,
                    const tl_ingest_ctx *ctx, const tl_ingest_limits *lim, tl_record *out,
                    tl_err *err) TL_MUST_USE;

/* Parses the pixel form: query-string pairs (already URL-decoded) → one record. */
int tl_ingest_pixel(tl_arena *a, const tl_str *keys, const tl_str *vals, size_t n,
                    const tl_ingest_ctx *ctx, const tl_ingest_limits *lim, tl_record *out,
                    tl_err *err) TL_MUST_USE;

/* Encodes the records of b that keep selects (every one when keep is NULL; keep has b->n
 * entries) for the log, in order, each with its project set to `project`: their bytes are
 * appended to enc, and *out gets an arena array with one slice of enc per encoded record
 * (valid until enc changes), ready for tl_log_append. Returns how many. What the HTTP
 * endpoints and `tally import` both do with an accepted batch. */
size_t tl_ingest_encode(tl_arena *a, tl_ingest_batch *b, tl_str project, const bool *keep,
                        tl_buf *enc, tl_str **out);

/* Parses a time value: a JSON number (ms since the epoch; values below 1e11 are taken as
 * seconds), a string of such a number, or an ISO-8601 string with a zone. Returns 0 or
 * TL_EINVAL (also for magnitudes beyond 1e15 ms). */
int tl_ingest_time(const tl_json *v, int64_t *ms) TL_MUST_USE;

#endif
