/* Writing a built report: the HTML document (inline CSS, charts as inline SVG drawn here, a
 * Content-Security-Policy that forbids every fetch, no scripts), the CSV tables and the JSON
 * summary. Every string that comes from data (event names, URLs, countries, the project
 * name) goes through tl_report_html_escape or tl_report_csv_field; numbers are formatted here.
 *
 * Why SVG generated in C: the report must open anywhere, offline, years later (an e-mail
 * attachment, a file share), so it cannot load a charting library; a line chart is a few
 * polylines, and fixed geometry makes its output testable point by point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "report/report_int.h"
#include "util/io.h"
#include "util/time.h"

/* ---- small pieces ---- */

tl_report_change tl_report_change_of(double cur, double prev)
{
    tl_report_change c = {cur, prev, cur - prev, 0, false};
    if (prev != 0) {
        c.pct = (cur - prev) / fabs(prev) * 100.0;
        c.has_pct = true;
    }
    return c;
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void tl_report_html_escape(tl_buf *b, tl_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0;
    while (i < s.len) {
        unsigned char c = p[i];
        size_t n = utf8_seq(p + i, s.len - i);
        if (!n) {
            tl_buf_adds(b, "\xEF\xBF\xBD");
            i++;
            continue;
        }
        if (n > 1) {
            tl_buf_add(b, p + i, n);
            i += n;
            continue;
        }
        i++;
        switch (c) {
        case '&': tl_buf_adds(b, "&amp;"); break;
        case '<': tl_buf_adds(b, "&lt;"); break;
        case '>': tl_buf_adds(b, "&gt;"); break;
        case '"': tl_buf_adds(b, "&quot;"); break;
        case '\'': tl_buf_adds(b, "&#39;"); break;
        default:
            if ((c >= 0x20 && c != 0x7F) || c == '\t' || c == '\n') tl_buf_addc(b, (char)c);
            break;
        }
    }
}

static void esc(tl_buf *b, const char *s)
{
    tl_report_html_escape(b, tl_str_c(s));
}

void tl_report_csv_field(tl_buf *b, tl_str s)
{
    bool formula = s.len && strchr("=+-@\t\r", s.p[0]);
    bool quote = false;
    for (size_t i = 0; i < s.len && !quote; i++)
        quote = s.p[i] == ',' || s.p[i] == '"' || s.p[i] == '\r' || s.p[i] == '\n';
    if (quote) tl_buf_addc(b, '"');
    if (formula) tl_buf_addc(b, '\'');
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] == '"') tl_buf_addc(b, '"');
        tl_buf_addc(b, s.p[i]);
    }
    if (quote) tl_buf_addc(b, '"');
}

double tl_report_nice_top(double max)
{
    if (!(max > 0) || !isfinite(max)) return 1;
    double p = pow(10, floor(log10(max)));
    static const double steps[] = {1, 2, 2.5, 5, 10};
    for (int k = 0; k < 5; k++) {
        /* a relative tolerance, so 300 with p = 100 stays 500 and 200 stays 200 */
        if (steps[k] * p >= max * (1 - 1e-12)) return steps[k] * p;
    }
    return 10 * p;
}

void tl_report__day_str(int64_t day, char *out)
{
    int64_t y;
    unsigned m, d;
    tl_civil_from_days(day, &y, &m, &d);
    snprintf(out, 16, "%04lld-%02u-%02u", (long long)y, m, d);
}

