/* Fuzz target for reports: a report built from a server's answers (untrusted bytes with
 * `tally report --server`) never crashes, and whatever they hold, the HTML and the summary
 * cannot carry markup: the input is every query's answer, the report is built and rendered,
 * and the HTML must hold no "<script" and the JSON summary must parse. The input itself also
 * goes through the HTML escaper (output: valid UTF-8 without < > " ') and the CSV field
 * writer. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz {
    const char *p;
    size_t len;
} fz;

static int answer(void *ctx, tl_str query, tl_buf *out, tl_err *err)
{
    const fz *f = ctx;
    tl_buf_add(out, f->p, f->len);
    return 0;
}

static bool has_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && (hay[i + k] | 0x20) == needle[k])
            k++;
        if (k == m) return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {(const char *)data, size};
    tl_buf b = TL_BUF_INIT;
    tl_report_html_escape(&b, (tl_str){f.p, f.len});
    TL_ASSERT(tl_utf8_valid(b.p ? b.p : "", b.len));
    for (size_t i = 0; i < b.len; i++)
        TL_ASSERT(b.p[i] != '<' && b.p[i] != '>' && b.p[i] != '"' && b.p[i] != '\'');
    b.len = 0;
    tl_report_csv_field(&b, (tl_str){f.p, f.len});
    TL_ASSERT(b.len >= f.len);
    tl_buf_fini(&b);

    tl_report_src src = {answer, &f};
    int64_t today = 0;
    if (tl_report_today(&src, "demo", 0, &today, NULL)) today = 0; /* any date will do */
    tl_report *r = NULL;
    tl_report_period per = (tl_report_period)(size % 3);
    if (tl_report_build(&src, "demo", "UTC", per, 20000, &r, NULL) == 0) {
        tl_buf h = TL_BUF_INIT;
        tl_report_html(r, &h);
        TL_ASSERT(!has_ci(h.p, h.len, "<script"));
        tl_buf_fini(&h);
        tl_report_json(r, true, &h);
        tl_arena *a = tl_arena_new();
        tl_json *j = NULL;
        TL_ASSERT(tl_json_parse(a, h.p, h.len, NULL, &j, NULL) == 0);
        tl_arena_free(a);
        tl_buf_fini(&h);
        tl_report_free(r);
    }
    return 0;
}
