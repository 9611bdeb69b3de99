/* PostHog capture API: /i/v0/e/, /e/, /capture/, /batch/, /track/, /engage/, POST or GET.
 *
 * Body decoding, in order (what posthog-js and the server libraries send):
 *   GET: the "data" query argument is the body.
 *   A urlencoded form (Content-Type application/x-www-form-urlencoded, or a body that starts
 *   with "data="): the "data" field is the body, its "compression" field a hint.
 *   gzip by Content-Encoding or by magic bytes (posthog-js sends gzip-js as text/plain).
 *   base64 when ?compression=base64 (sendBeacon) or when the text is not JSON.
 *   lz64 (posthog-js before 2021) is refused with 400.
 * Then {"api_key","batch":[…],"sent_at"}, an array of events, or one event object. The
 * envelope's sent_at, else the query's sent_at or _ (ms, as posthog-js adds them), corrects
 * the clock skew of events that carry a timestamp.
 *
 * Identity. PostHog has one untyped distinct_id; tally types ids as anonymous or user (a
 * person is refused a second user). The mapping keeps PostHog's person semantics:
 *   - An ordinary event's distinct_id is its user_id when the event says the person is
 *     identified (posthog-js sends $user_state "identified" or $is_identified true), else
 *     its anonymous_id (posthog-js before identify; server libraries, which send neither).
 *   - $identify merges $anon_distinct_id (anonymous) into distinct_id (user), and
 *     $create_alias merges "alias" into distinct_id, as PostHog merges them.
 *   - Both also link distinct_id as an anonymous id to itself as a user id (a second
 *     TL_REC_IDENTIFY record), so events a server library sent under that distinct_id
 *     before or after the identify belong to the same person.
 *   - $set becomes person properties only (TL_REC_IDENTIFY without a merge).
 *   - $groupidentify is acknowledged and not stored (tally has no groups).
 * Other fields: docs/compat.md. */
#include <string.h>

#include "compat.h"
#include "compat/compat_int.h"

static bool starts_with_nocase(tl_str s, const char *pre)
{
    size_t n = strlen(pre);
    return s.len >= n && tl_compat__eq_nocase((tl_str){s.p, n}, pre);
}

/* The "data" and "compression" fields of a urlencoded form. */
static int parse_form(tl_arena *a, tl_str body, tl_str *data, tl_str *comp)
{
    if (!body.len) return 0;
    const char *p = body.p, *end = body.p + body.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            tl_str k = {p, (size_t)(eq - p)}, v = {eq + 1, (size_t)(stop - eq - 1)};
            tl_str *dst = tl_str_eqc(k, "data") ? data : tl_str_eqc(k, "compression") ? comp : NULL;
            if (dst && tl_compat_url_decode(a, v, dst) < 0) return TL_EINVAL;
        }
        p = stop + (stop < end);
    }
    return 0;
}

static int decode(tl_arena *a, const tl_compat_in *in, const tl_ingest_limits *lim, tl_str *out,
                  tl_err *err)
{
    tl_str body = in->body, comp = tl_compat__arg(in, "compression");
    if (!body.len) body = tl_compat__arg(in, "data");
    if (starts_with_nocase(in->content_type, "application/x-www-form-urlencoded") ||
        (body.len > 5 && !memcmp(body.p, "data=", 5))) {
        tl_str data = TL_STR_NULL, fcomp = TL_STR_NULL;
        if (parse_form(a, body, &data, &fcomp))
            return tl_err_set(err, TL_EINVAL, "body: bad URL encoding in the form");
        if (data.p) body = data;
        if (fcomp.len) comp = fcomp;
    }
    if (tl_compat__eq_nocase(comp, "lz64"))
        return tl_err_set(err, TL_EINVAL, "compression: lz64 is not supported; use gzip-js");
    int rc = tl_compat__gunzip(a, body, in->content_encoding, lim, &body, err);
    if (rc) return rc;
    tl_str t = tl_compat__trim(body);
    if (tl_compat__eq_nocase(comp, "base64") || (t.len && t.p[0] != '{' && t.p[0] != '[')) {
        tl_str raw;
        if (tl_compat_base64_decode(a, t, &raw) < 0)
            return tl_err_set(err, TL_EINVAL, "body: neither JSON nor base64");
        rc = tl_compat__gunzip(a, raw, TL_STR_NULL, lim, &body, err);
        if (rc) return rc;
    }
    *out = tl_compat__trim(body);
    return 0;
}

