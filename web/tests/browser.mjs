// Browser driver of tests/integration/test_web_browser.py: Debian's chromium through
// playwright-core, against a real tally. It performs one scenario and prints one JSON object
// with what the pages showed (the Python test compares it with the API's answers) and every
// console error, failed request and page error seen.
//
//   node tests/browser.mjs SCENARIO   (from web/), with TALLY_URL, TALLY_PROJECT, TALLY_KEY,
//   TALLY_WRITE_KEY, SHOTS (screenshot directory) and ARGS (JSON) in the environment.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const URL0 = process.env.TALLY_URL;
const PROJECT = process.env.TALLY_PROJECT || "demo";
const KEY = process.env.TALLY_KEY || "rk_demo";
const WKEY = process.env.TALLY_WRITE_KEY || "wk_demo";
const SHOTS = process.env.SHOTS || "../build/screenshots";
const ARGS = JSON.parse(process.env.ARGS || "{}");
const scenario = process.argv[2];
mkdirSync(SHOTS, { recursive: true });

const out = { scenario, console_errors: [], page_errors: [], failed_requests: [], bad_responses: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function newPage({ dark = false, signedIn = true } = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: dark ? "dark" : "light", deviceScaleFactor: 1 });
  if (signedIn)
    await ctx.addInitScript(([k, p]) => {
      if (!localStorage.getItem("tally.key")) {
        localStorage.setItem("tally.key", k);
        localStorage.setItem("tally.project", p);
        localStorage.setItem("tally.tz", "UTC");
      }
    }, [KEY, PROJECT]);
  const page = await ctx.newPage();
  // An HTTP error answer is logged by Chromium as "Failed to load resource"; those are kept
  // in bad_responses instead (with the server's reason), which the test judges.
  page.on("console", (m) => { if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of/.test(m.text())) out.console_errors.push(`${page.url()}: ${m.text()}`); });
  page.on("response", async (r) => {
    if (r.status() < 400) return;
    let body = "";
    try { body = (await r.text()).slice(0, 300); } catch { /* streamed or gone */ }
    out.bad_responses.push({ url: r.url().replace(URL0, ""), method: r.request().method(), status: r.status(), body, post: r.request().postData()?.slice(0, 300) });
  });
  page.on("pageerror", (e) => out.page_errors.push(`${page.url()}: ${e.message}`));
  // Requests cancelled on purpose (the page moved on: its AbortController, or a navigation)
  // are not failures.
  page.on("requestfailed", (r) => { if (!/ERR_ABORTED/.test(r.failure()?.errorText || "")) out.failed_requests.push(`${r.url()}: ${r.failure()?.errorText}`); });
  return page;
}

// Waits until the main area shows no loading state (the page finished its queries).
async function settled(page, timeout = 30000) {
  await page.waitForSelector("main#main h1", { timeout });
  await page.waitForFunction(() => !document.querySelector("main .state.loading"), null, { timeout });
  await page.waitForTimeout(150);
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

// What a page shows, in words a test can check.
async function describe(page) {
  return page.evaluate(() => {
    const main = document.querySelector("main");
    const q = (s) => [...main.querySelectorAll(s)];
    return {
      url: location.pathname + location.search,
      h1: main.querySelector("h1")?.textContent || "",
      unsupported: q(".state.error.unsupported").map((e) => e.textContent),
      errors: q(".state.error:not(.unsupported)").map((e) => e.textContent),
      empty: q(".state.empty").map((e) => e.textContent),
      charts: q(".uplot").length,
      captions: q(".caption").map((e) => e.textContent),
      tables: q(".table-wrap table").map((t) => ({
        columns: [...t.querySelectorAll("thead th")].map((th) => th.textContent),
        rows: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((td) => td.dataset.value)),
      })),
      kpis: Object.fromEntries(q("[data-testid^=kpi-], [data-testid^=rt-]").filter((e) => e.querySelector(".value")).map((e) => [e.dataset.testid, e.querySelector(".value").dataset.value])),
      csv_buttons: q("button.csv").length,
      // Controls a screen reader could not name (no label, aria-label or text).
      unlabelled: q("input, select, textarea, button").filter((e) => !(e.closest("label") || e.getAttribute("aria-label") || (e.id && document.querySelector(`label[for="${e.id}"]`)) || (e.tagName === "BUTTON" && e.textContent.trim()))).map((e) => e.outerHTML.slice(0, 120)),
      // Charts say what they count and in which zone.
      uncaptioned_charts: q(".chart-block").filter((f) => !/time zone|server clock/.test(f.querySelector("figcaption")?.textContent || "")).length,
    };
  });
}

