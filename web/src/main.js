// The dashboard's entry: the shell (navigation, project, theme), the router over the page
// modules, sign-in, keyboard shortcuts. State lives in the URL (state.js).
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, session, clearCache } from "./api.js";
import { h, clear, errorState } from "./ui.js";
import { listen, navigate } from "./state.js";
import iconUrl from "./icon.svg";
import overview from "./pages/overview.js";
import realtime from "./pages/realtime.js";
import trends from "./pages/trends.js";
import funnels from "./pages/funnels.js";
import retention from "./pages/retention.js";
import sessions from "./pages/sessions.js";
import paths from "./pages/paths.js";
import persons from "./pages/persons.js";
import dashboards from "./pages/dashboards.js";

const PAGES = [
  ["/overview", "Overview", "o", overview],
  ["/realtime", "Realtime", "r", realtime],
  ["/trends", "Trends", "t", trends],
  ["/funnels", "Funnels", "f", funnels],
  ["/retention", "Retention", "e", retention],
  ["/sessions", "Sessions", "s", sessions],
  ["/paths", "Paths", "p", paths],
  ["/persons", "Persons", "u", persons],
  ["/dashboards", "Dashboards", "d", dashboards],
];

const THEME = "tally.theme";
function applyTheme() {
  const t = localStorage.getItem(THEME) || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = t;
  return t;
}

let current = null; // {abort, cleanup}
const app = document.getElementById("app");

function shell(path) {
  const theme = document.documentElement.dataset.theme;
  const nav = h("nav.side", { "aria-label": "pages" },
    h("a.brand", { href: "/overview", "data-nav": "" }, h("img", { src: iconUrl, alt: "" }), "tally"),
    PAGES.map(([p, label, key]) => h("a.nav", { href: p, "data-nav": "", "aria-current": path === p || path.startsWith(p + "/") ? "page" : null, "aria-keyshortcuts": `g ${key}` }, label, h("kbd", `g ${key}`))),
    h("div.foot",
      h("div", "Project ", h("strong", { dataset: { testid: "project" } }, session.project)),
      h("div", "Time zone ", h("strong", session.tz)),
      h("button.link", { type: "button", on: { click: () => { localStorage.setItem(THEME, theme === "dark" ? "light" : "dark"); applyTheme(); render(); } } }, theme === "dark" ? "Light mode" : "Dark mode"),
      h("button.link", { type: "button", on: { click: () => { session.clear(); clearCache(); navigate("/signin"); } } }, "Sign out"),
      h("span.help", "Press ? for keys")));
  const main = h("main#main.page", { tabindex: "-1" });
  clear(app, nav, main);
  app.classList.remove("bare");
  return main;
}

function signin() {
  app.classList.add("bare");
  const err = h("div");
  const key = h("input", { name: "key", type: "password", required: true, autocomplete: "current-password", placeholder: "rk_…" });
  const project = h("input", { name: "project", value: session.project, placeholder: "from the key when empty", autocomplete: "username" });
  const form = h("form", { on: { submit: async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const qs = project.value.trim() ? "?project=" + encodeURIComponent(project.value.trim()) : "";
    try {
      const p = await api("/api/v1/project" + qs, { key: key.value.trim() });
      session.save(key.value.trim(), p.name, p.timezone);
      clearCache();
      const next = new URLSearchParams(location.search).get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/overview");
    } catch (ex) {
      err.replaceChildren(errorState(ex.status === 401 ? Object.assign(ex, { message: ex.message }) : ex));
    }
  } } },
    h("label.field", h("span", "Read key"), key),
    h("label.field", h("span", "Project"), project),
    h("button.primary", { type: "submit" }, "Sign in"),
    err,
    h("p.help", "The read key is in tally.conf ([project NAME] read_key) or printed by `tally serve` at its first start. It is kept in this browser's local storage."));
  const main = h("main#main.page.signin", h("div.card", h("h1", "Sign in to tally"), h("p.sub", "Product analytics on your own server."), form));
  clear(app, main);
  key.focus();
}

async function render() {
  if (current) { current.abort.abort(); current.cleanup?.(); current = null; }
  let path = location.pathname.replace(/\/+$/, "") || "/";
  if (path === "/signin") return signin();
  if (!session.key) {
    history.replaceState(null, "", "/signin?next=" + encodeURIComponent(location.pathname + location.search));
    return signin();
  }
  if (path === "/") { history.replaceState(null, "", "/overview"); path = "/overview"; }
  const page = PAGES.find(([p]) => path === p || path.startsWith(p + "/"));
  const main = shell(path);
  if (!page) { main.append(h("h1", "Not found"), h("p", "No such page. ", h("a", { href: "/overview", "data-nav": "" }, "Go to the overview"))); return; }
  document.title = page[1] + " · tally";
  const ctx = { abort: new AbortController(), cleanup: null, path };
  current = ctx;
  try {
    await page[3](main, ctx);
  } catch (e) {
    if (e.name !== "AbortError") main.append(errorState(e));
  }
}

// Links inside the app navigate without a reload.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});

// Keyboard: "g" then a page's letter; "?" lists the keys; "/" focuses the first field.
let g = 0;
document.addEventListener("keydown", (e) => {
  if (e.target.closest("input, select, textarea, [contenteditable]") || e.metaKey || e.ctrlKey || e.altKey) return;
  if (e.key === "g") { g = Date.now(); return; }
  if (Date.now() - g < 1500) {
    const p = PAGES.find((x) => x[2] === e.key);
    g = 0;
    if (p) { e.preventDefault(); navigate(p[0]); }
    return;
  }
  if (e.key === "/") {
    const f = document.querySelector("main input, main select");
    if (f) { e.preventDefault(); f.focus(); }
  } else if (e.key === "?") {
    const d = h("dialog", h("form", { method: "dialog" }, h("h2", "Keyboard"),
      h("ul", PAGES.map(([, l, k]) => h("li", h("kbd", `g ${k}`), " ", l)), h("li", h("kbd", "/"), " first field of the page"), h("li", h("kbd", "Esc"), " close")),
      h("button", { type: "submit" }, "Close")));
    document.body.append(d);
    d.addEventListener("close", () => d.remove());
    d.showModal();
  }
});

matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { applyTheme(); render(); });
window.addEventListener("popstate", render);
listen(render);
applyTheme();
render();
