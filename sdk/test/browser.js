// Drives Debian's chromium (playwright-core) through tally.js scenarios against a running
// tally. Run by tests/integration/test_sdk_browser.py, which starts tally, a stub proxy and a
// static server for the test pages (another loopback port: cross-origin, as on real sites):
//
//   node sdk/test/browser.js CONFIG_JSON
//     {"chromium": "/usr/bin/chromium", "pages": "http://127.0.0.1:P", "tally": "http://…",
//      "proxy": "http://…", "key": "wk_demo"}
//
// Prints one JSON line: {"scenarios": {name: {"anon": id, "user": id|null, "events":
// {event name: count expected on the server}}}, "notes": [...]}. The Python side checks the
// server's counts and `tally export` against it. Client-side expectations (queue drained,
// request counts) are checked here; a failure exits 1 with the reason.
'use strict';
const { chromium } = require('playwright-core');

const cfg = JSON.parse(process.argv[2]);
const QPRE = 'tally_q_' + cfg.key + '.'; // one stored queue per page
const results = {};
const notes = [];

function fail(msg) {
  throw new Error(msg);
}

async function waitFor(fn, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fail('timed out waiting for ' + what + ' (last: ' + last + ')');
}

const queueLen = (page) =>
  page.evaluate((pre) => {
    let n = 0;
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k.startsWith(pre)) n += JSON.parse(localStorage.getItem(k)).length;
    }
    return n;
  }, QPRE);
const drained = (page, what, ms) => waitFor(async () => (await queueLen(page)) === 0, what, ms);
const ids = (page) =>
  page.evaluate(() => ({
    anon: localStorage.getItem('tally_aid'),
    user: localStorage.getItem('tally_uid'),
  }));

// page.html?host=H&fi=MS&fa=N: loads tally.js from the server, inits with the given host.
function pageUrl(host, fi, fa, path = '/page.html') {
  return cfg.pages + path + '?host=' + encodeURIComponent(host) + '&fi=' + fi + '&fa=' + fa;
}

// Counts /collect requests the page makes (fetch and beacon), by status when answered.
function watchCollect(page) {
  const seen = { requests: 0, beacons: 0, statuses: [] };
  page.on('request', (r) => {
    if (r.url().endsWith('/collect') && r.method() === 'POST') {
      seen.requests++;
      if (r.resourceType() === 'ping' || r.resourceType() === 'beacon') seen.beacons++;
    }
  });
  page.on('response', (r) => {
    if (r.url().endsWith('/collect') && r.request().method() === 'POST') seen.statuses.push(r.status());
  });
  return seen;
}

// Headless Chromium says "HeadlessChrome" in its user agent, which tally's bot filter drops
// (as it should): the pages here present themselves as the desktop browser they are.
let userAgent;

async function scenario(browser, name, fn) {
  const ctx = await browser.newContext({ userAgent });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => notes.push(name + ': page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') notes.push(name + ': console: ' + m.text());
  });
  const r = { events: {} };
  await fn(ctx, page, r);
  results[name] = r;
  await ctx.close();
}

