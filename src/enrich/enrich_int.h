/* Private to the enrichment module (src/enrich/): the parts that enrich.c puts together.
 *
 *   net.c    addresses: CIDR lists, truncation, X-Forwarded-For / Forwarded
 *   geo.c    country/region/city from mmdb files (libmaxminddb)
 *   ua.c     uap-core's regexes (libyaml + PCRE2 JIT)
 *   cache.c  the bounded caches of user-agent and IP answers
 *   bots.c   crawler, headless and HTTP-library lists; device type from uap's answer
 *   enrich.c the enricher: configuration, per-record work, counters */
#ifndef TL_ENRICH_INT_H
#define TL_ENRICH_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "enrich.h"

/* ---- net.c ---- */
/* Parses an address (no prefix) given as text; 0 or TL_EINVAL. */
int tl_enrich__ip(tl_str s, tl_cidr *out);
bool tl_enrich__in_list(const tl_cidr *list, uint32_t n, const tl_cidr *a);
/* Writes a as text (IPv4-mapped addresses as IPv4) into out (cap ≥ 46). */
void tl_enrich__ip_text(const tl_cidr *a, char *out, size_t cap);
/* tl_enrich_client_ip with the trusted list. */
void tl_enrich__client_ip(const tl_cidr *trusted, uint32_t n_trusted, const char *peer,
                          tl_str forwarded, tl_str xff, char *out, size_t cap);

/* ---- geo.c ---- */
typedef struct tl_geo tl_geo;
typedef struct tl_geo_info {
    tl_str country, region, city; /* borrow the database's memory; empty when unknown */
} tl_geo_info;
/* Opens the comma-separated mmdb files of `paths` that exist; NULL (after one warning) when
 * none does. */
tl_geo *tl_enrich__geo_open(const char *paths);
void tl_enrich__geo_free(tl_geo *g);
/* Looks a up; false when no database knows it. */
bool tl_enrich__geo_lookup(tl_geo *g, const tl_cidr *a, tl_geo_info *out);
/* How many databases are open. */
int tl_enrich__geo_count(const tl_geo *g);
/* The data-section offset of a's record in database i (0 ≤ i < count): with the walker and
 * its prefix tables (fast) or with libmaxminddb; false when the database has no record for
 * a. For tests that compare the two. */
bool tl_enrich__geo_find(tl_geo *g, int i, const tl_cidr *a, bool fast, uint32_t *offset);
/* Starts fetching the prefix-table entries a lookup of a will read (a hint; no effect on
 * answers). */
void tl_enrich__geo_prefetch(const tl_geo *g, const tl_cidr *a);
/* Lookups by the walker (on, the default) or by libmaxminddb: for tests and measurements. */
void tl_enrich__geo_set_fast(tl_geo *g, bool on);

/* ---- ua.c ---- */
typedef struct tl_uap tl_uap;
/* What uap-core says of a user agent (NUL-terminated, "" for uap's "Other"). */
typedef struct tl_uap_result {
    char family[64]; /* browser */
    char os[64];     /* operating system */
    char device[64]; /* device family ("iPhone", "Spider", ...) */
    char brand[32];  /* device brand */
} tl_uap_result;
/* Loads and compiles the regexes of a uap-core regexes.yaml; NULL (after one warning) when
 * the file is missing or unreadable. */
tl_uap *tl_enrich__uap_load(const char *path);
void tl_enrich__uap_free(tl_uap *u);
/* Matches ua (NUL-terminated, bounded by the caller) against every list. */
void tl_enrich__uap_parse(const tl_uap *u, const char *ua, size_t len, tl_uap_result *out);
/* Turns the literal pre-filter off (every regex tried) or on (the default): for tests that
 * check it changes no answer. Not while another thread parses. */
void tl_enrich__uap_set_filter(tl_uap *u, bool on);
/* The longest run of bytes that every match of the PCRE2 pattern re contains (lower-cased
 * when nocase), written to out; 0 when there is none or the pattern uses a construct the
 * reader does not know (it then gives up rather than guess). The pre-filter's source. */
size_t tl_enrich__uap_literal(const char *re, bool nocase, char out[48]);
/* How many rules there are, and how many have a literal to filter by. */
void tl_enrich__uap_filter_stats(const tl_uap *u, uint32_t *n_rules, uint32_t *n_filtered);

/* ---- cache.c ---- */
/* n bytes (rounded up to 2 MiB), zeroed, 2 MiB-aligned with transparent huge pages asked for,
 * and faulted in now: tables that request threads read at random, where a page fault (~12 µs
 * on the project's virtual machine) or a TLB miss per 4 KiB page costs more than the lookup.
 * Aborts when out of memory, as tl_xmalloc. Free with the same n. */
void *tl_enrich__huge_alloc(size_t n);
void tl_enrich__huge_free(void *p, size_t n);
/* A bounded, thread-safe map from keys (bytes) to fixed-size values: shards of direct-mapped
 * slots, each shard under its own mutex; a colliding key replaces the old entry. */
typedef struct tl_ecache tl_ecache;
tl_ecache *tl_enrich__cache_new(uint32_t n_entries, size_t val_size);
void tl_enrich__cache_free(tl_ecache *c);
/* Copies the value of key (hash: any good hash of it) into val; false when absent. */
bool tl_enrich__cache_get(tl_ecache *c, const void *key, size_t klen, uint64_t hash, void *val);
void tl_enrich__cache_put(tl_ecache *c, const void *key, size_t klen, uint64_t hash,
                          const void *val);
/* Starts fetching the slots a get or put of hash will read (a hint). */
void tl_enrich__cache_prefetch(const tl_ecache *c, uint64_t hash);

/* ---- bots.c ---- */
/* TL_FILTER_BOT, TL_FILTER_HEADLESS or TL_FILTER_NONE from the user agent alone (the lists). */
int tl_enrich__bot_by_list(tl_str ua);
/* True for plain HTTP client libraries (python-urllib, curl, Java/, ...): uap calls them
 * spiders, but server-side SDKs and backends send their events with them. */
bool tl_enrich__http_library(tl_str ua);
/* desktop / mobile / tablet / bot from uap's answer and the user agent. */
const char *tl_enrich__device_type(const tl_uap_result *r, tl_str ua);

#endif
