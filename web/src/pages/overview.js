// Overview: the numbers leadership asks for, over the last 30 days in the project's zone.
//   DAU (today), WAU and MAU (windows ending today), stickiness (average DAU ÷ MAU), events,
//   top pages (events with a url), top countries, platforms and app versions (persons in the
//   30 days: metric mau on the last day, broken down).
import { h, kpi, table, pct, fmt, errorState, loading, empty, clear } from "../ui.js";
import { timeChart } from "../chart.js";
import { query, session } from "../api.js";
import { todayIn, addDays } from "../dates.js";
import { header } from "./common.js";

export function overviewQueries(tz) {
  const to = todayIn(tz);
  const from = addDays(to, -29);
  const base = { kind: "trends", tz };
  return {
    from, to,
    dau: { ...base, metric: "persons", interval: "day", from, to },
    wau: { ...base, metric: "wau", interval: "day", from: to, to },
    mau: { ...base, metric: "mau", interval: "day", from: to, to },
    events: { ...base, metric: "events", interval: "day", from, to },
    pages: { ...base, metric: "events", interval: "month", from, to, breakdown: "url", where: [{ prop: "url", op: "is_set" }] },
    countries: { ...base, metric: "mau", interval: "day", from: to, to, breakdown: "country" },
    platforms: { ...base, metric: "mau", interval: "day", from: to, to, breakdown: "platform" },
    versions: { ...base, metric: "mau", interval: "day", from: to, to, breakdown: "app_version" },
  };
}

// Sums a breakdown answer per value, largest first ($other last).
export function totals(ans) {
  const m = new Map();
  for (const r of ans.rows) m.set(r[1], (m.get(r[1]) || 0) + r[2]);
  return [...m.entries()].filter((e) => e[1] > 0).sort((a, b) => (a[0] === "$other") - (b[0] === "$other") || b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
}

// A value of a top list opens Trends for it (persons per day, filtered to the value).
function drill(prop, v) {
  if (v === null || v === "" || v === "$other") return v === null || v === "" ? "(none)" : "other values";
  const where = JSON.stringify([{ prop, op: "=", value: v }]);
  return h("a", { href: `/trends?metric=persons&range=30d&where=${encodeURIComponent(where)}`, "data-nav": "" }, String(v));
}

function topCard(title, testid, col, unit, promise, tz, what) {
  const body = h("div", loading());
  const card = h("section.card", { dataset: { testid } }, h("header", h("h2", title)), h("p.caption", what + `; time zone ${tz}`), body);
  promise.then((ans) => {
    const t = totals(ans);
    if (!t.length) return clear(body, empty("Nothing in the last 30 days."));
    const all = t.reduce((s, x) => s + x[1], 0);
    clear(body, table([col, unit, "share"], t.slice(0, 10).map(([v, n]) => [v, n, n / all]), { filename: `tally-${testid}.csv`, format: { 0: (v) => drill(col, v), 2: pct } }));
  }, (e) => clear(body, errorState(e)));
  return card;
}

export default async function overview(main, ctx) {
  const tz = session.tz;
  const q = overviewQueries(tz);
  const s = ctx.abort.signal;
  main.append(header("Overview", `${session.project} · last 30 days (${q.from} – ${q.to}) · time zone ${tz}`));
  const kpis = h("div.kpis", loading());
  const grid = h("div.grid");
  main.append(kpis, grid);
  const p = Object.fromEntries(Object.entries(q).filter(([, v]) => typeof v === "object").map(([k, v]) => [k, query(v, s)]));
  const dauCard = h("section.card.wide", { dataset: { testid: "dau-chart" } }, h("header", h("h2", "Daily active persons")), loading());
  const evCard = h("section.card.wide", { dataset: { testid: "events-chart" } }, h("header", h("h2", "Events per day")), loading());
  grid.append(dauCard, evCard,
    topCard("Top pages", "top-pages", "url", "events", p.pages, tz, "Events with a url, last 30 days"),
    topCard("Top countries", "top-countries", "country", "persons", p.countries, tz, "Persons active in the last 30 days"),
    topCard("Platforms", "platforms", "platform", "persons", p.platforms, tz, "Persons active in the last 30 days"),
    topCard("App versions", "app-versions", "app_version", "persons", p.versions, tz, "Persons active in the last 30 days"));
  try {
    const [dau, wau, mau, ev] = await Promise.all([p.dau, p.wau, p.mau, p.events]);
    if (s.aborted) return;
    const dauVals = dau.rows.map((r) => r[1]);
    const today = dauVals[dauVals.length - 1] ?? 0;
    const w = wau.rows.length ? wau.rows[wau.rows.length - 1][1] : 0;
    const m = mau.rows.length ? mau.rows[mau.rows.length - 1][1] : 0;
    const avgDau = dauVals.length ? dauVals.reduce((a, b) => a + b, 0) / dauVals.length : 0;
    const evTotal = ev.rows.reduce((a, r) => a + r[1], 0);
    clear(kpis,
      kpi("DAU", today, `persons active today (${q.to})`, "kpi-dau"),
      kpi("WAU", w, "persons in the 7 days to today", "kpi-wau"),
      kpi("MAU", m, "persons in the 30 days to today", "kpi-mau"),
      h("div.card.kpi", { dataset: { testid: "kpi-stickiness" } }, h("h3", "Stickiness"), h("div.value", { dataset: { value: m ? String(avgDau / m) : "" } }, m ? pct(avgDau / m) : "–"), h("div.note", `average DAU (${fmt(Math.round(avgDau * 10) / 10)}) ÷ MAU`)),
      kpi("Events", evTotal, "in the last 30 days", "kpi-events"));
    dauCard.lastChild.replaceWith(dauVals.some((v) => v) ? timeChart({ labels: dau.rows.map((r) => r[0]), series: [{ label: "persons", values: dauVals }], caption: `Distinct persons per day, ${q.from} – ${q.to}, time zone ${tz}`, height: 220 }) : empty("No persons in the last 30 days.", "Send events to /collect with the project's write key."));
    evCard.lastChild.replaceWith(ev.rows.some((r) => r[1]) ? timeChart({ labels: ev.rows.map((r) => r[0]), series: [{ label: "events", values: ev.rows.map((r) => r[1]) }], kind: "bar", caption: `Events per day (all events), ${q.from} – ${q.to}, time zone ${tz}`, height: 220 }) : empty("No events in the last 30 days."));
  } catch (e) {
    if (e.name === "AbortError") return;
    clear(kpis, errorState(e, "The overview"));
    dauCard.lastChild.remove();
    evCard.lastChild.remove();
  }
}