async function main() {
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  userAgent =
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/' +
    browser.version() + ' Safari/537.36';
  try {
    // 1. Page views, a click, single-page-app navigation (no double count of one URL),
    //    identify: all sent by fetch and drained.
    await scenario(browser, 'spa', async (ctx, page, r) => {
      const seen = watchCollect(page);
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'spa: first page view sent');
      Object.assign(r, await ids(page));
      await page.click('#buy');
      await page.click('#nav'); // pushState /spa/2 → page view
      await page.click('#nav'); // pushState to the same URL again → none
      await page.click('#replace'); // replaceState, same URL → none
      await page.evaluate(() => history.back()); // popstate, still /spa/2 → none
      await waitFor(() => page.evaluate(() => history.state && !history.state.x), 'history.back');
      await page.evaluate(() => history.back()); // popstate → back on page.html → page view
      await waitFor(() => page.evaluate(() => location.pathname === '/page.html'), 'history.back');
      await page.evaluate(() => tally.identify('user-spa', { plan: 'pro' }));
      await page.evaluate(() => tally.track('after_identify', { k: 1 }));
      await drained(page, 'spa: queue drained');
      r.user = 'user-spa';
      r.events = { $pageview: 3, clicked: 1, $identify: 1, after_identify: 1 };
      if (seen.beacons) fail('spa: unexpected beacon');
      if (!seen.statuses.every((s) => s === 200)) fail('spa: statuses ' + seen.statuses);
      r.requests = seen.requests;
    });

    // 2. Events pending when the page is closed: they leave by sendBeacon on pagehide.
    await scenario(browser, 'beacon', async (ctx, page, r) => {
      const seen = watchCollect(page);
      await page.goto(pageUrl(cfg.tally, 600000, 1000)); // nothing sent by the timer
      await waitFor(async () => (await queueLen(page)) === 1, 'beacon: page view queued');
      Object.assign(r, await ids(page));
      for (let i = 0; i < 5; i++) await page.click('#pending');
      const n = await queueLen(page);
      if (n !== 6) fail('beacon: ' + n + ' events queued before close, want 6');
      if (seen.requests) fail('beacon: a request before the close');
      await page.close({ runBeforeUnload: true });
      r.events = { $pageview: 1, pending: 5 };
    });

    // 2b. The same, but the browser refuses the beacon: the events stay stored, and the next
    //     page of the site (here: the same page loaded again) adopts and sends them.
    await scenario(browser, 'adopt', async (ctx, page, r) => {
      await page.goto(pageUrl(cfg.tally, 600000, 1000));
      await waitFor(async () => (await queueLen(page)) === 1, 'adopt: page view queued');
      Object.assign(r, await ids(page));
      for (let i = 0; i < 3; i++) await page.click('#pending2');
      await page.evaluate(() => (navigator.sendBeacon = () => false));
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'adopt: the next page sent what the last one left');
      r.events = { $pageview: 2, pending2: 3 };
    });

    // 3. Offline for a while, then back online: the queue is kept and drains once.
    await scenario(browser, 'offline', async (ctx, page, r) => {
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'offline: first page view sent');
      Object.assign(r, await ids(page));
      await ctx.setOffline(true);
      for (let i = 0; i < 3; i++) await page.evaluate(() => tally.track('offline_evt'));
      await page.waitForTimeout(1500);
      const n = await queueLen(page);
      if (n !== 3) fail('offline: ' + n + ' events queued while offline, want 3');
      const seen = watchCollect(page);
      await ctx.setOffline(false);
      await drained(page, 'offline: queue drained after coming back online');
      if (seen.requests !== 1) notes.push('offline: ' + seen.requests + ' requests to drain');
      r.events = { $pageview: 1, offline_evt: 3 };
    });

    // 4. A 503 with Retry-After (from the stub proxy in front of tally): retried, once.
    await scenario(browser, 'retry', async (ctx, page, r) => {
      const seen = watchCollect(page);
      await page.goto(pageUrl(cfg.proxy, 200, 50, '/page.html'));
      await page.waitForFunction(() => window.tally && window.tally.version);
      Object.assign(r, await ids(page));
      await page.evaluate(() => tally.track('retry_evt', { n: 1 }));
      await drained(page, 'retry: queue drained after 503s', 30000);
      if (!seen.statuses.includes(503)) fail('retry: no 503 seen: ' + seen.statuses);
      if (seen.statuses[seen.statuses.length - 1] !== 200) fail('retry: ' + seen.statuses);
      r.statuses = seen.statuses;
      r.events = { $pageview: 1, retry_evt: 1 };
    });

    // 5. An event the server rejects (name over 200 bytes) is dropped, not retried forever.
    await scenario(browser, 'rejected', async (ctx, page, r) => {
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'rejected: first page view sent');
      Object.assign(r, await ids(page));
      await page.evaluate(() => tally.track('x'.repeat(300)));
      await page.evaluate(() => tally.track('kept_evt'));
      await drained(page, 'rejected: queue drained');
      r.events = { $pageview: 1, kept_evt: 1 };
    });

    // 6. The README's queued snippet: calls made before tally.js has loaded are kept.
    await scenario(browser, 'snippet', async (ctx, page, r) => {
      await page.route('**/tally.js', async (route) => {
        await new Promise((res) => setTimeout(res, 300)); // load it late
        await route.continue();
      });
      await page.goto(cfg.pages + '/snippet.html');
      await page.waitForFunction(() => window.tally && window.tally.version);
      if (!(await page.evaluate(() => window.wasQueued))) fail('snippet: calls not queued');
      await drained(page, 'snippet: queue drained');
      Object.assign(r, await ids(page));
      r.user = 'user-snippet';
      r.events = { $pageview: 1, early_evt: 1, $identify: 1 };
    });

    // 7. Two tabs of one site share the stored queue: neither loses the other's events.
    await scenario(browser, 'tabs', async (ctx, page, r) => {
      await page.goto(pageUrl(cfg.tally, 100, 5));
      await drained(page, 'tabs: first page view sent');
      const page2 = await ctx.newPage();
      await page2.goto(pageUrl(cfg.tally, 100, 5));
      Object.assign(r, await ids(page));
      const other = await ids(page2);
      if (other.anon !== r.anon) fail('tabs: two anonymous ids ' + JSON.stringify([r, other]));
      for (let i = 0; i < 10; i++) {
        await Promise.all([
          page.evaluate((n) => tally.track('tab_evt', { tab: 1, n }), i),
          page2.evaluate((n) => tally.track('tab_evt', { tab: 2, n }), i),
        ]);
      }
      await drained(page, 'tabs: queue drained');
      await drained(page2, 'tabs: queue drained (second tab)');
      r.events = { $pageview: 2, tab_evt: 20 };
    });

    // 8. Other browser code posting JSON with an Authorization header: a CORS preflight
    //    (OPTIONS /collect) first, then the POST, whose answer the page can read.
    await scenario(browser, 'preflight', async (ctx, page, r) => {
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'preflight: first page view sent');
      Object.assign(r, await ids(page));
      const res = await page.evaluate(
        async ([url, key, anon]) => {
          const resp = await fetch(url + '/collect', {
            method: 'POST',
            headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
            body: JSON.stringify({ events: [{ event: 'preflight_evt', anonymous_id: anon }] }),
          });
          return [resp.status, await resp.json()];
        },
        [cfg.tally, cfg.key, r.anon]
      );
      if (res[0] !== 200 || res[1].accepted !== 1) fail('preflight: ' + JSON.stringify(res));
      r.events = { $pageview: 1, preflight_evt: 1 };
    });

    // 9. A client clock 2 hours fast: the server corrects each event's time by sent_at.
    await scenario(browser, 'skew', async (ctx, page, r) => {
      await ctx.addInitScript(() => {
        const real = Date.now;
        Date.now = () => real() + 7200e3;
      });
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'skew: first page view sent');
      Object.assign(r, await ids(page));
      await page.evaluate(() => tally.track('skew_evt'));
      await drained(page, 'skew: queue drained');
      r.events = { $pageview: 1, skew_evt: 1 };
    });

    // 10. reset(): a new anonymous id and no user id afterwards.
    await scenario(browser, 'reset', async (ctx, page, r) => {
      await page.goto(pageUrl(cfg.tally, 200, 50));
      await drained(page, 'reset: first page view sent');
      const before = await ids(page);
      await page.evaluate(() => tally.identify('user-reset'));
      await page.evaluate(() => tally.reset());
      await page.evaluate(() => tally.track('after_reset'));
      await drained(page, 'reset: queue drained');
      const after = await ids(page);
      if (!after.anon || after.anon === before.anon || after.user)
        fail('reset: ids ' + JSON.stringify([before, after]));
      r.anon = before.anon;
      r.user = 'user-reset';
      r.after = after.anon;
      r.events = { $pageview: 1, $identify: 1 };
      r.events_after = { after_reset: 1 };
    });
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify({ scenarios: results, notes }));
}

main().catch((e) => {
  console.log(JSON.stringify({ error: String(e && e.stack ? e.stack : e), scenarios: results, notes }));
  process.exit(1);
});
