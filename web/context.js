// The strip above the results that shows what a search by photo asks: your photo, or the library photo
// whose look-alikes are shown. A text search has none (the search box shows its text).

import * as api from "./api.js";
import { byId } from "./dom.js";
import { className, t } from "./i18n.js";
import { state } from "./state.js";

const el = {
  context: byId("query-context"),
  img: byId("query-preview"),
  text: byId("query-text"),
  clear: byId("query-clear"),
};

/** Draw the strip for the state's query (after a language switch too); hide it for none or a text. */
export function renderContext() {
  const query = state.query;
  document.body.classList.toggle("has-query", Boolean(query));
  const show = Boolean(query && query.mode !== "text");
  el.context.hidden = !show;
  if (!show) return;
  if (query.mode === "image") {
    el.img.src = query.url;
    el.text.textContent = t("queryYourPhoto");
  } else {
    const item = query.item;
    if (item) el.img.src = item.thumb_url;
    else el.img.src = `/images/${encodeURIComponent(query.id)}/thumb`;
    el.text.textContent = t("querySimilar", { label: item ? className(item.label) : "…" });
  }
}

/** A "similar" query from the address knows only the id: fetch the photo's label for the strip. */
export function loadSimilarItem(query) {
  api
    .image(query.id)
    .then((meta) => {
      query.item = meta;
      renderContext();
    })
    .catch(() => {});
}

/** The strip, or null while it is hidden (the top of what a search shows, to scroll into view). */
export function contextElement() {
  return el.context.hidden ? null : el.context;
}

/** Mark a broken preview; call onClear when "Clear" is pressed. */
export function bindContext({ onClear }) {
  el.img.addEventListener("load", () => el.img.classList.remove("is-broken"));
  el.img.addEventListener("error", () => el.img.classList.add("is-broken"));
  el.clear.addEventListener("click", onClear);
}
