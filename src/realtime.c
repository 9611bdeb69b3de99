/* Realtime counters (contract in realtime.h).
 *
 * Per project: a ring of 60 one-second counters stamped with their second; an open-addressing
 * set of active ids (64-bit hashes of the id, with the last second seen; at most 1 in 2^40
 * pairs of ids collide, so the count is exact in practice), rebuilt without the expired ids
 * whenever it fills. An active id is a user id, or an anonymous id until an event links it to
 * a user id (then it is forgotten: the user id stands for the person), so a device that
 * identifies counts once; top pages as a map from url to 30 one-minute counters, pruned the same
 * way; and a ring of the last events. Feeding is O(records). Reading is O(pages): the active
 * count is kept as it changes, per second of the ids' last activity (a ring of 300 counters:
 * an id moves from its old second to the current one), so a read sums 300 counters instead of
 * scanning a set that holds every id of the last 5 minutes (megabytes under load); the top
 * pages are picked without sorting them all. */
#include "realtime.h"

#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "util/hash.h"
#include "util/time.h"

#define PAGE_MINUTES (TL_RT_PAGES_S / 60)

typedef struct idslot {
    uint64_t h; /* 0: empty */
    int64_t last_s;
} idslot;

typedef struct page {
    uint64_t h;
    char *url;
    uint32_t len;
    uint32_t cnt[PAGE_MINUTES];
    int64_t minute[PAGE_MINUTES];
} page;

typedef struct recent {
    char event[80], url[200], id[120];
    int64_t ts;
} recent;

typedef struct prt {
    pthread_mutex_t mu;
    int64_t sec[TL_RT_SECONDS];
    uint32_t cnt[TL_RT_SECONDS];
    idslot *ids;
    uint32_t ids_cap, ids_n;
    int64_t act_s[TL_RT_ACTIVE_S]; /* active ids by the second they were last seen */
    uint32_t act[TL_RT_ACTIVE_S];
    page *pages;
    uint32_t pages_n, pages_cap;
    uint32_t *pmap, pmap_cap; /* index + 1 */
    recent rec[TL_RT_RECENT];
    uint32_t rec_next, rec_n;
} prt;

struct tl_realtime {
    uint32_t n;
    prt *p;
};

tl_realtime *tl_realtime_new(uint32_t n_projects)
{
    tl_realtime *rt = tl_xcalloc(1, sizeof *rt);
    rt->n = n_projects;
    rt->p = tl_xcalloc(n_projects ? n_projects : 1, sizeof *rt->p);
    for (uint32_t i = 0; i < n_projects; i++)
        pthread_mutex_init(&rt->p[i].mu, NULL);
    return rt;
}

void tl_realtime_free(tl_realtime *rt)
{
    if (!rt) return;
    for (uint32_t i = 0; i < rt->n; i++) {
        prt *p = &rt->p[i];
        pthread_mutex_destroy(&p->mu);
        free(p->ids);
        for (uint32_t k = 0; k < p->pages_n; k++)
            free(p->pages[k].url);
        free(p->pages);
        free(p->pmap);
    }
    free(rt->p);
    free(rt);
}

/* ---- active ids ---- */

#define ID_NEW  INT64_MIN       /* ids_put: the id was not in the set */
#define ID_GONE (INT64_MIN / 2) /* last_s of a forgotten id: never active */

/* Adds delta to the count of ids last seen in second s. A second whose counter was reused for
 * a later one has left the window: nothing to take from it. */
static void act_add(prt *p, int64_t s, int delta)
{
    uint32_t k = (uint32_t)(((s % TL_RT_ACTIVE_S) + TL_RT_ACTIVE_S) % TL_RT_ACTIVE_S);
    if (p->act_s[k] != s) {
        if (delta < 0 || s < p->act_s[k]) return;
        p->act_s[k] = s;
        p->act[k] = 0;
    }
    p->act[k] += (uint32_t)delta;
}

