// Funnels: steps (an event each, with optional filters of their own), conversion window, order,
// breakdown, range, zone. Bars with conversion from the first step, drop-off between steps
// and time to convert; the table under it.
import { h, field, select, table, fmt, pct, duration, empty, clear } from "../ui.js";
import { query } from "../api.js";
import { PALETTE } from "../chart.js";
import { params, setParams, jsonParam } from "../state.js";
import { rangeFields, tzField, suggestInput, propInput, filtersEditor } from "../controls.js";
import { header, run, range, tzOf, pinButton } from "./common.js";

const WINDOWS = [[3600, "1 hour"], [86400, "1 day"], [7 * 86400, "7 days"], [14 * 86400, "14 days"], [30 * 86400, "30 days"]];
const ORDERS = [["ordered", "In order (others between allowed)"], ["strict", "Strict order (nothing between)"], ["any", "Any order"]];

export function funnelQuery(p) {
  const r = range(p);
  // A step in the URL is an event name, or {event, where} when it has filters.
  const steps = jsonParam(p.steps, []).map(stepOf).filter((s) => s.event || s.where);
  const q = { kind: "funnel", from: r.from, to: r.to, tz: tzOf(p), window_s: +(p.window || 86400), steps };
  if (p.order && p.order !== "ordered") q.order = p.order;
  if (p.breakdown) q.breakdown = p.breakdown;
  const where = jsonParam(p.where, []);
  if (where.length) q.where = where;
  return q;
}

function stepOf(s) {
  if (typeof s === "string") return { event: s };
  const o = {};
  if (s && s.event) o.event = s.event;
  if (s && Array.isArray(s.where) && s.where.length) o.where = s.where;
  return o;
}
const stepName = (s) => (typeof s === "string" ? s : (s && s.event) || "any event") + (s && s.where && s.where.length ? "*" : "");

export function describeFunnel(p) {
  const steps = jsonParam(p.steps, []);
  return `Funnel ${steps.map(stepName).join(" → ") || "(no steps)"}`;
}

// One list of steps as bars.
function bars(steps, colourIndex = 0) {
  const first = steps[0] ? steps[0].persons : 0;
  const out = h("div.funnel", { dataset: { testid: "funnel-bars" } });
  steps.forEach((s, i) => {
    const conv = s.conversion_from_first ?? (first ? s.persons / first : 0);
    if (i > 0) {
      const prev = steps[i - 1].persons;
      const drop = prev - s.persons;
      out.append(h("div.fdrop", "↓ ", h("b", fmt(drop)), ` dropped off (${pct(prev ? drop / prev : 0)}) · ${pct(s.conversion_from_previous ?? (prev ? s.persons / prev : 0))} converted`,
        s.median_s_from_previous != null ? ` · median ${duration(s.median_s_from_previous)}` : "",
        s.p90_s_from_previous != null ? `, p90 ${duration(s.p90_s_from_previous)}` : ""));
    }
    const fill = h("div.fill");
    fill.style.background = `var(${PALETTE[colourIndex % PALETTE.length]})`;
    fill.style.width = Math.max(0.5, (first ? s.persons / first : 0) * 100) + "%";
    out.append(h("div.fstep", { dataset: { step: String(i + 1), persons: String(s.persons) } },
      h("div.name", { title: s.event ?? "any event" }, `${i + 1}. ${s.event ?? "any event"}`),
      h("div.fbar", { role: "img", "aria-label": `${s.event}: ${s.persons} persons, ${pct(conv)} of the first step` }, fill, h("span.label", fmt(s.persons))),
      h("div.stats", `${pct(conv)} of step 1`)));
  });
  return out;
}

function stepRows(steps, value) {
  const first = steps[0] ? steps[0].persons : 0;
  return steps.map((s, i) => {
    const prev = i ? steps[i - 1].persons : s.persons;
    const r = [i + 1, s.event, s.persons, s.conversion_from_first ?? (first ? s.persons / first : 0), s.conversion_from_previous ?? (prev ? s.persons / prev : 0), prev - s.persons, s.median_s_from_previous ?? null, s.p90_s_from_previous ?? null];
    return value === undefined ? r : [value, ...r];
  });
}
const STEP_COLS = ["step", "event", "persons", "conversion from first", "conversion from previous", "dropped", "median s from previous", "p90 s from previous"];
const STEP_FMT = { 3: pct, 4: pct };

