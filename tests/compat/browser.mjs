// Browser SDKs in Debian's chromium (playwright-core) against a tally on loopback
// (tests/integration/test_compat.py). Usage:
//
//   node browser.mjs CLIENT TALLY_URL WRITE_KEY CHROMIUM
//
// A page on another loopback port (so every call to tally is cross-origin and needs CORS)
// loads the SDK from node_modules as a site would, pointed at tally:
//   posthog    posthog-js: remote config and /flags, the automatic $pageview, an anonymous
//              "signup", identify("u1") and a "purchase"; the page is left right after, so
//              the purchase goes out as the page is hidden (sendBeacon / keepalive).
//   segment    analytics.js (@segment/analytics-next, its UMD build) with cdnURL = tally: the
//              settings from tally, page(), an anonymous "signup", identify("u1"), "purchase".
//   plausible  plausible-tracker (domain = the write key): trackPageview() and a "Signup"
//              event with props.
// Prints one JSON line: the page URL, the anonymous id the SDK generated, the
// requests made to tally ({method, path, query, type, status}) and any failed request.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [client, tally, writeKey, chromiumPath] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));

const pages = {
    posthog: `<!doctype html><html><head><title>compat</title>
<script src="/posthog.js"></script>
<script>
posthog.init(${JSON.stringify(writeKey)}, {
  api_host: ${JSON.stringify(tally)}, autocapture: false, capture_pageview: true,
  capture_pageleave: false, disable_session_recording: true, disable_surveys: true,
  persistence: 'localStorage', request_batching: true, opt_out_useragent_filter: true,
  loaded: function () { window.__loaded = true; }
});
</script></head><body><p>compat</p></body></html>`,
    segment: `<!doctype html><html><head><title>compat</title>
<script src="/analytics-next.js"></script>
<script>
AnalyticsNext.AnalyticsBrowser.load({ writeKey: ${JSON.stringify(writeKey)},
                                      cdnURL: ${JSON.stringify(tally)} })
  .then(([analytics]) => { window.analytics = analytics; window.__loaded = true; })
  .catch((e) => { window.__error = String(e); });
</script></head><body><p>compat</p></body></html>`,
    plausible: `<!doctype html><html><head><title>compat</title>
<script type="module">
import Plausible from '/pt/index.js';
const p = Plausible({ domain: ${JSON.stringify(writeKey)}, apiHost: ${JSON.stringify(tally)},
                      trackLocalhost: true });
window.__send = () => new Promise((done) => {
  p.trackPageview({}, { callback: () =>
    p.trackEvent('Signup', { props: { plan: 'pro' }, callback: done }) });
});
window.__loaded = true;
</script></head><body><p>compat</p></body></html>`,
};

// The site: the page, and the SDK's files from node_modules.
const site = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    let file = null;
    if (u.pathname === '/analytics-next.js') {
        file = path.join(here, 'node_modules/@segment/analytics-next/dist/umd/index.js');
    } else if (u.pathname === '/posthog.js') {
        file = path.join(here, 'node_modules/posthog-js/dist/array.full.js');
    } else if (u.pathname.startsWith('/pt/')) {
        // plausible-tracker's ES modules import './lib/tracker' without the extension.
        file = path.join(here, 'node_modules/plausible-tracker/build/module',
                         path.normalize(u.pathname.slice(4)).replace(/^(\.\.[/\\])+/, ''));
        if (!file.endsWith('.js')) file += '.js';
    }
    if (file) {
        res.writeHead(200, { 'content-type': 'application/javascript' });
        res.end(fs.readFileSync(file));
    } else {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(pages[client]);
    }
});
await new Promise((r) => site.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${site.address().port}/shop`;

const browser = await chromium.launch({ executablePath: chromiumPath, headless: true,
                                        args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const out = { page: pageUrl, requests: [], failed: [], console: [] };
try {
    // A desktop Chrome's User-Agent: posthog-js drops events from headless browsers, and so
    // does tally's bot filter.
    const userAgent = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
        `Chrome/${browser.version()} Safari/537.36`;
    out.user_agent = userAgent;
    const ctx = await browser.newContext({ userAgent });
    const page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.console.push(m.text()); });
    page.on('requestfinished', async (rq) => {
        if (!rq.url().startsWith(tally)) return;
        const resp = await rq.response().catch(() => null);
        out.requests.push({ method: rq.method(), path: new URL(rq.url()).pathname,
                            query: new URL(rq.url()).search, type: rq.resourceType(),
                            status: resp ? resp.status() : 0 });
    });
    page.on('requestfailed', (rq) => {
        if (rq.url().startsWith(tally))
            out.failed.push({ method: rq.method(), url: rq.url(), error: rq.failure()?.errorText });
    });
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.__loaded === true, null, { timeout: 20000 });
    if (client === 'posthog') {
        out.anon = await page.evaluate(() => window.posthog.get_distinct_id());
        await page.evaluate(() => window.posthog.capture('signup', { plan: 'pro' }));
        // Let the first batch (the page view and the signup) go out.
        await page.waitForTimeout(4000);
        // identify() sends $identify at once (not batched): let it arrive, as it would on a
        // page that stays open a moment (leaving at once would cancel it with PostHog too).
        await page.evaluate(() => window.posthog.identify('u1', { email: 'u1@x.io' }));
        await page.waitForTimeout(1500);
        await page.evaluate(() => window.posthog.capture('purchase', { amount: 9.5 }));
        // Leave at once: the queued purchase goes out as the page is hidden.
        await page.goto('about:blank');
        await page.waitForTimeout(1500);
    } else if (client === 'segment') {
        out.anon = await page.evaluate(() => window.analytics.user().anonymousId());
        await page.evaluate(async () => {
            await window.analytics.page();
            await window.analytics.track('signup', { plan: 'pro' });
            await window.analytics.identify('u1', { email: 'u1@x.io' });
            await window.analytics.track('purchase', { amount: 9.5 });
        });
        await page.waitForTimeout(500);
    } else {
        await page.evaluate(() => window.__send());
    }
    await ctx.close();
} finally {
    await browser.close();
    site.close();
}
console.log(JSON.stringify(out));
