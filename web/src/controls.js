// Controls the query pages share: date range (presets or custom), time zone, filters with
// every operator, property pickers with suggestions from the data.
import { h, field, select } from "./ui.js";
import { PRESETS, isDate, zones, resolveRange } from "./dates.js";
import { session, queryCached } from "./api.js";

export const OPS = [
  ["=", "equals"], ["!=", "not equal"], ["in", "in (comma list)"], ["not_in", "not in (comma list)"],
  ["contains", "contains"], [">", ">"], [">=", "≥"], ["<", "<"], ["<=", "≤"],
  ["is_set", "is set"], ["is_not_set", "is not set"],
];
export const BUILTIN_PROPS = ["event", "platform", "country", "app_version", "url", "referrer", "browser", "os", "device_type"];

let zoneList = null;
export function tzField(value, onChange) {
  zoneList = zoneList || zones();
  const id = "tz-list";
  const input = h("input", { value: value || session.tz, list: id, size: 16, "aria-label": "time zone", name: "tz", on: { change: (e) => onChange(e.target.value.trim()) } });
  const dl = document.getElementById(id) || h("datalist", { id }, zoneList.map((z) => h("option", { value: z })));
  if (!dl.isConnected) document.body.append(dl);
  return field("Time zone", input);
}

// p: {range, from, to}; onChange({range, from, to}).
export function rangeFields(p, onChange) {
  const custom = !PRESETS.some((x) => x[0] === (p.range || "30d"));
  const sel = select([...PRESETS.map((x) => [x[0], x[1]]), ["custom", "Custom…"]], custom ? "custom" : p.range || "30d", { name: "range", "aria-label": "date range" });
  const r = resolveRange(custom ? "custom" : p.range || "30d", p.from, p.to, p.tz || session.tz);
  const from = h("input", { type: "date", value: r.from, name: "from", "aria-label": "from" });
  const to = h("input", { type: "date", value: r.to, name: "to", "aria-label": "to" });
  const fire = () => {
    if (sel.value !== "custom") onChange({ range: sel.value, from: "", to: "" });
    else if (isDate(from.value) && isDate(to.value)) onChange({ range: "custom", from: from.value, to: to.value });
  };
  sel.addEventListener("change", () => {
    if (sel.value === "custom") { from.disabled = to.disabled = false; fire(); } else fire();
  });
  from.addEventListener("change", () => { sel.value = "custom"; fire(); });
  to.addEventListener("change", () => { sel.value = "custom"; fire(); });
  return [field("Date range", sel), field("From", from), field("To", to)];
}

// Suggestions: event names and values seen in the last 30 days (one cached trends query each).
export async function suggestions(prop) {
  try {
    const a = await queryCached({ kind: "trends", metric: "events", interval: "month", from: resolveRange("30d", "", "", session.tz).from, to: resolveRange("30d", "", "", session.tz).to, breakdown: prop });
    const tot = new Map();
    for (const r of a.rows) if (r[1] !== "$other" && r[1] !== null && r[1] !== "") tot.set(r[1], (tot.get(r[1]) || 0) + r[2]);
    return [...tot.entries()].sort((x, y) => y[1] - x[1]).map((x) => String(x[0]));
  } catch {
    return [];
  }
}

let nList = 0;
// An input with a datalist filled from suggestions(prop) when it first gets focus.
export function suggestInput(prop, value, attrs = {}) {
  const id = "sug-" + ++nList;
  const dl = h("datalist", { id });
  let filled = false;
  const input = h("input", { ...attrs, value: value || "", list: id });
  const fill = async () => {
    if (filled) return;
    filled = true;
    const vals = await suggestions(typeof prop === "function" ? prop() : prop);
    dl.replaceChildren(...vals.slice(0, 200).map((v) => h("option", { value: v })));
  };
  input.addEventListener("focus", fill);
  return h("span.suggest", input, dl);
}

export function propInput(value, attrs = {}) {
  const id = "props-list";
  if (!document.getElementById(id)) document.body.append(h("datalist", { id }, BUILTIN_PROPS.map((p) => h("option", { value: p })), h("option", { value: "properties." })));
  return h("input", { ...attrs, value: value || "", list: id, placeholder: "property", size: 14 });
}

// The where-list editor: rows of prop / op / value. onChange(list) with complete rows only.
export function filtersEditor(list, onChange, lead = "where") {
  const box = h("div.filters", { role: "group", "aria-label": "filters" });
  const rows = (list || []).map((f) => ({ ...f }));
  const emit = () => onChange(rows.filter((f) => f.prop && (f.op === "is_set" || f.op === "is_not_set" || (f.value !== undefined && f.value !== ""))).map(normalise));
  const render = () => {
    box.replaceChildren(
      ...rows.map((f, i) => {
        const prop = propInput(f.prop, { "aria-label": `filter ${i + 1} property`, name: "filter-prop", on: { change: (e) => { f.prop = e.target.value.trim(); emit(); } } });
        const op = select(OPS, f.op || "=", { "aria-label": `filter ${i + 1} operator`, name: "filter-op", on: { change: (e) => { f.op = e.target.value; render(); emit(); } } });
        const noValue = f.op === "is_set" || f.op === "is_not_set";
        const val = noValue ? null : suggestInput(() => f.prop || "event", Array.isArray(f.value) ? f.value.join(",") : f.value, { "aria-label": `filter ${i + 1} value`, name: "filter-value", placeholder: "value", size: 16, on: { change: (e) => { f.value = e.target.value; emit(); } } });
        const rm = h("button.icon", { type: "button", "aria-label": `remove filter ${i + 1}`, on: { click: () => { rows.splice(i, 1); render(); emit(); } } }, "×");
        return h("div.filter-row", h("span.muted", i ? "and" : lead), prop, op, val, rm);
      }),
      h("div", h("button.link", { type: "button", name: "add-filter", on: { click: () => { rows.push({ prop: "", op: "=", value: "" }); render(); box.querySelector(".filter-row:last-of-type input")?.focus(); } } }, "+ Add filter")),
    );
  };
  render();
  return box;
}

// Values of in/not_in as lists; numbers for the comparisons when they look like numbers.
function normalise(f) {
  const o = { prop: f.prop, op: f.op || "=" };
  if (o.op === "is_set" || o.op === "is_not_set") return o;
  let v = f.value;
  if (o.op === "in" || o.op === "not_in") {
    if (!Array.isArray(v)) v = String(v).split(",").map((s) => s.trim()).filter(Boolean);
  } else if ([">", ">=", "<", "<="].includes(o.op) && typeof v === "string" && v.trim() !== "" && !isNaN(+v)) {
    v = +v;
  }
  o.value = v;
  return o;
}
