/* tally.js — tally's first-party browser SDK, served by the server at /tally.js.
 *
 *   tally.init(writeKey, {host, autocapture, flushAt, flushInterval})
 *   tally.track(event, properties)   tally.identify(userId, userProperties)
 *   tally.page(properties)           tally.reset()            tally.flush()
 *
 * Why it looks like this (docs/sdk.md has the user-facing description):
 *  - Every event is first written to a queue in localStorage (memory when storage is
 *    unavailable) with a client event_id, and leaves the queue only when the server has
 *    answered it (200, or a 4xx that retrying cannot fix) or sendBeacon accepted it. A retry
 *    of an event the server already stored is dropped there as a duplicate of its event_id,
 *    so "at least once" from here is "exactly once" in the counts.
 *  - Requests carry the key in the body ("api_key") and a text/plain JSON body, so a
 *    cross-origin send is a CORS "simple request" with no preflight, and the same body
 *    works for fetch and for sendBeacon (which cannot set headers).
 *  - Failures back off exponentially with jitter (1 s doubling to 5 min, ×0.5–1.0), at
 *    least as long as a 429/503 Retry-After says; nothing is sent while the browser says
 *    it is offline, and coming back online sends at once.
 *  - Each page has its own stored queue (tally_q_<key>.<page id>) that only it writes, and a
 *    heartbeat (tally_h_<key>.<page id>, a time, refreshed every few seconds; "0" once the
 *    page is gone). localStorage is not transactional across tabs (Chromium syncs it between
 *    renderer processes asynchronously), so one shared list would lose events to concurrent
 *    writes. A page adopts, at start and then periodically, the queues of pages that are gone
 *    (closed or navigated away with events left, or silent for 5 minutes: crashed): it copies
 *    their events into its own queue, saves that, then deletes theirs. Two pages adopting one
 *    queue at once send its events twice; the server keeps one.
 *  - The queued snippet (README) defines window.tally as an array of [method, ...args]
 *    before this file loads; the calls are replayed here, init first.
 */