/* The first string of the token fields PostHog reads. */
static tl_str token_of(const tl_json *o)
{
    static const char *const keys[] = {"api_key", "token", "$token"};
    for (size_t i = 0; i < 3; i++) {
        tl_str t = tl_compat__get_str(o, keys[i]);
        if (t.len) return t;
    }
    return tl_compat__get_str(tl_compat__get(o, "properties"), "token");
}

/* distinct_id as PostHog reads it: stringified, cut to 200 bytes (on a UTF-8 boundary). */
static tl_str distinct_id(tl_arena *a, const tl_json *e, const tl_json *props)
{
    tl_str d = tl_compat__get_id(a, e, "distinct_id");
    if (!d.len) d = tl_compat__get_id(a, e, "$distinct_id");
    if (!d.len) d = tl_compat__get_id(a, props, "distinct_id");
    if (!d.len) d = tl_compat__get_id(a, props, "$distinct_id");
    if (d.len > TL_INGEST_MAX_ID_BYTES) {
        size_t n = TL_INGEST_MAX_ID_BYTES;
        while (n > 0 && ((unsigned char)d.p[n] & 0xC0) == 0x80)
            n--;
        d.len = n;
    }
    return d;
}

/* Properties that become built-in fields or identity, and so are not kept as properties. */
static bool mapped_prop(tl_str k)
{
    /* Lengths precomputed: this runs for every property of every event. */
#define K(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
    static const tl_str keys[] = {
        K("$set"),
        K("$set_once"),
        K("$unset"),
        K("token"),
        K("$token"),
        K("distinct_id"),
        K("$distinct_id"),
        K("$anon_distinct_id"),
        K("$user_state"),
        K("$is_identified"),
        K("$current_url"),
        K("$referrer"),
        K("$os"),
        K("$browser"),
        K("$device_type"),
        K("$app_version"),
        K("$lib"),
        K("$ip"),
        K("$raw_user_agent"),
        K("$session_id"),
        K("$geoip_country_code"),
        K("$geoip_disable"),
        K("alias"),
    };
#undef K
    if (!k.len || (k.p[0] != '$' && k.p[0] != 't' && k.p[0] != 'd' && k.p[0] != 'a')) return false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (k.len == keys[i].len && !memcmp(k.p, keys[i].p, k.len)) return true;
    return false;
}

static const tl_json *kept_props(tl_arena *a, const tl_json *props)
{
    if (!props || props->type != TL_JOBJ) return props;
    tl_cobj o;
    tl_compat__obj(&o, a, props->str);
    for (const tl_json *c = props->child; c; c = c->next)
        if (!mapped_prop(c->key)) tl_compat__node_k(&o, c->key, c);
    return o.node;
}

