// The status line, the error alert and the banner. Texts are kept as functions, so that a language
// switch re-renders them in the new language.

import { isAbort } from "./api.js";
import { byId, fillNodes, node } from "./dom.js";
import { has, lang, t } from "./i18n.js";

const el = {
  status: byId("status"),
  error: byId("error"),
  banner: byId("banner"),
  bannerText: byId("banner-text"),
};

let status = null; // () => text
let error = null; // () => text
let banner = null; // {kind: "busy" | "info", text: () => text | Node[]}
let onUnavailable = () => {};

/** Show a status line (a function returning the text), or none with null. */
export function setStatus(fn) {
  status = fn;
  renderStatus();
}

function renderStatus() {
  el.status.textContent = status ? status() : "";
}

/** Show an error (a function returning the text), or hide the alert with null. */
export function setError(fn) {
  error = fn;
  renderError();
}

/** Whether an error is on screen. */
export function hasError() {
  return Boolean(error);
}

function renderError() {
  el.error.hidden = !error;
  el.error.textContent = error ? error() : "";
}

/** The text for an API failure: the server's message in English, a translation by code in Russian. */
function describeError(err) {
  return () => {
    if (err.code === "network") return t("networkError");
    if (lang() !== "en" && has(`error_${err.code}`)) {
      // The server's reason (e.g. "too many pixels") is English-only, but still worth showing.
      const reason = err.details && typeof err.details.reason === "string" ? ` (${err.details.reason})` : "";
      return t(`error_${err.code}`) + reason;
    }
    return err.message || t("genericError", { code: err.code });
  };
}

/** Show a banner ({kind, text}) above the search box, or hide it with null. */
export function setBanner(next) {
  banner = next;
  renderBanner();
}

function renderBanner() {
  el.banner.hidden = !banner;
  if (!banner) return;
  el.banner.classList.toggle("banner-info", banner.kind === "info");
  const content = banner.text();
  el.bannerText.replaceChildren(...(Array.isArray(content) ? content : [content]));
}

/** The banner for a library with no photos: what to do, given the first-run download's state
 * (fetch: the `fetch` of GET /api/ingest; running: photos are on their way; failed: offline). */
export function emptyLibraryBanner(fetch = null) {
  const commands = () => ({
    dataset: node("code", { text: "make dataset" }),
    ingest: node("code", { text: "make ingest" }),
  });
  const state = fetch && fetch.state;
  return {
    kind: "info",
    text: () => {
      if (state === "running") return t("emptyLibraryFetching");
      if (state === "failed") return fillNodes(t("emptyLibraryOffline"), commands());
      return fillNodes(t("emptyLibrary"), commands());
    },
  };
}

/** What to do when the server answers 503 (restarting, store down); main.js sets it. */
export function whenUnavailable(handler) {
  onUnavailable = handler;
}

/** Show an API failure: ignore aborts, hand a 503 to the unavailable handler, explain anything else. */
export function handleError(err) {
  if (isAbort(err)) return;
  if (err.status === 503) {
    onUnavailable();
    return;
  }
  setError(describeError(err));
}

/** Re-render the banner, status and error (after a language switch). */
export function renderMessages() {
  renderBanner();
  renderStatus();
  renderError();
}
