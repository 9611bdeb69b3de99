// Chart-library measurement: Apache ECharts (tree-shaken: line, bar, grid, tooltip, legend,
// canvas renderer), the same 5-series line chart of 90 daily points.
import * as echarts from "echarts/core";
import { LineChart, BarChart } from "echarts/charts";
import { GridComponent, TooltipComponent, LegendComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import { data, SERIES } from "./data.js";

echarts.use([LineChart, BarChart, GridComponent, TooltipComponent, LegendComponent, CanvasRenderer]);
const t0 = performance.now();
const el = document.getElementById("c");
el.style.width = "900px";
el.style.height = "320px";
const ch = echarts.init(el, null, { renderer: "canvas" });
ch.setOption({
  animation: false,
  tooltip: { trigger: "axis" },
  legend: {},
  xAxis: { type: "time" },
  yAxis: { type: "value" },
  series: SERIES.map((s, i) => ({ name: s, type: "line", showSymbol: false, data: data.x.map((x, j) => [x, data.y[i][j]]) })),
});
requestAnimationFrame(() => {
  window.__render_ms = performance.now() - t0;
});
