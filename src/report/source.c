/* Where a report's answers come from, and where it goes over HTTP: the in-process query engine
 * (tl_query_run on the store), a running server's query API, and webhooks. The HTTP client is
 * libcurl (Debian's standard client library): TLS, proxies from the environment and timeouts
 * come with it, and reports are far from any hot path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <curl/curl.h>

#include "query.h"
#include "report/report_int.h"
#include "util/json.h"

int tl_report_query_local(void *ctx, tl_str query, tl_buf *answer, tl_err *err)
{
    const tl_report_local *l = ctx;
    tl_arena *a = tl_arena_new();
    tl_json *q = NULL;
    int rc = tl_json_parse(a, query.p, query.len, NULL, &q, err);
    if (!rc) rc = tl_query_run(l->st, l->p, q, a, answer, err);
    tl_arena_free(a);
    return rc;
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void tl_report_http_init(void)
{
    pthread_once(&g_curl_once, curl_init_once);
}

/* Bodies of answers are kept up to this size (query answers of a report are small). */
#define MAX_ANSWER (64u << 20)

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    tl_buf *b = ud;
    if (b->len + size * n > MAX_ANSWER) return 0; /* aborts the transfer */
    tl_buf_add(b, p, size * n);
    return size * n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    _Atomic int *cancel = ud;
    return cancel && *cancel ? 1 : 0;
}

/* One POST with a JSON body; the answer's body goes to *resp and its status to *status. */
static int post_json(const char *url, const char *shown, const char *bearer, tl_str body,
                     _Atomic int *cancel, long *status, tl_buf *resp, tl_err *err)
{
    tl_report_http_init();
    CURL *c = curl_easy_init();
    if (!c) return tl_err_set(err, TL_ENOMEM, "%s: cannot start an HTTP request", shown);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[TL_KEY_MAX + 32];
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.p ? body.p : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)TL_REPORT_HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tally-report");
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, cancel);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (cc == CURLE_ABORTED_BY_CALLBACK && cancel && *cancel)
        rc = tl_err_set(err, TL_ECANCELED, "%s: cancelled", shown);
    else if (cc != CURLE_OK)
        rc = tl_err_set(err, TL_EIO, "%s: %s", shown, curl_easy_strerror(cc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

int tl_report_query_http(void *ctx, tl_str query, tl_buf *answer, tl_err *err)
{
    const tl_report_remote *rm = ctx;
    char url[1200];
    size_t ul = strlen(rm->url);
    while (ul && rm->url[ul - 1] == '/')
        ul--;
    snprintf(url, sizeof url, "%.*s/api/v1/query", (int)ul, rm->url);
    long status = 0;
    tl_buf resp = TL_BUF_INIT;
    int rc = post_json(url, url, rm->key, query, NULL, &status, &resp, err);
    if (!rc && status != 200) {
        tl_arena *a = tl_arena_new();
        tl_json *j = NULL;
        tl_str msg = TL_STR_NULL;
        if (!tl_json_parse(a, resp.p ? resp.p : "", resp.len, NULL, &j, NULL))
            msg = tl_json_get_str(j, "error");
        rc = tl_err_set(err, status == 401 ? TL_EACCES : TL_EIO, "%s: status %ld%s%.*s", url,
                        status, msg.len ? ": " : "", (int)(msg.len > 160 ? 160 : msg.len),
                        msg.p ? msg.p : "");
        tl_arena_free(a);
    }
    if (!rc) tl_buf_add(answer, resp.p, resp.len);
    tl_buf_fini(&resp);
    return rc;
}

/* A webhook URL often holds its secret in the path or the query (Slack, Discord): messages
 * name only the scheme and host. */
static void redact(const char *url, char *out, size_t cap)
{
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t n = strcspn(h, "/?#");
    snprintf(out, cap, "%.*s", (int)(h - url + n), url);
}

int tl_report_post(const tl_report *r, const char *url, _Atomic int *cancel, tl_err *err)
{
    char shown[300] = "webhook ";
    redact(url, shown + 8, sizeof shown - 8);
    snprintf(shown + strlen(shown), sizeof shown - strlen(shown), "%s", "/…");
    tl_buf body = TL_BUF_INIT, resp = TL_BUF_INIT;
    tl_report_json(r, true, &body);
    long status = 0;
    int rc = post_json(url, shown, NULL, tl_buf_str(&body), cancel, &status, &resp, err);
    if (!rc && (status < 200 || status > 299))
        rc = tl_err_set(err, TL_EIO, "%s: status %ld", shown, status);
    tl_buf_fini(&body);
    tl_buf_fini(&resp);
    return rc;
}
