/* Country, region and city of an IP address from MaxMind DB (mmdb) files with libmaxminddb,
 * opened once (memory-mapped) and read by any thread. Two layouts are understood:
 *   - ip-location-db / DB-IP lite (what mk/enrich.mk installs): country_code, state1, city
 *   - MaxMind GeoIP2/GeoLite2: country.iso_code, subdivisions[0].names.en, city.names.en
 * Several files may be given (DB-IP ships IPv4 and IPv6 apart): the first that knows the
 * address answers. Answers borrow the mapped file, valid until tl_enrich__geo_free.
 *
 * The mapping's page tables are filled at open (MADV_POPULATE_READ): a lookup walks ~32 nodes
 * (IPv4; more for IPv6) of a search tree spread over the whole file, and each first touch of
 * a part of the file was a page fault on the request thread (tens of µs on a virtual machine;
 * the first 50,000 distinct addresses after a start took ~2,000 of them). Populating both
 * DB-IP files takes ~3 ms when they are in the page cache, and reads them sequentially when
 * they are not (rather than in random 4 KiB pieces later); kernels before 5.14 get
 * MADV_WILLNEED (read-ahead) instead. (Copying the files into transparent huge pages, to spare
 * the TLB misses of the walk, was tried: no gain measurable on bench/enrich.sh's addresses,
 * for ~135 MB of private memory and a slower start.) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

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

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Faults in the database's pages now (see the top); best effort. */
static void populate(const MMDB_s *db)
{
    void *p = (void *)(uintptr_t)db->file_content; /* page-aligned: libmaxminddb mmaps it */
    size_t n = db->file_size > 0 ? (size_t)db->file_size : 0;
    if (!p || !n) return;
    if (madvise(p, n, MADV_POPULATE_READ) && (errno == EINVAL || errno == ENOSYS))
        (void)madvise(p, n, MADV_WILLNEED);
}

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
            populate(&g->db[g->n]);
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