/* 1234567 → "1,234,567"; others with `dec` decimals. */
static void fmt_num(tl_buf *b, double v, int dec)
{
    if (!isfinite(v)) {
        tl_buf_adds(b, "–");
        return;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.*f", dec, fabs(v));
    char *dot = strchr(tmp, '.');
    size_t ilen = dot ? (size_t)(dot - tmp) : strlen(tmp);
    if (v < 0 && strspn(tmp, "0.") != strlen(tmp)) tl_buf_addc(b, '-');
    for (size_t i = 0; i < ilen; i++) {
        if (i && (ilen - i) % 3 == 0) tl_buf_addc(b, ',');
        tl_buf_addc(b, tmp[i]);
    }
    if (dot) tl_buf_adds(b, dot);
}

static void fmt_metric(tl_buf *b, double v, int fmt)
{
    switch (fmt) {
    case TL_RFMT_DEC: fmt_num(b, v, 1); break;
    case TL_RFMT_PCT:
        fmt_num(b, v * 100, 1);
        tl_buf_addc(b, '%');
        break;
    default: fmt_num(b, v, 0); break;
    }
}

/* ---- SVG ---- */

static const char *const g_palette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7"};

static double px(uint32_t i, uint32_t n)
{
    double w = TL_SVG_W - TL_SVG_L - TL_SVG_R;
    return n <= 1 ? TL_SVG_L + w / 2 : TL_SVG_L + (double)i * w / (double)(n - 1);
}

static double py(double v, double top)
{
    double h = TL_SVG_H - TL_SVG_T - TL_SVG_B;
    return TL_SVG_T + h * (1 - v / top);
}

static void axis_num(tl_buf *b, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        fmt_num(b, v, 0);
    else
        tl_buf_printf(b, "%.3g", v);
}

void tl_report_svg_line(tl_buf *b, const char *title, const tl_str *labels, uint32_t n,
                        const tl_report_series *s, uint32_t ns)
{
    double max = 0;
    for (uint32_t k = 0; k < ns; k++)
        for (uint32_t i = 0; i < n; i++)
            if (isfinite(s[k].v[i]) && s[k].v[i] > max) max = s[k].v[i];
    double top = tl_report_nice_top(max);
    tl_buf_printf(b, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\"><title>", TL_SVG_W,
                  TL_SVG_H);
    esc(b, title);
    tl_buf_adds(b, "</title>\n<g class=\"grid\">");
    for (int g = 0; g <= 4; g++) {
        double v = top * g / 4, y = py(v, top);
        tl_buf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", TL_SVG_L, y,
                      TL_SVG_W - TL_SVG_R, y);
        tl_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", TL_SVG_L - 6, y + 4);
        axis_num(b, v);
        tl_buf_adds(b, "</text>");
    }
    tl_buf_adds(b, "</g>\n<g class=\"xlab\">");
    uint32_t step = n > 8 ? (n + 7) / 8 : 1;
    for (uint32_t i = 0; i < n; i += step) {
        tl_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", px(i, n),
                      TL_SVG_H - TL_SVG_B + 16);
        tl_report_html_escape(b, labels[i]);
        tl_buf_adds(b, "</text>");
    }
    tl_buf_adds(b, "</g>\n");
    for (uint32_t k = 0; k < ns; k++) {
        const char *col = g_palette[k % 4];
        const char *dash = s[k].dashed ? " stroke-dasharray=\"6 4\"" : "";
        uint32_t i = 0;
        while (i < n) {
            while (i < n && !isfinite(s[k].v[i]))
                i++;
            uint32_t j = i;
            while (j < n && isfinite(s[k].v[j]))
                j++;
            if (j - i == 1) {
                tl_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                              px(i, n), py(s[k].v[i], top), col);
            } else if (j > i) {
                tl_buf_printf(b,
                              "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
                              "points=\"",
                              col, dash);
                for (uint32_t t = i; t < j; t++)
                    tl_buf_printf(b, "%s%.1f,%.1f", t > i ? " " : "", px(t, n), py(s[k].v[t], top));
                tl_buf_adds(b, "\"/>\n");
            }
            i = j;
        }
    }
    tl_buf_adds(b, "<g class=\"legend\">");
    for (uint32_t k = 0; k < ns; k++) {
        int x = TL_SVG_L + (int)k * 180;
        tl_buf_printf(b,
                      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                      "stroke-width=\"2\"%s/><text x=\"%d\" y=\"%d\">",
                      x, TL_SVG_H - 10, x + 24, TL_SVG_H - 10, g_palette[k % 4],
                      s[k].dashed ? " stroke-dasharray=\"6 4\"" : "", x + 30, TL_SVG_H - 6);
        esc(b, s[k].name);
        tl_buf_adds(b, "</text>");
    }
    tl_buf_adds(b, "</g></svg>\n");
}

/* ---- HTML ---- */

