/* User agents with uap-core (https://github.com/ua-parser/uap-core): its regexes.yaml holds
 * three ordered lists (user_agent_parsers, os_parsers, device_parsers) of
 *   - regex: '...'           (regex_flag: 'i' for caseless)
 *     family_replacement / os_replacement / device_replacement, brand_replacement: '$1 ...'
 * The first regex of a list that matches decides; a replacement's $1..$9 are the groups, and
 * without a replacement the family is group 1. Read once with libyaml at start and compiled
 * with PCRE2 (JIT where available); matching is then read-only, so any thread may parse.
 *
 * A user agent is matched against up to ~1,160 regexes. Most cannot match: each rule keeps
 * the longest literal its regex requires (found by a small, conservative reading of the
 * pattern: bytes outside classes, wildcards, optional parts and alternations; no literal when
 * in doubt), and a rule is skipped when its literal is absent from the user agent: first by a
 * 4,096-bit table of the user agent's (lower-cased) byte trigrams, then by memmem. A miss
 * then costs ~75 µs instead of ~190 µs of CPU (the 291 browser user agents of
 * bench/enrich.sh; the uap-core test suites give the same answers with and without the
 * filter: tests/unit/test_enrich.c). enrich.c also caches the answers (cache.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrich.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

#include "enrich/enrich_int.h"
#include "util/diag.h"

enum { L_UA, L_OS, L_DEV, L_COUNT };

#define LIT_MAX  48   /* longest literal kept per rule (enrich_int.h says 48 too) */
#define TRI_BITS 4096 /* the trigram table: bits */
#define TRI_KEEP 4    /* trigrams of a literal tested in the table */

typedef struct uap_rule {
    pcre2_code *re;
    char *repl[2]; /* family (or os, or device) and brand replacements; NULL: group 1 / none */
    /* The pre-filter: a literal every match contains (lower-cased when nocase), or lit_len 0.
     * tri: hashes of some of its trigrams (lower-cased), n_tri of them. */
    char lit[LIT_MAX];
    uint8_t lit_len, n_tri;
    bool nocase;
    uint16_t tri[TRI_KEEP];
} uap_rule;

struct tl_uap {
    uap_rule *rules[L_COUNT];
    uint32_t n[L_COUNT];
    pcre2_match_context *mctx;
    bool no_filter; /* tl_enrich__uap_set_filter(false): every regex is tried (tests) */
};

/* ---------------------------------------------------------------------------------------- */
/* Required literals */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static unsigned tri_hash(const char *p)
{
    uint32_t h = (uint32_t)(unsigned char)lower(p[0]) << 16 |
                 (uint32_t)(unsigned char)lower(p[1]) << 8 | (unsigned char)lower(p[2]);
    return (h * 2654435761u) >> 20; /* 12 bits */
}

/* The reader of a pattern: the current run of required literal bytes and the best so far. */
typedef struct lit_scan {
    const char *p;
    bool bail; /* a construct not understood: no literal for this rule */
    bool nocase;
    char run[LIT_MAX], best[LIT_MAX];
    size_t run_n, best_n;
} lit_scan;

static void lit_break(lit_scan *x)
{
    if (x->run_n > x->best_n) {
        memcpy(x->best, x->run, x->run_n);
        x->best_n = x->run_n;
    }
    x->run_n = 0;
}

static void lit_add(lit_scan *x, char c)
{
    if (x->nocase && (unsigned char)c >= 0x80) { /* caseless: ASCII only, to be sure */
        lit_break(x);
        return;
    }
    if (x->run_n < LIT_MAX) x->run[x->run_n++] = x->nocase ? lower(c) : c;
}

/* A quantifier at p: sets *min (0 for ?, *, {0,…}; 1 or more for +, {n…}) and returns its
 * end (after a lazy ? or possessive +), or returns p when there is none. */
static const char *quantifier(const char *p, int *min)
{
    const char *q = p;
    if (*q == '?' || *q == '*') {
        *min = 0;
        q++;
    } else if (*q == '+') {
        *min = 1;
        q++;
    } else if (*q == '{' && q[1] >= '0' && q[1] <= '9') {
        int n = 0;
        for (q++; *q >= '0' && *q <= '9'; q++)
            n = n < 1000 ? n * 10 + (*q - '0') : n;
        if (*q == ',')
            for (q++; *q >= '0' && *q <= '9'; q++) {
            }
        if (*q != '}') return p; /* not a quantifier: a literal "{" */
        q++;
        *min = n;
    } else {
        return p;
    }
    if (*q == '?' || *q == '+') q++;
    return q;
}