/* Records h as seen in second s; returns the second it was seen before (ID_NEW if never). */
static int64_t ids_put(idslot *t, uint32_t cap, uint64_t h, int64_t s, uint32_t *n)
{
    uint32_t i = (uint32_t)h & (cap - 1);
    while (t[i].h && t[i].h != h)
        i = (i + 1) & (cap - 1);
    if (!t[i].h) {
        t[i].h = h;
        (*n)++;
        t[i].last_s = s;
        return ID_NEW;
    }
    int64_t old = t[i].last_s;
    if (s > old) t[i].last_s = s;
    return old;
}

static void ids_touch(prt *p, uint64_t h, int64_t now_s)
{
    if ((p->ids_n + 1) * 2 > p->ids_cap) {
        /* Rebuild without the expired ids, growing only if the live ones need it. */
        uint32_t live = 0;
        for (uint32_t i = 0; i < p->ids_cap; i++)
            live += p->ids[i].h && p->ids[i].last_s > now_s - TL_RT_ACTIVE_S;
        uint32_t cap = 1024;
        while (cap < (live + 1) * 4)
            cap *= 2;
        idslot *t = tl_xcalloc(cap, sizeof *t);
        uint32_t n = 0;
        for (uint32_t i = 0; i < p->ids_cap; i++)
            if (p->ids[i].h && p->ids[i].last_s > now_s - TL_RT_ACTIVE_S)
                ids_put(t, cap, p->ids[i].h, p->ids[i].last_s, &n);
        free(p->ids);
        p->ids = t;
        p->ids_cap = cap;
        p->ids_n = n;
    }
    int64_t old = ids_put(p->ids, p->ids_cap, h, now_s, &p->ids_n);
    if (old == ID_NEW || old == ID_GONE || old <= now_s - TL_RT_ACTIVE_S) {
        act_add(p, now_s, 1); /* newly active */
    } else if (now_s > old) {
        act_add(p, old, -1); /* moves to this second */
        act_add(p, now_s, 1);
    }
}

static uint64_t id_hash(tl_str id, bool user)
{
    uint64_t h = tl_hash_str(id) ^ (user ? 0x9E3779B97F4A7C15ull : 0);
    return h ? h : 1;
}

static void ids_forget(prt *p, uint64_t h)
{
    if (!p->ids_cap) return;
    uint32_t i = (uint32_t)h & (p->ids_cap - 1);
    while (p->ids[i].h && p->ids[i].h != h)
        i = (i + 1) & (p->ids_cap - 1);
    if (!p->ids[i].h || p->ids[i].last_s == ID_GONE) return;
    act_add(p, p->ids[i].last_s, -1);
    p->ids[i].last_s = ID_GONE; /* kept as a tombstone, never active */
}

/* ---- pages ---- */

static bool page_live(const page *pg, int64_t now_min)
{
    for (int k = 0; k < PAGE_MINUTES; k++)
        if (pg->cnt[k] && pg->minute[k] > now_min - PAGE_MINUTES) return true;
    return false;
}

static void pmap_build(prt *p)
{
    uint32_t cap = 256;
    while (cap < p->pages_n * 2 + 2)
        cap *= 2;
    free(p->pmap);
    p->pmap = tl_xcalloc(cap, sizeof *p->pmap);
    p->pmap_cap = cap;
    for (uint32_t k = 0; k < p->pages_n; k++) {
        uint32_t i = (uint32_t)p->pages[k].h & (cap - 1);
        while (p->pmap[i])
            i = (i + 1) & (cap - 1);
        p->pmap[i] = k + 1;
    }
}

