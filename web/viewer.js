// The photo viewer: a modal dialog with the full photo, its score and top classes, the attribution,
// "More like this" and a link to the original.

import * as api from "./api.js";
import { renderBars } from "./bars.js";
import { byId, externalLink, node } from "./dom.js";
import { className, formatInt, formatMatch, formatPercent, t } from "./i18n.js";

const el = {
  viewer: byId("viewer"),
  img: byId("viewer-img"),
  title: byId("viewer-title"),
  meta: byId("viewer-meta"),
  bars: byId("viewer-bars"),
  attribution: byId("viewer-attribution"),
  similar: byId("viewer-similar"),
  original: byId("viewer-original"),
  gone: byId("viewer-gone"),
  close: byId("viewer-close"),
};

let current = null; // {item, meta, opener}: the result shown, its GET /api/images/<id> answer, the card that opened it

/** Show a result in the viewer; opener gets the focus back when it closes. */
export function openViewer(item, opener) {
  current = { item, meta: null, opener, gone: false };
  el.img.removeAttribute("src");
  renderViewer();
  if (!el.viewer.open) el.viewer.showModal();
  el.close.focus();
  const viewer = current;
  api
    .image(item.id)
    .then((meta) => {
      if (current !== viewer) return;
      viewer.meta = meta;
      renderViewer();
    })
    .catch(() => {});
}

/** Close the viewer if it is open. */
export function closeViewer() {
  if (el.viewer.open) el.viewer.close();
}

/** Draw the shown result (after a language switch too); nothing when the viewer is closed. */
export function renderViewer() {
  if (!current) return;
  const item = current.item;
  const meta = current.meta || {};
  const label = className(item.label);
  const title = item.title || label;
  el.title.textContent = title;
  // A photo whose file left the library (still indexed) shows its thumbnail, and says so.
  const src = current.gone ? item.thumb_url : item.image_url;
  if (el.img.getAttribute("src") !== src) {
    el.img.classList.add("is-loading");
    el.img.src = src;
  }
  el.gone.hidden = !current.gone;
  el.gone.textContent = current.gone ? t("fileGone") : "";
  el.original.hidden = current.gone;
  el.img.alt = t("cardAlt", { title, label, score: formatMatch(item.score) });
  if (item.width && item.height) {
    el.img.width = item.width;
    el.img.height = item.height;
  }
  const details = [label];
  if (item.confidence != null) details.push(t("confidenceShort", { pct: formatPercent(item.confidence) }));
  if (item.score != null) details.push(formatMatch(item.score));
  if (item.width && item.height) details.push(t("viewerDetails", { w: formatInt(item.width), h: formatInt(item.height) }));
  // Each fact stays on one line; the line breaks only between them.
  const parts = [];
  details.forEach((text, i) => {
    if (i) parts.push(" · ");
    parts.push(node("span", { class: "nowrap", text }));
  });
  el.meta.replaceChildren(...parts);
  renderBars(meta.top3 || [], el.bars);
  el.bars.hidden = !(meta.top3 && meta.top3.length);
  renderAttribution(item.attribution || meta.attribution || null);
  el.original.href = item.image_url;
}

function renderAttribution(attr) {
  const lines = [];
  if (attr && (attr.title || attr.author || attr.license || attr.source_url)) {
    if (attr.title) lines.push(node("p", { class: "attr-title", text: attr.title }));
    if (attr.author) lines.push(node("p", { text: t("photoBy", { author: attr.author }) }));
    if (attr.license) {
      lines.push(node("p", {}, [t("licence"), externalLink(attr.license, attr.license_url)]));
    }
    if (attr.source_url) {
      lines.push(node("p", {}, [t("source"), externalLink(attr.source || t("sourceLink"), attr.source_url)]));
    } else if (attr.source) {
      lines.push(node("p", { text: t("source") + attr.source }));
    }
  } else {
    lines.push(node("p", { class: "muted", text: t("noAttribution") }));
  }
  el.attribution.replaceChildren(...lines);
}

/** Close on the button, the backdrop and Escape (focus back to the opener); onSimilar(item) for "More like this". */
export function bindViewer({ onSimilar }) {
  el.close.addEventListener("click", closeViewer);
  el.viewer.addEventListener("click", (event) => {
    if (event.target === el.viewer) closeViewer(); // a click on the backdrop
  });
  el.viewer.addEventListener("close", () => {
    const opener = current && current.opener;
    current = null;
    if (opener && opener.isConnected) opener.focus();
  });
  el.img.addEventListener("load", () => el.img.classList.remove("is-loading"));
  el.img.addEventListener("error", () => {
    el.img.classList.remove("is-loading");
    if (current && !current.gone && el.img.getAttribute("src") === current.item.image_url) {
      current.gone = true; // the file is gone (404): fall back to the thumbnail
      renderViewer();
    }
  });
  el.similar.addEventListener("click", () => {
    if (current) onSimilar(current.item);
  });
}
