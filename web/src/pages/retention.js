// Retention: cohorts by the period of their first start event; the share of each cohort that
// comes back in each later period, as a heat map table.
import { h, field, select, table, fmt, pct, empty } from "../ui.js";
import { query } from "../api.js";
import { params, setParams } from "../state.js";
import { rangeFields, tzField, suggestInput } from "../controls.js";
import { header, run, range, tzOf, pinButton } from "./common.js";
import { todayIn, addDays } from "../dates.js";

function addMonths(day, k) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCMonth(d.getUTCMonth() + k);
  return d.toISOString().slice(0, 10);
}

const PERIODS = [["day", "Day"], ["week", "Week"], ["month", "Month"]];

export function retentionQuery(p) {
  const r = range({ range: "90d", ...p });
  const q = { kind: "retention", from: r.from, to: r.to, tz: tzOf(p), period: p.period || "week", periods: +(p.periods || 8) };
  if (p.start_event) q.start_event = p.start_event;
  if (p.return_event) q.return_event = p.return_event;
  return q;
}

export function describeRetention(p) {
  return `Retention of ${p.start_event ? `“${p.start_event}”` : "first seen"} → ${p.return_event ? `“${p.return_event}”` : "any event"}, by ${p.period || "week"}`;
}

export function renderRetention(area, p, ans) {
  const q = retentionQuery(p);
  area.append(h("p.caption", `Persons of each cohort (by the ${q.period} of their first ${q.start_event ? `“${q.start_event}”` : "event"}) with ${q.return_event ? `a “${q.return_event}”` : "any event"} in each later ${q.period}; ${q.from} – ${q.to}; time zone ${q.tz}`));
  const cohorts = ans.cohorts || [];
  if (!cohorts.length) return area.append(empty("No cohort starts in this range."));
  const n = Math.max(q.periods, ...cohorts.map((c) => c.retained.length));
  const cols = ["cohort", "persons", ...Array.from({ length: n }, (_, k) => `${q.period} ${k}`)];
  // Periods that have not started yet (cohort + k after today) are blank, not 0%.
  const today = todayIn(q.tz);
  const startOf = (cohort, k) => (q.period === "day" ? addDays(cohort, k) : q.period === "week" ? addDays(cohort, 7 * k) : addMonths(cohort, k));
  const rows = cohorts.map((c) => [c.cohort, c.persons, ...Array.from({ length: n }, (_, k) => (c.retained[k] === undefined || startOf(c.cohort, k) > today ? null : c.retained[k]))]);
  const t = table(cols, rows, {
    filename: "tally-retention.csv",
    format: Object.fromEntries(Array.from({ length: n }, (_, k) => [k + 2, (v, r) => (v === null ? "" : r[1] ? pct(v / r[1]) : "–")])),
    cellClass: (td, v, i, r) => {
      if (i < 2 || v === null || !r[1]) return;
      const share = v / r[1];
      td.classList.add("cell");
      td.style.background = `rgba(var(--heat), ${(0.08 + 0.85 * share).toFixed(3)})`;
      if (share > 0.5) td.classList.add("dark");
      td.title = `${fmt(v)} of ${fmt(r[1])} persons`;
    },
  });
  t.querySelector("table").classList.add("heat");
  area.append(t);
}

export default async function retention(main, ctx) {
  const p = params();
  const set = (o) => setParams({ ...p, ...o });
  const controls = h("form.controls", { on: { submit: (e) => e.preventDefault() } },
    field("Start event", suggestInput("event", p.start_event, { name: "start_event", placeholder: "first seen", size: 16, on: { change: (e) => set({ start_event: e.target.value.trim() }) } })),
    field("Return event", suggestInput("event", p.return_event, { name: "return_event", placeholder: "any event", size: 16, on: { change: (e) => set({ return_event: e.target.value.trim() }) } })),
    field("Period", select(PERIODS, p.period || "week", { name: "period", on: { change: (e) => set({ period: e.target.value }) } })),
    field("Periods", h("input.narrow", { type: "number", min: 1, max: 60, name: "periods", value: p.periods || 8, on: { change: (e) => set({ periods: e.target.value }) } })),
    ...rangeFields({ range: "90d", ...p }, set),
    tzField(p.tz, (tz) => set({ tz })));
  const area = h("div.card.wide", { dataset: { testid: "retention-result" } });
  main.append(header("Retention", "Do people come back?", pinButton("retention", () => describeRetention(p))), controls, area);
  const q = retentionQuery(p);
  await run(area, ctx, "Retention", (s) => query(q, s), (ans) => renderRetention(area, p, ans));
}
