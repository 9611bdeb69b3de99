/* User agents with uap-core (https://github.com/ua-parser/uap-core): its regexes.yaml holds
 * three ordered lists (user_agent_parsers, os_parsers, device_parsers) of
 *   - regex: '...'           (regex_flag: 'i' for caseless)
 *     family_replacement / os_replacement / device_replacement, brand_replacement: '$1 ...'
 * The first regex of a list that matches decides; a replacement's $1..$9 are the groups, and
 * without a replacement the family is group 1. Read once with libyaml at start and compiled
 * with PCRE2 (JIT where available); matching is then read-only, so any thread may parse.
 *
 * A miss walks ~1,200 regexes (~75 µs on this project's machine), so enrich.c caches the
 * answers (cache.c). */
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

typedef struct uap_rule {
    pcre2_code *re;
    char *repl[2]; /* family (or os, or device) and brand replacements; NULL: group 1 / none */
} uap_rule;

struct tl_uap {
    uap_rule *rules[L_COUNT];
    uint32_t n[L_COUNT];
    pcre2_match_context *mctx;
};

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
        TL_INFO("enrich", "user-agent regexes: %u browser, %u os, %u device (%u not compiled)",
                u->n[L_UA], u->n[L_OS], u->n[L_DEV], bad);
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
static void match_list(const tl_uap *u, int l, const char *ua, size_t len, pcre2_match_data *md,
                       char *a, size_t acap, char *b, size_t bcap)
{
    a[0] = 0;
    if (b) b[0] = 0;
    for (uint32_t i = 0; i < u->n[l]; i++) {
        const uap_rule *r = &u->rules[l][i];
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
    match_list(u, L_UA, ua, len, md, out->family, sizeof out->family, NULL, 0);
    match_list(u, L_OS, ua, len, md, out->os, sizeof out->os, NULL, 0);
    match_list(u, L_DEV, ua, len, md, out->device, sizeof out->device, out->brand,
               sizeof out->brand);
    pcre2_match_data_free(md);
}
