/* JSON: a strict RFC 8259 parser into an arena-allocated tree, used for request bodies, query
 * bodies and the config-adjacent files. Strings are validated UTF-8 and unescaped; unescaped
 * strings point into the input, which must outlive the tree. Output is written with
 * tl_buf_json_str / tl_buf_json_num (util/buf.h). */
#ifndef TL_JSON_H
#define TL_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/err.h"
#include "util/str.h"

typedef enum tl_jtype {
    TL_JNULL,
    TL_JFALSE,
    TL_JTRUE,
    TL_JNUM,
    TL_JSTR,
    TL_JARR,
    TL_JOBJ,
} tl_jtype;

typedef struct tl_json tl_json;
struct tl_json {
    tl_jtype type;
    uint32_t n;     /* number of children (array elements or object members) */
    tl_str key;     /* member name, when this node is an object member */
    tl_str str;     /* TL_JSTR: the unescaped value; TL_JNUM: the number's source text;
                       TL_JARR/TL_JOBJ: the source from the opening bracket to the closing
                       one (the value's byte extent, e.g. for per-event size limits) */
    double num;     /* TL_JNUM */
    tl_json *child; /* first element or member */
    tl_json *next;  /* next sibling */
};

typedef struct tl_json_opts {
    uint32_t max_depth; /* nesting limit; 0 means 64 */
    uint32_t max_nodes; /* total value limit; 0 means unlimited */
} tl_json_opts;

/* Parses exactly one JSON value (surrounding white space allowed) from [p, p+len). Returns 0
 * and sets *out (allocated in a), or TL_EINVAL with err naming the byte offset and problem,
 * or TL_E2BIG when a limit is exceeded. */
int tl_json_parse(tl_arena *a, const char *p, size_t len, const tl_json_opts *opts, tl_json **out,
                  tl_err *err) TL_MUST_USE;

/* Member of an object by name (first match), or NULL; NULL-safe on obj. */
const tl_json *tl_json_get(const tl_json *obj, const char *key);
/* String member or TL_STR_NULL when absent or not a string. */
tl_str tl_json_get_str(const tl_json *obj, const char *key);
/* Name of a type for error messages: "string", "number", ... */
const char *tl_json_type_name(tl_jtype t);
/* Writes v back as compact JSON. */
struct tl_buf;
void tl_json_write(struct tl_buf *b, const tl_json *v);

#endif