static void page_hit(prt *p, tl_str url, int64_t now_min)
{
    uint64_t h = tl_hash_str(url) | 1;
    if (!p->pmap_cap || (p->pages_n + 1) * 2 > p->pmap_cap) {
        /* Drop pages with no view in the window, then grow the map if still needed. */
        uint32_t w = 0;
        for (uint32_t k = 0; k < p->pages_n; k++) {
            if (page_live(&p->pages[k], now_min))
                p->pages[w++] = p->pages[k];
            else
                free(p->pages[k].url);
        }
        p->pages_n = w;
        pmap_build(p);
    }
    uint32_t i = (uint32_t)h & (p->pmap_cap - 1);
    page *pg = NULL;
    while (p->pmap[i]) {
        page *c = &p->pages[p->pmap[i] - 1];
        if (c->h == h && c->len == url.len && !memcmp(c->url, url.p, url.len)) {
            pg = c;
            break;
        }
        i = (i + 1) & (p->pmap_cap - 1);
    }
    if (!pg) {
        if (p->pages_n == p->pages_cap) {
            p->pages_cap = p->pages_cap ? p->pages_cap * 2 : 64;
            p->pages = tl_xrealloc(p->pages, p->pages_cap * sizeof *p->pages);
        }
        pg = &p->pages[p->pages_n];
        memset(pg, 0, sizeof *pg);
        pg->h = h;
        pg->url = tl_xmalloc(url.len + 1);
        memcpy(pg->url, url.p, url.len);
        pg->url[url.len] = 0;
        pg->len = (uint32_t)url.len;
        p->pmap[i] = ++p->pages_n;
    }
    int k = (int)(now_min % PAGE_MINUTES);
    if (pg->minute[k] != now_min) {
        pg->minute[k] = now_min;
        pg->cnt[k] = 0;
    }
    pg->cnt[k]++;
}

/* ---- feed ---- */

static void copy_cut(char *dst, size_t cap, tl_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    while (n > 0 && n < s.len && ((unsigned char)s.p[n] & 0xC0) == 0x80)
        n--; /* never cut a UTF-8 sequence */
    if (n) memcpy(dst, s.p, n);
    dst[n] = 0;
}

