// The HTTP API as the dashboard uses it: the read key and project kept in localStorage, every
// call with "Authorization: Bearer", errors as ApiError carrying the server's reason.
const K_KEY = "tally.key";
const K_PROJECT = "tally.project";
const K_TZ = "tally.tz";

export const session = {
  get key() { return localStorage.getItem(K_KEY) || ""; },
  get project() { return localStorage.getItem(K_PROJECT) || ""; },
  get tz() { return localStorage.getItem(K_TZ) || "UTC"; },
  save(key, project, tz) {
    localStorage.setItem(K_KEY, key);
    localStorage.setItem(K_PROJECT, project);
    localStorage.setItem(K_TZ, tz || "UTC");
  },
  clear() { [K_KEY, K_PROJECT, K_TZ].forEach((k) => localStorage.removeItem(k)); },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  // The API answers 400 "kind: unknown …" for an analysis this server does not have yet, and
  // 404 for an endpoint it does not have.
  get unsupported() { return (this.status === 400 && /^kind: unknown|not (yet )?(implemented|supported)/i.test(this.message)) || this.status === 404 || this.status === 501; }
}

export async function api(path, { method = "GET", body, signal, key = session.key } = {}) {
  const headers = { Authorization: "Bearer " + key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "the server cannot be reached (" + e.message + ")");
  }
  const text = await r.text();
  let j = null;
  try { j = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!r.ok) throw new ApiError(r.status, (j && j.error) || `HTTP ${r.status}`);
  if (j === null) throw new ApiError(r.status, "the answer is not JSON");
  return j;
}

// POST /api/v1/query for the signed-in project.
export function query(q, signal) {
  return api("/api/v1/query", { method: "POST", body: { project: session.project, ...q }, signal });
}

// A cache of answers for the life of the page (the same query twice on one view, the list of
// event names), keyed by the query's JSON.
const cache = new Map();
export function queryCached(q, signal) {
  const k = JSON.stringify(q);
  if (!cache.has(k)) {
    const p = query(q, signal).catch((e) => { cache.delete(k); throw e; });
    cache.set(k, p);
  }
  return cache.get(k);
}
export function clearCache() { cache.clear(); }
