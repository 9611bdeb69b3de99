/* The dashboard's assets as compiled into the binary: the table that web/build.mjs generates
 * into build/gen/web_assets.c (mk/web.mk), read by the web router (web.c). */
#ifndef TL_WEB_H
#define TL_WEB_H

#include <stdbool.h>
#include <stddef.h>

/* One file of the built dashboard. path is the URL path ("/index.html", "/assets/x-HASH.js");
 * etag is a quoted strong validator of the content; gz is the gzip form (NULL when it is not
 * smaller); immutable is true for content-hashed names. */
typedef struct tl_web_asset {
    const char *path;
    const char *ctype;
    const char *etag;
    const unsigned char *data;
    size_t len;
    const unsigned char *gz;
    size_t gz_len;
    bool immutable;
} tl_web_asset;

/* The generated table (read-only, any thread). */
extern const tl_web_asset tl_web_assets[];
extern const size_t tl_web_n_assets;

#endif
