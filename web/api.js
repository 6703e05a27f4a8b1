// The Wonders REST API, same origin. Every failure becomes an ApiError with the server's code and message.
// Results per page (k) are the caller's (limits.js); when none is given the server's default applies.

/** Queries longer than this go in a POST body instead of the URL. */
const LONG_QUERY = 500;

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Whether a failure is a request that was aborted on purpose (a newer search replaced it). */
export function isAbort(err) {
  return Boolean(err) && err.name === "AbortError";
}

async function request(path, { method = "GET", body, json, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers, signal, credentials: "same-origin" });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new ApiError(0, "network", "Could not reach the server.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText,
      error.details || null,
    );
  }
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function upload(file) {
  const form = new FormData();
  form.append("image", file, file.name || "image");
  return form;
}

/** GET /api/ready: {ok: true, towers} or {ok: false, code, message} (503 while the model loads). */
export async function ready(signal) {
  try {
    const body = await request("/api/ready", { signal });
    return { ok: true, towers: (body && body.towers) || {} };
  } catch (err) {
    if (err instanceof ApiError) return { ok: false, code: err.code, message: err.message, status: err.status };
    throw err;
  }
}

export function stats(signal) {
  return request("/api/stats", { signal });
}

/** GET /api/ingest: the library's indexing (state, done, total) and the first-run download (fetch). */
export function ingestStatus(signal) {
  return request("/api/ingest", { signal });
}

export function classes(signal) {
  return request("/api/classes", { signal });
}

/** Text → image. Long queries are sent as JSON (POST) so they never hit URL limits. */
export function search({ q, k, offset = 0, cls = null, diverse = false, signal }) {
  if (q.length > LONG_QUERY) {
    const json = { q, k, offset };
    if (cls) json.class = cls;
    if (diverse) json.diverse = true;
    return request("/api/search", { method: "POST", json, signal });
  }
  return request(`/api/search${query({ q, k, offset, class: cls, diverse: diverse || null })}`, { signal });
}

/** Image → image, from an uploaded file (never stored by the server). */
export function searchImage(file, { k, offset = 0, cls = null, diverse = false, signal } = {}) {
  return request(`/api/search/image${query({ k, offset, class: cls, diverse: diverse || null })}`, {
    method: "POST",
    body: upload(file),
    signal,
  });
}

/** More like a stored image, from its stored vector. */
export function similar(id, { k, offset = 0, cls = null, diverse = false, signal } = {}) {
  const params = query({ k, offset, class: cls, diverse: diverse || null });
  return request(`/api/images/${encodeURIComponent(id)}/similar${params}`, { signal });
}

/** Search with examples: positive and negative [{text} | {id} | {upload: "photo"}]; `file` is the upload. */
export function refined({ positive, negative, file = null, k, offset = 0, cls = null, diverse = false, signal }) {
  const json = { positive, negative, k, offset, diverse };
  if (cls) json.class = cls;
  if (!file) return request("/api/query", { method: "POST", json, signal });
  const form = new FormData();
  form.append("query", JSON.stringify(json));
  form.append("photo", file, file.name || "image");
  return request("/api/query", { method: "POST", body: form, signal });
}

/** A page of groups of duplicates. */
export function duplicates({ k, offset = 0, signal } = {}) {
  return request(`/api/duplicates${query({ k, offset })}`, { signal });
}

/** Remember that a photo is not a duplicate of its group's representative. */
export function notDuplicate(representative, id) {
  return request(`/api/duplicates/${encodeURIComponent(representative)}/not-duplicate`, {
    method: "POST",
    json: { id },
  });
}

export function image(id, signal) {
  return request(`/api/images/${encodeURIComponent(id)}`, { signal });
}

/** The latest evaluation report (`make eval`), with its chart URLs; 404 no_report before the first. */
export function evalLatest(signal) {
  return request("/api/eval/latest", { signal });
}

export function classify(file, signal) {
  return request("/api/classify", { method: "POST", body: upload(file), signal });
}
