// The library: fetch what GET /api/stats and GET /api/classes say (photo counts, the model, the limits
// that limits.js reads) into the state, redraw the class chips from it, and draw the footer line.

import * as api from "./api.js";
import { renderChips } from "./chips.js";
import { byId, node } from "./dom.js";
import { photos, t } from "./i18n.js";
import { emptyLibraryBanner, handleError, setBanner } from "./messages.js";
import { state } from "./state.js";

const footer = byId("footer-text");

/** Fetch the stats and classes into the state and draw them; false (with the error shown) if that failed. */
export async function loadLibrary() {
  try {
    const [stats, classes] = await Promise.all([api.stats(), api.classes()]);
    state.stats = stats;
    state.classes = classes.classes || [];
    setBanner(stats.points === 0 ? emptyLibraryBanner(state.indexing && state.indexing.fetch) : null);
    renderChips();
    renderFooter();
    return true;
  } catch (err) {
    handleError(err);
    return false;
  }
}

/** The footer: how many photos, which model, and a link to the API's description. */
export function renderFooter() {
  const stats = state.stats;
  if (!stats) {
    footer.replaceChildren();
    return;
  }
  let model = String(stats.model || "");
  if (model.startsWith("/") || model.startsWith(".")) model = model.split("/").filter(Boolean).pop() || model;
  footer.replaceChildren(
    t("footer", { photos: photos(stats.points), model }),
    " · ",
    node("a", { href: "/docs", text: "API" }),
  );
}