export function renderFunnel(area, p, ans, { compact = false } = {}) {
  const q = funnelQuery(p);
  area.append(h("p.caption", `Persons reaching each step within ${duration(q.window_s)} of the first, each counted once at the deepest step · ${q.from} – ${q.to} · time zone ${q.tz}`));
  if (ans.breakdowns) {
    const rows = [];
    for (const [bi, b] of ans.breakdowns.entries()) {
      if (!compact) area.append(h("h3.group", `${p.breakdown} = ${b.value === null || b.value === "" ? "(none)" : b.value}`));
      if (!compact) area.append(bars(b.steps, bi));
      rows.push(...stepRows(b.steps, b.value));
    }
    if (!ans.breakdowns.length) area.append(empty("No person reached the first step."));
    if (!compact) area.append(table([p.breakdown, ...STEP_COLS], rows, { filename: "tally-funnel.csv", format: { 4: pct, 5: pct } }));
    return;
  }
  const steps = ans.steps || [];
  if (!steps.length || !steps[0].persons) area.append(empty("No person reached the first step in this range."));
  area.append(bars(steps));
  if (!compact) area.append(table(STEP_COLS, stepRows(steps), { filename: "tally-funnel.csv", format: STEP_FMT }));
}

export default async function funnels(main, ctx) {
  const p = params();
  const set = (o) => setParams({ ...p, ...o });
  const steps = (jsonParam(p.steps, null) || ["", ""]).map(stepOf);
  // Steps without filters stay plain names in the URL.
  const saveSteps = (list) => set({ steps: JSON.stringify(list.map((x) => (x.where && x.where.length ? x : x.event || ""))) });
  const stepBox = h("div.steps", { role: "group", "aria-label": "funnel steps" },
    steps.map((st, i) => {
      const filters = h("div.step-filters");
      const showFilters = () => filters.replaceChildren(filtersEditor(st.where || [], (w) => { st.where = w; saveSteps(steps); }));
      if (st.where && st.where.length) showFilters();
      return h("div",
        h("div.step-row",
          h("span.n", `${i + 1}.`),
          suggestInput("event", st.event, { name: "step", "aria-label": `step ${i + 1} event`, placeholder: "event name", size: 18, on: { change: (e) => { st.event = e.target.value.trim(); saveSteps(steps); } } }),
          st.where && st.where.length ? null : h("button.link", { type: "button", name: "step-filter", "aria-label": `filter step ${i + 1}`, on: { click: () => { showFilters(); filters.querySelector("button[name=add-filter]")?.click(); } } }, "+ filter"),
          steps.length > 2 ? h("button.icon", { type: "button", "aria-label": `remove step ${i + 1}`, on: { click: () => { steps.splice(i, 1); saveSteps(steps); } } }, "×") : null),
        filters);
    }),
    h("div", h("button.link", { type: "button", name: "add-step", on: { click: () => { steps.push({ event: "" }); saveSteps(steps); } } }, "+ Add step")));
  const controls = h("form.controls", { on: { submit: (e) => e.preventDefault() } },
    field("Steps", stepBox),
    field("Conversion window", select(WINDOWS, p.window || 86400, { name: "window", on: { change: (e) => set({ window: e.target.value }) } })),
    field("Order", select(ORDERS, p.order || "ordered", { name: "order", on: { change: (e) => set({ order: e.target.value === "ordered" ? "" : e.target.value }) } })),
    field("Breakdown", propInput(p.breakdown, { name: "breakdown", placeholder: "none", on: { change: (e) => set({ breakdown: e.target.value.trim() }) } })),
    ...rangeFields(p, set),
    tzField(p.tz, (tz) => set({ tz })),
    filtersEditor(jsonParam(p.where, []), (w) => set({ where: w.length ? JSON.stringify(w) : "" }), "every step where"));
  const area = h("div.card.wide", { dataset: { testid: "funnel-result" } });
  main.append(header("Funnels", "Where people drop off on the way to a goal.", pinButton("funnels", () => describeFunnel(p))), controls, area);
  const q = funnelQuery(p);
  if (q.steps.length < 2) {
    area.append(empty("Add at least two steps.", "Type an event name in each step; suggestions come from the last 30 days."));
    return;
  }
  await run(area, ctx, "Funnels", (s) => query(q, s), (ans) => renderFunnel(area, p, ans));
}