/* The end of the character class that starts at p ('['), or NULL. */
static const char *class_end(const char *p)
{
    p++;
    if (*p == '^') p++;
    if (*p == ']') p++; /* a leading ] is a member */
    for (; *p; p++) {
        if (*p == '\\' && p[1])
            p++;
        else if (*p == '[' && p[1] == ':') { /* [:alpha:] */
            const char *e = strstr(p + 2, ":]");
            if (!e) return NULL;
            p = e + 1;
        } else if (*p == ']')
            return p + 1;
    }
    return NULL;
}

/* Scans the sequence from p to the ')' that closes its level (or the end): its end, and
 * whether it has an alternation at its own level. NULL when unbalanced. */
static const char *level_end(const char *p, bool *alt)
{
    int depth = 0;
    *alt = false;
    while (*p) {
        if (*p == '\\') {
            if (!p[1]) return NULL;
            p += 2;
        } else if (*p == '[') {
            p = class_end(p);
            if (!p) return NULL;
        } else {
            if (*p == '(') depth++;
            if (*p == ')' && depth-- == 0) return p;
            if (*p == '|' && depth == 0) *alt = true;
            p++;
        }
    }
    return depth == 0 ? p : NULL;
}

/* Reads the sequence at x->p up to its closing ')' (not consumed) or the end; literals count
 * only when `required` (the sequence is part of every match). */
static void lit_seq(lit_scan *x, bool required, int depth)
{
    bool alt;
    if (depth > 16 || !level_end(x->p, &alt)) {
        x->bail = true;
        return;
    }
    if (alt) required = false;
    while (*x->p && *x->p != ')' && !x->bail) {
        const char *p = x->p;
        int min = 1;
        if (*p == '(') {
            const char *in = p + 1;
            if (in[0] == '?' && in[1] == ':')
                in += 2;
            else if (in[0] == '?' || in[0] == '*')
                x->bail = true; /* lookaround, inline options, named groups, verbs */
            bool a2;
            const char *end = x->bail ? NULL : level_end(in, &a2);
            if (!end || *end != ')') {
                x->bail = true;
                return;
            }
            const char *after = quantifier(end + 1, &min);
            bool quantified = after != end + 1;
            if (quantified) lit_break(x);
            x->p = in;
            lit_seq(x, required && min > 0, depth + 1);
            if (x->bail) return;
            if (quantified) lit_break(x);
            x->p = after;
            continue;
        }
        if (*p == '[' || *p == '.' || *p == '^' || *p == '$' || *p == '|') {
            const char *e = *p == '[' ? class_end(p) : p + 1;
            if (!e) {
                x->bail = true;
                return;
            }
            lit_break(x);
            x->p = quantifier(e, &min);
            continue;
        }
        if (*p == '*' || *p == '+' || *p == '?') {
            x->bail = true; /* a quantifier with nothing before it */
            return;
        }
        char c = *p;
        const char *e = p + 1;
        if (*p == '{') {
            /* Not a quantifier we read (those were taken after their atom): PCRE2 takes "{"
             * as a literal, but newer versions read more forms ({,n}) as quantifiers. */
            x->bail = true;
            return;
        }
        if (*p == '\\') {
            c = p[1];
            e = p + 2;
            bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            if (alnum) {
                if (!strchr("dDwWsSbBhHvVRN", c)) { /* \x, \1, \Q, \p, \t…: not read */
                    x->bail = true;
                    return;
                }
                lit_break(x);
                x->p = quantifier(e, &min);
                continue;
            }
            if (!c) {
                x->bail = true;
                return;
            }
        }
        const char *after = quantifier(e, &min);
        if (!required || min == 0) {
            lit_break(x);
        } else {
            lit_add(x, c);
            if (after != e) lit_break(x); /* repeated: what follows is not adjacent */
        }
        x->p = after;
    }
}

size_t tl_enrich__uap_literal(const char *re, bool nocase, char out[48])
{
    lit_scan x = {.p = re, .nocase = nocase};
    lit_seq(&x, true, 0);
    if (*x.p) x.bail = true; /* an unbalanced ')' */
    lit_break(&x);
    if (x.bail) return 0;
    memcpy(out, x.best, x.best_n);
    return x.best_n;
}

