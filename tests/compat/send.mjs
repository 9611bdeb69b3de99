// Sends a scripted scenario through one official client library to a tally on loopback
// (tests/integration/test_compat.py). Usage:
//
//   node send.mjs CLIENT TALLY_URL WRITE_KEY SCENARIO.json [FAIL_FIRST]
//
// CLIENT is segment (@segment/analytics-node), posthog (posthog-node) or snowplow
// (@snowplow/node-tracker). The scenario is a JSON list of steps:
//   {"op":"event","event":E,"anon":A,"user":U,"ts":ISO,"url","referrer","app_version","os",
//    "props":{…},"id":UUID}          an event under exactly one of anon / user
//   {"op":"page","anon","user","ts","url","referrer","id"}   a page view
//   {"op":"identify","anon":A,"user":U,"traits":{…}}        A becomes U's
// Each client gets the scenario the way its users would call it. The requests go through a
// small proxy that forwards everything to tally but answers 503 to the first FAIL_FIRST
// POSTs (default 1) after tally stored them: the client retries, and tally must recognise
// the repeats by their client ids. Prints one JSON line: {"requests":N,"failed":F}.
import fs from 'node:fs';
import http from 'node:http';

const [client, target, writeKey, scenarioPath, failArg] = process.argv.slice(2);
const steps = JSON.parse(fs.readFileSync(scenarioPath, 'utf8'));
let failFirst = failArg === undefined ? 1 : Number(failArg);
let requests = 0, failed = 0;

// The flaky proxy.
const proxy = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers = { ...req.headers };
        delete headers.host;
        headers['content-length'] = String(body.length);
        const u = new URL(req.url, target);
        const out = http.request(u, { method: req.method, headers }, (tr) => {
            const back = [];
            tr.on('data', (c) => back.push(c));
            tr.on('end', () => {
                requests++;
                if (req.method === 'POST' && failed < failFirst && tr.statusCode < 300) {
                    failed++;
                    res.writeHead(503, { 'content-type': 'text/plain' });
                    res.end('try again');
                    return;
                }
                res.writeHead(tr.statusCode, tr.headers);
                res.end(Buffer.concat(back));
            });
        });
        out.on('error', (e) => {
            res.writeHead(502);
            res.end(String(e));
        });
        out.end(body);
    });
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
const host = `http://127.0.0.1:${proxy.address().port}`;

async function segment() {
    const { Analytics } = await import('@segment/analytics-node');
    const a = new Analytics({ writeKey, host, flushAt: 5, flushInterval: 200, maxRetries: 5 });
    for (const s of steps) {
        const ids = {};
        if (s.user) ids.userId = s.user;
        if (s.anon) ids.anonymousId = s.anon;
        const timestamp = s.ts ? new Date(s.ts) : undefined;
        if (s.op === 'identify') {
            a.identify({ userId: s.user, anonymousId: s.anon, traits: s.traits || {} });
        } else if (s.op === 'page') {
            a.page({ ...ids, timestamp, messageId: s.id,
                     properties: { url: s.url, referrer: s.referrer } });
        } else {
            const context = {};
            if (s.url || s.referrer) context.page = { url: s.url, referrer: s.referrer };
            if (s.app_version) context.app = { version: s.app_version };
            if (s.os) context.os = { name: s.os };
            a.track({ ...ids, event: s.event, properties: s.props || {}, timestamp,
                      messageId: s.id, context });
        }
    }
    await a.closeAndFlush({ timeout: 30000 });
}

async function posthog() {
    const { PostHog } = await import('posthog-node');
    const p = new PostHog(writeKey, { host, flushAt: 5, flushInterval: 200,
                                      fetchRetryCount: 5, fetchRetryDelay: 200 });
    for (const s of steps) {
        const timestamp = s.ts ? new Date(s.ts) : undefined;
        if (s.op === 'identify') {
            p.identify({ distinctId: s.user,
                         properties: { $anon_distinct_id: s.anon, $set: s.traits || {} } });
            continue;
        }
        const props = { ...(s.props || {}) };
        if (s.url) props.$current_url = s.url;
        if (s.referrer) props.$referrer = s.referrer;
        if (s.app_version) props.$app_version = s.app_version;
        if (s.os) props.$os = s.os;
        p.capture({ distinctId: s.user || s.anon, event: s.op === 'page' ? '$pageview' : s.event,
                    properties: props, timestamp, uuid: s.id });
    }
    await p.shutdown(30000);
}

async function snowplow() {
    const sp = await import('@snowplow/node-tracker');
    const t = sp.newTracker({ namespace: 'compat', appId: writeKey, encodeBase64: true },
                            { endpoint: host, eventMethod: 'post', bufferSize: 5 });
    // Snowplow has no identify call: the anonymous id rides along on the user's next event,
    // which merges the two (the events carry both uid and duid).
    const pending = new Map();
    for (const s of steps) {
        if (s.op === 'identify') {
            pending.set(s.user, s.anon);
            continue;
        }
        let anon = s.anon;
        if (s.user && pending.has(s.user)) {
            anon = pending.get(s.user);
            pending.delete(s.user);
        }
        t.setUserId(s.user || undefined);
        t.setDomainUserId(anon || undefined);
        const ts = new Date(s.ts).getTime();
        if (s.op === 'page') {
            t.track(sp.buildPageView({ pageUrl: s.url, referrer: s.referrer }), undefined, ts);
        } else {
            t.track(sp.buildSelfDescribingEvent({ event: {
                schema: `iglu:com.tally/${s.event}/jsonschema/1-0-0`, data: s.props || {} } }),
                undefined, ts);
        }
    }
    // Retried events stay queued in the emitter: flush until everything went through.
    for (let i = 0; i < 20; i++) {
        await t.flush();
        if (failed >= failFirst) {
            await t.flush();
            break;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
}

const run = { segment, posthog, snowplow }[client];
if (!run) {
    console.error(`unknown client ${client}`);
    process.exit(2);
}
await run();
proxy.close();
console.log(JSON.stringify({ requests, failed }));
