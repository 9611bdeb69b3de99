// Chart-library measurement: uPlot, a 5-series line chart of 90 daily points.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { data, N, SERIES } from "./data.js";

const t0 = performance.now();
const el = document.getElementById("c");
const xs = data.x.map((d) => d / 1000);
new uPlot(
  {
    width: 900,
    height: 320,
    series: [{}, ...SERIES.map((s, i) => ({ label: s, stroke: ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"][i] }))],
  },
  [xs, ...data.y],
  el,
);
requestAnimationFrame(() => {
  window.__render_ms = performance.now() - t0;
});