static const char g_css[] =
    ":root{--fg:#1b1f24;--muted:#5b6570;--bg:#fff;--card:#f5f7f9;--line:#d8dee4;"
    "--up:#0072B2;--down:#D55E00}"
    "@media (prefers-color-scheme:dark){:root{--fg:#e6e9ec;--muted:#9aa4ae;--bg:#15181b;"
    "--card:#1e2226;--line:#30363d;--up:#56B4E9;--down:#E69F00}}"
    "*{box-sizing:border-box}"
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);"
    "background:var(--bg);margin:0 auto;max-width:1100px;padding:24px}"
    "h1{font-size:26px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}"
    ".sub{color:var(--muted);margin:0}"
    ".kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px;"
    "margin-top:20px}"
    ".kpi{background:var(--card);border-radius:8px;padding:12px 14px}"
    ".kpi h3{font-size:13px;font-weight:600;color:var(--muted);margin:0}"
    ".kpi .v{font-size:26px;font-weight:650;margin:2px 0}"
    ".kpi p{margin:0;font-size:13px}.muted{color:var(--muted)}"
    ".up{color:var(--up)}.down{color:var(--down)}"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}"
    "svg.chart{width:100%;height:auto;background:var(--card);border-radius:8px}"
    "svg.chart text{font-size:11px;fill:var(--muted)}"
    "svg.chart .grid line{stroke:var(--line);stroke-width:1}"
    ".tables{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:16px}"
    "table{border-collapse:collapse;width:100%;font-size:14px}"
    "th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right}"
    "th:first-child,td:first-child{text-align:left;word-break:break-all}"
    "th{font-weight:600;color:var(--muted)}"
    ".bar{display:block;height:3px;background:var(--up);border-radius:2px;margin-top:2px}"
    "footer{color:var(--muted);font-size:12px;margin-top:32px}";

static void put_change(tl_buf *b, const tl_report_change *c, int fmt)
{
    const char *cls = c->abs > 0 ? "up" : c->abs < 0 ? "down" : "muted";
    const char *arrow = c->abs > 0 ? "▲ " : c->abs < 0 ? "▼ " : "";
    tl_buf_printf(b, "<span class=\"%s\">%s", cls, arrow);
    if (c->abs > 0) tl_buf_addc(b, '+');
    if (fmt == TL_RFMT_PCT) {
        fmt_num(b, c->abs * 100, 1);
        tl_buf_adds(b, " pts");
    } else {
        fmt_metric(b, c->abs, fmt);
    }
    if (c->has_pct) {
        tl_buf_adds(b, " (");
        if (c->pct > 0) tl_buf_addc(b, '+');
        fmt_num(b, c->pct, 1);
        tl_buf_adds(b, "%)");
    } else if (c->cur != 0) {
        tl_buf_adds(b, " (new)");
    }
    tl_buf_adds(b, "</span>");
}

static void put_row_name(tl_buf *b, const tl_report_row *w)
{
    if (w->kind == TL_RROW_NULL)
        tl_buf_adds(b, "<span class=\"muted\">(not set)</span>");
    else if (w->kind == TL_RROW_OTHER)
        tl_buf_adds(b, "<span class=\"muted\">(all other values)</span>");
    else
        tl_report_html_escape(b, w->name);
}

static const char *period_word(tl_report_period p)
{
    return p == TL_REPORT_DAY ? "Daily" : p == TL_REPORT_WEEK ? "Weekly" : "Monthly";
}

static void put_range(tl_buf *b, int64_t first, int64_t last)
{
    char f[16], l[16];
    tl_report__day_str(first, f);
    tl_report__day_str(last, l);
    if (first == last)
        tl_buf_adds(b, f);
    else
        tl_buf_printf(b, "%s – %s", f, l);
}

