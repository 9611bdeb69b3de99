// Realtime: active persons (5 min), events per second over the last 60 s, top pages and a feed
// of arriving events — pushed by the server-sent-events stream /api/v1/realtime/stream, read
// with fetch (so the read key travels in the Authorization header, not in the URL); no polling.
import { h, clear, table, fmt, errorState, loading } from "../ui.js";
import { timeChart } from "../chart.js";
import { session, ApiError } from "../api.js";

// Reads an SSE body; calls onEvent(data) for each complete event's data.
export async function readSse(resp, onEvent, signal) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) onEvent(data);
    }
  }
}

export default async function realtime(main, ctx) {
  const tz = session.tz;
  const status = h("span.live", { dataset: { testid: "live" } }, "connecting…");
  main.append(h("header.row", h("div", h("h1", "Realtime"), h("p.sub", "What is happening right now. Updates every second from the server.")), h("div.spacer"), status));
  const active = h("div.value", { dataset: { value: "" } }, "–");
  const rate = h("div.value", { dataset: { value: "" } }, "–");
  const kpis = h("div.kpis",
    h("div.card.kpi", { dataset: { testid: "rt-active" } }, h("h3", "Active persons"), active, h("div.note", "distinct persons in the last 5 minutes")),
    h("div.card.kpi", { dataset: { testid: "rt-rate" } }, h("h3", "Events, last 60 s"), rate, h("div.note", "events received in the last minute")));
  const labels = Array.from({ length: 60 }, (_, i) => `${i - 59}s`);
  const chart = timeChart({ labels, series: [{ label: "events/s", values: labels.map(() => 0) }], kind: "bar", caption: "Events received per second over the last 60 seconds (server clock)", height: 200, testid: "rt-chart" });
  const pages = h("div", loading("Waiting for the first update…"));
  const feed = h("ol.feed", { dataset: { testid: "rt-feed" }, "aria-live": "off" });
  const feedNote = h("p.caption", "Arriving events, newest first; times in " + tz);
  main.append(kpis, h("div.grid",
    h("section.card.wide", h("h2", "Events per second"), chart),
    h("section.card", { dataset: { testid: "rt-pages" } }, h("h2", "Top pages, last 5 minutes"), pages),
    h("section.card", h("h2", "Live feed"), feedNote, feed)));
  const fmtTime = new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const fmtDay = new Intl.DateTimeFormat("en-CA", { timeZone: tz, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  let lastPages = "";
  let prevTotal = null;
  const seen = new Set();
  const onData = (text) => {
    let d;
    try { d = JSON.parse(text); } catch { return; }
    status.textContent = "live";
    status.classList.add("on");
    const eps = Array.isArray(d.events_per_s) ? d.events_per_s : [];
    const total = eps.reduce((a, b) => a + b, 0);
    active.textContent = fmt(d.active_persons_5m ?? 0);
    active.dataset.value = String(d.active_persons_5m ?? 0);
    rate.textContent = fmt(total);
    rate.dataset.value = String(total);
    const u = chart.querySelector(".chart").__uplot;
    if (u) u.setData([labels.map((_, i) => i), labels.map((_, i) => eps[i - (60 - eps.length)] ?? 0)]);
    const tp = JSON.stringify(d.top_pages || []);
    if (tp !== lastPages) {
      lastPages = tp;
      const rows = (d.top_pages || []).map((x) => [x.url, x.views ?? x.count ?? 0]);
      clear(pages, rows.length ? table(["url", "views"], rows, { filename: "tally-realtime-pages.csv" }) : h("p.muted", "No page views in the last 5 minutes."));
    }
    // The feed: the stream's recent events when it sends them; otherwise one line per second
    // with arrivals.
    const recent = d.recent || d.events || d.feed;
    const now = fmtTime.format(new Date());
    if (Array.isArray(recent)) {
      for (const e of recent.slice().reverse()) {
        const k = e.event_id || JSON.stringify(e);
        if (seen.has(k)) continue;
        seen.add(k);
        const t = e.timestamp ?? e.ts;
        const d = t ? new Date(t) : null;
        const label = !d || isNaN(d) ? now : Date.now() - d > 3600e3 ? fmtDay.format(d) : fmtTime.format(d);
        feed.prepend(h("li", h("time", { datetime: d && !isNaN(d) ? d.toISOString() : null }, label), h("strong", e.event || "event"), h("span.muted", e.url || e.distinct_id || e.anonymous_id || e.user_id || "")));
      }
    } else if (eps.length && eps[eps.length - 1] > 0 && prevTotal !== null) {
      feed.prepend(h("li", h("time", now), h("strong", `${fmt(eps[eps.length - 1])} event${eps[eps.length - 1] === 1 ? "" : "s"}`), h("span.muted", "arrived")));
    }
    prevTotal = total;
    while (feed.children.length > 100) feed.lastChild.remove();
    if (!feed.children.length && !feed.dataset.waiting) { feed.dataset.waiting = "1"; feed.append(h("li.muted", "Waiting for events…")); }
    else if (feed.children.length > 1) feed.querySelector("li.muted")?.remove();
  };
  const signal = ctx.abort.signal;
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const r = await fetch(`/api/v1/realtime/stream?project=${encodeURIComponent(session.project)}`, { headers: { Authorization: "Bearer " + session.key, Accept: "text/event-stream" }, signal, cache: "no-store" });
      if (!r.ok) {
        let msg = `HTTP ${r.status}`;
        try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
        throw new ApiError(r.status, msg);
      }
      delay = 1000;
      await readSse(r, onData, signal);
      status.textContent = "reconnecting…";
    } catch (e) {
      if (signal.aborted || e.name === "AbortError") return;
      status.classList.remove("on");
      if (e instanceof ApiError && (e.unsupported || e.status === 401)) {
        status.textContent = "offline";
        main.append(errorState(e, "Realtime"));
        clear(pages, h("p.muted", "–"));
        return;
      }
      status.textContent = "reconnecting…";
    }
    // The stream ended or broke: reconnect after a pause (the server restarts, a proxy cut).
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 15000);
  }
}
