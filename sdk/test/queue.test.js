// Unit tests of tally.js's queue, batching and backoff, in node (node --test), with stubbed
// browser objects and a fake clock: `cd sdk && npm test`. The browser test
// (tests/integration/test_sdk_browser.py) covers the same paths in chromium against tally.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const SRC = fs.readFileSync(path.join(__dirname, '..', 'tally.src.js'), 'utf8');

// A page: window, document, storage, history, fetch and sendBeacon stubs, a fake clock.
function page(opts = {}) {
  const store = opts.store || new Map();
  const timers = [];
  const intervals = [];
  const listeners = {};
  const requests = []; // {body, resolve(status, headers)}
  const beacons = [];
  const clock = opts.clock || { t: 1_700_000_000_000 };
  let href = 'https://site.test/a';
  const w = {
    localStorage: {
      getItem: (k) => (store.has(k) ? store.get(k) : null),
      setItem: (k, v) => {
        if (opts.full && k.startsWith('tally_q_')) throw new Error('QuotaExceededError');
        store.set(k, String(v));
      },
      removeItem: (k) => store.delete(k),
      key: (i) => [...store.keys()][i],
      get length() {
        return store.size;
      },
    },
    addEventListener: (e, f) => (listeners[e] = listeners[e] || []).push(f),
    innerWidth: 800,
    innerHeight: 600,
    screen: { width: 1920, height: 1080 },
    console: { warn() {} },
  };
  const ctx = {
    window: w,
    document: {
      cookie: '',
      title: 'T',
      referrer: '',
      visibilityState: 'visible',
      currentScript: { src: 'https://tally.test/tally.js' },
      addEventListener: w.addEventListener,
    },
    navigator: {
      onLine: true,
      language: 'en-GB',
      sendBeacon: opts.noBeacon ? undefined : (url, body) => {
        if (opts.beaconRefuses) return false;
        beacons.push({ url, body: JSON.parse(body) });
        return true;
      },
    },
    location: {
      get href() {
        return href;
      },
      get host() {
        return 'site.test';
      },
      get pathname() {
        return new URL(href).pathname;
      },
      origin: 'https://site.test',
    },
    history: {
      pushState: (s, t, u) => (href = new URL(u, href).href),
      replaceState: (s, t, u) => u && (href = new URL(u, href).href),
    },
    crypto: require('crypto').webcrypto,
    setTimeout: (f, ms) => {
      timers.push({ f, at: clock.t + (ms || 0), id: timers.length + 1 });
      return timers.length;
    },
    setInterval: (f, ms) => intervals.push({ f, ms }),
    clearTimeout: (id) => {
      if (id && timers[id - 1]) timers[id - 1].f = null;
    },
    fetch: (url, init) =>
      new Promise((resolve, reject) => {
        requests.push({
          url,
          init,
          body: JSON.parse(init.body),
          answer: (status, headers = {}) =>
            resolve({ status, headers: { get: (k) => (k in headers ? headers[k] : null) } }),
          fail: () => reject(new TypeError('Failed to fetch')),
        });
      }),
    URL,
    Intl,
    Math,
    JSON,
    Object,
    Array,
    String,
    Uint8Array,
  };
  ctx.window.tally = opts.queued;
  vm.createContext(ctx);
  vm.runInContext('Date.now = () => __clock.t', Object.assign(ctx, { __clock: clock }));
  vm.runInContext(SRC, ctx);
  const tick = () => new Promise((r) => setImmediate(r));
  const p = {
    tally: ctx.window.tally,
    ctx,
    store,
    requests,
    beacons,
    clock,
    // Every stored queue of the key 'wk', concatenated (one per page).
    queue: () =>
      [...store.keys()]
        .filter((k) => k.startsWith('tally_q_wk.'))
        .flatMap((k) => JSON.parse(store.get(k))),
    tick: () => intervals.forEach((i) => i.f()),
    // Moves the clock, running due timers in order; then lets promises settle.
    async advance(ms) {
      const end = clock.t + ms;
      for (;;) {
        await tick();
        const due = timers.filter((t) => t.f && t.at <= end).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        clock.t = Math.max(clock.t, due.at);
        const f = due.f;
        due.f = null;
        f();
      }
      clock.t = end;
      await tick();
    },
    fire: (name) => (listeners[name] || []).forEach((f) => f()),
  };
  return p;
}