static void put_table(tl_buf *b, const tl_report *r, int t)
{
    const tl_report_tdef *d = &tl_report__tables[t];
    const tl_report_table *tb = &r->t[t];
    tl_buf_adds(b, "<section><h2>");
    esc(b, d->title);
    tl_buf_adds(b, "</h2>");
    if (!tb->n) {
        tl_buf_adds(b, "<p class=\"muted\">No data in either period.</p></section>\n");
        return;
    }
    tl_buf_adds(b, "<table><thead><tr><th>");
    esc(b, d->key_title);
    tl_buf_adds(b, "</th><th>");
    esc(b, d->value_title);
    tl_buf_adds(b, "</th><th>Previous</th><th>Change</th></tr></thead><tbody>\n");
    double max = 0;
    for (uint32_t i = 0; i < tb->n; i++)
        if (tb->rows[i].ch.cur > max) max = tb->rows[i].ch.cur;
    uint32_t shown = 0;
    for (uint32_t i = 0; i < tb->n && shown < TL_REPORT_TOP_N; i++) {
        const tl_report_row *w = &tb->rows[i];
        if (w->kind == TL_RROW_OTHER) continue;
        shown++;
        tl_buf_adds(b, "<tr><td>");
        put_row_name(b, w);
        tl_buf_printf(b, "<span class=\"bar\" style=\"width:%.1f%%\"></span></td><td>",
                      max > 0 ? 100.0 * w->ch.cur / max : 0.0);
        fmt_num(b, w->ch.cur, 0);
        tl_buf_adds(b, "</td><td>");
        fmt_num(b, w->ch.prev, 0);
        tl_buf_adds(b, "</td><td>");
        put_change(b, &w->ch, TL_RFMT_INT);
        tl_buf_adds(b, "</td></tr>\n");
    }
    tl_buf_adds(b, "</tbody></table>");
    if (tb->n > shown)
        tl_buf_printf(b, "<p class=\"muted\">%u more rows in %s.csv.</p>", tb->n - shown, d->id);
    tl_buf_adds(b, "</section>\n");
}

void tl_report_html(const tl_report *r, tl_buf *b)
{
    const char *pw = tl_report_period_name(r->per);
    char gen[40];
    tl_iso_format(r->generated_ms, gen);
    tl_buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
                   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                   "style-src 'unsafe-inline'\">\n<title>");
    tl_buf_printf(b, "%s report: ", period_word(r->per));
    esc(b, r->project);
    tl_buf_adds(b, ", ");
    put_range(b, r->first, r->last);
    tl_buf_printf(b, "</title>\n<style>%s</style></head>\n<body>\n<header><h1>", g_css);
    esc(b, r->project);
    tl_buf_printf(b, "</h1><p class=\"sub\">%s report · <strong>", period_word(r->per));
    put_range(b, r->first, r->last);
    tl_buf_adds(b, "</strong> compared with ");
    put_range(b, r->pfirst, r->plast);
    tl_buf_adds(b, " · dates in ");
    if (r->tz[0])
        esc(b, r->tz);
    else
        tl_buf_adds(b, "the project's time zone");
    tl_buf_adds(b, "</p></header>\n<section class=\"kpis\">\n");
    for (int m = 0; m < TL_RM_N; m++) {
        const tl_report_mdef *d = &tl_report__metrics[m];
        tl_buf_adds(b, "<div class=\"kpi\"><h3 title=\"");
        esc(b, d->help);
        tl_buf_adds(b, "\">");
        esc(b, d->title);
        tl_buf_adds(b, "</h3><p class=\"v\">");
        fmt_metric(b, r->m[m].cur, d->fmt);
        tl_buf_adds(b, "</p><p>");
        put_change(b, &r->m[m], d->fmt);
        tl_buf_adds(b, "</p><p class=\"muted\">previous ");
        fmt_metric(b, r->m[m].prev, d->fmt);
        tl_buf_adds(b, "</p></div>\n");
    }
    tl_buf_adds(b, "</section>\n<section class=\"charts\">\n");
    const char *unit = r->per == TL_REPORT_DAY ? "hour" : "day";
    char t1[64], t2[64];
    snprintf(t1, sizeof t1, "Events per %s", unit);
    snprintf(t2, sizeof t2, "Persons per %s", unit);
    char cn[48], pn[48];
    snprintf(cn, sizeof cn, "this %s", pw);
    snprintf(pn, sizeof pn, "previous %s", pw);
    tl_report_series s1[2] = {{cn, r->events[0], false}, {pn, r->events[1], true}};
    tl_report_series s2[2] = {{cn, r->persons[0], false}, {pn, r->persons[1], true}};
    /* x labels without the date parts the header already gives */
    tl_str lab[32];
    for (uint32_t i = 0; i < r->n_pts && i < 32; i++) {
        lab[i] = r->labels[0][i];
        if (lab[i].len == 10) lab[i] = (tl_str){lab[i].p + 5, 5};  /* 2026-11-16 → 11-16 */
        if (lab[i].len == 16) lab[i] = (tl_str){lab[i].p + 11, 5}; /* …T13:00 → 13:00 */
    }
    uint32_t np = r->n_pts < 32 ? r->n_pts : 32;
    tl_buf_printf(b, "<div><h2>%s</h2>", t1);
    tl_report_svg_line(b, t1, lab, np, s1, 2);
    tl_buf_printf(b, "</div><div><h2>%s</h2>", t2);
    tl_report_svg_line(b, t2, lab, np, s2, 2);
    tl_buf_adds(b, "</div></section>\n<div class=\"tables\">\n");
    for (int t = 0; t < TL_RT_N; t++)
        put_table(b, r, t);
    tl_buf_printf(b,
                  "</div>\n<footer>Generated by tally at %s. Every number is a trends query "
                  "of the API (POST /api/v1/query) over the same dates; persons are distinct "
                  "people after identity merges. Tables show the top %d rows; the CSV files "
                  "next to this page have them all.</footer>\n</body></html>\n",
                  gen, TL_REPORT_TOP_N);
}

