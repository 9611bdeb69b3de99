/* Plausible Events API: POST /api/event with {"name","url","domain","referrer","props"} or the
 * short keys plausible-tracker sends {n,u,d,r,p|m,h} (as text/plain).
 *
 * Plausible has no client ids: a visitor is a hash of the User-Agent, the client address and
 * the site, with a salt that rotates daily. tally does the same: the anonymous_id is "~v" +
 * 32 hex digits of XXH3-128 over (in->salt, UTC day of receipt, User-Agent, address, domain),
 * so a visitor is one person per day per site, and without the salt (a secret: the HTTP
 * layer passes the project's read key) the id cannot be turned back into the address by
 * trying every one. name "pageview" is tally's "$pageview" (every format's page view:
 * docs/compat.md), other names as they are; url (required, data: URLs refused; the #fragment
 * dropped unless h=1, hash-mode paths) and referrer are the built-in fields; props (a map, or a
 * JSON string of one) become properties, with list, map and empty values dropped as Plausible drops
 * them. "domain" may be a comma list: out->body_key is the list, and the HTTP layer stores the
 * event once in each project it names (docs/compat.md). */
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "compat/compat_int.h"
#include "util/hash.h"
#include "util/time.h"

static const tl_json *get2(const tl_json *o, const char *k1, const char *k2)
{
    const tl_json *v = tl_json_get(o, k1);
    if (!v || v->type == TL_JNULL) v = tl_json_get(o, k2);
    return v && v->type != TL_JNULL ? v : NULL;
}

static tl_str visitor_id(tl_arena *a, const tl_ingest_ctx *ctx, tl_str domain, tl_str salt)
{
    int64_t day = tl_floordiv(ctx->recv_ms, TL_MS_PER_DAY);
    size_t n = salt.len + 1 + 8 + ctx->user_agent.len + 1 + ctx->ip.len + 1 + domain.len;
    char *buf = tl_arena_alloc(a, n);
    char *p = buf;
    if (salt.len) memcpy(p, salt.p, salt.len);
    p += salt.len;
    *p++ = 0;
    memcpy(p, &day, 8);
    p += 8;
    if (ctx->user_agent.len) memcpy(p, ctx->user_agent.p, ctx->user_agent.len);
    p += ctx->user_agent.len;
    *p++ = 0;
    if (ctx->ip.len) memcpy(p, ctx->ip.p, ctx->ip.len);
    p += ctx->ip.len;
    *p++ = 0;
    if (domain.len) memcpy(p, domain.p, domain.len);
    tl_h128 h = tl_hash128(buf, n, 0x706c617573ULL);
    return tl_compat__fmt(a, "~v%016llx%016llx", (unsigned long long)h.hi,
                          (unsigned long long)h.lo);
}

/* props without list, map and empty values. */
static const tl_json *clean_props(tl_arena *a, const tl_json *v, const tl_ingest_limits *lim)
{
    if (v && v->type == TL_JSTR) v = tl_compat__parse_json(a, v->str, lim);
    if (!v || v->type != TL_JOBJ) return NULL;
    tl_cobj o;
    tl_compat__obj(&o, a, v->str);
    for (const tl_json *c = v->child; c; c = c->next) {
        if (c->type == TL_JARR || c->type == TL_JOBJ || c->type == TL_JNULL) continue;
        if (c->type == TL_JSTR && !c->str.len) continue;
        tl_compat__node_k(&o, c->key, c);
    }
    return o.node;
}

int tl_compat_plausible(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                        const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    tl_cbatch b;
    const tl_json *ev;
    int rc = tl_compat__start_object(&b, a, in, ctx, lim, out, "a JSON object", &ev, err);
    if (rc) return rc;
    const tl_json *dom = get2(ev, "domain", "d");
    tl_str domain = dom && dom->type == TL_JSTR ? dom->str : TL_STR_NULL;
    out->body_key = domain;
    tl_compat__next(&b);
    b.index = 0;

    const tl_json *url = get2(ev, "url", "u");
    if (!url || url->type != TL_JSTR || !url->str.len) {
        tl_compat__reject(&b, "url: required");
        return 0;
    }
    if (tl_str_has_prefix(url->str, "data:")) {
        tl_compat__reject(&b, "url: data: URLs are not accepted");
        return 0;
    }
    tl_str u = url->str;
    const tl_json *h = get2(ev, "hash_mode", "h");
    bool hash = h && (h->type == TL_JTRUE || (h->type == TL_JNUM && h->num != 0));
    const char *frag = hash ? NULL : memchr(u.p, '#', u.len);
    if (frag) u.len = (size_t)(frag - u.p);
    /* The first domain of a comma list names the site for the visitor id. */
    tl_str site = domain;
    const char *comma = memchr(site.p ? site.p : "", ',', site.len);
    if (comma) site.len = (size_t)(comma - site.p);
    site = tl_compat__trim(site);

    tl_cobj o;
    tl_compat__obj(&o, a, ev->str);
    const tl_json *name = get2(ev, "name", "n");
    if (name && name->type == TL_JSTR && tl_str_eqc(name->str, "pageview"))
        tl_compat__str(&o, "event", TL_STR(TL_COMPAT_PAGEVIEW));
    else
        tl_compat__node(&o, "event", name);
    tl_compat__str(&o, "anonymous_id", visitor_id(a, ctx, site, in->salt));
    tl_compat__str(&o, "url", u);
    tl_compat__node(&o, "referrer", get2(ev, "referrer", "r"));
    const tl_json *props = get2(ev, "props", "p");
    if (!props) props = get2(ev, "meta", "m");
    tl_compat__node(&o, "properties", clean_props(a, props, b.lim));
    tl_compat__add(&b, o.node, INT64_MIN, TL_REC_EVENT);
    return 0;
}
