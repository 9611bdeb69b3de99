// Dates as the API takes them: YYYY-MM-DD in the query's time zone; ranges from presets.
export const PRESETS = [
  ["today", "Today", 0, 0],
  ["yesterday", "Yesterday", 1, 1],
  ["7d", "Last 7 days", 6, 0],
  ["14d", "Last 14 days", 13, 0],
  ["30d", "Last 30 days", 29, 0],
  ["90d", "Last 90 days", 89, 0],
  ["180d", "Last 180 days", 179, 0],
  ["365d", "Last 365 days", 364, 0],
];

export function todayIn(tz) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  } catch {
    return new Date().toISOString().slice(0, 10);
  }
}

export function addDays(day, n) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function daysBetween(a, b) {
  return Math.round((Date.parse(b + "T00:00:00Z") - Date.parse(a + "T00:00:00Z")) / 86400000);
}

// {from, to} of a preset name, or of custom from/to; the previous period of the same length.
export function resolveRange(range, from, to, tz) {
  const p = PRESETS.find((x) => x[0] === range);
  if (p) {
    const t = todayIn(tz);
    return { from: addDays(t, -p[2]), to: addDays(t, -p[3]) };
  }
  const t = todayIn(tz);
  return { from: from || addDays(t, -29), to: to || t };
}

export function previousRange({ from, to }) {
  const n = daysBetween(from, to) + 1;
  return { from: addDays(from, -n), to: addDays(to, -n) };
}

export function isDate(s) { return /^\d{4}-\d{2}-\d{2}$/.test(s || ""); }

export function zones() {
  try { return Intl.supportedValuesOf("timeZone"); } catch { return ["UTC"]; }
}
