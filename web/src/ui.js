// DOM helpers and the designed pieces every page shares: loading/empty/error states, tables
// with CSV download, KPI cards, number formatting.

// h("div.card#id", {attrs, on: {click}}, ...children)
export function h(sel, attrs, ...kids) {
  if (attrs instanceof Node || typeof attrs === "string" || Array.isArray(attrs) || attrs == null) {
    if (attrs != null) kids.unshift(attrs);
    attrs = {};
  }
  const m = sel.match(/^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i);
  const el = document.createElement((m && m[1]) || "div");
  if (m && m[2]) for (const part of m[2].match(/[.#][\w-]+/g)) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "text") el.textContent = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

export function clear(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

const nf = new Intl.NumberFormat("en-US");
const nf2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
export function fmt(v) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? nf.format(v) : nf2.format(v);
}
export function pct(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return (v * 100).toFixed(v >= 0.1 || v === 0 ? 1 : 2) + "%";
}
export function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  if (s < 86400) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

export function loading(msg = "Loading…") {
  return h("div.state.loading", { role: "status", "aria-live": "polite" }, msg);
}
export function empty(msg = "No data for this range and these filters.", hint) {
  return h("div.state.empty", { role: "status" }, h("div", msg), hint ? h("div.help", hint) : null);
}
// An error from api.js; an analysis the server does not have yet gets its own wording.
export function errorState(e, what = "This view") {
  if (e && e.unsupported)
    return h("div.state.error.unsupported", { role: "alert" },
      h("strong", `${what} is not available on this server yet`),
      h("div", "The server does not answer this kind of query. Update tally to a version that has it."),
      h("div.help", h("code", e.message)));
  if (e && e.status === 401)
    return h("div.state.error", { role: "alert" }, h("strong", "The read key was refused"),
      h("div", "Sign in again with the project's read key."), h("div.help", h("code", e.message)));
  return h("div.state.error", { role: "alert" }, h("strong", "The query failed"),
    h("div", h("code", (e && e.message) || String(e))));
}

export function csvEscape(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
export function toCsv(columns, rows) {
  return [columns, ...rows].map((r) => r.map(csvEscape).join(",")).join("\r\n") + "\r\n";
}
export function download(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type: type + ";charset=utf-8" }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// A table of columns/rows with a "Download CSV" button. opts.format: per-column cell
// formatter; opts.numeric: which columns are numbers (right-aligned); cells keep the raw value
// in data-value for tests and copy.
export function table(columns, rows, { filename = "tally.csv", format = {}, numeric, caption, cellClass } = {}) {
  const isNum = numeric || columns.map((_, i) => rows.some((r) => typeof r[i] === "number"));
  const t = h("table",
    caption ? h("caption.caption", caption) : null,
    h("thead", h("tr", columns.map((c, i) => h(isNum[i] ? "th.num" : "th", { scope: "col" }, c)))),
    h("tbody", rows.map((r) => h("tr", r.map((v, i) => {
      const td = h(isNum[i] ? "td.num" : "td.clip", { dataset: { value: v === null || v === undefined ? "" : String(v) }, title: typeof v === "string" && v.length > 40 ? v : null },
        (format[i] || fmt)(v, r));
      if (cellClass) cellClass(td, v, i, r);
      return td;
    })))));
  const btn = h("button.csv", { type: "button", on: { click: () => download(filename, toCsv(columns, rows)) } }, "Download CSV");
  return h("div.table-block", h("div.table-tools", btn), h("div.table-wrap", t));
}

export function kpi(label, value, note, testid) {
  return h("div.card.kpi", { dataset: { testid } },
    h("h3", label),
    h("div.value", { dataset: { value: value === null || value === undefined ? "" : String(value) } }, fmt(value)),
    note ? h("div.note", note) : null);
}

export function field(label, control) {
  return h("label.field", h("span", label), control);
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, l]) => h("option", { value: v, selected: String(v) === String(value) }, l)));
}

export function debounce(fn, ms = 250) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