test('events are queued, batched and removed once the server answers 200', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 1000, flushAt: 50 });
  p.tally.track('a', { x: 1 });
  p.tally.track('b');
  assert.strictEqual(p.queue().length, 2);
  await p.advance(999);
  assert.strictEqual(p.requests.length, 0);
  await p.advance(1);
  assert.strictEqual(p.requests.length, 1);
  const r = p.requests[0];
  assert.strictEqual(r.url, 'https://tally.test/collect');
  assert.strictEqual(r.body.api_key, 'wk');
  assert.strictEqual(r.body.sent_at, p.clock.t);
  assert.deepStrictEqual(r.body.events.map((e) => e.event), ['a', 'b']);
  const e = r.body.events[0];
  assert.match(e.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.strictEqual(e.platform, 'web');
  assert.strictEqual(e.properties.x, 1);
  assert.strictEqual(e.properties.$screen_width, 1920);
  assert.strictEqual(p.queue().length, 2, 'kept until answered');
  r.answer(200);
  await p.advance(0);
  assert.strictEqual(p.queue().length, 0);
});

test('flushAt sends at once', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushAt: 3 });
  p.tally.track('a');
  p.tally.track('b');
  assert.strictEqual(p.requests.length, 0);
  p.tally.track('c');
  assert.strictEqual(p.requests.length, 1);
});

test('503 with Retry-After: retried no sooner, with the same event ids, then drained', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  p.tally.track('a');
  await p.advance(10);
  const first = p.requests[0];
  first.answer(503, { 'Retry-After': '7' });
  await p.advance(0);
  p.tally.track('b'); // does not jump the backoff
  await p.advance(6900);
  assert.strictEqual(p.requests.length, 1, 'waited for Retry-After');
  await p.advance(200);
  assert.strictEqual(p.requests.length, 2);
  const second = p.requests[1];
  assert.strictEqual(second.body.events[0].event_id, first.body.events[0].event_id);
  assert.strictEqual(second.body.events.length, 2);
  assert.ok(second.body.sent_at > first.body.sent_at, 'each send sets sent_at');
  second.answer(200);
  await p.advance(0);
  assert.strictEqual(p.queue().length, 0);
});

test('network errors back off exponentially with jitter', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  p.tally.track('a');
  await p.advance(10);
  const times = [];
  for (let i = 0; i < 6; i++) {
    const n = p.requests.length;
    times.push(p.clock.t);
    p.requests[n - 1].fail();
    // Step until the next attempt.
    let waited = 0;
    while (p.requests.length === n && waited < 400000) {
      await p.advance(50);
      waited += 50;
    }
    const delay = waited;
    const base = 1000 * 2 ** i;
    assert.ok(delay >= base * 0.5 - 50 && delay <= base + 50, `attempt ${i}: ${delay} ms vs ${base}`);
  }
  p.requests[p.requests.length - 1].answer(200);
  await p.advance(0);
  assert.strictEqual(p.queue().length, 0);
});

test('400 and 401 drop the batch; 413 halves it', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10, flushAt: 100 });
  p.tally.track('bad');
  await p.advance(10);
  p.requests[0].answer(400);
  await p.advance(0);
  assert.strictEqual(p.queue().length, 0, '400 dropped');
  for (let i = 0; i < 4; i++) p.tally.track('e' + i);
  await p.advance(10);
  assert.strictEqual(p.requests[1].body.events.length, 4);
  p.requests[1].answer(413);
  await p.advance(0);
  assert.strictEqual(p.requests.length, 3);
  assert.strictEqual(p.requests[2].body.events.length, 2, 'halved');
  p.requests[2].answer(200);
  await p.advance(0);
  assert.strictEqual(p.requests[3].body.events.length, 2);
  p.requests[3].answer(401);
  await p.advance(0);
  assert.strictEqual(p.queue().length, 0);
});