/* Fills r's pre-filter from its pattern (none when the pattern is not understood). */
static void set_filter(uap_rule *r, const char *re, bool nocase)
{
    size_t n = tl_enrich__uap_literal(re, nocase, r->lit);
    r->lit_len = n >= 2 ? (uint8_t)n : 0;
    r->n_tri = 0;
    r->nocase = nocase;
    /* Trigrams spread over the literal: the first, the last and some between. */
    if (n >= 3) {
        size_t last = n - 3;
        for (size_t k = 0; k < TRI_KEEP; k++) {
            r->tri[r->n_tri++] = (uint16_t)tri_hash(r->lit + last * k / (TRI_KEEP - 1));
            if (!last) break;
        }
    }
}

/* What the pre-filter knows of one user agent. */
typedef struct ua_view {
    const char *s, *low; /* as given, and ASCII lower-cased */
    size_t len;
    uint64_t tri[TRI_BITS / 64];
} ua_view;

static void view_init(ua_view *v, const char *ua, size_t len, char *low)
{
    v->s = ua;
    v->low = low;
    v->len = len;
    memset(v->tri, 0, sizeof v->tri);
    for (size_t i = 0; i < len; i++)
        low[i] = lower(ua[i]);
    low[len] = 0;
    for (size_t i = 0; i + 3 <= len; i++) {
        unsigned h = tri_hash(low + i);
        v->tri[h >> 6] |= 1ull << (h & 63);
    }
}

/* False when r's regex cannot match the user agent. */
static bool may_match(const uap_rule *r, const ua_view *v)
{
    if (!r->lit_len) return true;
    for (unsigned k = 0; k < r->n_tri; k++)
        if (!(v->tri[r->tri[k] >> 6] >> (r->tri[k] & 63) & 1)) return false;
    return memmem(r->nocase ? v->low : v->s, v->len, r->lit, r->lit_len) != NULL;
}

/* Match limits: uap's regexes are tame, but a pathological user agent must not stall a
 * request thread. A user agent is matched on its first UA_MAX bytes. */
#define UA_MAX      512
#define MATCH_LIMIT 200000

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tl_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Adds the rules of one list (a sequence of mappings). */
static void load_list(tl_uap *u, int list, yaml_document_t *d, yaml_node_t *seq, uint32_t *bad)
{
    if (!seq || seq->type != YAML_SEQUENCE_NODE) return;
    size_t cap = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    u->rules[list] = tl_xcalloc(cap ? cap : 1, sizeof(uap_rule));
    static const char *const repl_key[L_COUNT] = {"family_replacement", "os_replacement",
                                                  "device_replacement"};
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *m = yaml_document_get_node(d, *it);
        if (!m || m->type != YAML_MAPPING_NODE) continue;
        const char *re = NULL, *flag = NULL, *repl = NULL, *brand = NULL;
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
             p++) {
            const char *k = scalar(d, yaml_document_get_node(d, p->key));
            const char *v = scalar(d, yaml_document_get_node(d, p->value));
            if (!k || !v) continue;
            if (!strcmp(k, "regex"))
                re = v;
            else if (!strcmp(k, "regex_flag"))
                flag = v;
            else if (!strcmp(k, repl_key[list]))
                repl = v;
            else if (list == L_DEV && !strcmp(k, "brand_replacement"))
                brand = v;
        }
        if (!re) continue;
        int ec;
        PCRE2_SIZE eo;
        uint32_t opts = flag && strchr(flag, 'i') ? PCRE2_CASELESS : 0;
        pcre2_code *code =
            pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
        if (!code) {
            (*bad)++;
            continue;
        }
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* interpreted when JIT is absent */
        uap_rule *r = &u->rules[list][u->n[list]++];
        r->re = code;
        set_filter(r, re, opts & PCRE2_CASELESS);
        r->repl[0] = repl ? xstrdup(repl) : NULL;
        r->repl[1] = brand ? xstrdup(brand) : NULL;
    }
}

tl_uap *tl_enrich__uap_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        TL_WARN("enrich",
                "no user-agent regexes at %s (install uap-core): browser, os and "
                "device_type are not derived; bots are found by the built-in list only",
                path);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    tl_uap *u = NULL;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        TL_WARN("enrich", "%s: YAML error at line %zu: %s; user agents are not parsed", path,
                parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
        yaml_parser_delete(&parser);
        fclose(f);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        u = tl_xcalloc(1, sizeof *u);
        uint32_t bad = 0;
        static const char *const names[L_COUNT] = {"user_agent_parsers", "os_parsers",
                                                   "device_parsers"};
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
            const char *k = scalar(&doc, yaml_document_get_node(&doc, p->key));
            for (int l = 0; k && l < L_COUNT; l++)
                if (!strcmp(k, names[l]) && !u->rules[l])
                    load_list(u, l, &doc, yaml_document_get_node(&doc, p->value), &bad);
        }
        u->mctx = pcre2_match_context_create(NULL);
        pcre2_set_match_limit(u->mctx, MATCH_LIMIT);
        uint32_t n_rules, n_lit;
        tl_enrich__uap_filter_stats(u, &n_rules, &n_lit);
        TL_INFO("enrich",
                "user-agent regexes: %u browser, %u os, %u device (%u not compiled; %u with a "
                "literal to skip them by)",
                u->n[L_UA], u->n[L_OS], u->n[L_DEV], bad, n_lit);
    } else {
        TL_WARN("enrich", "%s: not a uap-core regexes file; user agents are not parsed", path);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return u;
}

