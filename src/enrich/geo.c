/* Country, region and city of an IP address from MaxMind DB (mmdb) files with libmaxminddb,
 * opened once (memory-mapped) and read by any thread. Two layouts are understood:
 *   - ip-location-db / DB-IP lite (what mk/enrich.mk installs): country_code, state1, city
 *   - MaxMind GeoIP2/GeoLite2: country.iso_code, subdivisions[0].names.en, city.names.en
 * Several files may be given (DB-IP ships IPv4 and IPv6 apart): the first that knows the
 * address answers. Answers borrow the mapped file, valid until tl_enrich__geo_free. */
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>

#include "enrich.h"
#include "enrich/enrich_int.h"
#include "util/diag.h"
#include "util/hash.h"

#define MAX_DBS 8

struct tl_geo {
    MMDB_s db[MAX_DBS];
    int n;
    tl_ecache *records; /* (database, record offset) → tl_geo_info: cities repeat */
};

#define RECORD_CACHE_ENTRIES 32768

tl_geo *tl_enrich__geo_open(const char *paths)
{
    tl_geo *g = tl_xcalloc(1, sizeof *g);
    char missing[1024] = "";
    const char *p = paths;
    while (*p && g->n < MAX_DBS) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        size_t len = (size_t)(p - start);
        while (len && start[len - 1] == ' ')
            len--;
        if (!len) continue;
        char path[1024];
        if (len >= sizeof path) continue;
        memcpy(path, start, len);
        path[len] = 0;
        int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->db[g->n]);
        if (rc == MMDB_SUCCESS) {
            TL_INFO("enrich", "GeoIP database %s (%s, built %llu)", path,
                    g->db[g->n].metadata.database_type,
                    (unsigned long long)g->db[g->n].metadata.build_epoch);
            g->n++;
        } else {
            size_t ml = strlen(missing);
            snprintf(missing + ml, sizeof missing - ml, "%s%s (%s)", ml ? ", " : "", path,
                     MMDB_strerror(rc));
        }
    }
    if (missing[0])
        TL_WARN("enrich", "GeoIP database not opened: %s%s", missing,
                g->n ? "" : "; country is not derived from IPs (run `make geo`)");
    if (!g->n) {
        free(g);
        return NULL;
    }
    g->records = tl_enrich__cache_new(RECORD_CACHE_ENTRIES, sizeof(tl_geo_info));
    return g;
}

void tl_enrich__geo_free(tl_geo *g)
{
    if (!g) return;
    for (int i = 0; i < g->n; i++)
        MMDB_close(&g->db[i]);
    tl_enrich__cache_free(g->records);
    free(g);
}

/* A UTF-8 string at path (NULL-terminated list) in entry e, or an empty slice. */
static tl_str get_str(MMDB_entry_s *e, const char *const *path)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data ||
        d.type != MMDB_DATA_TYPE_UTF8_STRING)
        return TL_STR_NULL;
    return (tl_str){d.utf8_string, d.data_size};
}

bool tl_enrich__geo_lookup(tl_geo *g, const tl_cidr *a, tl_geo_info *out)
{
    memset(out, 0, sizeof *out);
    if (!g) return false;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa;
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a->addr, v4, 12)) {
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, a->addr + 12, 4);
        sa = (const struct sockaddr *)&sin;
    } else {
        memset(&sin6, 0, sizeof sin6);
        sin6.sin6_family = AF_INET6;
        memcpy(&sin6.sin6_addr, a->addr, 16);
        sa = (const struct sockaddr *)&sin6;
    }
    for (int i = 0; i < g->n; i++) {
        int mmdb_err = 0;
        /* The library only reads the database; the cast drops a const it does not declare. */
        MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->db[i], sa, &mmdb_err);
        if (mmdb_err != MMDB_SUCCESS || !r.found_entry) continue;
        /* Many addresses share a record (a city): decode each record once. */
        uint64_t key = ((uint64_t)i << 32) | r.entry.offset;
        uint64_t hv = tl_hash64(&key, sizeof key, 0);
        if (tl_enrich__cache_get(g->records, &key, sizeof key, hv, out)) {
            if (out->country.len || out->region.len || out->city.len) return true;
            continue;
        }
        static const char *const cc[] = {"country_code", NULL};
        static const char *const st[] = {"state1", NULL};
        static const char *const ci[] = {"city", NULL};
        static const char *const cc2[] = {"country", "iso_code", NULL};
        static const char *const st2[] = {"subdivisions", "0", "names", "en", NULL};
        static const char *const ci2[] = {"city", "names", "en", NULL};
        out->country = get_str(&r.entry, cc);
        if (out->country.len) {
            out->region = get_str(&r.entry, st);
            out->city = get_str(&r.entry, ci);
        } else {
            out->country = get_str(&r.entry, cc2);
            out->region = get_str(&r.entry, st2);
            out->city = get_str(&r.entry, ci2);
        }
        tl_enrich__cache_put(g->records, &key, sizeof key, hv, out);
        if (out->country.len || out->region.len || out->city.len) return true;
    }
    memset(out, 0, sizeof *out);
    return false;
}
