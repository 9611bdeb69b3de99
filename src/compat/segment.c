/* Segment HTTP Tracking API (also RudderStack, which speaks the same spec): /v1/track,
 * /v1/identify, /v1/page, /v1/screen, /v1/alias, /v1/group take one message whose type the
 * path gives; /v1/batch and /v1/import take {"batch":[…],"sentAt","writeKey","context"}.
 *
 * Each message becomes one native event object (docs/compat.md has the table):
 *   track → event, page → "$pageview", screen → "$screen" (every format's page and screen
 *   views: docs/compat.md); identify, alias and group become
 *   TL_REC_IDENTIFY records (a merge plus person properties, no event row).
 *   messageId → event_id (dedup), anonymousId/userId → anonymous_id/user_id (alias:
 *   previousId → anonymous_id), timestamp (or originalTimestamp) and sentAt → timestamp and
 *   sent_at (the message's sentAt, else the batch's), context.* → built-in fields, traits →
 *   user_properties. The batch's "context" fills in for messages without their own. */
#include <string.h>

#include "compat.h"
#include "compat/compat_int.h"

/* context.<a>.<b> of the message, else of the batch. */
static const tl_json *ctx_get(const tl_json *ctx, const tl_json *bctx, const char *a, const char *b)
{
    for (int i = 0; i < 2; i++) {
        const tl_json *v = tl_compat__get(i ? bctx : ctx, a);
        if (b) v = tl_compat__get(v, b);
        if (v) return v;
    }
    return NULL;
}

/* properties plus the page/screen "name" and "category" (explicit properties win). */
static const tl_json *page_props(tl_arena *a, const tl_json *m, const tl_json *props)
{
    const tl_json *name = tl_compat__get(m, "name"), *cat = tl_compat__get(m, "category");
    if (!name && !cat) return props;
    tl_cobj o;
    tl_compat__obj(&o, a, props ? props->str : TL_STR_NULL);
    if (props && props->type == TL_JOBJ)
        for (const tl_json *c = props->child; c; c = c->next)
            tl_compat__node_k(&o, c->key, c);
    tl_compat__node(&o, "name", name);
    tl_compat__node(&o, "category", cat);
    return o.node;
}

