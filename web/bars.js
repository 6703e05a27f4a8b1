// Confidence bars (class, percent, a bar), as the classify panel and the viewer show a photo's top classes.

import { node } from "./dom.js";
import { className, formatPercent } from "./i18n.js";

/** Fill target (an <ol>) with one bar per {id, name, name_ru, confidence} entry. */
export function renderBars(list, target) {
  target.replaceChildren(
    ...list.map((entry) => {
      const pct = formatPercent(entry.confidence);
      const fill = node("span", { class: "bar-fill" });
      // CSSOM, not a style attribute: allowed by the page's style-src 'self'.
      fill.style.width = `${Math.max(0, Math.min(1, entry.confidence || 0)) * 100}%`;
      return node("li", { class: "bar" }, [
        node("span", { class: "bar-label", text: className(entry) }),
        node("span", { class: "bar-value", text: pct }),
        node("span", { class: "bar-track", "aria-hidden": "true" }, [fill]),
      ]);
    }),
  );
}
