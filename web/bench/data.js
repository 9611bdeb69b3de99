export const N = 90;
export const SERIES = ["web", "ios", "android", "desktop", "other"];
const start = Date.UTC(2026, 0, 1);
export const data = {
  x: Array.from({ length: N }, (_, i) => start + i * 86400000),
  y: SERIES.map((_, s) => Array.from({ length: N }, (_, i) => Math.round(1000 + 300 * Math.sin(i / 7 + s) + s * 50))),
};
