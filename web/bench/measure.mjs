// Measures the two candidate chart libraries: bundle weight (minified, gzipped) and the time
// from script start to the first painted frame in headless Chromium (median of 7 loads).
//   npm install --no-save echarts@6.1.0 && node bench/measure.mjs      (from web/)
// Result at the time of the choice: see docs/dashboard.md.
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const out = "../build/web-bench";
mkdirSync(out, { recursive: true });
const res = {};
for (const lib of ["uplot", "echarts"]) {
  await esbuild.build({ entryPoints: [`bench/${lib}_entry.js`], bundle: true, minify: true, format: "esm", outdir: `${out}/${lib}`, logLevel: "error" });
  let js = readFileSync(`${out}/${lib}/${lib}_entry.js`), css = Buffer.alloc(0);
  try { css = readFileSync(`${out}/${lib}/${lib}_entry.css`); } catch {}
  writeFileSync(`${out}/${lib}/index.html`, `<!doctype html><link rel=stylesheet href="${lib}_entry.css"><div id=c></div><script type=module src="${lib}_entry.js"></script>`);
  res[lib] = { min_kb: +((js.length + css.length) / 1024).toFixed(1), gz_kb: +((gzipSync(js, { level: 9 }).length + gzipSync(css, { level: 9 }).length) / 1024).toFixed(1) };
}
const srv = createServer((q, r) => {
  try {
    const b = readFileSync(out + q.url.split("?")[0]);
    r.writeHead(200, { "Content-Type": q.url.endsWith(".js") ? "text/javascript" : q.url.endsWith(".css") ? "text/css" : "text/html" });
    r.end(b);
  } catch { r.writeHead(404); r.end(); }
}).listen(0);
const port = srv.address().port;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
for (const lib of Object.keys(res)) {
  const times = [], loads = [];
  for (let i = 0; i < 7; i++) {
    const page = await browser.newPage();
    const t0 = Date.now();
    await page.goto(`http://127.0.0.1:${port}/${lib}/index.html`);
    await page.waitForFunction(() => window.__render_ms !== undefined);
    loads.push(Date.now() - t0);
    times.push(await page.evaluate(() => window.__render_ms));
    await page.close();
  }
  times.sort((a, b) => a - b); loads.sort((a, b) => a - b);
  res[lib].render_ms_median = +times[3].toFixed(1);
  res[lib].load_to_chart_ms_median = loads[3];
}
await browser.close();
srv.close();
console.log(JSON.stringify(res, null, 1));
