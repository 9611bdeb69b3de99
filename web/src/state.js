// View state lives in the URL (path = page, query string = the view's settings), so a link
// reproduces the view. Pages read params() and write with setParams(); the router re-renders.
let onChange = () => {};
export function listen(fn) { onChange = fn; }

export function params() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

// Replaces the query string with p (empty values dropped). push: a new history entry.
export function setParams(p, { push = false, render = true } = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  const url = location.pathname + (s ? "?" + s : "");
  if (url === location.pathname + location.search) return;
  history[push ? "pushState" : "replaceState"](null, "", url);
  if (render) onChange();
}

export function navigate(url) {
  if (url === location.pathname + location.search) return;
  history.pushState(null, "", url);
  onChange();
}

// JSON-valued params (filters, steps) with a fallback.
export function jsonParam(v, dflt) {
  if (!v) return dflt;
  try { return JSON.parse(v); } catch { return dflt; }
}
