/* The normalised event record: what every ingestion format becomes, what the log stores and
 * what the indexer reads back. One binary encoding, versioned, little-endian:
 *
 *   u8  version (1)          u8 kind (tl_rec_kind)
 *   varint zigzag ts_ms      varint zigzag recv_ms
 *   str project, event, event_id, anonymous_id, user_id, session_id, field[TL_F_COUNT]
 *   varint n_props,  n × prop      prop = str key, u8 type, (f64 LE | str)
 *   varint n_uprops, n × prop      (user_properties: $set on the person)
 *   str = varint length + bytes
 *
 * Decoded strings point into the encoded bytes, which must outlive the record. */
#ifndef TL_RECORD_H
#define TL_RECORD_H

#include <stdint.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/str.h"

/* Built-in string fields, in storage order. */
enum tl_field {
    TL_F_PLATFORM,
    TL_F_APP_VERSION,
    TL_F_COUNTRY,
    TL_F_URL,
    TL_F_REFERRER,
    TL_F_BROWSER,
    TL_F_OS,
    TL_F_DEVICE_TYPE,
    TL_F_COUNT
};

/* "platform", "app_version", ... */
const char *tl_field_name(int f);
/* The field index of a name, or -1. */
int tl_field_by_name(tl_str name);

typedef enum tl_rec_kind {
    TL_REC_EVENT = 1,    /* an event row; may also merge its anonymous_id and user_id */
    TL_REC_IDENTIFY = 2, /* merge anonymous_id into user_id and set properties; no event row */
    TL_REC_ERASE = 3,    /* erase the person of user_id (or anonymous_id); no event row */
} tl_rec_kind;

typedef enum tl_prop_type {
    TL_PV_NUM = 1,
    TL_PV_STR = 2, /* booleans are the strings "true"/"false"; arrays their compact JSON */
} tl_prop_type;
/* Flag on a user property's type: $set_once (kept only when the person has no value yet). */
#define TL_PV_ONCE    0x80
#define TL_PV_TYPE(t) ((t)&0x7f)

typedef struct tl_prop {
    tl_str key; /* dotted path: "cart.total" */
    uint8_t type;
    double num;
    tl_str str;
} tl_prop;

typedef struct tl_record {
    uint8_t kind;
    int64_t ts_ms;   /* event time after clock-skew correction */
    int64_t recv_ms; /* server receive time */
    tl_str project;
    tl_str event;
    tl_str event_id; /* client id, or "~" + 32 hex digits derived from the content */
    tl_str anonymous_id;
    tl_str user_id;
    tl_str session_id;
    tl_str field[TL_F_COUNT];
    tl_prop *props;
    uint32_t n_props;
    tl_prop *uprops;
    uint32_t n_uprops;
    /* Transient, never encoded: the event's client address and user agent (its own or the
     * request's), set by ingest for enrichment (src/enrich.h) and empty after decoding. */
    tl_str ip;
    tl_str user_agent;
} tl_record;

/* Appends the encoding of r to out. */
void tl_record_encode(const tl_record *r, tl_buf *out);

/* Decodes one record from [p, p+len); property arrays come from arena a; strings borrow p.
 * Returns 0 or TL_EBADMSG (err says what is wrong). */
int tl_record_decode(const void *p, size_t len, tl_arena *a, tl_record *out,
                     tl_err *err) TL_MUST_USE;

/* Writes r as one native NDJSON object (the `tally export` form, accepted by /collect). */
void tl_record_write_json(const tl_record *r, tl_buf *out);

#endif
