// Paths: the most frequent next (or previous) events after a start event, depth N, drawn as a
// flow of columns (step 1, step 2, …) with the table of whole paths under it.
import { h, field, select, table, fmt, empty } from "../ui.js";
import { query } from "../api.js";
import { params, setParams } from "../state.js";
import { rangeFields, tzField, suggestInput } from "../controls.js";
import { header, run, range, tzOf, pinButton } from "./common.js";
import { tabular } from "./sessions.js";

export function pathsQuery(p) {
  const r = range(p);
  const q = { kind: "paths", from: r.from, to: r.to, tz: tzOf(p), depth: +(p.depth || 4) };
  // Next steps start at start_event; previous steps end at end_event (the same field here).
  if (p.direction === "previous") {
    q.direction = "previous";
    if (p.start_event) q.end_event = p.start_event;
  } else if (p.start_event) q.start_event = p.start_event;
  if (p.by === "url") q.by = "url";
  return q;
}

const num = (o) => o.persons ?? o.count ?? o.sessions ?? o.n ?? o.value ?? 0;

// Columns of {event, n} per step, from whichever form the answer has.
function levels(ans) {
  if (Array.isArray(ans.edges) && ans.edges.length && ans.direction === "previous") {
    // Depth counts back from the end: column "end" on the right, depth d's froms before it.
    const cols = [new Map()];
    for (const e of ans.edges) {
      if (e.depth === 1) cols[0].set(e.to, (cols[0].get(e.to) || 0) + e.persons);
      (cols[e.depth] = cols[e.depth] || new Map()).set(e.from, (cols[e.depth].get(e.from) || 0) + e.persons);
    }
    return cols.filter(Boolean).map((m) => [...m.entries()].map(([event, n]) => ({ event, n }))).reverse();
  }
  if (Array.isArray(ans.edges) && ans.edges.length) {
    // {depth, from, to, persons}: column 0 holds the starts, column d the ends of depth d.
    const cols = [new Map()];
    for (const e of ans.edges) {
      if (e.depth === 1) cols[0].set(e.from, (cols[0].get(e.from) || 0) + e.persons);
      (cols[e.depth] = cols[e.depth] || new Map()).set(e.to, (cols[e.depth].get(e.to) || 0) + e.persons);
    }
    if (ans.paths && ans.persons && cols[0].size === 1) cols[0].set([...cols[0].keys()][0], ans.persons);
    return cols.filter(Boolean).map((m) => [...m.entries()].map(([event, n]) => ({ event, n })));
  }
  if (Array.isArray(ans.paths)) {
    const cols = [];
    for (const pth of ans.paths) {
      const evs = pth.path || pth.events || pth.steps || [];
      evs.forEach((e, d) => {
        cols[d] = cols[d] || new Map();
        cols[d].set(e, (cols[d].get(e) || 0) + num(pth));
      });
    }
    return cols.map((m) => [...m.entries()].map(([event, n]) => ({ event, n })));
  }
  const st = ans.steps || ans.levels;
  if (Array.isArray(st)) return st.map((l) => (Array.isArray(l) ? l : l.events || l.next || []).map((o) => ({ event: o.event ?? o.name, n: num(o) })));
  const t = tabular(ans);
  const di = t.columns.findIndex((c) => c === "step" || c === "depth"), ei = t.columns.indexOf("event");
  if (di < 0 || ei < 0) return [];
  const cols = [];
  for (const r of t.rows) (cols[r[di] - 1] = cols[r[di] - 1] || []).push({ event: r[ei], n: r[t.columns.length - 1] });
  return cols.filter(Boolean);
}

export function renderPaths(area, p, ans, { compact = false } = {}) {
  const q = pathsQuery(p);
  area.append(h("p.caption", `Most frequent ${q.direction === "previous" ? "previous" : "next"} ${q.by === "url" ? "pages" : "events"} ${q.start_event || q.end_event ? `${q.direction === "previous" ? "before" : "after"} “${q.start_event || q.end_event}”` : ""} (depth ${q.depth}) · ${q.from} – ${q.to} · time zone ${q.tz}`));
  const lv = levels(ans);
  if (!lv.length || !lv.some((l) => l.length)) return area.append(empty("No paths in this range."));
  const max = Math.max(...lv.flat().map((x) => x.n), 1);
  area.append(h("div.flow", { dataset: { testid: "paths-flow" } }, lv.map((col, d) => h("div.col",
    h("h3", q.direction === "previous" ? (d === lv.length - 1 ? "end" : `${lv.length - 1 - d} before`) : d === 0 ? "start" : `step ${d + 1}`),
    col.sort((a, b) => b.n - a.n).slice(0, compact ? 4 : 10).map((x) => {
      const node = h("div.node", { title: `${x.event}: ${x.n}` }, x.event, h("small", fmt(x.n)));
      node.style.borderLeftWidth = 2 + Math.round((x.n / max) * 10) + "px";
      return node;
    })))));
  if (compact) return;
  if (Array.isArray(ans.paths)) area.append(table(["path", "persons"], ans.paths.map((x) => [(x.path || x.events || x.steps || []).join(" → "), num(x)]), { filename: "tally-paths.csv" }));
  else area.append(table(["step", "event", "count"], lv.flatMap((col, d) => col.map((x) => [d + 1, x.event, x.n])), { filename: "tally-paths.csv" }));
}

export default async function paths(main, ctx) {
  const p = params();
  const set = (o) => setParams({ ...p, ...o });
  const controls = h("form.controls", { on: { submit: (e) => e.preventDefault() } },
    field(p.direction === "previous" ? "End event" : "Start event", suggestInput(p.by === "url" ? "url" : "event", p.start_event, { name: "start_event", placeholder: "any", size: 16, on: { change: (e) => set({ start_event: e.target.value.trim() }) } })),
    field("Direction", select([["next", "Next steps"], ["previous", "Previous steps"]], p.direction || "next", { name: "direction", on: { change: (e) => set({ direction: e.target.value === "next" ? "" : e.target.value }) } })),
    field("Steps are", select([["event", "Events"], ["url", "Pages (url)"]], p.by || "event", { name: "by", on: { change: (e) => set({ by: e.target.value === "event" ? "" : e.target.value, start_event: "" }) } })),
    field("Depth", h("input.narrow", { type: "number", min: 1, max: 10, name: "depth", value: p.depth || 4, on: { change: (e) => set({ depth: e.target.value }) } })),
    ...rangeFields(p, set),
    tzField(p.tz, (tz) => set({ tz })));
  const area = h("div.card.wide", { dataset: { testid: "paths-result" } });
  main.append(header("Paths", "What people do before and after an event.", pinButton("paths", () => `Paths from ${p.start_event || "any event"}`)), controls, area);
  const q = pathsQuery(p);
  await run(area, ctx, "Paths", (s) => query(q, s), (ans) => renderPaths(area, p, ans));
}