test('offline: nothing sent; online sends at once', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  p.ctx.navigator.onLine = false;
  p.tally.track('a');
  await p.advance(60000);
  assert.strictEqual(p.requests.length, 0);
  assert.strictEqual(p.queue().length, 1);
  p.ctx.navigator.onLine = true;
  p.fire('online');
  assert.strictEqual(p.requests.length, 1);
});

test('pagehide hands the queue to sendBeacon, including events in flight', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  p.tally.track('a');
  await p.advance(10); // 'a' in flight
  p.tally.track('b');
  p.fire('pagehide');
  assert.strictEqual(p.beacons.length, 1);
  assert.strictEqual(p.beacons[0].body.api_key, 'wk');
  assert.deepStrictEqual(p.beacons[0].body.events.map((e) => e.event), ['a', 'b']);
  assert.strictEqual(p.queue().length, 0);
});

test('a refused beacon keeps the events for the next page', async () => {
  const p = page({ beaconRefuses: true });
  p.tally.init('wk', { autocapture: false, flushInterval: 100000 });
  p.tally.track('a');
  p.ctx.document.visibilityState = 'hidden';
  p.fire('visibilitychange');
  assert.strictEqual(p.queue().length, 1);
});

test('page views: init, pushState to new URLs only, popstate', async () => {
  const p = page();
  p.tally.init('wk', { flushInterval: 100000, flushAt: 100 });
  await p.advance(0);
  p.ctx.history.pushState({}, '', '/b');
  await p.advance(0);
  p.ctx.history.pushState({}, '', '/b');
  p.ctx.history.replaceState({}, '', '/b');
  await p.advance(0);
  p.ctx.history.pushState({}, '', '/a');
  await p.advance(0);
  const pv = p.queue().filter((e) => e.event === '$pageview').map((e) => e.url);
  assert.deepStrictEqual(pv, ['https://site.test/a', 'https://site.test/b', 'https://site.test/a']);
});

test('identify and reset', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100 });
  p.tally.track('before');
  p.tally.identify('u1', { plan: 'pro' });
  p.tally.identify('u1'); // same user, nothing new
  p.tally.track('after');
  const anon = p.store.get('tally_aid');
  p.tally.reset();
  p.tally.track('later');
  const q = p.queue();
  assert.deepStrictEqual(q.map((e) => e.event), ['before', '$identify', 'after', 'later']);
  assert.strictEqual(q[0].user_id, undefined);
  assert.strictEqual(q[1].user_id, 'u1');
  assert.strictEqual(q[1].anonymous_id, anon);
  assert.deepStrictEqual(q[1].user_properties, { plan: 'pro' });
  assert.strictEqual(q[2].user_id, 'u1');
  assert.strictEqual(q[3].user_id, undefined);
  assert.notStrictEqual(q[3].anonymous_id, anon);
});

test('the queued snippet: calls before load are replayed, init first', async () => {
  const queued = [];
  queued.push(['track', 'early', { a: 1 }]);
  queued.push(['init', 'wk', { autocapture: false, flushInterval: 100000 }]);
  const p = page({ queued });
  assert.strictEqual(typeof p.tally.track, 'function');
  assert.deepStrictEqual(p.queue().map((e) => e.event), ['early']);
});

test('the queue is bounded', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100000 });
  p.ctx.navigator.onLine = false;
  for (let i = 0; i < 1005; i++) p.tally.track('e' + i);
  const q = p.queue();
  assert.strictEqual(q.length, 1000);
  assert.strictEqual(q[0].event, 'e5');
});

test('properties are copied; one that cannot be sent does not poison the queue', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  const props = { a: 1 };
  p.tally.track('x', props);
  props.a = 2;
  const cyc = {};
  cyc.self = cyc;
  p.tally.track('y', cyc);
  p.tally.identify('u', cyc);
  const q = p.queue();
  assert.strictEqual(q[0].properties.a, 1);
  assert.strictEqual(q[1].properties.self, undefined);
  assert.deepStrictEqual(q[2].user_properties, {});
  await p.advance(10);
  assert.strictEqual(p.requests[0].body.events.length, 3);
});

