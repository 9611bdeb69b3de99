/* Configuration: one table drives command-line flags, the config file, TALLY_* environment
 * variables and --help (Redis static_configs[]). Parsed once into a const tl_config that is
 * passed down; nothing changes it afterwards.
 *
 * File syntax (tally.conf): `key = value` lines, `#` comments, and per-project sections:
 *   [project demo]
 *   timezone  = Asia/Kathmandu
 *   write_key = wk_demo
 *   read_key  = rk_demo
 * Precedence: defaults < file < environment < flags. */
#ifndef TL_CONFIG_H
#define TL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

#define TL_NAME_MAX 64
#define TL_KEY_MAX  128

typedef struct tl_project_conf {
    char name[TL_NAME_MAX];
    char timezone[TL_NAME_MAX];
    char write_key[TL_KEY_MAX];
    char read_key[TL_KEY_MAX];
    uint32_t session_gap_s; /* sessions: inactivity that ends a session */
    uint32_t retention_days;
    /* Scheduled reports (src/report.h): period "day"|"week"|"month" ("" = none), delivered
     * into report_dir and/or POSTed to report_webhook once the project's local time passes
     * report_hour (0-23) on the day after the period ends. */
    char report_period[8];
    uint8_t report_hour;
    char report_dir[512];
    char report_webhook[512];
    /* Enrichment (src/enrich.h). Zero values are the defaults. */
    uint8_t ip_mode;            /* TL_IP_DROP (default), TL_IP_TRUNCATE, TL_IP_KEEP */
    uint8_t bot_filter;         /* TL_BOTS_DEFAULT (the global bot_filter), _ON, _OFF */
    char deny_ips[1024];        /* CIDRs, separated by commas or spaces: filtered */
    char deny_referrers[1024];  /* hosts (and their subdomains), likewise: filtered */
    uint32_t session_timeout_s; /* sessions query: inactivity that ends a session (1800) */
} tl_project_conf;

/* What happens to a client IP after enrichment: dropped, truncated to its /24 (IPv4) or /48
 * (IPv6) network, or kept; truncated and kept IPs are stored as the property "$ip". */
enum { TL_IP_DROP = 0, TL_IP_TRUNCATE = 1, TL_IP_KEEP = 2 };
enum { TL_BOTS_DEFAULT = 0, TL_BOTS_ON = 1, TL_BOTS_OFF = 2 };

typedef struct tl_config {
    char data_dir[1024];
    char listen[256];
    char config_file[1024];
    int log_level;
    uint32_t threads;          /* HTTP and query worker threads */
    uint64_t max_body_bytes;   /* 413 above this (after decompression too) */
    uint32_t max_event_bytes;  /* one event's JSON */
    uint32_t max_string_bytes; /* any one string value */
    uint32_t max_props;        /* properties per event, after flattening */
    uint32_t max_depth;        /* nesting of an event's properties */
    uint32_t max_future_s;     /* events further in the future than this are rejected */
    uint64_t segment_bytes;    /* log segment size */
    uint32_t seal_rows;        /* rows in an open part before it is sealed */
    uint32_t checkpoint_ms;    /* the indexer seals and checkpoints at least this often */
    uint32_t cache_mb;         /* decompressed column cache */
    bool repair;               /* drop corrupt log data at start instead of refusing */
    uint32_t session_gap_s;    /* default for projects */
    uint32_t retention_days;   /* default for projects */
    bool enrich;               /* GeoIP, user agent and bot filter at ingest (src/enrich.h) */
    bool bot_filter;           /* default of projects: drop bots and headless browsers */
    /* mmdb files, comma-separated (the first that knows an IP wins); CIDRs of the proxies
     * whose X-Forwarded-For / Forwarded is believed. */
    char geoip_db[1024];
    char trusted_proxies[1024];
    tl_project_conf *projects; /* owned */
    uint32_t n_projects;
} tl_config;

/* Which settings a command reads (flags of other commands are refused). */
enum { TL_CFG_SERVE = 1, TL_CFG_CLIENT = 2 };

/* Fills c from defaults, the config file (--config or TALLY_CONFIG), the environment and the
 * flags in argv (which must all be known settings for `scope`); positional arguments are left
 * in *rest (n_rest). Returns 0, or TL_EINVAL with err naming the flag, file and line. */
int tl_config_load(tl_config *c, int scope, int argc, char **argv, char ***rest, int *n_rest,
                   tl_err *err) TL_MUST_USE;
void tl_config_fini(tl_config *c);
/* Prints the flags of `scope` with their defaults, environment names and help. */
void tl_config_print_help(FILE *f, int scope);
/* The project by name, or NULL. */
const tl_project_conf *tl_config_project(const tl_config *c, const char *name);
/* Adds a project (used for the generated `default` project). */
void tl_config_add_project(tl_config *c, const tl_project_conf *p);

#endif
