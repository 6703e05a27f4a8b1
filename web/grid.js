// The results grid: the result card, its skeleton while a page loads, the empty state and "Load more".
// A click on a card opens it in the viewer.

import { byId, node } from "./dom.js";
import { className, formatMatch, t } from "./i18n.js";
import { pageSize } from "./limits.js";
import { state } from "./state.js";
import { openViewer } from "./viewer.js";

/** Skeleton cards are drawn for the page being loaded, but never more than this. */
const MAX_SKELETONS = 24;

const el = {
  results: byId("results"),
  grid: byId("grid"),
  empty: byId("empty"),
  emptyText: byId("empty-text"),
  emptyTitle: document.querySelector("#empty .empty-title"),
  more: byId("more"),
};

function skeletonCard() {
  return node("li", { class: "card skeleton", "aria-hidden": "true" }, [
    node("div", { class: "card-media" }),
    node("div", { class: "card-meta" }, [node("span", { class: "bone" })]),
  ]);
}

/** The result card: the thumbnail, how well it matches on it, the photo's title and class under it. */
function card(item, index) {
  const label = className(item.label);
  const score = formatMatch(item.score);
  const title = item.title || label;
  const img = node("img", {
    src: item.thumb_url,
    alt: t("cardAlt", { title, label, score }),
    loading: "lazy",
    decoding: "async",
  });
  if (item.width && item.height) {
    img.width = item.width;
    img.height = item.height;
  }
  const button = node("button", { type: "button", class: "card-button" }, [
    node("div", { class: "card-media" }, [
      img,
      node("span", { class: "card-score", text: score, title: t("scoreTitle"), "aria-hidden": "true" }),
    ]),
    node("div", { class: "card-meta", "aria-hidden": "true" }, [
      node("span", { class: "card-title", text: title }),
      node("span", { class: "card-label", text: label }),
    ]),
  ]);
  button.dataset.index = String(index);
  // "More like this" / "less like this" refine the results in place (refine.js handles the clicks).
  const refine = node("div", { class: "card-refine" }, [
    node("button", { type: "button", class: "refine-btn", "aria-label": t("refineMoreLabel", { label }), title: t("refineMore"), text: "+" }),
    node("button", { type: "button", class: "refine-btn", "aria-label": t("refineLessLabel", { label }), title: t("refineLess"), text: "−" }),
  ]);
  refine.firstChild.dataset.refine = "1";
  refine.lastChild.dataset.refine = "-1";
  for (const b of refine.children) b.dataset.index = String(index);
  return node("li", { class: "card" }, [button, refine]);
}

/** Show that a page is on its way (skeletons for a first page, a busy "Load more" for the next), or no longer. */
export function showLoading(loading, append) {
  el.results.setAttribute("aria-busy", String(loading));
  if (loading && !append) {
    el.empty.hidden = true;
    el.grid.replaceChildren(...Array.from({ length: Math.min(pageSize(), MAX_SKELETONS) }, skeletonCard));
    el.more.hidden = true;
  }
  if (append) {
    el.more.textContent = loading ? t("loadingMore") : t("loadMore");
    el.more.setAttribute("aria-disabled", String(loading));
    el.more.classList.toggle("is-loading", loading);
  }
}

/** Draw the state's results (nothing while a first page loads); say "no photos" when a search found none. */
export function renderGrid({ showEmpty = true } = {}) {
  if (state.loading) return;
  el.grid.replaceChildren(...state.results.map(card));
  const empty = showEmpty && Boolean(state.query) && state.results.length === 0;
  el.empty.hidden = !empty;
  el.emptyTitle.textContent = state.emptyLibrary ? t("emptyLibraryTitle") : t("emptyTitle");
  el.emptyText.textContent = state.emptyLibrary
    ? t("emptyLibraryText")
    : state.cls
      ? t("emptyTextClass")
      : t("emptyText");
}

/** Add the cards of the state's results from index start (a next page). */
export function appendCards(start) {
  el.grid.append(...state.results.slice(start).map((item, i) => card(item, start + i)));
  const first = el.grid.children[start];
  // Keyboard users who pressed "Load more" continue with the first new photo.
  if (first && document.activeElement === el.more) first.querySelector("button").focus();
}

/** Empty the grid, with no "no photos" message (nothing is asked). */
export function clearGrid() {
  el.grid.replaceChildren();
  el.empty.hidden = true;
}

/** Show "Load more" while the server has a next page. */
export function renderMore() {
  el.more.hidden = state.loading || state.nextOffset == null || state.results.length === 0;
  el.more.textContent = state.loadingMore ? t("loadingMore") : t("loadMore");
}

/** Open a card in the viewer on click; call onMore when "Load more" is pressed (and not busy). */
export function bindGrid({ onMore }) {
  el.grid.addEventListener("click", (event) => {
    const button = event.target.closest("button.card-button");
    if (!button) return;
    const item = state.results[Number(button.dataset.index)];
    if (item) openViewer(item, button);
  });
  el.more.addEventListener("click", () => {
    if (el.more.getAttribute("aria-disabled") !== "true") onMore();
  });
}
