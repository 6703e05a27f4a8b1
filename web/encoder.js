// Which text tower answered a text search, shown discreetly under the status line: the multilingual
// model, or CLIP, and why CLIP answered a query meant for the multilingual one (still loading, off).
// Scores of the two towers are not comparable, so the answer says which one made them.

import { byId } from "./dom.js";
import { t } from "./i18n.js";

const el = byId("text-encoder");

let shown = null; // {text_encoder, text_encoder_fallback, truncated} of the page on screen, or null

/** Show what encoded the page's text (a text search answer), or nothing with null. */
export function showEncoder(page) {
  shown = page && page.text_encoder ? page : null;
  renderEncoder();
}

/** Redraw in the current language. */
export function renderEncoder() {
  el.hidden = !shown;
  if (!shown) {
    el.textContent = "";
    delete el.dataset.textEncoder;
    return;
  }
  const parts = [t(shown.text_encoder === "multilingual" ? "encoderMultilingual" : "encoderClip")];
  if (shown.text_encoder_fallback) parts.push(t(`encoderFallback_${shown.text_encoder_fallback}`));
  if (shown.truncated) parts.push(t("encoderTruncated"));
  el.textContent = parts.join(" · ");
  el.dataset.textEncoder = shown.text_encoder;
}
