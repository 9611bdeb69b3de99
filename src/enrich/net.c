/* Addresses for enrichment: CIDR parsing and matching (trusted proxies, deny lists), IP
 * truncation for privacy, and the client address behind trusted proxies from X-Forwarded-For
 * or Forwarded (RFC 7239). Headers are untrusted input: every token is bounded and parsed with
 * inet_pton, and anything malformed ends the walk. IPv4 is held as ::ffff:a.b.c.d so one
 * 16-byte comparison serves both families. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <ctype.h>

#include "enrich.h"
#include "enrich/enrich_int.h"
#include "util/diag.h"

static const uint8_t g_v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const uint8_t a[16])
{
    return !memcmp(a, g_v4_prefix, 12);
}

/* s without surrounding white space. */
static tl_str trim(tl_str s)
{
    while (s.len && isspace((unsigned char)s.p[0]))
        s.p++, s.len--;
    while (s.len && isspace((unsigned char)s.p[s.len - 1]))
        s.len--;
    return s;
}

int tl_enrich__ip(tl_str s, tl_cidr *out)
{
    char tmp[64];
    s = trim(s);
    if (s.len >= 2 && s.p[0] == '[' && s.p[s.len - 1] == ']') s.p++, s.len -= 2;
    if (!s.len || s.len >= sizeof tmp || memchr(s.p, 0, s.len)) return TL_EINVAL;
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = 0;
    uint8_t v4[4];
    if (inet_pton(AF_INET, tmp, v4) == 1) {
        memcpy(out->addr, g_v4_prefix, 12);
        memcpy(out->addr + 12, v4, 4);
    } else if (inet_pton(AF_INET6, tmp, out->addr) != 1) {
        return TL_EINVAL;
    }
    out->prefix = 128;
    return 0;
}

int tl_cidr_parse(tl_str s, tl_cidr *out)
{
    s = trim(s);
    const char *slash = s.len ? memchr(s.p, '/', s.len) : NULL;
    tl_str addr = slash ? (tl_str){s.p, (size_t)(slash - s.p)} : s;
    if (tl_enrich__ip(addr, out)) return TL_EINVAL;
    if (!slash) return 0;
    size_t n = s.len - (size_t)(slash - s.p) - 1;
    const char *d = slash + 1;
    if (!n || n > 3) return TL_EINVAL;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') return TL_EINVAL;
        bits = bits * 10 + (unsigned)(d[i] - '0');
    }
    bool v4 = is_v4(out->addr) && !memchr(addr.p, ':', addr.len);
    if (bits > (v4 ? 32u : 128u)) return TL_EINVAL;
    out->prefix = (uint8_t)(v4 ? bits + 96 : bits);
    return 0;
}

bool tl_cidr_contains(const tl_cidr *net, const tl_cidr *a)
{
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, a->addr, full)) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (a->addr[full] & mask);
}

bool tl_enrich__in_list(const tl_cidr *list, uint32_t n, const tl_cidr *a)
{
    for (uint32_t i = 0; i < n; i++)
        if (tl_cidr_contains(&list[i], a)) return true;
    return false;
}

int tl_cidr_parse_list(const char *list, tl_cidr **out, uint32_t *n, tl_err *err)
{
    *out = NULL;
    *n = 0;
    uint32_t cap = 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
        tl_str tok = {start, (size_t)(p - start)};
        tl_cidr c;
        if (tl_cidr_parse(tok, &c)) {
            free(*out);
            *out = NULL;
            *n = 0;
            return tl_err_set(err, TL_EINVAL, "'%.*s' is not an IP address or CIDR",
                              (int)(tok.len > 64 ? 64 : tok.len), tok.p);
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = tl_xrealloc(*out, cap * sizeof **out);
        }
        (*out)[(*n)++] = c;
    }
    return 0;
}

void tl_enrich__ip_text(const tl_cidr *a, char *out, size_t cap)
{
    if (is_v4(a->addr))
        inet_ntop(AF_INET, a->addr + 12, out, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, a->addr, out, (socklen_t)cap);
}

int tl_ip_truncate(tl_str ip, char *out, size_t cap)
{
    tl_cidr a;
    if (tl_enrich__ip(ip, &a)) return TL_EINVAL;
    if (is_v4(a.addr))
        a.addr[15] = 0;
    else
        memset(a.addr + 6, 0, 10);
    tl_enrich__ip_text(&a, out, cap);
    return 0;
}

/* One address token of a forwarding header: optional quotes, [v6]:port, v4:port, or a bare
 * address. Returns 0 and the address, or TL_EINVAL ("unknown", obfuscated ids, junk). */
static int fwd_token(tl_str t, tl_cidr *out)
{
    t = trim(t);
    if (t.len >= 2 && t.p[0] == '"' && t.p[t.len - 1] == '"') t.p++, t.len -= 2;
    if (t.len && t.p[0] == '[') {
        const char *close = memchr(t.p, ']', t.len);
        if (!close) return TL_EINVAL;
        return tl_enrich__ip((tl_str){t.p + 1, (size_t)(close - t.p - 1)}, out);
    }
    const char *colon = t.len ? memchr(t.p, ':', t.len) : NULL;
    if (colon && !memchr(colon + 1, ':', t.len - (size_t)(colon + 1 - t.p)))
        t.len = (size_t)(colon - t.p); /* a.b.c.d:port */
    return tl_enrich__ip(t, out);
}

/* The "for" parameter of one Forwarded element ("for=1.2.3.4;proto=https"). */
static bool forwarded_for(tl_str el, tl_str *out)
{
    size_t i = 0;
    while (i < el.len) {
        size_t j = i;
        bool quoted = false;
        while (j < el.len && (quoted || el.p[j] != ';')) {
            if (el.p[j] == '"') quoted = !quoted;
            j++;
        }
        tl_str pair = trim((tl_str){el.p + i, j - i});
        if (pair.len > 4 && !strncasecmp(pair.p, "for=", 4)) {
            *out = (tl_str){pair.p + 4, pair.len - 4};
            return true;
        }
        i = j + 1;
    }
    return false;
}

void tl_enrich__client_ip(const tl_cidr *trusted, uint32_t n_trusted, const char *peer,
                          tl_str forwarded, tl_str xff, char *out, size_t cap)
{
    tl_cidr cur;
    out[0] = 0;
    if (!peer || tl_enrich__ip(tl_str_c(peer), &cur)) {
        if (peer) snprintf(out, cap, "%s", peer);
        return;
    }
    bool use_fwd = trim(forwarded).len > 0;
    tl_str h = use_fwd ? forwarded : xff;
    /* Right to left: each hop that is a trusted proxy vouches for the one before it. */
    size_t end = h.len;
    int hops = 0;
    while (tl_enrich__in_list(trusted, n_trusted, &cur) && end > 0 && hops++ < 64) {
        size_t start = end;
        bool quoted = false;
        while (start > 0 && (quoted || h.p[start - 1] != ',')) {
            if (h.p[start - 1] == '"') quoted = !quoted;
            start--;
        }
        tl_str el = {h.p + start, end - start};
        end = start ? start - 1 : 0;
        if (!trim(el).len) {
            if (!start) break;
            continue;
        }
        tl_str tok = el;
        if (use_fwd && !forwarded_for(el, &tok)) break;
        tl_cidr next;
        if (fwd_token(tok, &next)) break;
        cur = next;
        if (!start) break;
    }
    tl_enrich__ip_text(&cur, out, cap);
}
