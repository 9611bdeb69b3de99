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
 * for ~135 MB of private memory and a slower start.)
 *
 * The search tree is walked here, not by libmaxminddb (which still opens the files, checks
 * them and decodes the records): a lookup reads the record its address's first 20 bits lead
 * to from a prefix table built at open (4 MiB per table, in huge pages), then walks the few
 * nodes left (DB-IP's city ranges end at depth ~18-26). The files number their nodes in
 * depth-first order, so what is left after 20 levels lies within a few KiB, while the first
 * 20 levels are spread over the whole 44-59 MB tree: that was ~20 dependent reads, most a
 * cache and TLB miss, per new address. Building the tables visits the top 20 levels once
 * (~30-50 ms at start, parallel to the regexes' compilation). tests/unit/test_enrich.c checks
 * the walker against libmaxminddb's lookup on the DB-IP files and on generated databases of
 * every record size (24, 28, 32 bits) and IP version. */
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

/* The search tree of one database as this file walks it (see tl_enrich__geo_find). */
typedef struct gtree {
    const uint8_t *nodes; /* the file's start: node i at nodes + i * node_bytes */
    uint32_t node_count, node_bytes, record_size;
    uint32_t data_size;    /* of the data section: a record past it is corrupt */
    bool v6;               /* ip_version 6: IPv6 addresses from the root, IPv4 from v4_start */
    uint32_t v4_start;     /* the node (or record) that ::/96 leads to; the root for ip_version 4 */
    bool ok;               /* the walker knows this file's layout */
    uint32_t *top4, *top6; /* record reached after the first TOP_BITS bits; NULL: not built
                            * (top4: v4_start is already a record, as in DB-IP's IPv6 file) */
} gtree;

struct tl_geo {
    MMDB_s db[MAX_DBS];
    gtree tree[MAX_DBS];
    int n;
    bool fast;          /* walk with the prefix tables (default), else libmaxminddb */
    tl_ecache *records; /* (database, record offset) → tl_geo_info: cities repeat */
};

#define RECORD_CACHE_ENTRIES 32768
#define TOP_BITS             20 /* the prefix tables: 2^20 records each */
#define TOP_SIZE             (sizeof(uint32_t) << TOP_BITS)
_Static_assert(TOP_BITS >= 8 && TOP_BITS <= 24, "tree_find reads 3 bytes of the address");

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

/* Left (bit 0) or right (bit 1) record of node n; record sizes 24, 28 and 32 bits. */
static uint32_t child(const gtree *t, uint32_t n, unsigned bit)
{
    const uint8_t *p = t->nodes + (size_t)n * t->node_bytes;
    switch (t->record_size) {
    case 24: p += bit * 3; return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    case 28:
        if (bit)
            return ((uint32_t)p[3] & 0x0f) << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 |
                   p[6];
        return ((uint32_t)p[3] & 0xf0) << 20 | (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    default:
        p += bit * 4;
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
}

/* Bit i (0: most significant) of the address bytes a. */
static unsigned bit_at(const uint8_t *a, unsigned i)
{
    return (a[i >> 3] >> (7 - (i & 7))) & 1;
}

/* Fills top[prefix << (TOP_BITS - depth) ...] (all entries under prefix) with what the walk
 * from record v, at depth `depth`, reaches after TOP_BITS bits or where it ends first. */
static void fill_top(const gtree *t, uint32_t *top, uint32_t v, unsigned depth, uint32_t prefix)
{
    if (depth == TOP_BITS || v >= t->node_count) {
        uint32_t lo = prefix << (TOP_BITS - depth), n = 1u << (TOP_BITS - depth);
        for (uint32_t i = 0; i < n; i++)
            top[lo + i] = v;
        return;
    }
    fill_top(t, top, child(t, v, 0), depth + 1, prefix << 1);
    fill_top(t, top, child(t, v, 1), depth + 1, prefix << 1 | 1);
}

/* The walker's view of db and its prefix tables; false (libmaxminddb answers) for a layout it
 * does not know. */
static bool tree_init(gtree *t, const MMDB_s *db)
{
    memset(t, 0, sizeof *t);
    uint16_t rs = db->metadata.record_size;
    if ((rs != 24 && rs != 28 && rs != 32) || db->metadata.node_count == 0 ||
        (db->metadata.ip_version != 4 && db->metadata.ip_version != 6))
        return false;
    t->nodes = db->file_content;
    t->node_count = db->metadata.node_count;
    t->record_size = rs;
    t->node_bytes = rs / 4u;
    t->data_size = db->data_section_size;
    if ((uint64_t)t->node_count * t->node_bytes + 16 > (uint64_t)db->file_size) return false;
    t->v6 = db->metadata.ip_version == 6;
    uint32_t v = 0;
    for (int i = 0; t->v6 && i < 96 && v < t->node_count; i++)
        v = child(t, v, 0);
    t->v4_start = v;
    if (v < t->node_count) {
        t->top4 = tl_enrich__huge_alloc(TOP_SIZE);
        fill_top(t, t->top4, v, 0, 0);
    }
    if (t->v6) {
        t->top6 = tl_enrich__huge_alloc(TOP_SIZE);
        fill_top(t, t->top6, 0, 0, 0);
    }
    t->ok = true;
    return true;
}

/* The record for address a in tree t: the prefix table for the first TOP_BITS bits, then the
 * nodes. false: not in the database (or not an address it can hold). */
static bool tree_find(const gtree *t, const tl_cidr *a, bool v4, uint32_t *offset)
{
    const uint8_t *bits = v4 ? a->addr + 12 : a->addr;
    unsigned n = v4 ? 32 : 128;
    if (!v4 && !t->v6) return false;
    uint32_t top = (uint32_t)bits[0] << 24 | (uint32_t)bits[1] << 16 | (uint32_t)bits[2] << 8;
    const uint32_t *tab = v4 ? t->top4 : t->top6;
    uint32_t v = tab ? tab[top >> (32 - TOP_BITS)] : t->v4_start;
    for (unsigned i = TOP_BITS; i < n && v < t->node_count; i++)
        v = child(t, v, bit_at(bits, i));
    if (v <= t->node_count) return false; /* empty (== node_count), or the bits ran out */
    uint64_t off = (uint64_t)v - t->node_count - 16;
    if (off >= t->data_size) return false; /* corrupt: libmaxminddb refuses it too */
    *offset = (uint32_t)off;
    return true;
}

bool tl_enrich__geo_find(tl_geo *g, int i, const tl_cidr *a, bool fast, uint32_t *offset)
{
    static const uint8_t v4p[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = !memcmp(a->addr, v4p, 12);
    if (fast && g->tree[i].ok) return tree_find(&g->tree[i], a, v4, offset);
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa;
    if (v4) {
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
    int mmdb_err = 0;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->db[i], sa, &mmdb_err);
    if (mmdb_err != MMDB_SUCCESS || !r.found_entry) return false;
    *offset = r.entry.offset;
    return true;
}

void tl_enrich__geo_prefetch(const tl_geo *g, const tl_cidr *a)
{
    static const uint8_t v4p[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!g || !g->fast) return;
    bool v4 = !memcmp(a->addr, v4p, 12);
    const uint8_t *bits = v4 ? a->addr + 12 : a->addr;
    uint32_t top = (uint32_t)bits[0] << 24 | (uint32_t)bits[1] << 16 | (uint32_t)bits[2] << 8;
    for (int i = 0; i < g->n; i++) {
        const uint32_t *tab = v4 ? g->tree[i].top4 : g->tree[i].top6;
        if (tab) __builtin_prefetch(&tab[top >> (32 - TOP_BITS)]);
    }
}

int tl_enrich__geo_count(const tl_geo *g)
{
    return g ? g->n : 0;
}

void tl_enrich__geo_set_fast(tl_geo *g, bool on)
{
    if (g) g->fast = on;
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
            (void)tree_init(&g->tree[g->n], &g->db[g->n]);
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
    g->fast = true;
    g->records = tl_enrich__cache_new(RECORD_CACHE_ENTRIES, sizeof(tl_geo_info));
    return g;
}

void tl_enrich__geo_free(tl_geo *g)
{
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        MMDB_close(&g->db[i]);
        tl_enrich__huge_free(g->tree[i].top4, TOP_SIZE);
        tl_enrich__huge_free(g->tree[i].top6, TOP_SIZE);
    }
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
    for (int i = 0; i < g->n; i++) {
        uint32_t offset;
        if (!tl_enrich__geo_find(g, i, a, g->fast, &offset)) continue;
        MMDB_entry_s entry = {&g->db[i], offset};
        /* Many addresses share a record (a city): decode each record once. */
        uint64_t key = ((uint64_t)i << 32) | offset;
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
        out->country = get_str(&entry, cc);
        if (out->country.len) {
            out->region = get_str(&entry, st);
            out->city = get_str(&entry, ci);
        } else {
            out->country = get_str(&entry, cc2);
            out->region = get_str(&entry, st2);
            out->city = get_str(&entry, ci2);
        }
        tl_enrich__cache_put(g->records, &key, sizeof key, hv, out);
        if (out->country.len || out->region.len || out->city.len) return true;
    }
    memset(out, 0, sizeof *out);
    return false;
}