/* ---- CSV ---- */

static void csv_num(tl_buf *b, double v)
{
    if (isfinite(v)) tl_buf_json_num(b, v);
}

static void csv_change(tl_buf *b, const tl_report_change *c)
{
    csv_num(b, c->cur);
    tl_buf_addc(b, ',');
    csv_num(b, c->prev);
    tl_buf_addc(b, ',');
    csv_num(b, c->abs);
    tl_buf_addc(b, ',');
    if (c->has_pct) csv_num(b, c->pct);
    tl_buf_adds(b, "\r\n");
}

static void csv_overview(const tl_report *r, tl_buf *b)
{
    tl_buf_adds(b, "metric,value,previous,change,change_pct\r\n");
    for (int m = 0; m < TL_RM_N; m++) {
        tl_buf_adds(b, tl_report__metrics[m].id);
        tl_buf_addc(b, ',');
        csv_change(b, &r->m[m]);
    }
}

static void csv_series(const tl_report *r, tl_buf *b)
{
    tl_buf_adds(b, "bucket,events,persons,previous_bucket,previous_events,previous_persons\r\n");
    for (uint32_t i = 0; i < r->n_pts; i++) {
        for (int k = 0; k < 2; k++) {
            if (k) tl_buf_addc(b, ',');
            tl_report_csv_field(b, r->labels[k][i]);
            tl_buf_addc(b, ',');
            csv_num(b, r->events[k][i]);
            tl_buf_addc(b, ',');
            csv_num(b, r->persons[k][i]);
        }
        tl_buf_adds(b, "\r\n");
    }
}

static void csv_table(const tl_report *r, int t, tl_buf *b)
{
    const tl_report_tdef *d = &tl_report__tables[t];
    tl_buf_printf(b, "%s,value,previous,change,change_pct\r\n", d->prop);
    for (uint32_t i = 0; i < r->t[t].n; i++) {
        const tl_report_row *w = &r->t[t].rows[i];
        if (w->kind == TL_RROW_OTHER)
            tl_buf_adds(b, "$other");
        else
            tl_report_csv_field(b, w->name);
        tl_buf_addc(b, ',');
        csv_change(b, &w->ch);
    }
}

/* ---- JSON ---- */

static void json_change(tl_buf *b, const tl_report_change *c)
{
    tl_buf_adds(b, "{\"value\":");
    tl_buf_json_num(b, c->cur);
    tl_buf_adds(b, ",\"previous\":");
    tl_buf_json_num(b, c->prev);
    tl_buf_adds(b, ",\"change\":");
    tl_buf_json_num(b, c->abs);
    tl_buf_adds(b, ",\"change_pct\":");
    if (c->has_pct)
        tl_buf_json_num(b, c->pct);
    else
        tl_buf_adds(b, "null");
    tl_buf_addc(b, '}');
}

