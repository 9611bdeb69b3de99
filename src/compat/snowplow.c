/* Snowplow tracker protocol: POST /com.snowplowanalytics.snowplow/tp2 with
 * {"schema":"iglu:…/payload_data/jsonschema/1-0-x","data":[{…},…]}, or one event as the
 * query string of GET /i (the pixel). Every value is a string.
 *
 *   e   pv → "$pageview" (every format's page view: docs/compat.md), pp → "page_ping", se → se_ac
 * (the action), ue → the name of the self-describing event's schema
 * ("iglu:com.acme/signed_up/jsonschema/1-0-0" → "signed_up", its data the properties; ue_pr JSON or
 * ue_px base64; the mobile trackers' screen_view schemas of com.snowplowanalytics.* → "$screen"),
 * tr → "transaction", ti → "transaction_item", anything else as it is. eid → event_id (dedup); uid
 * → user_id; duid → anonymous_id (else nuid, tnuid); sid → session_id; url, refr, p, ua, ip → url,
 * referrer, platform, user_agent, ip. Time: ttm (the true timestamp) is taken as it is; otherwise
 * dtm with stm as sent_at, so the device clock's skew is corrected the native way (Snowplow's
 * derived_tstamp). se_ca/se_la/se_pr/se_va → properties category/label/property/value (a number
 * when it is one); page → title; lang → language; res → screen; tr_* and ti_* as they are. Entities
 * (co / cx) are not stored. out->body_key is the first event's aid (the app id doubles as the write
 * key when the request carries no other: docs/compat.md). */
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "compat.h"
#include "compat/compat_int.h"

/* A string of a number as a number node; anything else stays a string. */
static const tl_json *maybe_num(tl_arena *a, const tl_json *v)
{
    if (!v || v->type != TL_JSTR || !v->str.len || v->str.len > 40) return v;
    char tmp[48];
    memcpy(tmp, v->str.p, v->str.len);
    tmp[v->str.len] = 0;
    char *end;
    double d = strtod(tmp, &end);
    if (*end || !isfinite(d) || tmp[0] == ' ') return v;
    tl_json *n = tl_arena_calloc(a, sizeof *n);
    n->type = TL_JNUM;
    n->num = d;
    return n;
}

/* The self-describing event inside ue_pr / ue_px: {"schema":…,"data":{"schema":S,"data":D}}. */
static const tl_json *unstruct(tl_cbatch *b, const tl_json *ev, tl_str *vendor, tl_str *name)
{
    tl_str pr = tl_compat__get_str(ev, "ue_pr");
    if (!pr.len) {
        tl_str px = tl_compat__get_str(ev, "ue_px");
        if (px.len && tl_compat_base64_decode(b->a, px, &pr) < 0) return NULL;
    }
    const tl_json *root = tl_compat__parse_json(b->a, pr, b->lim);
    const tl_json *inner = tl_compat__get(root, "data");
    tl_str schema = tl_compat__get_str(inner, "schema");
    /* iglu:vendor/name/format/version */
    const char *s = memchr(schema.p ? schema.p : "", '/', schema.len);
    if (!s) return NULL;
    const char *e = memchr(s + 1, '/', (size_t)(schema.p + schema.len - s - 1));
    if (!e || e == s + 1) return NULL;
    *name = (tl_str){s + 1, (size_t)(e - s - 1)};
    *vendor = tl_str_has_prefix(schema, "iglu:")
                  ? (tl_str){schema.p + 5, (size_t)(s - schema.p - 5)}
                  : (tl_str){schema.p, (size_t)(s - schema.p)};
    const tl_json *data = tl_compat__get(inner, "data");
    return data ? data : tl_compat__jstr(b->a, TL_STR("")); /* no data: no properties */
}

