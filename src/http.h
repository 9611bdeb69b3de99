/* The HTTP server (libmicrohttpd): ingestion endpoints, the query API, health and metrics.
 * Handlers parse with ingest, append to the log (answering only once durable) and answer
 * queries from store snapshots. */
#ifndef TL_HTTP_H
#define TL_HTTP_H

#include <stdint.h>

#include "config.h"
#include "index.h"
#include "log.h"
#include "store.h"
#include "util/err.h"

typedef struct tl_http tl_http;

/* Starts listening on cfg->listen ("HOST:PORT"; port 0 picks a free port). Borrows every
 * argument for the server's lifetime. Returns a new server (free with tl_http_stop). */
int tl_http_start(const tl_config *cfg, tl_log *log, tl_index *ix, tl_store *st, tl_http **out,
                  tl_err *err) TL_MUST_USE;
/* The port actually bound. */
uint16_t tl_http_port(const tl_http *h);
void tl_http_stop(tl_http *h);

#endif
