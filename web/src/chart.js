// Charts on uPlot (docs/dashboard.md says why uPlot): time series over bucket labels, as lines
// or grouped bars, in the Okabe–Ito colour-blind-safe palette, re-coloured for the theme and
// resized with their container. Every chart carries a caption: what it counts, in which zone.
import uPlot from "uplot";
import { h } from "./ui.js";

export const PALETTE = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6", "--c7", "--c8"];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
export function colour(i) {
  return css(PALETTE[i % PALETTE.length]) || "#0072b2";
}

function shortLabel(s) {
  // "2026-01-05" -> "Jan 5"; "2026-01-05T13:00" -> "13:00"; else as is.
  if (typeof s !== "string") return String(s);
  const m = s.match(/^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/);
  if (!m) return s;
  if (m[4] !== undefined) return `${m[4]}:${m[5]}`;
  const mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][+m[2] - 1];
  return `${mon} ${+m[3]}`;
}

// Grouped bars drawn in one hook (uPlot's own bar paths overlap when there are many series).
function barsPlugin(nSeries) {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        const n = u.data[0].length;
        if (!n) return;
        const slot = u.bbox.width / n;
        const bw = Math.max(1, (slot * 0.8) / nSeries);
        const y0 = u.valToPos(0, "y", true);
        ctx.save();
        for (let s = 1; s <= nSeries; s++) {
          if (!u.series[s].show) continue;
          ctx.fillStyle = u.series[s]._fill;
          for (let i = 0; i < n; i++) {
            const v = u.data[s][i];
            if (v === null || v === undefined) continue;
            const x = u.valToPos(i, "x", true) - (slot * 0.8) / 2 + (s - 1) * bw;
            const y = u.valToPos(v, "y", true);
            ctx.fillRect(x, Math.min(y, y0), bw - (bw > 3 ? 1 : 0), Math.abs(y0 - y));
          }
        }
        ctx.restore();
      },
    },
  };
}

// series: [{label, values, dash}], labels: bucket labels. Returns the chart's element.
export function timeChart({ labels, series, kind = "line", caption, height = 300, testid }) {
  const wrap = h("figure.chart-block", { dataset: { testid } });
  wrap.style.margin = "0";
  const cap = h("figcaption.caption", caption || "");
  const el = h("div.chart", { role: "img", "aria-label": caption || "chart" });
  wrap.append(cap, el);
  const xs = labels.map((_, i) => i);
  const axisStroke = css("--muted");
  const grid = { stroke: css("--grid"), width: 1 };
  const bars = kind === "bar";
  const opts = {
    width: 600,
    height,
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: { x: { time: false, range: (u, min, max) => (bars ? [min - 0.5, max + 0.5] : [min, max === min ? min + 1 : max]) }, y: { range: (u, min, max) => [Math.min(0, min), max <= 0 ? 1 : max * 1.08] } },
    axes: [
      { stroke: axisStroke, grid, ticks: grid, values: (u, vals) => vals.map((v) => (Number.isInteger(v) && labels[v] !== undefined ? shortLabel(labels[v]) : "")), space: 50 },
      { stroke: axisStroke, grid, ticks: grid, size: 60, values: (u, vals) => vals.map((v) => (Math.abs(v) >= 1e6 ? (v / 1e6).toFixed(1) + "M" : Math.abs(v) >= 1e4 ? (v / 1e3).toFixed(0) + "k" : String(+v.toFixed(2)))) },
    ],
    series: [
      { label: "bucket", value: (u, v) => (v === null || v === undefined ? "–" : labels[v] ?? "") },
      ...series.map((s, i) => {
        const c = s.colour || colour(i);
        return {
          label: s.label,
          stroke: c,
          width: 2,
          dash: s.dash ? [6, 4] : undefined,
          fill: bars ? c : undefined,
          points: { show: labels.length <= 40 && !bars, size: 5, fill: c },
          paths: bars ? () => null : undefined,
          value: (u, v) => (v === null || v === undefined ? "–" : v.toLocaleString("en-US", { maximumFractionDigits: 2 })),
        };
      }),
    ],
    plugins: bars ? [barsPlugin(series.length)] : [],
  };
  const data = [xs, ...series.map((s) => s.values.map((v) => (v === undefined ? null : v)))];
  let u = null;
  const mount = () => {
    const w = Math.max(280, el.clientWidth || wrap.clientWidth || 600);
    if (!u) {
      opts.width = w;
      u = new uPlot(opts, data, el);
      el.__uplot = u;
    } else if (Math.abs(u.width - w) > 2) u.setSize({ width: w, height });
  };
  // Mounted once the element is in the document (its width is known then).
  const ro = new ResizeObserver(() => { if (el.isConnected) mount(); });
  ro.observe(el);
  requestAnimationFrame(() => { if (el.isConnected) mount(); });
  return wrap;
}
