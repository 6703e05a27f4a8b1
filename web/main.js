// Wonders UI, the entry module: wires the widgets together, restores the search the address describes,
// switches the language, and starts once the server is ready. Vanilla ES modules, no build step; every
// text goes through i18n.t, so a language switch re-renders it.
//
// The rooms: searchbox.js (the box), chips.js (class filter), search.js (searching and paging), grid.js
// (the result card and the grid), context.js (the query photo strip), viewer.js (the photo viewer),
// classify.js ("What is this?"), upload.js (pick, drop, paste), messages.js (status, error, banner),
// ready.js (waiting for the server), library.js (stats, classes, footer), limits.js (the server's limits),
// url.js (the address and history), state.js (the shared state), api.js, i18n.js, dom.js, bars.js,
// refine.js (more / less like this, words, chips, diversity), duplicates.js (the Duplicates view).
// A module imports only modules below it. Where a widget below search.js must start a search (Load more,
// More like this, Clear, a 503), it calls back a function wired here, so no import goes round in a circle.
// index.html preloads every module, so the browser fetches them at once rather than level by level.

import { bindChips, renderChips } from "./chips.js";
import { bindClassify, renderClassify } from "./classify.js";
import { bindContext, loadSimilarItem, renderContext } from "./context.js";
import { bindDuplicates, isDuplicatesView, renderDuplicates, showDuplicates } from "./duplicates.js";
import { bindGrid, renderGrid, renderMore } from "./grid.js";
import { applyStatic, lang, setLang, t } from "./i18n.js";
import { loadLibrary, renderFooter } from "./library.js";
import { hasError, renderMessages, setStatus, whenUnavailable } from "./messages.js";
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

/** The server answered 503 (restarting, store down): wait for it, then redo what was on screen. */
async function recover() {
  markUnready();
  await waitReady();
  if (await loadLibrary()) {
    if (state.query) runSearch();
  }
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
  renderChips();
  renderContext();
  renderRefine();
  renderDuplicates();
  if (!state.loading) {
    renderGrid({ showEmpty: !hasError() });
    renderMore();
  }
  renderClassify();
  renderViewer();
  renderFooter();
}

function bindEvents() {
  bindSearchBox();
  bindChips();
  bindUploads();
  bindClassify();
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

async function boot() {
  applyStatic();
  renderLangButtons();
  bindEvents();
  whenUnavailable(recover);
  setStatus(() => t("statusReady"));
  await waitReady();
  await loadLibrary();
  if (isDuplicatesView()) await showDuplicates();
  else restore();
  document.documentElement.dataset.ready = "true";
}

boot();
