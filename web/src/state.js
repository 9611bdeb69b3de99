// View state lives in the URL (path = page, query string = the view's settings), so a link
// reproduces the view. Pages read params() and write with setParams(); the router re-renders.
let onChange = () => {};
export function listen(fn) { onChange = fn; }

export function params() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

// Sets the query string to p (empty values dropped): a new history entry (Back undoes a
// change) unless push is false.
export function setParams(p, { push = true, render = true } = {}) {
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