static void map_event(tl_cbatch *b, const tl_json *ev, tl_str extent)
{
    tl_arena *a = b->a;
    if (!ev || ev->type != TL_JOBJ) {
        tl_compat__reject(b, "event: must be an object");
        return;
    }
    tl_str e = tl_compat__get_str(ev, "e");
    tl_cobj o, p;
    tl_compat__obj(&o, a, extent);
    tl_compat__obj(&p, a, TL_STR_NULL);
    const tl_json *props = p.node;
    if (tl_str_eqc(e, "pv")) {
        tl_compat__str(&o, "event", TL_STR(TL_COMPAT_PAGEVIEW));
    } else if (tl_str_eqc(e, "pp")) {
        tl_compat__str(&o, "event", TL_STR("page_ping"));
    } else if (tl_str_eqc(e, "se")) {
        tl_str ac = tl_compat__get_str(ev, "se_ac");
        tl_compat__str(&o, "event", ac.len ? ac : TL_STR("structured"));
        tl_compat__node(&p, "category", tl_compat__get(ev, "se_ca"));
        tl_compat__node(&p, "label", tl_compat__get(ev, "se_la"));
        tl_compat__node(&p, "property", tl_compat__get(ev, "se_pr"));
        tl_compat__node(&p, "value", maybe_num(a, tl_compat__get(ev, "se_va")));
    } else if (tl_str_eqc(e, "ue")) {
        tl_str vendor, name;
        const tl_json *data = unstruct(b, ev, &vendor, &name);
        if (!data) {
            tl_compat__reject(b, "ue_pr/ue_px: not a self-describing event with an iglu schema");
            return;
        }
        /* The mobile trackers' screen views (com.snowplowanalytics.mobile/screen_view, and
         * com.snowplowanalytics.snowplow/screen_view before v2) are screens, as PostHog's. */
        if (tl_str_eqc(name, "screen_view") && tl_str_has_prefix(vendor, "com.snowplowanalytics"))
            name = TL_STR(TL_COMPAT_SCREEN);
        tl_compat__str(&o, "event", name);
        if (data->type == TL_JOBJ) props = data;
    } else if (tl_str_eqc(e, "tr") || tl_str_eqc(e, "ti")) {
        tl_compat__str(&o, "event",
                       e.p[1] == 'r' ? TL_STR("transaction") : TL_STR("transaction_item"));
        for (const tl_json *c = ev->child; c; c = c->next)
            if (tl_str_has_prefix(c->key, e.p[1] == 'r' ? "tr_" : "ti_"))
                tl_compat__node_k(&p, c->key, maybe_num(a, c));
    } else if (e.len) {
        tl_compat__str(&o, "event", e);
    } else {
        tl_compat__reject(b, "e: required (pv, pp, se, ue, tr, ti)");
        return;
    }
    if (props == p.node) {
        tl_compat__node(&p, "title", tl_compat__get(ev, "page"));
        tl_compat__node(&p, "language", tl_compat__get(ev, "lang"));
        tl_compat__node(&p, "screen", tl_compat__get(ev, "res"));
    }
    tl_compat__node(&o, "event_id", tl_compat__get(ev, "eid"));
    tl_compat__node(&o, "user_id", tl_compat__get(ev, "uid"));
    tl_compat__node(&o, "anonymous_id", tl_compat__get(ev, "duid"));
    tl_compat__node(&o, "anonymous_id", tl_compat__get(ev, "nuid"));
    tl_compat__node(&o, "anonymous_id", tl_compat__get(ev, "tnuid"));
    tl_compat__node(&o, "session_id", tl_compat__get(ev, "sid"));
    tl_compat__node(&o, "url", tl_compat__get(ev, "url"));
    tl_compat__node(&o, "referrer", tl_compat__get(ev, "refr"));
    tl_compat__node(&o, "platform", tl_compat__get(ev, "p"));
    tl_compat__node(&o, "user_agent", tl_compat__get(ev, "ua"));
    tl_compat__node(&o, "ip", tl_compat__get(ev, "ip"));
    int64_t sent = INT64_MIN;
    if (tl_compat__get(ev, "ttm")) {
        tl_compat__node(&o, "timestamp", tl_compat__get(ev, "ttm"));
    } else {
        tl_compat__node(&o, "timestamp", tl_compat__get(ev, "dtm"));
        tl_compat__node(&o, "sent_at", tl_compat__get(ev, "stm"));
    }
    tl_compat__node(&o, "properties", props);
    tl_compat__add(b, o.node, sent, TL_REC_EVENT);
}

int tl_compat_snowplow(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                       const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    tl_cbatch b;
    tl_str body;
    int rc = tl_compat__start(&b, a, in, ctx, lim, out, NULL, &body, err);
    if (rc) return rc;
    if (!body.len) {
        /* GET /i: the query string is the event. */
        if (!in->n_args) return tl_err_set(err, TL_EINVAL, "query: no event parameters");
        tl_cobj ev;
        tl_compat__obj(&ev, a, TL_STR_NULL);
        size_t extent = 0;
        for (size_t i = 0; i < in->n_args; i++) {
            tl_str k = in->arg_k[i], v = in->arg_v[i];
            if ((k.len && !tl_utf8_valid(k.p, k.len)) || (v.len && !tl_utf8_valid(v.p, v.len))) {
                /* JSON bodies are validated by the parser; query strings are raw bytes. */
                tl_compat__reject(&b, "query: parameter not valid UTF-8");
                tl_compat__next(&b);
                return 0;
            }
            tl_compat__node_k(&ev, in->arg_k[i], tl_compat__jstr(a, in->arg_v[i]));
            extent += in->arg_k[i].len + in->arg_v[i].len + 2;
        }
        out->body_key = tl_compat__get_str(ev.node, "aid");
        /* The extent only serves the per-event size limit: measure the query. */
        char *fake = extent > b.lim->max_event_bytes ? tl_arena_alloc(a, extent) : NULL;
        map_event(&b, ev.node, fake ? (tl_str){fake, extent} : TL_STR(""));
        tl_compat__next(&b);
        return 0;
    }
    const tl_json *root;
    rc = tl_compat__object(&b, body, "a payload_data JSON object", &root, err);
    if (rc) return rc;
    const tl_json *data = tl_compat__get(root, "data");
    if (!data || data->type != TL_JARR)
        return tl_err_set(err, TL_EINVAL, "data: required, an array of events");
    if (data->child) out->body_key = tl_compat__get_str(data->child, "aid");
    for (const tl_json *ev = data->child; ev; ev = ev->next) {
        map_event(&b, ev, ev->str);
        tl_compat__next(&b);
    }
    return 0;
}
