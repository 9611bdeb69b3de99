// Trends: metric, event, filters, breakdown, interval, range, zone; line or bar; the table
// under it; compare with the previous period. Every setting is in the URL.
import { h, field, select, table, pct, empty } from "../ui.js";
import { timeChart } from "../chart.js";
import { query } from "../api.js";
import { params, setParams, jsonParam } from "../state.js";
import { previousRange } from "../dates.js";
import { rangeFields, tzField, filtersEditor, suggestInput, propInput } from "../controls.js";
import { header, run, range, tzOf, pinButton } from "./common.js";

const METRICS = [["events", "Events"], ["persons", "Persons (distinct)"], ["wau", "Weekly active (7 days)"], ["mau", "Monthly active (30 days)"], ["sum", "Sum of a property"], ["avg", "Average of a property"], ["stickiness", "Stickiness (active buckets per person)"], ["lifecycle", "Lifecycle (new, returning, resurrecting, dormant)"]];
// Metrics that answer other columns than [bucket, (breakdown,) value]: no breakdown, no compare.
const SHAPED = new Set(["stickiness", "lifecycle"]);
const INTERVALS = [["hour", "Hour"], ["day", "Day"], ["week", "Week"], ["month", "Month"]];

export function trendsQuery(p) {
  const r = range(p);
  const metric = p.metric === "sum" || p.metric === "avg" ? `${p.metric}:${p.prop || "properties.value"}` : p.metric || "events";
  const q = { kind: "trends", metric, interval: p.interval || "day", from: r.from, to: r.to, tz: tzOf(p) };
  if (p.event) q.event = p.event;
  const where = jsonParam(p.where, []);
  if (where.length) q.where = where;
  if (p.breakdown && !SHAPED.has(p.metric)) q.breakdown = p.breakdown;
  return q;
}

export function describe(p) {
  const m = METRICS.find((x) => x[0] === (p.metric || "events"));
  const what = p.metric === "sum" || p.metric === "avg" ? `${m[1].toLowerCase()} ${p.prop || "properties.value"}` : m[1].toLowerCase();
  const where = jsonParam(p.where, []);
  return `${what[0].toUpperCase() + what.slice(1)} of ${p.event ? `“${p.event}”` : "all events"}${where.length ? ` where ${where.map((f) => `${f.prop} ${f.op}${f.value !== undefined ? " " + (Array.isArray(f.value) ? f.value.join("|") : f.value) : ""}`).join(" and ")}` : ""}${p.breakdown ? `, by ${p.breakdown}` : ""}, per ${p.interval || "day"}`;
}

