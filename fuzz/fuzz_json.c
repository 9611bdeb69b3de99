/* Fuzz target for util/json: any input either parses or fails with a reason, never crashes or
 * reads out of bounds; and whatever parses obeys the tree's invariants: strings are valid
 * UTF-8, containers' source spans lie in the input and are bracketed, child counts match,
 * and writing is a fixed point (parse(write(v)) writes the same bytes). */
#include <stdint.h>
#include <string.h>

#include "util/buf.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const tl_json *v, const char *lo, const char *hi)
{
    if (v->key.p) TL_ASSERT(tl_utf8_valid(v->key.p, v->key.len));
    switch (v->type) {
    case TL_JSTR: TL_ASSERT(tl_utf8_valid(v->str.p, v->str.len)); break;
    case TL_JNUM: TL_ASSERT(v->str.p >= lo && v->str.p + v->str.len <= hi && v->str.len); break;
    case TL_JARR:
    case TL_JOBJ: {
        TL_ASSERT(v->str.p >= lo && v->str.p + v->str.len <= hi && v->str.len >= 2);
        TL_ASSERT(v->str.p[0] == (v->type == TL_JOBJ ? '{' : '['));
        TL_ASSERT(v->str.p[v->str.len - 1] == (v->type == TL_JOBJ ? '}' : ']'));
        uint32_t n = 0;
        for (const tl_json *c = v->child; c; c = c->next, n++) {
            if (c->type == TL_JARR || c->type == TL_JOBJ || c->type == TL_JNUM)
                TL_ASSERT(c->str.p > v->str.p && c->str.p + c->str.len < v->str.p + v->str.len);
            check(c, lo, hi);
        }
        TL_ASSERT(n == v->n);
        break;
    }
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tl_arena *a = tl_arena_new();
    const char *p = (const char *)data;
    tl_json_opts o = {.max_depth = 48, .max_nodes = 1u << 20};
    tl_json *v = NULL;
    tl_err err;
    err.msg[0] = 0;
    int rc = tl_json_parse(a, p, size, &o, &v, &err);
    if (rc) {
        TL_ASSERT(rc == TL_EINVAL || rc == TL_E2BIG);
        TL_ASSERT(err.msg[0]);
        tl_arena_free(a);
        return 0;
    }
    check(v, p, p + size);
    if (v->type == TL_JARR || v->type == TL_JOBJ) {
        /* The root's span is the input without its surrounding white space. */
        size_t lead = (size_t)(v->str.p - p), tail = size - lead - v->str.len;
        for (size_t i = 0; i < lead; i++)
            TL_ASSERT(strchr(" \t\r\n", p[i]) && p[i]);
        for (size_t i = 0; i < tail; i++)
            TL_ASSERT(strchr(" \t\r\n", p[lead + v->str.len + i]) && p[lead + v->str.len + i]);
    }
    tl_buf b1 = TL_BUF_INIT, b2 = TL_BUF_INIT;
    tl_json_write(&b1, v);
    tl_json *w = NULL;
    TL_ASSERT(tl_json_parse(a, b1.p, b1.len, &o, &w, NULL) == 0);
    tl_json_write(&b2, w);
    TL_ASSERT(b1.len == b2.len && memcmp(b1.p, b2.p, b1.len) == 0);
    tl_buf_fini(&b1);
    tl_buf_fini(&b2);
    tl_arena_free(a);
    return 0;
}
