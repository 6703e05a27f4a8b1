// The server's limits, read from GET /api/stats (limits: max_upload_mb, max_k, default_k), never repeated here.

import { state } from "./state.js";

/**
 * Results per page while /api/stats has not answered with limits.default_k (or the server is too old to
 * send it). The only server number this UI knows by heart: a page needs some size before the stats arrive.
 */
const FALLBACK_DEFAULT_K = 12;

function limits() {
  return (state.stats && state.stats.limits) || {};
}

function numberOrNull(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** The largest upload the server accepts, in MB; null until the stats arrive (then only the server checks). */
export function maxUploadMb() {
  return numberOrNull(limits().max_upload_mb);
}

/** The most results per page the server serves; null until the stats arrive. */
export function maxK() {
  return numberOrNull(limits().max_k);
}

/** The server's results per page when none is asked for. */
export function defaultK() {
  return numberOrNull(limits().default_k) ?? FALLBACK_DEFAULT_K;
}

/** Results per page for the search on screen: the address's k, else the server's default. */
export function pageSize() {
  return state.k ?? defaultK();
}
