// Wonders UI, the entry module: wires the widgets together, restores the search the address describes,
// switches the language, and starts once the server is ready. Vanilla ES modules, no build step; every
// text goes through i18n.t, so a language switch re-renders it.
//
// The rooms: searchbox.js (the box), chips.js (class filter), search.js (searching and paging), grid.js
// (the result card and the grid), context.js (the query photo strip), viewer.js (the photo viewer),
// classify.js ("What is this?"), quality.js (the latest eval report), upload.js (pick, drop, paste), messages.js (status, error, banner),
// ready.js (waiting for the server), indexing.js (the library being indexed), library.js (stats, classes, footer), limits.js (the server's limits),
// url.js (the address and history), state.js (the shared state), api.js, i18n.js, dom.js, bars.js,
// backoff.js (every retry waits longer after each failure),
// refine.js (more / less like this, words, chips, diversity), duplicates.js (the Duplicates view).
// A module imports only modules below it. Where a widget below search.js must start a search (Load more,
// More like this, Clear, a 503), it calls back a function wired here, so no import goes round in a circle.
// index.html preloads every module, so the browser fetches them at once rather than level by level.

import { ingestStatus } from "./api.js";
import { Backoff } from "./backoff.js";
import { bindChips, renderChips } from "./chips.js";
import { bindClassify, renderClassify } from "./classify.js";
import { bindContext, loadSimilarItem, renderContext } from "./context.js";
import { bindDuplicates, isDuplicatesView, renderDuplicates, showDuplicates } from "./duplicates.js";
import { renderEncoder } from "./encoder.js";
import { bindGrid, renderGrid, renderMore } from "./grid.js";
import { applyStatic, lang, setLang, t } from "./i18n.js";
import { renderIndexing, watchIndexing } from "./indexing.js";
import { loadLibrary, renderFooter } from "./library.js";
import { hasError, renderMessages, setStatus, whenUnavailable } from "./messages.js";
import { bindQuality, renderQuality } from "./quality.js";
import { isReady, markUnready, waitReady } from "./ready.js";
import { bindRefine, renderRefine } from "./refine.js";
import { clearQuery, resetResults, runSearch, startSimilar } from "./search.js";
import { bindSearchBox, focusSearchBox, showQueryText } from "./searchbox.js";
import { state } from "./state.js";
import { bindUploads } from "./upload.js";
import { readUrl } from "./url.js";
import { bindViewer, closeViewer, renderViewer } from "./viewer.js";

/** Restore the search that the address describes (first load, Back, Forward). */
function restore() {
  readUrl();
  renderChips();
  closeViewer();
  const query = state.query;
  showQueryText(query && query.mode === "text" ? query.q : "");
  if (query && query.mode === "similar") loadSimilarItem(query);
  renderContext();
  renderRefine();
  if (query) runSearch();
  else resetResults();
}

// Recoveries in a row wait longer each time, so a server that keeps answering 503 gets no request storm.
const recoveries = new Backoff({ base: 1000, max: 30000 });
let recovering = null;
let unavailableAgain = false;

/** The server answered 503 (restarting, store down): wait for it, then redo what was on screen; again,
 * waiting longer each time, while it keeps answering 503. */
function recover() {
  if (recovering) {
    unavailableAgain = true; // a 503 during the recovery: it goes round once more
    return recovering;
  }
  recovering = (async () => {
    do {
      unavailableAgain = false;
      markUnready();
      await recoveries.wait();
      await waitReady();
      if ((await loadLibrary()) && state.query) await runSearch();
    } while (unavailableAgain);
    recoveries.succeeded();
  })().finally(() => {
    recovering = null;
  });
  return recovering;
}

function renderLangButtons() {
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang()));
  }
}

/** Redraw every text in the current language. */
function renderAll() {
  applyStatic();
  renderLangButtons();
  renderMessages();
  renderEncoder();
  renderIndexing();
  renderChips();
  renderContext();
  renderRefine();
  renderDuplicates();
  if (!state.loading) {
    renderGrid({ showEmpty: !hasError() });
    renderMore();
  }
  renderClassify();
  renderQuality();
  renderViewer();
  renderFooter();
}

function bindEvents() {
  bindSearchBox();
  bindChips();
  bindUploads();
  bindClassify();
  bindQuality();
  bindContext({
    onClear: () => {
      clearQuery();
      focusSearchBox();
    },
  });
  bindGrid({ onMore: () => runSearch({ append: true }) });
  bindRefine();
  bindDuplicates();
  bindViewer({ onSimilar: startSimilar });
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => {
      setLang(button.dataset.lang);
      renderAll();
    });
  }
  window.addEventListener("popstate", () => {
    if (isReady()) restore();
  });
}

/** Photos were indexed: fresh counts, and a search that showed less than a page is asked again. */
async function refreshAfterIndexing() {
  if (!(await loadLibrary())) return;
  if (state.query && !state.loading && state.nextOffset == null) runSearch();
}

async function boot() {
  applyStatic();
  renderLangButtons();
  bindEvents();
  whenUnavailable(recover);
  setStatus(() => t("statusReady"));
  await waitReady();
  state.indexing = await ingestStatus().catch(() => null); // the empty-library banner depends on it
  await loadLibrary();
  if (isDuplicatesView()) await showDuplicates();
  else restore();
  watchIndexing({ onGrown: refreshAfterIndexing });
  document.documentElement.dataset.ready = "true";
}

boot();