const scenarios = {
  // Sign in through the form, then every page: loads, settles, no console error; screenshots.
  async pages() {
    const page = await newPage({ signedIn: false });
    await page.goto(URL0 + "/");
    await page.waitForSelector("input[name=key]");
    out.signin_redirect = new URL(page.url()).pathname;
    await shot(page, "signin");
    await page.fill("input[name=key]", "rk_wrong");
    await page.click("button[type=submit]");
    await page.waitForSelector(".state.error");
    out.signin_bad_key = await page.textContent(".state.error");
    await page.fill("input[name=key]", KEY);
    await page.click("button[type=submit]");
    await page.waitForURL("**/overview");
    out.pages = {};
    const paths = ARGS.paths || ["/overview", "/realtime", "/trends", "/funnels", "/retention", "/sessions", "/paths", "/persons", "/persons?id=anon-1", "/dashboards"];
    for (const p of paths) {
      await page.goto(URL0 + p);
      if (p.startsWith("/realtime")) await page.waitForTimeout(2500);
      await settled(page);
      out.pages[p] = await describe(page);
      await shot(page, p.slice(1).replace(/[/?&=]/g, "_") || "root");
    }
    // Dark mode and the keyboard: "g t" opens Trends.
    await page.goto(URL0 + "/overview");
    await settled(page);
    await page.keyboard.press("g");
    await page.keyboard.press("t");
    await page.waitForURL("**/trends**");
    out.keyboard_nav = new URL(page.url()).pathname;
    const dark = await newPage({ dark: true });
    for (const p of ARGS.dark || ["/overview", "/trends?breakdown=platform&chart=bar"]) {
      await dark.goto(URL0 + p);
      await settled(dark);
      await shot(dark, "dark_" + p.slice(1).split("?")[0]);
    }
    out.dark_theme = await dark.evaluate(() => document.documentElement.dataset.theme);
  },

  // Overview: the numbers it shows.
  async overview() {
    const page = await newPage();
    await page.goto(URL0 + "/overview");
    await page.waitForSelector("[data-testid=kpi-dau] .value[data-value]:not([data-value=''])", { timeout: 30000 });
    await settled(page);
    out.view = await describe(page);
    // Cost of the page: ms from navigation start to every number and chart drawn, and the
    // bytes transferred for the app itself (HTML, JS, CSS, icon; the API answers apart).
    out.perf = await page.evaluate(() => {
      const r = performance.getEntriesByType("resource");
      const nav = performance.getEntriesByType("navigation")[0];
      const app = r.filter((e) => e.name.includes("/assets/"));
      return {
        ready_ms: Math.round(performance.now()),
        dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd),
        app_transfer_bytes: nav.transferSize + app.reduce((a, e) => a + e.transferSize, 0),
        api_requests: r.filter((e) => e.name.includes("/api/")).length,
      };
    });
    out.tops = await page.evaluate(() => Object.fromEntries(["top-pages", "top-countries", "platforms", "app-versions"].map((id) => [id, [...document.querySelectorAll(`[data-testid=${id}] tbody tr`)].map((tr) => [...tr.children].map((td) => td.dataset.value))])));
    await shot(page, "overview");
    // A country of the top list opens Trends filtered to it.
    out.drill_value = await page.textContent("[data-testid=top-countries] tbody a");
    await page.click("[data-testid=top-countries] tbody a");
    await page.waitForURL("**/trends?**");
    await settled(page);
    out.drill = await describe(page);
  },

  // Any page at a URL: what it shows (numbers compared by the test).
  async view() {
    const page = await newPage();
    await page.goto(URL0 + ARGS.path);
    await settled(page);
    out.view = await describe(page);
    if (ARGS.shot) await shot(page, ARGS.shot);
  },

  // Several URLs in one browser: ARGS.views = [[path, screenshot name], …].
  async views() {
    const page = await newPage();
    out.views = [];
    for (const [path, name] of ARGS.views) {
      await page.goto(URL0 + path);
      await settled(page);
      out.views.push(await describe(page));
      if (name) await shot(page, name);
    }
  },

  // Trends set up through the controls; the URL it leaves reproduces the view in a new page.
  async trends_roundtrip() {
    const page = await newPage();
    await page.goto(URL0 + "/trends");
    await settled(page);
    await page.selectOption("select[name=metric]", "persons");
    await settled(page);
    await page.selectOption("select[name=interval]", "week");
    await settled(page);
    await page.fill("input[name=event]", ARGS.event || "pageview");
    await page.press("input[name=event]", "Enter");
    await page.locator("input[name=event]").blur();
    await settled(page);
    await page.click("button[name=add-filter]");
    await page.fill("input[name=filter-prop]", "platform");
    await page.locator("input[name=filter-prop]").blur();
    await page.selectOption("select[name=filter-op]", "in");
    await page.fill("input[name=filter-value]", "web,ios");
    await page.locator("input[name=filter-value]").blur();
    await settled(page);
    await page.fill("input[name=breakdown]", "country");
    await page.locator("input[name=breakdown]").blur();
    await settled(page);
    await page.click("button[name=chart-bar]");
    await settled(page);
    await page.selectOption("select[name=range]", "14d");
    await settled(page);
    out.first = await describe(page);
    out.controls = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("main [name]")].map((e) => [e.name, e.type === "checkbox" ? e.checked : e.value])));
    const url = page.url();
    const again = await newPage();
    await again.goto(url);
    await settled(again);
    out.second = await describe(again);
    out.controls_again = await again.evaluate(() => Object.fromEntries([...document.querySelectorAll("main [name]")].map((e) => [e.name, e.type === "checkbox" ? e.checked : e.value])));
    await shot(again, "trends");
    // Compare with the previous period, no breakdown.
    await again.fill("input[name=breakdown]", "");
    await again.locator("input[name=breakdown]").blur();
    await settled(again);
    await again.check("input[name=compare]");
    await settled(again);
    out.compare = await describe(again);
    // Back goes to the previous view.
    await again.goBack();
    await settled(again);
    out.after_back = new URL(again.url()).search;
  },

  // A funnel built through the UI.
  async funnel() {
    const page = await newPage();
    await page.goto(URL0 + "/funnels");
    await settled(page);
    const steps = ARGS.steps;
    for (let i = 0; i < steps.length; i++) {
      const inputs = page.locator("input[name=step]");
      if ((await inputs.count()) <= i) {
        await page.click("button[name=add-step]");
        await settled(page);
      }
      await page.locator("input[name=step]").nth(i).fill(steps[i]);
      await page.locator("input[name=step]").nth(i).blur();
      await settled(page);
    }
    if (ARGS.window) {
      await page.selectOption("select[name=window]", String(ARGS.window));
      await settled(page);
    }
    out.view = await describe(page);
    out.bars = await page.evaluate(() => [...document.querySelectorAll("[data-testid=funnel-bars] .fstep")].map((e) => +e.dataset.persons));
    out.url = new URL(page.url()).search;
    await shot(page, "funnels");
  },

  // Realtime: the page updates when events arrive (sent here, with the write key).
  async realtime() {
    const page = await newPage();
    await page.goto(URL0 + "/realtime");
    const unsupported = await Promise.race([
      page.waitForSelector("[data-testid=live].on", { timeout: 20000 }).then(() => false),
      page.waitForSelector(".state.error", { timeout: 20000 }).then(() => true),
    ]);
    out.view_before = await describe(page);
    if (unsupported) return;
    const before = +(await page.getAttribute("[data-testid=rt-active] .value", "data-value"));
    const evs = Array.from({ length: 5 }, (_, i) => ({ event: "pageview", anonymous_id: `rt-${Date.now()}-${i}`, url: "/live-" + i }));
    const r = await fetch(URL0 + "/collect", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + WKEY }, body: JSON.stringify({ events: evs }) });
    out.collect_status = r.status;
    await page.waitForFunction((b) => +document.querySelector("[data-testid=rt-active] .value").dataset.value >= b + 5, before, { timeout: 15000 });
    await page.waitForTimeout(300);
    out.active_before = before;
    out.active_after = +(await page.getAttribute("[data-testid=rt-active] .value", "data-value"));
    await page.waitForFunction(() => /\/live-/.test(document.querySelector("[data-testid=rt-feed]").textContent), null, { timeout: 10000 }).catch(() => {});
    out.feed = await page.evaluate(() => [...document.querySelectorAll("[data-testid=rt-feed] li")].map((li) => li.textContent));
    out.view_after = await describe(page);
    await shot(page, "realtime");
  },

  // Pin a trends view to a new dashboard; the dashboard shows it after a reload.
  async pin() {
    const page = await newPage();
    await page.goto(URL0 + "/trends?metric=persons&breakdown=platform&range=30d");
    await settled(page);
    await page.click("button[name=pin]");
    await page.waitForSelector("dialog[open]");
    await page.fill("input[name=dashboard-name]", "Leadership");
    await page.fill("input[name=tile-title]", "Persons by platform");
    await page.click("button[name=save-pin]");
    await page.waitForURL("**/dashboards**");
    await settled(page);
    await page.reload();
    await settled(page);
    out.view = await describe(page);
    out.tiles = await page.evaluate(() => [...document.querySelectorAll("[data-testid=tile] h2")].map((e) => e.textContent));
    await shot(page, "dashboards");
  },
};

try {
  if (!scenarios[scenario]) throw new Error("unknown scenario " + scenario);
  await scenarios[scenario]();
  out.ok = true;
} catch (e) {
  out.ok = false;
  out.error = String(e.stack || e);
} finally {
  await browser.close();
  console.log(JSON.stringify(out));
}
