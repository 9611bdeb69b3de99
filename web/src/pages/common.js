// Pieces of the query pages: the header with its actions, running a query into an area with
// the loading / empty / error states, the pin-to-dashboard action.
import { h, clear, loading, errorState } from "../ui.js";
import { resolveRange } from "../dates.js";
import { session } from "../api.js";
import { pinDialog } from "./dashboards.js";

export function header(title, sub, ...actions) {
  return h("header.row",
    h("div", h("h1", title), sub ? h("p.sub", sub) : null),
    h("div.spacer"),
    ...actions);
}

// Runs fn(signal) with a loading state in `area`, then render(result) or the error state.
export async function run(area, ctx, what, fn, render) {
  clear(area, loading());
  try {
    const r = await fn(ctx.abort.signal);
    if (ctx.abort.signal.aborted) return;
    clear(area);
    render(r);
  } catch (e) {
    if (e.name === "AbortError" || ctx.abort.signal.aborted) return;
    clear(area, errorState(e, what));
  }
}

export function range(p) {
  return resolveRange(p.range || "30d", p.from, p.to, p.tz || session.tz);
}

export function tzOf(p) {
  return p.tz || session.tz;
}

export function pinButton(page, title) {
  return h("button", { type: "button", name: "pin", on: { click: () => pinDialog({ page, title: title(), params: Object.fromEntries(new URLSearchParams(location.search)) }) } }, "Pin to dashboard");
}
