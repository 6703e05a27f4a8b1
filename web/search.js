// Searching and paging: start a search (a text, your photo, a library photo), fetch its pages,
// and say in the status line what was found.

import * as api from "./api.js";
import { contextElement, renderContext } from "./context.js";
import { byId } from "./dom.js";
import { showEncoder } from "./encoder.js";
import { appendCards, clearGrid, renderGrid, renderMore, showLoading } from "./grid.js";
import { className, formatInt, photos, t } from "./i18n.js";
import { pageSize } from "./limits.js";
import { handleError, setError, setStatus } from "./messages.js";
import { classById, state } from "./state.js";
import { pushUrl } from "./url.js";
import { closeViewer } from "./viewer.js";

const results = byId("results");
const box = byId("q");

let searchController = null;

/** Search the library for a text. */
export function startText(q) {
  closeViewer();
  state.query = { mode: "text", q };
  state.refine = [];
  pushUrl();
  renderContext();
  runSearch();
}

/** Search for photos like a library photo (a result). */
export function startSimilar(item) {
  closeViewer();
  box.value = ""; // the box no longer says what is searched
  state.query = { mode: "similar", id: item.id, item };
  state.refine = [];
  pushUrl();
  renderContext();
  runSearch().then(() => revealResults());
}

/** Search for photos like an uploaded file (already checked by upload.js). */
export function startImage(file) {
  closeViewer();
  const previous = state.lastImageQuery;
  if (previous && previous.url) URL.revokeObjectURL(previous.url);
  // The search on screen stays if the server refuses the photo.
  const pendingBefore = state.query && state.query.pending;
  const before = pendingBefore ? state.query.before : state.query;
  const refineBefore = pendingBefore ? state.query.refineBefore : state.refine;
  state.query = { mode: "image", file, url: URL.createObjectURL(file), pending: true, before, refineBefore };
  state.refine = [];
  state.lastImageQuery = state.query;
  renderContext();
  runSearch().then(() => revealResults());
}

/** Forget the search on screen ("Clear"). */
export function clearQuery() {
  state.query = null;
  state.refine = [];
  pushUrl();
  renderContext();
  resetResults();
}

function revealResults() {
  const top = contextElement() || results;
  if (top.getBoundingClientRect().top < 0) top.scrollIntoView({ block: "start" });
}

function fetchPage(query, offset, signal) {
  const options = { k: pageSize(), offset, cls: state.cls, diverse: state.diverse, signal };
  if (state.refine.length) return api.refined({ ...refinedQuery(query), ...options });
  if (query.mode === "text") return api.search({ q: query.q, ...options });
  if (query.mode === "image") return api.searchImage(query.file, options);
  return api.similar(query.id, options);
}

/** The query and its refinements as the examples of POST /api/query. */
function refinedQuery(query) {
  const first = query.mode === "text" ? { text: query.q } : query.mode === "image" ? { upload: "photo" } : { id: query.id };
  const term = (item) => (item.id ? { id: item.id } : { text: item.text });
  return {
    positive: [first, ...state.refine.filter((i) => i.sign > 0).map(term)],
    negative: state.refine.filter((i) => i.sign < 0).map(term),
    file: query.mode === "image" ? query.file : null,
  };
}

/** Fetch the first page of the state's query (or, with append, its next page) and show it; true once shown. */
export async function runSearch({ append = false } = {}) {
  const query = state.query;
  if (!query) return false;
  if (append && (state.loadingMore || state.nextOffset == null)) return false;
  if (searchController) searchController.abort();
  const controller = new AbortController();
  searchController = controller;
  const offset = append ? state.nextOffset : 0;
  setError(null);
  setLoading(true, append);
  try {
    const page = await fetchPage(query, offset, controller.signal);
    if (controller.signal.aborted) return false;
    const start = append ? state.results.length : 0;
    state.results = append ? state.results.concat(page.results) : page.results;
    state.nextOffset = page.results.length ? page.next_offset : null;
    state.tookMs = page.took_ms;
    state.emptyLibrary = page.reason === "empty_library";
    if (query.pending) {
      // A search by photo enters the history once the server has accepted the photo.
      query.pending = false;
      query.before = null;
      query.refineBefore = null;
      box.value = "";
      pushUrl();
    }
    setLoading(false, append);
    showEncoder(query.mode === "text" ? page : null);
    if (append) appendCards(start);
    else renderGrid();
    renderMore();
    setStatus(resultsStatus);
    return true;
  } catch (err) {
    if (api.isAbort(err) || controller.signal.aborted) return false;
    setLoading(false, append);
    if (query.pending && err.status !== 503) {
      // The server refused the photo (too large, not an image): forget it, keep the message and
      // the search that was on screen before it.
      if (query.url) URL.revokeObjectURL(query.url);
      state.query = query.before || null;
      state.refine = query.refineBefore || [];
      state.lastImageQuery = null;
      renderContext();
      renderGrid({ showEmpty: false });
      renderMore();
      setStatus(state.query ? resultsStatus : () => t("statusReady"));
      handleError(err);
      return false;
    }
    if (!append) {
      state.results = [];
      state.nextOffset = null;
      renderGrid({ showEmpty: false });
      renderMore();
    }
    setStatus(null);
    if (!append) showEncoder(null);
    handleError(err);
    return false;
  } finally {
    if (searchController === controller) searchController = null;
  }
}

function setLoading(loading, append) {
  state.loading = loading && !append;
  state.loadingMore = loading && append;
  showLoading(loading, append);
  if (loading && !append) setStatus(() => t("statusSearching"));
  if (loading && append) setStatus(() => t("statusLoadingMore"));
}

/** Show no results and no search in flight ("Ready"). */
export function resetResults() {
  if (searchController) searchController.abort();
  state.results = [];
  state.nextOffset = null;
  setLoading(false, false);
  showEncoder(null);
  clearGrid();
  renderMore();
  setStatus(() => t("statusReady"));
}

function shorten(text, max = 80) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function resultsStatus() {
  const n = state.results.length;
  const query = state.query;
  if (!query) return "";
  if (n === 0) return state.emptyLibrary ? t("emptyLibraryTitle") : t("emptyTitle");
  const ms = formatInt(Math.round(state.tookMs));
  let text;
  if (query.mode === "text") text = t("statusResultsText", { photos: photos(n), q: shorten(query.q), ms });
  else if (query.mode === "image") text = t("statusResultsImage", { photos: photos(n), ms });
  else text = t("statusResultsSimilar", { photos: photos(n), ms });
  if (state.cls) text = t("statusInClass", { status: text, label: className(classById(state.cls)) });
  return text;
}