/* Fields every record of the event shares: ids for dedup, time, built-in fields. */
static void common_fields(tl_cobj *o, tl_cbatch *b, const tl_json *e, const tl_json *props,
                          int64_t *sent)
{
    tl_compat__node(o, "timestamp", tl_compat__get(e, "timestamp"));
    const tl_json *off = tl_compat__get(e, "offset");
    if (!tl_compat__get(e, "timestamp") && off && off->type == TL_JNUM) {
        /* posthog-js without a timestamp: "offset" ms before it was sent; no skew fix. */
        tl_compat__num(o, "timestamp", (double)b->ctx->recv_ms - off->num);
        *sent = INT64_MIN;
    }
    tl_compat__node(o, "session_id", tl_compat__strv(tl_compat__get(props, "$session_id")));
    tl_compat__node(o, "url", tl_compat__strv(tl_compat__get(props, "$current_url")));
    tl_str ref = tl_compat__get_str(props, "$referrer");
    if (!tl_str_eqc(ref, "$direct")) tl_compat__str(o, "referrer", ref);
    tl_compat__node(o, "os", tl_compat__strv(tl_compat__get(props, "$os")));
    tl_compat__node(o, "browser", tl_compat__strv(tl_compat__get(props, "$browser")));
    tl_compat__node(o, "device_type", tl_compat__strv(tl_compat__get(props, "$device_type")));
    tl_compat__node(o, "app_version", tl_compat__strv(tl_compat__get(props, "$app_version")));
    tl_compat__node(o, "platform", tl_compat__strv(tl_compat__get(props, "$lib")));
    tl_compat__node(o, "ip", tl_compat__strv(tl_compat__get(props, "$ip")));
    tl_compat__node(o, "ip", tl_compat__strv(tl_compat__get(e, "ip")));
    tl_compat__node(o, "user_agent", tl_compat__strv(tl_compat__get(props, "$raw_user_agent")));
    tl_str cc = tl_compat__get_str(props, "$geoip_country_code");
    if (tl_compat__is_country(cc)) tl_compat__str(o, "country", cc);
}

static void set_props(tl_cobj *o, const tl_json *e, const tl_json *props)
{
    const tl_json *set = tl_compat__get(props, "$set"), *once = tl_compat__get(props, "$set_once");
    tl_compat__node(o, "user_properties", set ? set : tl_compat__get(e, "$set"));
    tl_compat__node(o, "user_properties_once", once ? once : tl_compat__get(e, "$set_once"));
}

/* The extra link of an identified distinct_id: anonymous X → user X (see the top). */
static void link_self(tl_cbatch *b, const tl_json *e, tl_str x, int64_t sent)
{
    tl_cobj o;
    tl_compat__obj(&o, b->a, e->str);
    tl_compat__str(&o, "event", TL_STR("$identify"));
    tl_compat__str(&o, "anonymous_id", x);
    tl_compat__str(&o, "user_id", x);
    tl_compat__node(&o, "timestamp", tl_compat__get(e, "timestamp"));
    tl_compat__add(b, o.node, sent, TL_REC_IDENTIFY);
}