((w, d) => {
  const VERSION = '1.0.0';
  const MAX_QUEUE = 1000; /* events kept while the server cannot be reached */
  const MAX_BODY = 60000; /* bytes: under the 64 KiB keepalive / sendBeacon budgets */
  const nav = navigator;
  const SRC = d.currentScript && d.currentScript.src; /* default host: where we came from */
  const now = () => Date.now();
  const stringify = JSON.stringify;
  const on = (t, e, f) => t.addEventListener(e, f);

  /* ---- storage: localStorage, then a cookie for the ids, then memory ---- */
  let ls;
  try {
    ls = w.localStorage;
    ls.setItem('tally_t', '1');
    ls.removeItem('tally_t');
  } catch (e) {
    ls = null;
  }
  const mem = {};
  const get = (k) => {
    try {
      const v = ls && ls.getItem(k);
      if (v != null) return v;
    } catch (e) {}
    const m = d.cookie.match('(?:^|; )' + k + '=([^;]*)');
    return m ? decodeURIComponent(m[1]) : mem[k];
  };
  const set = (k, v, cookie) => {
    mem[k] = v;
    try {
      if (ls) return ls.setItem(k, v);
    } catch (e) {}
    if (cookie)
      d.cookie = k + '=' + encodeURIComponent(v) + ';path=/;max-age=31536000;SameSite=Lax';
  };
  const del = (k) => {
    delete mem[k];
    try {
      ls && ls.removeItem(k);
    } catch (e) {}
    d.cookie = k + '=;path=/;max-age=0';
  };

  const uuid = () =>
    '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
      (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)
    );

  /* ---- state ---- */
  let key, url, opts;
  let tab; /* this page's id */
  let qpre, hpre; /* storage key prefixes of the queues and heartbeats of this write key */
  let memq = []; /* this page's queue; written through to storage */
  let qmem = !ls; /* the queue lives in memory only (no storage, or storage full) */
  let inflight = {}; /* event_id → true while a fetch carries it */
  let sending = false;
  let attempt = 0; /* consecutive failures */
  let until = 0; /* no fetch before this time (backoff, Retry-After) */
  let timer = 0;
  let lastPage; /* URL of the last page view: the same URL is not counted twice */
  let maxBatch = 100; /* halved on 413 */
  const early = []; /* calls made before init */

  const STALE = 300000; /* ms without a heartbeat after which a page is taken for gone */
  const lsdo = (f) => {
    try {
      return !qmem && f(ls);
    } catch (e) {}
  };
  const qload = () => memq.slice();
  const qsave = (q) => {
    memq = q;
    if (lsdo((s) => (s.setItem(qpre + tab, stringify(q)), 1)) !== 1) {
      qmem = 1; /* storage full: memory from now on */
      lsdo((s) => s.removeItem(qpre + tab));
    }
  };
  const beat = (t) => lsdo((s) => s.setItem(hpre + tab, t));

  /* Takes over the queues of pages that are gone (see the top of this file). */
  const adopt = () =>
    lsdo((s) => {
      const ids = {},
        seen = {},
        q = qload(),
        n = q.length;
      for (let i = 0; i < s.length; i++) {
        const k = s.key(i);
        for (const p of [qpre, hpre]) if (k.startsWith(p)) ids[k.slice(p.length)] = 1;
      }
      delete ids[tab];
      for (const id in ids)
        if (now() - (s.getItem(hpre + id) || 0) < STALE) delete ids[id];
      q.forEach((e) => (seen[e.event_id] = 1));
      for (const id in ids)
        (JSON.parse(s.getItem(qpre + id)) || []).forEach(
          (e) => seen[e.event_id] || (seen[e.event_id] = q.push(e))
        );
      if (q.length > n) qsave(q.slice(-MAX_QUEUE));
      for (const id in ids) {
        s.removeItem(qpre + id);
        s.removeItem(hpre + id);
      }
      if (q.length > n) schedule(0);
    });
  const qadd = (ev) => {
    const q = qload();
    q.push(ev);
    qsave(q.slice(-MAX_QUEUE));
    return Math.min(q.length, MAX_QUEUE);
  };
  const qremove = (ids) => qsave(qload().filter((e) => !ids[e.event_id]));

  const anon = () => {
    let a = get('tally_aid');
    if (!a) set('tally_aid', (a = uuid()), 1);
    return a;
  };

  /* One request's body, and the first queued events that fit in one (at most limit). */
  const body = (events) => stringify({ api_key: key, sent_at: now(), events });
  const batch = (events, limit) => {
    const out = [];
    let size = 200;
    for (const e of events) {
      const n = stringify(e).length + 1;
      if (out.length >= limit || (out.length && size + n > MAX_BODY)) break;
      out.push(e);
      size += n;
    }
    return out;
  };

  const schedule = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(flush, Math.max(ms, until - now(), 0));
  };

  const fail = (retryAfter) => {
    attempt++;
    let ms = Math.min(300000, 1000 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    /* Retry-After: seconds, or an HTTP date. */
    const ra = +retryAfter >= 0 ? retryAfter * 1000 : Date.parse(retryAfter) - now();
    if (ra > 0) ms = Math.max(ms, ra);
    until = now() + ms;
    schedule(ms);
  };

  /* Sends what is queued: by fetch, one request at a time, or (beacon) everything at once
   * through sendBeacon, as the page goes away. */
  function flush(beacon) {
    if (!key) return;
    clearTimeout(timer);
    timer = 0;
    let q = qload();
    if (beacon === true) {
      if (!nav.sendBeacon) beacon = 0; /* then a keepalive fetch below is the best we have */
      while (q.length && beacon) {
        const b = batch(q, maxBatch);
        if (!nav.sendBeacon(url, body(b))) break;
        const ids = {};
        b.forEach((e) => (ids[e.event_id] = 1));
        qremove(ids);
        q = q.slice(b.length);
      }
      if (beacon) return;
    }
    q = q.filter((e) => !inflight[e.event_id]);
    if (!q.length || sending) return;
    if (nav.onLine === false) return; /* the 'online' event flushes */
    if (now() < until) return schedule(0);
    const b = batch(q, maxBatch);
    const text = body(b);
    const ids = {};
    b.forEach((e) => (ids[e.event_id] = 1));
    inflight = ids;
    sending = true;
    fetch(url, {
      method: 'POST',
      body: text,
      keepalive: text.length < MAX_BODY,
      credentials: 'omit',
    })
      .then(
        (r) => {
          const s = r.status;
          if (s == 413 && b.length > 1) {
            maxBatch = Math.max(1, b.length >> 1);
            return;
          }
          if (s < 300 || (s >= 400 && s < 500 && s != 408 && s != 429)) {
            /* Stored (events the server rejected are listed in its answer and dropped),
             * or refused in a way no retry can change: drop them. */
            qremove(ids);
            attempt = 0;
            until = 0;
            if (s >= 300 && w.console) console.warn('tally: events dropped, status ' + s);
            return;
          }
          fail(r.headers.get('Retry-After'));
          return 1;
        },
        () => {
          fail();
          return 1;
        }
      )
      .then((failed) => {
        sending = false;
        inflight = {};
        if (!failed && qload().length) flush();
      });
  }

  /* ---- events ---- */
  const context = () => {
    const l = location,
      s = w.screen || {};
    return {
      $lib: 'tally.js',
      $lib_version: VERSION,
      $host: l.host,
      $pathname: l.pathname,
      $title: d.title,
      $screen_width: s.width,
      $screen_height: s.height,
      $viewport_width: w.innerWidth,
      $viewport_height: w.innerHeight,
      $locale: nav.language,
      $timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    };
  };

  /* A JSON copy of a properties object: later changes by the caller do not leak in, and
   * nothing that cannot be sent (a cycle, a BigInt) enters the queue. {} for a non-object. */
  const copy = (o) => {
    try {
      o = JSON.parse(stringify(o));
    } catch (e) {
      o = 0;
    }
    return o && typeof o == 'object' && !Array.isArray(o) ? o : {};
  };

  const send = (event, props, extra) => {
    if (!key) return early.push([send, event, props, extra]);
    if (!event || typeof event != 'string') return;
    const ev = {
      event,
      event_id: uuid(),
      anonymous_id: anon(),
      timestamp: now(),
      platform: 'web',
      url: location.href,
      referrer: d.referrer || undefined,
      properties: Object.assign(context(), copy(props)),
      ...extra,
    };
    const u = get('tally_uid');
    if (u) ev.user_id = u;
    if (qadd(ev) >= opts.flushAt) flush();
    else if (!timer) schedule(opts.flushInterval);
  };

  const page = (props) => {
    lastPage = location.href;
    send('$pageview', props);
  };

  /* Automatic page views: the first, then every URL change of a single-page app. */
  const auto = () =>
    setTimeout(() => {
      if (opts.autocapture && location.href != lastPage) page();
    });

  const api = {
    init(writeKey, o) {
      if (key || !writeKey) return;
      opts = Object.assign({ autocapture: true, flushAt: 20, flushInterval: 3000 }, o);
      const host = opts.host || (SRC ? new URL(SRC).origin : location.origin);
      url = host.replace(/\/+$/, '') + '/collect';
      key = writeKey;
      tab = uuid();
      qpre = 'tally_q_' + key + '.';
      hpre = 'tally_h_' + key + '.';
      const alive = () => {
        beat(now());
        adopt();
      };
      alive();
      setInterval(alive, 5000);
      const h = history;
      ['pushState', 'replaceState'].forEach((m) => {
        const orig = h[m];
        h[m] = function () {
          const r = orig.apply(this, arguments);
          auto();
          return r;
        };
      });
      on(w, 'popstate', auto);
      on(w, 'online', () => {
        attempt = until = 0;
        flush();
      });
      on(w, 'pagehide', () => {
        flush(true);
        /* Gone: nothing left to send, or left for the next page to adopt at once. */
        if (memq.length) beat(0);
        else lsdo((s) => [qpre, hpre].forEach((p) => s.removeItem(p + tab)));
      });
      on(w, 'pageshow', (e) => {
        /* Back from the back/forward cache: another page may have adopted the queue. */
        if (e.persisted && lsdo((s) => s.getItem(qpre + tab) == null)) memq = [];
        beat(now());
      });
      on(d, 'visibilitychange', () => d.visibilityState == 'hidden' && flush(true));
      early.splice(0).forEach(([f, ...a]) => f(...a));
      if (opts.autocapture) auto();
    },
    track: (event, props) => send(event, props),
    page: (props) => (key ? page(props) : early.push([page, props])),
    identify(userId, userProps) {
      if (!key) return early.push([api.identify, userId, userProps]);
      if (userId == null || userId === '') return;
      userId = String(userId);
      const prev = get('tally_uid'),
        changed = prev != userId;
      /* Another user on this device (no reset() at logout): a new anonymous id, so the two
       * users are not linked through the old one. */
      if (changed && prev) del('tally_aid');
      if (changed) set('tally_uid', userId, 1);
      if (changed || userProps)
        send('$identify', {}, userProps ? { user_properties: copy(userProps) } : {});
    },
    reset() {
      del('tally_uid');
      del('tally_aid');
    },
    flush: () => flush(),
    version: VERSION,
  };

  /* The queued snippet's calls: init first, then the rest in order. */
  const pre = w.tally;
  w.tally = api;
  if (Array.isArray(pre)) {
    pre.filter((c) => c[0] == 'init').forEach((c) => api.init(...c.slice(1)));
    pre.filter((c) => c[0] != 'init').forEach((c) => api[c[0]] && api[c[0]](...c.slice(1)));
  }
})(window, document);