void tl_enrich__uap_free(tl_uap *u)
{
    if (!u) return;
    for (int l = 0; l < L_COUNT; l++) {
        for (uint32_t i = 0; i < u->n[l]; i++) {
            pcre2_code_free(u->rules[l][i].re);
            free(u->rules[l][i].repl[0]);
            free(u->rules[l][i].repl[1]);
        }
        free(u->rules[l]);
    }
    pcre2_match_context_free(u->mctx);
    free(u);
}

/* Writes the replacement (or group 1 when repl is NULL) into out, trimmed; "Other" → "". */
static void expand(const char *repl, const char *subj, pcre2_match_data *md, int rc, char *out,
                   size_t cap)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t o = 0;
    const char *fallback = "$1";
    for (const char *p = repl ? repl : fallback; *p && o + 1 < cap; p++) {
        if (p[0] == '$' && p[1] >= '1' && p[1] <= '9') {
            int g = p[1] - '0';
            p++;
            if (g >= rc || ov[2 * g] == PCRE2_UNSET) continue;
            for (PCRE2_SIZE i = ov[2 * g]; i < ov[2 * g + 1] && o + 1 < cap; i++)
                out[o++] = subj[i];
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
    /* Trim, and keep only printable ASCII and UTF-8 bytes (the answer is stored). */
    size_t s = 0;
    while (out[s] == ' ')
        s++;
    if (s) memmove(out, out + s, o - s + 1), o -= s;
    while (o && out[o - 1] == ' ')
        out[--o] = 0;
    for (size_t i = 0; i < o; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) out[i] = ' ';
    if (!strcmp(out, "Other")) out[0] = 0;
}

/* First rule of list l that matches: expands its replacements into a (and b). */
static void match_list(const tl_uap *u, int l, const ua_view *v, pcre2_match_data *md, char *a,
                       size_t acap, char *b, size_t bcap)
{
    const char *ua = v->s;
    size_t len = v->len;
    a[0] = 0;
    if (b) b[0] = 0;
    for (uint32_t i = 0; i < u->n[l]; i++) {
        const uap_rule *r = &u->rules[l][i];
        if (!u->no_filter && !may_match(r, v)) continue;
        int rc = pcre2_match(r->re, (PCRE2_SPTR)ua, len, 0, 0, md, u->mctx);
        if (rc < 0) continue; /* no match, or a limit hit: the next rule */
        if (rc == 0) rc = 10; /* more groups than the ovector holds: all of it is set */
        expand(r->repl[0], ua, md, rc, a, acap);
        if (b && r->repl[1]) expand(r->repl[1], ua, md, rc, b, bcap);
        return;
    }
}

void tl_enrich__uap_parse(const tl_uap *u, const char *ua, size_t len, tl_uap_result *out)
{
    memset(out, 0, sizeof *out);
    if (!u) return;
    if (len > UA_MAX) len = UA_MAX;
    pcre2_match_data *md = pcre2_match_data_create(10, NULL);
    if (!md) return;
    char low[UA_MAX + 1];
    ua_view v;
    view_init(&v, ua, len, low);
    match_list(u, L_UA, &v, md, out->family, sizeof out->family, NULL, 0);
    match_list(u, L_OS, &v, md, out->os, sizeof out->os, NULL, 0);
    match_list(u, L_DEV, &v, md, out->device, sizeof out->device, out->brand, sizeof out->brand);
    pcre2_match_data_free(md);
}

void tl_enrich__uap_set_filter(tl_uap *u, bool on)
{
    if (u) u->no_filter = !on;
}

void tl_enrich__uap_filter_stats(const tl_uap *u, uint32_t *n_rules, uint32_t *n_filtered)
{
    *n_rules = *n_filtered = 0;
    for (int l = 0; u && l < L_COUNT; l++)
        for (uint32_t i = 0; i < u->n[l]; i++) {
            (*n_rules)++;
            *n_filtered += u->rules[l][i].lit_len > 0;
        }
}