export function renderTrends(area, p, ans, prev, { compact = false } = {}) {
  const q = trendsQuery(p);
  const caption = `${describe(p)} · ${q.from} – ${q.to} · time zone ${q.tz}`;
  if (!ans.rows.length || ans.rows.every((r) => !r[r.length - 1])) area.append(empty("No events match this query in this range.", "Widen the date range or remove a filter."));
  const bd = ans.columns.length === 3 && ans.columns[0] === "bucket" && !SHAPED.has(p.metric);
  let labels, series, cols, rows;
  if (SHAPED.has(p.metric) || ans.columns[0] !== "bucket") {
    // stickiness: [days, persons] (persons active in exactly k buckets); lifecycle: [bucket,
    // new, returning, resurrecting, dormant] (dormant negative).
    labels = ans.rows.map((r) => String(r[0]));
    series = ans.columns.slice(1).map((c, i) => ({ label: c, values: ans.rows.map((r) => r[i + 1]) }));
    cols = ans.columns;
    rows = ans.rows;
    const what = p.metric === "stickiness" ? `Persons by the number of ${ans.columns[0]} they were active in` : "Persons per bucket: new, returning, resurrecting; dormant (negative) left after the previous bucket";
    area.append(timeChart({ labels: p.metric === "stickiness" ? labels.map((k) => `${k} ${ans.columns[0]}`) : labels, series, kind: p.chart === "line" ? "line" : "bar", caption: `${what} · ${p.event ? `“${p.event}”` : "all events"} · ${q.from} – ${q.to} · time zone ${q.tz}`, height: compact ? 200 : 320, testid: "trend-chart" }));
    if (!compact) area.append(table(cols, rows, { filename: `tally-${p.metric}.csv` }));
    return { labels, series };
  }
  if (!bd) {
    labels = ans.rows.map((r) => r[0]);
    series = [{ label: q.metric, values: ans.rows.map((r) => r[1]) }];
    cols = ["bucket", q.metric];
    rows = ans.rows.map((r) => [r[0], r[1]]);
    if (prev) {
      series.push({ label: "previous period", values: labels.map((_, i) => (prev.rows[i] ? prev.rows[i][1] : null)), dash: true });
      cols.push("previous bucket", "previous", "change");
      rows = rows.map((r, i) => {
        const pv = prev.rows[i] ? prev.rows[i][1] : null;
        return [...r, prev.rows[i] ? prev.rows[i][0] : null, pv, pv ? (r[1] - pv) / pv : null];
      });
    }
  } else {
    labels = [...new Set(ans.rows.map((r) => r[0]))];
    const idx = new Map(labels.map((l, i) => [l, i]));
    const tot = new Map();
    for (const r of ans.rows) tot.set(r[1], (tot.get(r[1]) || 0) + r[2]);
    const top = [...tot.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map((e) => e[0]);
    series = top.map((v) => {
      const vals = labels.map(() => 0);
      for (const r of ans.rows) if (r[1] === v) vals[idx.get(r[0])] = r[2];
      return { label: v === null || v === "" ? "(none)" : String(v), values: vals };
    });
    cols = ["bucket", p.breakdown, q.metric];
    rows = ans.rows;
    if (prev) {
      // The same value in the bucket at the same position of the previous period.
      const pl = [...new Set(prev.rows.map((r) => r[0]))];
      const pv = new Map(prev.rows.map((r) => [pl.indexOf(r[0]) + "\u0000" + r[1], r]));
      cols = [...cols, "previous bucket", "previous", "change"];
      rows = rows.map((r) => {
        const o = pv.get(idx.get(r[0]) + "\u0000" + r[1]);
        const v = o ? o[2] : null;
        return [...r, pl[idx.get(r[0])] ?? null, v, v ? (r[2] - v) / v : null];
      });
    }
  }
  const note = bd && tot8(ans) ? " · chart shows the 8 largest values; the table has all" : "";
  area.append(timeChart({ labels, series, kind: p.chart === "bar" ? "bar" : "line", caption: caption + note + (bd && prev ? " · the previous period is in the table" : ""), height: compact ? 200 : 320, testid: "trend-chart" }));
  if (!compact) area.append(table(cols, rows, { filename: "tally-trends.csv", format: prev ? { [cols.length - 1]: pct } : {} }));
  return { labels, series };
}

function tot8(ans) {
  return new Set(ans.rows.map((r) => r[1])).size > 8;
}

export default async function trends(main, ctx) {
  const p = params();
  const set = (o) => setParams({ ...p, ...o });
  const metric = select(METRICS, p.metric || "events", { name: "metric", on: { change: (e) => set({ metric: e.target.value }) } });
  const prop = propInput(p.prop || "properties.value", { name: "prop", "aria-label": "property to sum or average", on: { change: (e) => set({ prop: e.target.value.trim() }) } });
  const event = suggestInput("event", p.event, { name: "event", placeholder: "all events", size: 16, on: { change: (e) => set({ event: e.target.value.trim() }) } });
  const breakdown = propInput(p.breakdown, { name: "breakdown", placeholder: "none", on: { change: (e) => set({ breakdown: e.target.value.trim() }) } });
  const interval = select(INTERVALS, p.interval || "day", { name: "interval", on: { change: (e) => set({ interval: e.target.value }) } });
  const chartSeg = h("div.seg", { role: "group", "aria-label": "chart type" },
    ["line", "bar"].map((k) => h("button", { type: "button", name: "chart-" + k, "aria-pressed": String((p.chart || (SHAPED.has(p.metric) ? "bar" : "line")) === k), on: { click: () => set({ chart: k }) } }, k === "line" ? "Line" : "Bar")));
  const compare = h("input", { type: "checkbox", name: "compare", checked: p.compare === "1", on: { change: (e) => set({ compare: e.target.checked ? "1" : "" }) } });
  const controls = h("form.controls", { on: { submit: (e) => e.preventDefault() } },
    field("Metric", metric),
    p.metric === "sum" || p.metric === "avg" ? field("Property", prop) : null,
    field("Event", event),
    SHAPED.has(p.metric) ? null : field("Breakdown", breakdown),
    field("Interval", interval),
    ...rangeFields(p, set),
    tzField(p.tz, (tz) => set({ tz })),
    field("Chart", chartSeg),
    SHAPED.has(p.metric) ? null : h("label.check", compare, "Compare with previous period"),
    filtersEditor(jsonParam(p.where, []), (w) => set({ where: w.length ? JSON.stringify(w) : "" })));
  const area = h("div.card.wide", { dataset: { testid: "trends-result" } });
  main.append(header("Trends", "How a metric moves over time.", pinButton("trends", () => describe(p))), controls, area);
  const q = trendsQuery(p);
  await run(area, ctx, "Trends", async (s) => {
    const ans = await query(q, s);
    const prev = p.compare === "1" && !SHAPED.has(p.metric) ? await query({ ...q, ...previousRange(q) }, s) : null;
    return { ans, prev };
  }, ({ ans, prev }) => renderTrends(area, p, ans, prev));
}