static void map_message(tl_cbatch *b, const tl_json *m, tl_str deftype, const tl_json *bctx,
                        int64_t bsent)
{
    tl_arena *a = b->a;
    if (!m || m->type != TL_JOBJ) {
        tl_compat__reject(b, "message: must be an object");
        return;
    }
    tl_str type = tl_compat__get_str(m, "type");
    if (!type.len) type = deftype;
    if (!type.len) {
        tl_compat__reject(b, "type: required (track, identify, page, screen, alias, group)");
        return;
    }
    const tl_json *ctx = tl_compat__get(m, "context"), *props = tl_compat__get(m, "properties");
    tl_cobj o;
    tl_compat__obj(&o, a, m->str);
    uint8_t kind = TL_REC_EVENT;
    const tl_json *uprops = ctx_get(ctx, bctx, "traits", NULL);
    bool page = false;
    if (tl_str_eqc(type, "track")) {
        tl_compat__node(&o, "event", tl_compat__get(m, "event"));
        if (!tl_compat__get(m, "event")) {
            tl_compat__reject(b, "event: required for a track call");
            return;
        }
    } else if (tl_str_eqc(type, "page") || tl_str_eqc(type, "screen")) {
        page = true;
        tl_compat__str(&o, "event",
                       type.p[0] == 'p' ? TL_STR(TL_COMPAT_PAGEVIEW) : TL_STR(TL_COMPAT_SCREEN));
        props = page_props(a, m, props);
    } else if (tl_str_eqc(type, "identify")) {
        kind = TL_REC_IDENTIFY;
        tl_compat__str(&o, "event", TL_STR("$identify"));
        if (tl_compat__get(m, "traits")) uprops = tl_compat__get(m, "traits");
        props = NULL;
    } else if (tl_str_eqc(type, "alias")) {
        kind = TL_REC_IDENTIFY;
        tl_compat__str(&o, "event", TL_STR("$alias"));
        tl_compat__node(&o, "anonymous_id", tl_compat__get(m, "previousId"));
        props = NULL;
        uprops = NULL;
    } else if (tl_str_eqc(type, "group")) {
        kind = TL_REC_IDENTIFY;
        tl_compat__str(&o, "event", TL_STR("$group"));
        tl_cobj g;
        tl_compat__obj(&g, a, TL_STR_NULL);
        tl_compat__node(&g, "group_id", tl_compat__get(m, "groupId"));
        tl_compat__node(&g, "group", tl_compat__get(m, "traits"));
        uprops = g.node;
        props = NULL;
    } else {
        tl_compat__reject(b, "type: unknown \"%.*s\"", type.len > 32 ? 32 : (int)type.len, type.p);
        return;
    }
    tl_compat__node(&o, "event_id", tl_compat__get(m, "messageId"));
    tl_compat__node(&o, "anonymous_id", tl_compat__get(m, "anonymousId"));
    tl_compat__node(&o, "user_id", tl_compat__get(m, "userId"));
    const tl_json *ts = tl_compat__get(m, "timestamp");
    tl_compat__node(&o, "timestamp", ts ? ts : tl_compat__get(m, "originalTimestamp"));
    tl_compat__node(&o, "sent_at", tl_compat__get(m, "sentAt"));
    tl_compat__node(&o, "platform", tl_compat__strv(ctx_get(ctx, bctx, "library", "name")));
    tl_compat__node(&o, "app_version", tl_compat__strv(ctx_get(ctx, bctx, "app", "version")));
    tl_compat__node(&o, "os", tl_compat__strv(ctx_get(ctx, bctx, "os", "name")));
    if (page) {
        tl_compat__node(&o, "url", tl_compat__strv(tl_compat__get(props, "url")));
        tl_compat__node(&o, "referrer", tl_compat__strv(tl_compat__get(props, "referrer")));
    }
    tl_compat__node(&o, "url", tl_compat__strv(ctx_get(ctx, bctx, "page", "url")));
    tl_compat__node(&o, "referrer", tl_compat__strv(ctx_get(ctx, bctx, "page", "referrer")));
    tl_compat__node(&o, "ip", tl_compat__strv(ctx_get(ctx, bctx, "ip", NULL)));
    tl_compat__node(&o, "user_agent", tl_compat__strv(ctx_get(ctx, bctx, "userAgent", NULL)));
    const tl_json *country = ctx_get(ctx, bctx, "location", "country");
    if (country && country->type == TL_JSTR && tl_compat__is_country(country->str))
        tl_compat__node(&o, "country", country);
    tl_compat__node(&o, "properties", props);
    tl_compat__node(&o, "user_properties", uprops);
    tl_compat__add(b, o.node, bsent, kind);
}

int tl_compat_segment(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                      const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    tl_cbatch b;
    const tl_json *root;
    int rc = tl_compat__start_object(&b, a, in, ctx, lim, out,
                                     "a JSON object (a Segment message or {\"batch\":[...]})",
                                     &root, err);
    if (rc) return rc;
    out->body_key = tl_compat__get_str(root, "writeKey");

    tl_str type = in->path;
    if (type.len && type.p[type.len - 1] == '/') type.len--;
    const char *slash = type.len ? memrchr(type.p, '/', type.len) : NULL;
    if (slash) type = (tl_str){slash + 1, type.len - (size_t)(slash + 1 - type.p)};
    if (type.len == 1) {
        /* analytics.js short paths: /v1/t, /p, /i, /a, /g, /s; /v1/b is a batch. */
        static const char *const full[] = {"track", "page", "identify", "alias", "group", "screen"};
        const char *p = strchr("tpiags", type.p[0]);
        type = p && *p ? tl_str_c(full[p - "tpiags"]) : type;
    }
    if (tl_str_eqc(type, "batch") || tl_str_eqc(type, "import") || tl_str_eqc(type, "b") ||
        tl_compat__get(root, "batch")) {
        const tl_json *batch = tl_compat__get(root, "batch");
        if (!batch || batch->type != TL_JARR)
            return tl_err_set(err, TL_EINVAL, "batch: required, an array of messages");
        int64_t sent = INT64_MIN;
        const tl_json *s = tl_compat__get(root, "sentAt");
        if (s && tl_ingest_time(s, &sent))
            return tl_err_set(err, TL_EINVAL, "sentAt: not a number or ISO-8601 date");
        const tl_json *bctx = tl_compat__get(root, "context");
        for (const tl_json *m = batch->child; m; m = m->next) {
            map_message(&b, m, TL_STR_NULL, bctx, sent);
            tl_compat__next(&b);
        }
        if (!out->body_key.p && batch->child)
            out->body_key = tl_compat__get_str(batch->child, "writeKey");
        return 0;
    }
    map_message(&b, root, type, NULL, INT64_MIN);
    tl_compat__next(&b);
    return 0;
}
