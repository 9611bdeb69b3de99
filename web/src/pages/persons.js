// Persons: look up a distinct id; the person's properties, all its ids and its timeline
// (every event of every id, oldest first, grouped by day in the project's zone).
import { h, field, empty, clear, loading, errorState, download, toCsv } from "../ui.js";
import { api, session } from "../api.js";
import { params, setParams } from "../state.js";

function when(ts, tz) {
  const d = typeof ts === "number" ? new Date(ts) : new Date(ts);
  if (isNaN(d)) return String(ts);
  const f = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  return f.format(d).replace(",", "");
}

const SKIP = new Set(["event", "timestamp", "ts", "time", "properties", "user_properties"]);

function evMeta(e) {
  const parts = [];
  for (const [k, v] of Object.entries(e)) if (!SKIP.has(k) && v !== null && v !== "" && typeof v !== "object") parts.push(`${k}=${v}`);
  if (e.properties && typeof e.properties === "object") for (const [k, v] of Object.entries(e.properties)) parts.push(`properties.${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
  return parts.join(" · ");
}

export default async function persons(main, ctx) {
  const p = params();
  const pathId = ctx.path.startsWith("/persons/") ? decodeURIComponent(ctx.path.slice(9)) : "";
  const id = p.id || pathId;
  const tz = session.tz;
  const input = h("input", { name: "id", value: id, placeholder: "anonymous_id or user_id", size: 32, "aria-label": "distinct id" });
  const limit = p.limit || "500";
  const form = h("form.controls", { role: "search", on: { submit: (e) => { e.preventDefault(); setParams({ id: input.value.trim(), limit: p.limit }, { push: true }); } } },
    field("Distinct id", input), h("button.primary", { type: "submit" }, "Look up"));
  const area = h("div", { dataset: { testid: "person-result" } });
  main.append(h("h1", "Persons"), h("p.sub", "One person: every id it is known by, its properties and its events."), form, area);
  if (!id) {
    area.append(empty("Type a distinct id (an anonymous_id or a user_id) to see that person.", "Ids merge into one person when an event carries both."));
    input.focus();
    return;
  }
  clear(area, loading());
  let ans;
  try {
    ans = await api(`/api/v1/persons/${encodeURIComponent(id)}/events?project=${encodeURIComponent(session.project)}&limit=${encodeURIComponent(limit)}`, { signal: ctx.abort.signal });
  } catch (e) {
    if (e.name === "AbortError") return;
    if (e.status === 404 && /person|distinct/i.test(e.message)) return clear(area, empty(`No person has the id “${id}”.`, e.message));
    return clear(area, errorState(e, "The person view"));
  }
  clear(area);
  const person = ans.person || {};
  const ids = person.distinct_ids || [];
  const props = person.properties || Object.fromEntries(Object.entries(person).filter(([k]) => k !== "distinct_ids"));
  const events = ans.events || [];
  if (!ids.length && !events.length) return area.append(empty(`No person has the id “${id}”.`));
  area.append(h("div.grid",
    h("section.card", h("h2", "Ids"), h("div", { dataset: { testid: "person-ids" } }, ids.map((x) => h("span.tag", x)))),
    h("section.card", h("h2", "Properties"), Object.keys(props).length
      ? h("dl.props", Object.entries(props).flatMap(([k, v]) => [h("dt", k), h("dd", typeof v === "object" ? JSON.stringify(v) : String(v))]))
      : h("p.muted", "No properties set."))));
  const more = ans.total > events.length
    ? [` · the first ${events.length} of ${ans.total} events (`, h("a", { href: `/persons?id=${encodeURIComponent(id)}&limit=${Math.min(10000, +limit * 4)}`, "data-nav": "" }, "show more"), ")"]
    : [];
  const tl = h("section.card.wide", h("header", h("h2", `Timeline · ${ans.total ?? events.length} event${(ans.total ?? events.length) === 1 ? "" : "s"}`)), h("p.caption", `Oldest first; times in ${tz}`, ...more));
  if (!events.length) tl.append(empty("No events in this range."));
  else {
    tl.append(h("ol.timeline", { dataset: { testid: "timeline" } }, events.map((e) => h("li", h("time", when(e.timestamp ?? e.ts ?? e.time, tz)), h("div", h("div.ev", e.event), h("div.meta", evMeta(e)))))));
    const rows = events.map((e) => [when(e.timestamp ?? e.ts ?? e.time, tz), e.event, evMeta(e)]);
    tl.querySelector("header").append(h("button.csv", { type: "button", on: { click: () => download(`tally-person-${id}.csv`, toCsv(["time", "event", "details"], rows)) } }, "Download CSV"));
  }
  area.append(h("div.grid", tl));
}