static void json_day(tl_buf *b, const char *name, int64_t day)
{
    char s[16];
    tl_report__day_str(day, s);
    tl_buf_printf(b, "\"%s\":\"%s\"", name, s);
}

void tl_report_json(const tl_report *r, bool html, tl_buf *b)
{
    char gen[40];
    tl_iso_format(r->generated_ms, gen);
    tl_buf_adds(b, "{\"project\":");
    tl_buf_json_str(b, tl_str_c(r->project));
    tl_buf_printf(b, ",\"period\":\"%s\",", tl_report_period_name(r->per));
    json_day(b, "from", r->first);
    tl_buf_addc(b, ',');
    json_day(b, "to", r->last);
    tl_buf_addc(b, ',');
    json_day(b, "previous_from", r->pfirst);
    tl_buf_addc(b, ',');
    json_day(b, "previous_to", r->plast);
    tl_buf_adds(b, ",\"tz\":");
    if (r->tz[0])
        tl_buf_json_str(b, tl_str_c(r->tz));
    else
        tl_buf_adds(b, "null");
    tl_buf_printf(b, ",\"generated_at\":\"%s\",\"metrics\":{", gen);
    for (int m = 0; m < TL_RM_N; m++) {
        tl_buf_printf(b, "%s\"%s\":", m ? "," : "", tl_report__metrics[m].id);
        json_change(b, &r->m[m]);
    }
    tl_buf_adds(b, "},\"tables\":{");
    for (int t = 0; t < TL_RT_N; t++) {
        tl_buf_printf(b, "%s\"%s\":[", t ? "," : "", tl_report__tables[t].id);
        uint32_t shown = 0;
        for (uint32_t i = 0; i < r->t[t].n && shown < TL_REPORT_TOP_N; i++) {
            const tl_report_row *w = &r->t[t].rows[i];
            if (w->kind == TL_RROW_OTHER) continue;
            tl_buf_adds(b, shown++ ? ",{\"name\":" : "{\"name\":");
            if (w->kind == TL_RROW_NULL)
                tl_buf_adds(b, "null");
            else
                tl_buf_json_str(b, w->name);
            tl_buf_adds(b, ",\"change\":");
            json_change(b, &w->ch);
            tl_buf_addc(b, '}');
        }
        tl_buf_addc(b, ']');
    }
    tl_buf_addc(b, '}');
    if (html) {
        tl_buf h = TL_BUF_INIT;
        tl_report_html(r, &h);
        tl_buf_adds(b, ",\"html\":");
        tl_buf_json_str(b, tl_buf_str(&h));
        tl_buf_fini(&h);
    }
    tl_buf_addc(b, '}');
}

/* ---- files ---- */

static int put_file(const char *dir, const char *name, tl_buf *b, tl_err *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = tl_write_file_atomic(path, b->p ? b->p : "", b->len);
    b->len = 0;
    if (rc) return tl_err_set(err, rc, "%s: %s", path, tl_strerror(rc));
    return 0;
}

int tl_report_write_dir(const tl_report *r, const char *dir, tl_err *err)
{
    int rc = tl_mkdir_p(dir);
    if (rc) return tl_err_set(err, rc, "%s: %s", dir, tl_strerror(rc));
    tl_buf b = TL_BUF_INIT;
    tl_report_html(r, &b);
    rc = put_file(dir, "report.html", &b, err);
    if (!rc) {
        tl_report_json(r, false, &b);
        tl_buf_addc(&b, '\n');
        rc = put_file(dir, "summary.json", &b, err);
    }
    if (!rc) {
        csv_overview(r, &b);
        rc = put_file(dir, "overview.csv", &b, err);
    }
    if (!rc) {
        csv_series(r, &b);
        rc = put_file(dir, "series.csv", &b, err);
    }
    for (int t = 0; t < TL_RT_N && !rc; t++) {
        char name[64];
        snprintf(name, sizeof name, "%s.csv", tl_report__tables[t].id);
        csv_table(r, t, &b);
        rc = put_file(dir, name, &b, err);
    }
    tl_buf_fini(&b);
    return rc;
}