void tl_realtime_feed(tl_realtime *rt, uint32_t proj, const tl_record *recs, uint32_t n,
                      int64_t now_ms)
{
    if (!rt || proj >= rt->n || !n) return;
    prt *p = &rt->p[proj];
    int64_t now_s = tl_floordiv(now_ms, 1000), now_min = tl_floordiv(now_s, 60);
    pthread_mutex_lock(&p->mu);
    for (uint32_t i = 0; i < n; i++) {
        const tl_record *r = &recs[i];
        if (r->kind != TL_REC_EVENT) continue;
        int k = (int)(now_s % TL_RT_SECONDS);
        if (p->sec[k] != now_s) {
            p->sec[k] = now_s;
            p->cnt[k] = 0;
        }
        p->cnt[k]++;
        tl_str id = r->user_id.len ? r->user_id : r->anonymous_id;
        ids_touch(p, id_hash(id, r->user_id.len != 0), now_s);
        /* An event that identifies a device: its anonymous id is the same person now. */
        if (r->user_id.len && r->anonymous_id.len) ids_forget(p, id_hash(r->anonymous_id, false));
        tl_str url = r->field[TL_F_URL];
        if (url.len) page_hit(p, url, now_min);
        recent *e = &p->rec[p->rec_next];
        copy_cut(e->event, sizeof e->event, r->event);
        copy_cut(e->url, sizeof e->url, url);
        copy_cut(e->id, sizeof e->id, id);
        e->ts = r->ts_ms;
        p->rec_next = (p->rec_next + 1) % TL_RT_RECENT;
        if (p->rec_n < TL_RT_RECENT) p->rec_n++;
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- read ---- */

typedef struct top {
    const page *pg;
    uint64_t views;
} top;

static int top_cmp(const void *a, const void *b)
{
    const top *x = a, *y = b;
    if (x->views != y->views) return x->views > y->views ? -1 : 1;
    uint32_t n = x->pg->len < y->pg->len ? x->pg->len : y->pg->len;
    int c = memcmp(x->pg->url, y->pg->url, n);
    return c ? c : (x->pg->len > y->pg->len) - (x->pg->len < y->pg->len);
}

void tl_realtime_json(tl_realtime *rt, uint32_t proj, int64_t now_ms, tl_buf *out)
{
    if (!rt || proj >= rt->n) {
        tl_buf_adds(out, "{\"active_persons_5m\":0,\"events_per_s\":[],\"top_pages\":[],"
                         "\"recent\":[],\"events_60s\":0}");
        return;
    }
    prt *p = &rt->p[proj];
    int64_t now_s = tl_floordiv(now_ms, 1000), now_min = tl_floordiv(now_s, 60);
    pthread_mutex_lock(&p->mu);
    uint64_t active = 0;
    for (uint32_t k = 0; k < TL_RT_ACTIVE_S; k++)
        if (p->act_s[k] > now_s - TL_RT_ACTIVE_S) active += p->act[k];
    tl_buf_printf(out, "{\"active_persons_5m\":%llu,\"events_per_s\":[",
                  (unsigned long long)active);
    uint64_t total = 0;
    for (int64_t s = now_s - TL_RT_SECONDS + 1; s <= now_s; s++) {
        int k = (int)(((s % TL_RT_SECONDS) + TL_RT_SECONDS) % TL_RT_SECONDS);
        uint32_t v = p->sec[k] == s ? p->cnt[k] : 0;
        total += v;
        tl_buf_printf(out, "%s%u", s > now_s - TL_RT_SECONDS + 1 ? "," : "", v);
    }
    tl_buf_adds(out, "],\"top_pages\":[");
    /* The best TL_RT_TOP so far, in answer order (t[TL_RT_TOP] is room for one more). */
    top t[TL_RT_TOP + 1];
    uint32_t nt = 0;
    for (uint32_t k = 0; k < p->pages_n; k++) {
        uint64_t v = 0;
        const page *pg = &p->pages[k];
        for (int m = 0; m < PAGE_MINUTES; m++)
            if (pg->minute[m] > now_min - PAGE_MINUTES && pg->minute[m] <= now_min) v += pg->cnt[m];
        if (!v) continue;
        top c = {pg, v};
        if (nt == TL_RT_TOP && top_cmp(&c, &t[nt - 1]) >= 0) continue;
        uint32_t j = nt < TL_RT_TOP ? nt++ : nt - 1;
        while (j && top_cmp(&c, &t[j - 1]) < 0) {
            t[j] = t[j - 1];
            j--;
        }
        t[j] = c;
    }
    for (uint32_t k = 0; k < nt; k++) {
        tl_buf_adds(out, k ? ",{\"url\":" : "{\"url\":");
        tl_buf_json_str(out, (tl_str){t[k].pg->url, t[k].pg->len});
        tl_buf_printf(out, ",\"views\":%llu}", (unsigned long long)t[k].views);
    }
    tl_buf_adds(out, "],\"recent\":[");
    for (uint32_t i = 0; i < p->rec_n; i++) {
        const recent *e = &p->rec[(p->rec_next + TL_RT_RECENT - 1 - i) % TL_RT_RECENT];
        char iso[40];
        tl_iso_format(e->ts, iso);
        tl_buf_adds(out, i ? ",{\"event\":" : "{\"event\":");
        tl_buf_json_str(out, tl_str_c(e->event));
        tl_buf_adds(out, ",\"url\":");
        tl_buf_json_str(out, tl_str_c(e->url));
        tl_buf_adds(out, ",\"distinct_id\":");
        tl_buf_json_str(out, tl_str_c(e->id));
        tl_buf_adds(out, ",\"timestamp\":");
        tl_buf_json_str(out, tl_str_c(iso));
        tl_buf_addc(out, '}');
    }
    tl_buf_printf(out, "],\"events_60s\":%llu}", (unsigned long long)total);
    pthread_mutex_unlock(&p->mu);
}
