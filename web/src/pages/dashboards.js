// Dashboards: named sets of tiles, each a pinned view (page + its URL settings), saved on the
// server per project (GET/PUT /api/v1/dashboards). A tile runs its query and draws a compact
// chart; its title opens the full view.
import { h, clear, empty, loading, errorState, fmt } from "../ui.js";
import { api, query, session } from "../api.js";
import { params, setParams, navigate } from "../state.js";
import { trendsQuery, renderTrends } from "./trends.js";
import { funnelQuery, renderFunnel } from "./funnels.js";
import { retentionQuery, renderRetention } from "./retention.js";
import { sessionsQuery, renderSessions } from "./sessions.js";
import { pathsQuery, renderPaths } from "./paths.js";

const KINDS = {
  trends: [trendsQuery, (a, p, r) => renderTrends(a, p, r, null, { compact: true })],
  funnels: [funnelQuery, (a, p, r) => renderFunnel(a, p, r, { compact: true })],
  retention: [retentionQuery, (a, p, r) => renderRetention(a, p, r)],
  sessions: [sessionsQuery, (a, p, r) => renderSessions(a, p, r, { compact: true })],
  paths: [pathsQuery, (a, p, r) => renderPaths(a, p, r, { compact: true })],
};

const url = () => `/api/v1/dashboards?project=${encodeURIComponent(session.project)}`;
export async function load(signal) {
  const d = await api(url(), { signal });
  return Array.isArray(d.dashboards) ? d : { dashboards: [] };
}
export function save(doc) {
  return api(url(), { method: "PUT", body: doc });
}
const newId = () => Math.random().toString(36).slice(2, 10);

// The dialog of "Pin to dashboard": pick or name a dashboard, title the tile, save.
export async function pinDialog(tile) {
  let doc;
  try { doc = await load(); } catch (e) { doc = { dashboards: [] }; }
  const sel = h("select", { name: "dashboard" }, doc.dashboards.map((d) => h("option", { value: d.id }, d.name)), h("option", { value: "" }, "New dashboard…"));
  const name = h("input", { name: "dashboard-name", placeholder: "new dashboard name", value: doc.dashboards.length ? "" : "Main" });
  const title = h("input", { name: "tile-title", value: tile.title, size: 40 });
  const msg = h("div");
  const d = h("dialog", { "aria-label": "Pin to dashboard" }, h("form", { method: "dialog", on: { submit: async (e) => {
    e.preventDefault();
    let dash = doc.dashboards.find((x) => x.id === sel.value);
    if (!dash) {
      dash = { id: newId(), name: name.value.trim() || "Dashboard", tiles: [] };
      doc.dashboards.push(dash);
    }
    dash.tiles.push({ id: newId(), title: title.value.trim() || tile.title, page: tile.page, params: tile.params });
    try {
      await save(doc);
      d.close();
      navigate(`/dashboards?d=${dash.id}`);
    } catch (ex) {
      clear(msg, errorState(ex));
    }
  } } },
  h("h2", "Pin to dashboard"),
  h("label.field", h("span", "Dashboard"), sel),
  h("label.field", h("span", "or a new one named"), name),
  h("label.field", h("span", "Tile title"), title),
  msg,
  h("div.row", h("button.primary", { type: "submit", name: "save-pin" }, "Pin"), h("button", { type: "button", on: { click: () => d.close() } }, "Cancel"))));
  document.body.append(d);
  d.addEventListener("close", () => d.remove());
  d.showModal();
}

function tileView(tile, doc, dash, ctx, rerender) {
  const body = h("div", loading());
  const qs = new URLSearchParams(tile.params).toString();
  const href = `/${tile.page}${qs ? "?" + qs : ""}`;
  const card = h("section.card", { dataset: { testid: "tile" } },
    h("header", h("h2", h("a", { href, "data-nav": "" }, tile.title)),
      h("div.row",
        h("button.icon", { type: "button", "aria-label": `move ${tile.title} up`, on: { click: () => move(-1) } }, "↑"),
        h("button.icon", { type: "button", "aria-label": `remove ${tile.title}`, on: { click: async () => { dash.tiles = dash.tiles.filter((t) => t !== tile); await save(doc); rerender(); } } }, "×"))),
    body);
  const move = async (dir) => {
    const i = dash.tiles.indexOf(tile);
    if (i + dir < 0 || i + dir >= dash.tiles.length) return;
    dash.tiles.splice(i, 1);
    dash.tiles.splice(i + dir, 0, tile);
    await save(doc);
    rerender();
  };
  const k = KINDS[tile.page];
  if (!k) { clear(body, empty(`Unknown tile kind ${tile.page}`)); return card; }
  query(k[0](tile.params), ctx.abort.signal).then((ans) => { clear(body); k[1](body, tile.params, ans); }, (e) => { if (e.name !== "AbortError") clear(body, errorState(e, "This tile")); });
  return card;
}

export default async function dashboards(main, ctx) {
  const p = params();
  main.append(h("h1", "Dashboards"), h("p.sub", "Views pinned from Trends, Funnels, Retention, Sessions and Paths; saved on the server for everyone with this project's read key."));
  const area = h("div", loading());
  main.append(area);
  let doc;
  try {
    doc = await load(ctx.abort.signal);
  } catch (e) {
    if (e.name !== "AbortError") clear(area, errorState(e, "Dashboards"));
    return;
  }
  const rerender = () => dispatchEvent(new PopStateEvent("popstate"));
  clear(area);
  if (!doc.dashboards.length) {
    area.append(empty("No dashboard yet.", "Open Trends (or any analysis), set it up, and press “Pin to dashboard”."));
    return;
  }
  const dash = doc.dashboards.find((d) => d.id === p.d) || doc.dashboards[0];
  const pick = h("div.row", { role: "tablist" }, doc.dashboards.map((d) => h("button", { type: "button", role: "tab", "aria-selected": String(d === dash), "aria-pressed": String(d === dash), on: { click: () => setParams({ d: d.id }) } }, d.name, " ", h("span.muted", `(${d.tiles.length})`))),
    h("div.spacer"),
    h("button", { type: "button", on: { click: async () => { const n = prompt("Rename dashboard", dash.name); if (n) { dash.name = n.trim() || dash.name; await save(doc); rerender(); } } } }, "Rename"),
    h("button", { type: "button", on: { click: async () => { if (confirm(`Delete the dashboard “${dash.name}” and its ${dash.tiles.length} tiles?`)) { doc.dashboards = doc.dashboards.filter((d) => d !== dash); await save(doc); setParams({}); } } } }, "Delete"));
  area.append(pick, h("p.caption", `${fmt(dash.tiles.length)} tile${dash.tiles.length === 1 ? "" : "s"}`));
  if (!dash.tiles.length) return area.append(empty("This dashboard has no tile.", "Pin a view to it from Trends, Funnels, Retention, Sessions or Paths."));
  area.append(h("div.grid", { dataset: { testid: "tiles" } }, dash.tiles.map((t) => tileView(t, doc, dash, ctx, rerender))));
}