static void map_event(tl_cbatch *b, const tl_json *e, int64_t sent)
{
    tl_arena *a = b->a;
    if (!e || e->type != TL_JOBJ) {
        tl_compat__reject(b, "event: must be an object");
        tl_compat__next(b);
        return;
    }
    const tl_json *props = tl_compat__get(e, "properties");
    tl_str name = tl_compat__get_str(e, "event");
    if (!name.len && (tl_compat__get(e, "$set") || tl_compat__get(e, "$set_once")))
        name = TL_STR("$set");
    if (tl_str_eqc(name, "$groupidentify")) {
        b->index++; /* acknowledged, not stored and not counted */
        return;
    }
    tl_str did = distinct_id(a, e, props);
    tl_cobj o;
    tl_compat__obj(&o, a, e->str);
    tl_compat__node(&o, "event_id", tl_compat__get(e, "uuid"));
    common_fields(&o, b, e, props, &sent);
    set_props(&o, e, props);

    if (tl_str_eqc(name, "$identify") || tl_str_eqc(name, "$create_alias")) {
        bool alias = name.p[1] == 'c';
        tl_str user = did, anon = tl_compat__get_id(a, props, "$anon_distinct_id");
        if (alias) {
            tl_str x = tl_compat__get_id(a, props, "distinct_id");
            if (x.len) user = x;
            anon = tl_compat__get_id(a, props, "alias");
        }
        if (!user.len) {
            tl_compat__reject(b, "distinct_id: required");
            tl_compat__next(b);
            return;
        }
        tl_compat__str(&o, "event", name);
        tl_compat__str(&o, "user_id", user);
        if (anon.len && !tl_str_eq(anon, user)) tl_compat__str(&o, "anonymous_id", anon);
        if (tl_compat__add(b, o.node, sent, TL_REC_IDENTIFY)) link_self(b, e, user, sent);
        tl_compat__next(b);
        return;
    }

    const tl_json *st = tl_compat__get(props, "$user_state"),
                  *isid = tl_compat__get(props, "$is_identified");
    bool identified = (st && st->type == TL_JSTR && tl_str_eqc(st->str, "identified")) ||
                      (isid && isid->type == TL_JTRUE);
    tl_compat__str(&o, identified ? "user_id" : "anonymous_id", did);
    if (!did.len) {
        tl_compat__reject(b, "distinct_id: required");
        tl_compat__next(b);
        return;
    }
    if (tl_str_eqc(name, "$set")) {
        tl_compat__str(&o, "event", name);
        tl_compat__add(b, o.node, sent, TL_REC_IDENTIFY);
        tl_compat__next(b);
        return;
    }
    tl_compat__node(&o, "event", name.p ? tl_compat__jstr(a, name) : tl_compat__get(e, "event"));
    tl_compat__node(&o, "properties", kept_props(a, props));
    tl_record *r = tl_compat__add(b, o.node, sent, TL_REC_EVENT);
    const tl_json *nogeo = tl_compat__get(props, "$geoip_disable");
    if (r && nogeo && nogeo->type == TL_JTRUE) {
        /* posthog-node sets it by default: the request comes from the app's server, whose
         * address says nothing about the user. No address: no GeoIP, none stored. */
        r->ip = TL_STR_NULL;
    }
    tl_compat__next(b);
}

int tl_compat_posthog(tl_arena *a, const tl_compat_in *in, const tl_ingest_ctx *ctx,
                      const tl_ingest_limits *lim, tl_ingest_batch *out, tl_err *err)
{
    tl_cbatch b;
    tl_str body;
    int rc = tl_compat__start(&b, a, in, ctx, lim, out, decode, &body, err);
    if (rc) return rc;
    if (!body.len) return tl_err_set(err, TL_EINVAL, "body: empty");
    const tl_json *root = tl_compat__parse_json(a, body, b.lim);
    if (!root || (root->type != TL_JOBJ && root->type != TL_JARR))
        return tl_err_set(err, TL_EINVAL, "body: not a JSON object or array of PostHog events");

    const tl_json *events = root;
    int64_t sent = INT64_MIN;
    /* posthog-js puts the send time in the query: sent_at= (POST) or _= (GET), in ms. */
    tl_str q_sent = tl_compat__arg(in, "sent_at");
    if (!q_sent.len) q_sent = tl_compat__arg(in, "_");
    const tl_json *s = root->type == TL_JOBJ ? tl_compat__get(root, "sent_at") : NULL;
    if (s && tl_ingest_time(s, &sent)) sent = INT64_MIN;
    if (sent == INT64_MIN && q_sent.len) {
        tl_json *qs = tl_compat__jstr(a, q_sent);
        if (tl_ingest_time(qs, &sent)) sent = INT64_MIN;
    }
    if (root->type == TL_JOBJ) {
        out->body_key = token_of(root);
        const tl_json *batch = tl_compat__get(root, "batch");
        if (!batch) batch = tl_compat__get(root, "data"); /* the old envelope name */
        if (batch && batch->type == TL_JARR)
            events = batch;
        else if (batch)
            return tl_err_set(err, TL_EINVAL, "batch: must be an array");
    }
    if (events->type == TL_JARR) {
        if (!out->body_key.len && events->child) out->body_key = token_of(events->child);
        for (const tl_json *e = events->child; e; e = e->next)
            map_event(&b, e, sent);
    } else {
        map_event(&b, events, sent);
    }
    if (!out->body_key.len) out->body_key = tl_compat__arg(in, "token");
    if (!out->body_key.len) out->body_key = tl_compat__arg(in, "api_key");
    return 0;
}
