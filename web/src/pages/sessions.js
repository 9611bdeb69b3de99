// Sessions: per bucket of session start, sessions, average duration, bounce rate and events
// per session (a session: a person's run of events with no gap over 30 minutes).
import { h, field, select, table, pct, duration, empty } from "../ui.js";
import { timeChart } from "../chart.js";
import { query } from "../api.js";
import { params, setParams } from "../state.js";
import { rangeFields, tzField } from "../controls.js";
import { header, run, range, tzOf, pinButton } from "./common.js";

const INTERVALS = [["hour", "Hour"], ["day", "Day"], ["week", "Week"], ["month", "Month"]];

export function sessionsQuery(p) {
  const r = range(p);
  return { kind: "sessions", from: r.from, to: r.to, tz: tzOf(p), interval: p.interval || "day" };
}

// The answer as columns/rows whatever its form ({columns, rows} or {rows:[{bucket,…}]}).
export function tabular(ans) {
  if (Array.isArray(ans.columns)) return { columns: ans.columns, rows: ans.rows || [] };
  const list = ans.rows || ans.buckets || ans.sessions || [];
  if (!list.length || Array.isArray(list[0])) return { columns: [], rows: list };
  const columns = Object.keys(list[0]);
  return { columns, rows: list.map((o) => columns.map((c) => o[c])) };
}

export function renderSessions(area, p, ans, { compact = false } = {}) {
  const q = sessionsQuery(p);
  const { columns, rows } = tabular(ans);
  if (!rows.length) return area.append(empty("No sessions in this range."));
  const ci = (n) => columns.indexOf(n);
  const labels = rows.map((r) => r[0]);
  const caption = `Sessions starting in each ${q.interval} (no gap over 30 min) · ${q.from} – ${q.to} · time zone ${q.tz}`;
  if (ci("sessions") >= 0) area.append(timeChart({ labels, series: [{ label: "sessions", values: rows.map((r) => r[ci("sessions")]) }], kind: "bar", caption, height: compact ? 200 : 260, testid: "sessions-chart" }));
  if (!compact && ci("avg_duration_s") >= 0) area.append(timeChart({ labels, series: [{ label: "average duration (s)", values: rows.map((r) => r[ci("avg_duration_s")]) }], caption: `Average session duration in seconds · time zone ${q.tz}`, height: 200 }));
  if (!compact) {
    const fmts = {};
    if (ci("bounce_rate") >= 0) fmts[ci("bounce_rate")] = pct;
    for (const c of ["avg_duration_s", "median_duration_s"]) if (ci(c) >= 0) fmts[ci(c)] = duration;
    area.append(table(columns, rows, { filename: "tally-sessions.csv", format: fmts }));
    const pages = (list, name) => (Array.isArray(list) && list.length ? h("section.card", { dataset: { testid: name.replace(" ", "-") } }, h("h2", name[0].toUpperCase() + name.slice(1)), table(["url", "sessions"], list.map((x) => [x.url, x.sessions ?? x.count]), { filename: `tally-${name.replace(" ", "-")}.csv` })) : null);
    const g = h("div.grid", pages(ans.entry_pages, "entry pages"), pages(ans.exit_pages, "exit pages"));
    if (g.children.length) area.append(h("p.caption", "Pages where sessions start and end, over the whole range"), g);
  }
}

export default async function sessions(main, ctx) {
  const p = params();
  const set = (o) => setParams({ ...p, ...o });
  const controls = h("form.controls", { on: { submit: (e) => e.preventDefault() } },
    field("Interval", select(INTERVALS, p.interval || "day", { name: "interval", on: { change: (e) => set({ interval: e.target.value }) } })),
    ...rangeFields(p, set),
    tzField(p.tz, (tz) => set({ tz })));
  const area = h("div.card.wide", { dataset: { testid: "sessions-result" } });
  main.append(header("Sessions", "How long people stay and how much they do.", pinButton("sessions", () => `Sessions per ${p.interval || "day"}`)), controls, area);
  const q = sessionsQuery(p);
  await run(area, ctx, "Sessions", (s) => query(q, s), (ans) => renderSessions(area, p, ans));
}
