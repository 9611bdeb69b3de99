/* GA4 Measurement Protocol: POST /mp/collect?measurement_id=…&api_secret=… with
 * {"client_id","user_id","timestamp_micros","user_properties":{k:{"value":v}},
 *  "events":[{"name","params":{…},"timestamp_micros"}]}.
 *
 * client_id (app_instance_id for Firebase) → anonymous_id; user_id → user_id; each event's
 * name → event (page_view → "$pageview" and screen_view → "$screen", the names of every
 * format's page and screen views: docs/compat.md); params → properties, except page_location → url,
 * page_referrer → referrer, session_id → session_id; the event's timestamp_micros, else the
 * request's, → timestamp (no sent_at: GA4 sends none, so no skew correction);
 * user_properties' values → user_properties. GA4 has no client event id: ids are derived
 * from the content as for native events without event_id. The api_secret query argument is
 * the write key (the HTTP layer reads it). */
#include <string.h>

#include "compat.h"
#include "compat/compat_int.h"

static bool ga4_param(tl_str k)
{
    return tl_str_eqc(k, "page_location") || tl_str_eqc(k, "page_referrer") ||
           tl_str_eqc(k, "session_id");
}

static void add_micros(tl_cobj *o, const tl_json *v)
{
    if (v && v->type == TL_JNUM)
        tl_compat__num(o, "timestamp", v->num / 1000.0);
    else if (v && v->type == TL_JSTR)
        tl_compat__node(o, "timestamp", v); /* a malformed value is reported by ingest */
}

int tl_compat_ga4(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                  const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    tl_cbatch b;
    const tl_json *root;
    int rc = tl_compat__start_object(&b, a, in, ctx, lim, out, "a JSON object", &root, err);
    if (rc) return rc;
    const tl_json *events = tl_compat__get(root, "events");
    if (!events || events->type != TL_JARR)
        return tl_err_set(err, TL_EINVAL, "events: required, an array");

    /* user_properties {k:{"value":v}} → {k:v}, shared by every event of the request. */
    const tl_json *up = tl_compat__get(root, "user_properties");
    const tl_json *uprops = NULL;
    if (up && up->type == TL_JOBJ) {
        tl_cobj u;
        tl_compat__obj(&u, a, up->str);
        for (const tl_json *c = up->child; c; c = c->next)
            tl_compat__node_k(&u, c->key, tl_compat__get(c, "value"));
        uprops = u.node;
    }
    const tl_json *cid = tl_compat__get(root, "client_id");
    if (!cid) cid = tl_compat__get(root, "app_instance_id");
    for (const tl_json *e = events->child; e; e = e->next) {
        if (e->type != TL_JOBJ) {
            tl_compat__reject(&b, "event: must be an object");
            tl_compat__next(&b);
            continue;
        }
        const tl_json *params = tl_compat__get(e, "params");
        tl_cobj o, p;
        tl_compat__obj(&o, a, e->str);
        tl_str name = tl_compat__get_str(e, "name");
        if (tl_str_eqc(name, "page_view"))
            tl_compat__str(&o, "event", TL_STR(TL_COMPAT_PAGEVIEW));
        else if (tl_str_eqc(name, "screen_view"))
            tl_compat__str(&o, "event", TL_STR(TL_COMPAT_SCREEN));
        else
            tl_compat__node(&o, "event", tl_compat__get(e, "name"));
        tl_compat__node(&o, "anonymous_id", cid);
        tl_compat__node(&o, "user_id", tl_compat__get(root, "user_id"));
        const tl_json *ts = tl_compat__get(e, "timestamp_micros");
        add_micros(&o, ts ? ts : tl_compat__get(root, "timestamp_micros"));
        tl_compat__node(&o, "url", tl_compat__strv(tl_compat__get(params, "page_location")));
        tl_compat__node(&o, "referrer", tl_compat__strv(tl_compat__get(params, "page_referrer")));
        const tl_json *sid = tl_compat__get(params, "session_id");
        if (sid && (sid->type == TL_JSTR || sid->type == TL_JNUM))
            tl_compat__str(&o, "session_id", tl_compat__get_id(a, params, "session_id"));
        if (params && params->type == TL_JOBJ) {
            tl_compat__obj(&p, a, params->str);
            for (const tl_json *c = params->child; c; c = c->next)
                if (!ga4_param(c->key)) tl_compat__node_k(&p, c->key, c);
            tl_compat__node(&o, "properties", p.node);
        } else {
            tl_compat__node(&o, "properties", params);
        }
        tl_compat__node(&o, "user_properties", uprops);
        tl_compat__add(&b, o.node, INT64_MIN, TL_REC_EVENT);
        tl_compat__next(&b);
    }
    return 0;
}
