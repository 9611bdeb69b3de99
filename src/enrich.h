/* Enrichment at ingest: what the server adds to an accepted event before it is appended to the
 * log, from the client's address and user agent, and the filter that keeps bots out.
 *
 *  - Country, region and city from the IP (libmaxminddb over the mmdb files of geoip_db);
 *    the event's own country wins, and region/city are only added with a derived country, as
 *    the properties "$geo_region" and "$geo_city".
 *  - Browser, OS and device type (desktop, mobile, tablet, bot) from the user agent with
 *    uap-core's regexes (PCRE2, JIT), compiled once; a bounded cache maps a user agent to its
 *    result so the hot path is one hash lookup. The event's own fields win.
 *  - The IP is then dropped (default), truncated (/24, /48) or kept, per project; a kept or
 *    truncated IP is stored as the property "$ip". Raw IPs are never stored otherwise.
 *  - Bot filter (per project, on by default): known crawlers (uap's "Spider" device family
 *    and a compact list), headless browsers, and the project's deny lists of IP ranges and
 *    referrer hosts. A filtered event is not stored and is counted by reason.
 *  - The client address of a request: X-Forwarded-For / Forwarded are honoured only when the
 *    peer is in trusted_proxies.
 *
 * Everything is built at start from the configuration and read-only afterwards (the cache and
 * counters are internally synchronised): every function may be called from any thread. */
#ifndef TL_ENRICH_H
#define TL_ENRICH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/str.h"

typedef struct tl_enrich tl_enrich;

/* Why an event was filtered (TL_FILTER_NONE: kept). */
typedef enum tl_filter_reason {
    TL_FILTER_NONE = 0,
    TL_FILTER_BOT,      /* a known crawler or monitoring user agent */
    TL_FILTER_HEADLESS, /* a headless or automated browser */
    TL_FILTER_IP,       /* the client IP is in the project's deny_ips */
    TL_FILTER_REFERRER, /* the referrer's host is in the project's deny_referrers */
    TL_FILTER_COUNT
} tl_filter_reason;

/* "bot", "headless", "ip", "referrer" (the /metrics label); "" for TL_FILTER_NONE. */
const char *tl_enrich_reason_name(int reason);

/* Builds the enricher for configuration c, which must outlive it (projects are matched by
 * their place in c->projects). Opens the geoip_db files and loads uap-core's regexes (path:
 * TALLY_UAP_REGEXES or /usr/share/uap-core/regexes.yaml); a missing database or regex file is
 * not an error: that part is skipped with one warning. Returns 0, or TL_EINVAL when a CIDR of
 * trusted_proxies or a project's deny_ips does not parse (err names it). *out is a new
 * enricher, free with tl_enrich_free. With c->enrich false only the IP privacy and the
 * trusted-proxy handling remain. */
int tl_enrich_new(const tl_config *c, tl_enrich **out, tl_err *err) TL_MUST_USE;
void tl_enrich_free(tl_enrich *e);

/* (tl_enrich_record: below, after the types it uses.) */

/* The client address of a request whose socket peer is `peer` (text): when the peer is a
 * trusted proxy, the right-most address of the Forwarded (RFC 7239 for=) or else the
 * X-Forwarded-For chain that is not itself a trusted proxy; otherwise the peer. A malformed
 * entry ends the walk at the last good address (so junk never becomes the client). Writes
 * NUL-terminated text into out (cap ≥ 64; "" when unknown). Reads e's trusted list only. */
void tl_enrich_client_ip(const tl_enrich *e, const char *peer, tl_str forwarded, tl_str xff,
                         char *out, size_t cap);

/* Events filtered so far, by reason (index: tl_filter_reason). */
void tl_enrich_filtered(const tl_enrich *e, uint64_t out[TL_FILTER_COUNT]);

/* ---- Parts exposed for tests and fuzzing ------------------------------------------------ */

/* What the user agent says. Strings are NUL-terminated; "" when unknown. */
typedef struct tl_ua_info {
    char browser[64];
    char os[64];
    const char *device_type; /* "desktop", "mobile", "tablet", "bot" */
    int bot;                 /* TL_FILTER_NONE, TL_FILTER_BOT or TL_FILTER_HEADLESS */
} tl_ua_info;

/* Parses ua with e's regexes (without the cache). */
void tl_enrich_parse_ua(const tl_enrich *e, tl_str ua, tl_ua_info *out);

/* An address or network: IPv4 is stored as ::ffff:a.b.c.d (prefix + 96). */
typedef struct tl_cidr {
    uint8_t addr[16];
    uint8_t prefix; /* 0..128 */
} tl_cidr;

/* Parses "1.2.3.4", "1.2.3.0/24", "2001:db8::/32" (also "[::1]"). Returns 0 or TL_EINVAL. */
int tl_cidr_parse(tl_str s, tl_cidr *out) TL_MUST_USE;
/* True when address a (a tl_cidr with prefix 128) is inside net. */
bool tl_cidr_contains(const tl_cidr *net, const tl_cidr *a);
/* Parses a list of CIDRs separated by commas or white space into *out (new array, free()).
 * Returns 0 or TL_EINVAL naming the bad entry. */
int tl_cidr_parse_list(const char *list, tl_cidr **out, uint32_t *n, tl_err *err) TL_MUST_USE;
/* Writes ip truncated to its /24 (IPv4) or /48 (IPv6) network as text ("1.2.3.0",
 * "2001:db8:1::"). Returns 0, or TL_EINVAL when ip is not an address. */
int tl_ip_truncate(tl_str ip, char *out, size_t cap) TL_MUST_USE;

/* ---- Per record ------------------------------------------------------------------------- */

/* What the previous record of a batch resolved to. The events of one request usually share
 * their client's IP and user agent, so a batch asks the caches once per client, not once per
 * event. Zero-initialise one per batch (and arena); it borrows the records' strings, and is
 * used by one thread at a time. */
typedef struct tl_enrich_memo {
    tl_str ua, ip; /* the previous record's, as given */
    bool ua_set, ip_set, has_ip, geo_done, geo_found;
    int bot;                 /* TL_FILTER_* of the user agent */
    tl_str browser, os;      /* in the batch's arena */
    const char *device_type; /* static */
    tl_cidr addr;
    uint64_t ip_hash;             /* of addr: its IP cache key */
    tl_str country, region, city; /* country in the arena; region, city in the database */
} tl_enrich_memo;

/* Enriches r (an accepted event of project p, which is an element of the configuration's
 * projects) in place, reading its transient r->ip and r->user_agent: adds country,
 * "$geo_region", "$geo_city", browser, os, device_type and "$ip" where the event has none
 * (new strings and property arrays come from a; others borrow the enricher's memory, valid
 * until tl_enrich_free). memo (may be NULL) carries answers from record to record of one
 * batch. Returns TL_FILTER_NONE, or the reason to drop the event (counted; r is then left as
 * it was). Records of other kinds than TL_REC_EVENT are left alone. */
int tl_enrich_record(tl_enrich *e, const tl_project_conf *p, tl_arena *a, tl_record *r,
                     tl_enrich_memo *memo);

#endif
