// "What is this?": the panel with your photo, its class, the confidence and the top three classes,
// and "Find similar photos". When the answer is `other` it says "None of the classes", still with the top 3.

import * as api from "./api.js";
import { renderBars } from "./bars.js";
import { byId } from "./dom.js";
import { className, formatPercent, t } from "./i18n.js";
import { handleError } from "./messages.js";
import { startImage } from "./search.js";
import { closeViewer } from "./viewer.js";

const el = {
  panel: byId("classify-panel"),
  preview: byId("classify-preview"),
  close: byId("classify-close"),
  loading: byId("classify-loading"),
  result: byId("classify-result"),
  label: byId("classify-label"),
  confidence: byId("classify-confidence"),
  bars: byId("classify-bars"),
  similar: byId("classify-similar"),
  pick: byId("pick-classify"),
};

let current = null; // {file, url, loading, result}: the photo asked about and the server's answer
let controller = null;

/** Ask the server what an uploaded file (already checked by upload.js) shows, and show the answer. */
export async function classifyFile(file) {
  closeViewer();
  if (current && current.url) URL.revokeObjectURL(current.url);
  if (controller) controller.abort();
  const mine = new AbortController();
  controller = mine;
  current = { file, url: URL.createObjectURL(file), loading: true, result: null };
  renderClassify();
  el.panel.scrollIntoView({ block: "nearest" });
  try {
    const result = await api.classify(file, mine.signal);
    if (mine.signal.aborted) return;
    current.result = result;
  } catch (err) {
    if (api.isAbort(err)) return;
    closeClassify();
    handleError(err);
    return;
  } finally {
    if (current && controller === mine) current.loading = false;
  }
  renderClassify();
}

function closeClassify() {
  if (controller) controller.abort();
  if (current && current.url) URL.revokeObjectURL(current.url);
  current = null;
  renderClassify();
}

/** Draw the panel (after a language switch too); hidden when no photo is asked about. */
export function renderClassify() {
  el.panel.hidden = !current;
  if (!current) return;
  if (el.preview.getAttribute("src") !== current.url) el.preview.src = current.url;
  el.loading.hidden = !current.loading;
  el.result.hidden = current.loading || !current.result;
  el.panel.setAttribute("aria-busy", String(current.loading));
  if (!current.result) return;
  const result = current.result;
  const none = result.label && result.label.id === "other";
  el.label.textContent = none ? t("classifyNone") : className(result.label);
  const pct = formatPercent(result.confidence);
  const closest = (result.top3 || [])[0];
  el.confidence.textContent =
    none && closest ? t("classifyNoneWhy", { label: className(closest), pct }) : t("classifyConfidence", { pct });
  renderBars(result.top3 || [], el.bars);
}

/** Close the panel (focus back to "What is this?"); "Find similar photos" searches by the same photo. */
export function bindClassify() {
  el.close.addEventListener("click", () => {
    closeClassify();
    el.pick.focus();
  });
  el.similar.addEventListener("click", () => {
    if (current) startImage(current.file);
  });
}
