/* Bot and device-type rules on top of uap-core: a compact list of crawler and headless-browser
 * markers (uap's "Spider" device family catches most crawlers; this list adds the ones it
 * misses and the headless browsers it calls ordinary Chrome), the HTTP client libraries that
 * are NOT bots for an ingest API (server-side SDKs and backends send with them, and uap calls
 * some of them spiders), and the mapping from uap's answer to desktop/mobile/tablet/bot.
 * All matching is ASCII case-insensitive on the raw user agent. */
#include <string.h>

#include "enrich.h"
#include "enrich/enrich_int.h"

/* ASCII case-insensitive substring search (needle is lower case). */
static bool has(tl_str hay, const char *needle)
{
    size_t n = strlen(needle);
    if (n > hay.len) return false;
    for (size_t i = 0; i + n <= hay.len; i++) {
        size_t j = 0;
        while (j < n) {
            char c = hay.p[i + j];
            if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (c != needle[j]) break;
            j++;
        }
        if (j == n) return true;
    }
    return false;
}

static bool starts(tl_str s, const char *pre)
{
    size_t n = strlen(pre);
    if (n > s.len) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != pre[i]) return false;
    }
    return true;
}

/* Headless and automated browsers. */
static const char *const g_headless[] = {
    "headlesschrome", "headless chrome", "phantomjs", "slimerjs", "chrome-lighthouse", "puppeteer",
    "playwright",     "selenium",        "webdriver", "cypress",  "htmlunit",
};

/* Crawler, preview and monitoring markers. "bot" alone would hit phone models (Cubot), so
 * only its usual endings count. */
static const char *const g_bots[] = {
    "bot/",
    "bot;",
    "bot)",
    "bot-",
    "bot+",
    "crawler",
    "spider",
    "slurp",
    "+http",
    "facebookexternalhit",
    "mediapartners-google",
    "adsbot",
    "feedfetcher",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "gtmetrix",
    "ia_archiver",
    "archive.org",
    "bingpreview",
    "yandex",
    "baiduspider",
    "bytespider",
    "petalbot",
    "semrush",
    "ahrefs",
    "mj12bot",
    "dotbot",
    "gptbot",
    "ccbot",
    "claudebot",
    "perplexitybot",
    "applebot",
    "duckduckbot",
    "telegrambot",
    "discordbot",
    "slackbot",
    "twitterbot",
    "linkedinbot",
    "whatsapp",
    "skypeuripreview",
    "embedly",
    "quora link preview",
    "outbrain",
    "screaming frog",
};

int tl_enrich__bot_by_list(tl_str ua)
{
    for (size_t i = 0; i < sizeof g_headless / sizeof *g_headless; i++)
        if (has(ua, g_headless[i])) return TL_FILTER_HEADLESS;
    for (size_t i = 0; i < sizeof g_bots / sizeof *g_bots; i++)
        if (has(ua, g_bots[i])) return TL_FILTER_BOT;
    return TL_FILTER_NONE;
}

/* User agents that start with these are HTTP client libraries. */
static const char *const g_libs[] = {
    "python-urllib",
    "python-requests",
    "python-httpx",
    "aiohttp",
    "java/",
    "okhttp",
    "curl/",
    "wget/",
    "go-http-client",
    "node-fetch",
    "node",
    "axios/",
    "undici",
    "got ",
    "got/",
    "winhttp",
    "google-http-java-client",
    "apache-httpclient",
    "libwww-perl",
    "ruby",
    "faraday",
    "guzzlehttp",
    "dart/",
    "cfnetwork",
    "dalvik/",
    "posthog",
    "analytics",
    "snowplow",
    "segment",
    "tally",
};

bool tl_enrich__http_library(tl_str ua)
{
    for (size_t i = 0; i < sizeof g_libs / sizeof *g_libs; i++)
        if (starts(ua, g_libs[i])) return true;
    return false;
}

/* Operating systems of phones (and tablets, told apart below). */
static bool mobile_os(const char *os)
{
    static const char *const m[] = {"iOS",           "Android", "Windows Phone",
                                    "BlackBerry OS", "KaiOS",   "Symbian OS",
                                    "Firefox OS",    "Tizen",   "HarmonyOS"};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (!strcmp(os, m[i])) return true;
    return false;
}

const char *tl_enrich__device_type(const tl_uap_result *r, tl_str ua)
{
    if (!strcmp(r->device, "Spider")) return "bot";
    if (strstr(r->device, "iPad") || strstr(r->device, "Tablet") || strstr(r->device, "Kindle") ||
        has(ua, "ipad") || has(ua, "tablet") || has(ua, "kindle") || has(ua, "silk/") ||
        (!strcmp(r->os, "Android") && !has(ua, "mobi")))
        return "tablet";
    if (mobile_os(r->os) || has(ua, "mobi") || has(ua, "iphone") ||
        (r->device[0] && strcmp(r->device, "Mac") && strncmp(r->device, "Generic_Inettv", 14)))
        return "mobile";
    return "desktop";
}