test('without sendBeacon, pagehide sends by keepalive fetch', async () => {
  const p = page({ noBeacon: true });
  p.tally.init('wk', { autocapture: false, flushInterval: 100000 });
  p.tally.track('a');
  p.fire('pagehide');
  assert.strictEqual(p.requests.length, 1);
  assert.strictEqual(p.requests[0].init.keepalive, true);
});

test('each page writes only its own queue; gone pages are adopted', async () => {
  const store = new Map();
  const clock = { t: 1_700_000_000_000 };
  const a = page({ store, clock });
  a.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100 });
  const b = page({ store, clock });
  b.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100 });
  a.tally.track('from_a');
  b.tally.track('from_b');
  const keys = [...store.keys()].filter((k) => k.startsWith('tally_q_wk.'));
  assert.strictEqual(keys.length, 2, 'one queue per page');
  // A live page's queue is not taken.
  b.tick();
  assert.deepStrictEqual(b.queue().map((e) => e.event).sort(), ['from_a', 'from_b']);
  assert.strictEqual(b.requests.length, 0);
  // Page a goes away with its event unsent (the beacon refused): b adopts it at once.
  a.ctx.navigator.sendBeacon = () => false;
  a.fire('pagehide');
  b.tick();
  assert.deepStrictEqual(b.queue().map((e) => e.event).sort(), ['from_a', 'from_b']);
  assert.strictEqual([...store.keys()].filter((k) => k.startsWith('tally_q_wk.')).length, 1);
  await b.advance(0);
  assert.strictEqual(b.requests.length, 1, 'adopted events are sent at once');
  assert.deepStrictEqual(b.requests[0].body.events.map((e) => e.event).sort(), ['from_a', 'from_b']);
  b.requests[0].answer(200);
  await b.advance(0);
  assert.deepStrictEqual(b.queue(), []);
});

test('a page that stopped beating (crashed) is adopted after 5 minutes, not before', async () => {
  const store = new Map();
  const clock = { t: 1_700_000_000_000 };
  const a = page({ store, clock });
  a.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100 });
  a.tally.track('orphan');
  clock.t += 299000;
  const b = page({ store, clock });
  b.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100 });
  assert.strictEqual(b.queue().length, 1, 'still a\'s');
  assert.strictEqual([...store.keys()].filter((k) => k.startsWith('tally_q_wk.')).length, 1);
  clock.t += 2000;
  b.tick();
  assert.strictEqual([...store.keys()].filter((k) => k.startsWith('tally_q_wk.')).length, 1);
  const left = [...store.keys()].find((k) => k.startsWith('tally_q_wk.'));
  assert.strictEqual(JSON.parse(store.get(left)).length, 1);
  await b.advance(0);
  assert.strictEqual(b.requests.length, 1);
  assert.strictEqual(b.requests[0].body.events[0].event, 'orphan');
});

test('a closed page with nothing left leaves no keys behind', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 100000 });
  p.tally.track('a');
  p.fire('pagehide');
  assert.deepStrictEqual([...p.store.keys()].filter((k) => /^tally_[qh]_/.test(k)), []);
});

test('storage full: the queue goes on in memory', async () => {
  const p = page({ full: true });
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  p.tally.track('a');
  p.tally.track('b');
  await p.advance(10);
  assert.deepStrictEqual(p.requests[0].body.events.map((e) => e.event), ['a', 'b']);
});

test('identify as another user without reset: a new anonymous id', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 100000, flushAt: 100 });
  p.tally.identify('u1');
  p.tally.identify('u2');
  const q = p.queue();
  assert.deepStrictEqual(q.map((e) => e.user_id), ['u1', 'u2']);
  assert.notStrictEqual(q[0].anonymous_id, q[1].anonymous_id);
});

test('Retry-After as an HTTP date', async () => {
  const p = page();
  p.tally.init('wk', { autocapture: false, flushInterval: 10 });
  p.tally.track('a');
  await p.advance(10);
  const at = new Date(p.clock.t + 20000).toUTCString();
  p.requests[0].answer(429, { 'Retry-After': at });
  await p.advance(18000);
  assert.strictEqual(p.requests.length, 1, 'waited for the date');
  await p.advance(3000);
  assert.strictEqual(p.requests.length, 2);
});
