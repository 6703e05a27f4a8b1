// Wonders UI: text search, search by photo, "what is this?", the photo viewer and the two languages.
// Vanilla ES modules, no build step. Every text goes through i18n.t so a language switch re-renders it.

import * as api from "./api.js";
import {
  applyStatic,
  className,
  formatInt,
  formatPercent,
  formatScore,
  has,
  lang,
  photos,
  setLang,
  t,
} from "./i18n.js";

// The server's limit, from /api/stats (limits.max_upload_mb); 20 MB until the stats arrive.
const DEFAULT_MAX_UPLOAD_MB = 20;
const DEFAULT_K = 12;
const MAX_K = 100;
const IMAGE_NAME = /\.(jpe?g|jfif|png|gif|webp|bmp|tiff?|heic|heif|avif)$/i;
const CYRILLIC = /[\u0400-\u04ff]/;
const READY_FIRST_RETRY_MS = 1000;
const READY_RETRY_MS = 3000;

const $ = (id) => document.getElementById(id);
const el = {
  form: $("search-form"),
  q: $("q"),
  hint: $("hint"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  pickSearch: $("pick-search"),
  pickClassify: $("pick-classify"),
  fileSearch: $("file-search"),
  fileClassify: $("file-classify"),
  classes: $("classes"),
  context: $("query-context"),
  contextImg: $("query-preview"),
  contextText: $("query-text"),
  contextClear: $("query-clear"),
  status: $("status"),
  error: $("error"),
  results: $("results"),
  grid: $("grid"),
  empty: $("empty"),
  emptyText: $("empty-text"),
  more: $("more"),
  footer: $("footer-text"),
  classifyPanel: $("classify-panel"),
  classifyPreview: $("classify-preview"),
  classifyClose: $("classify-close"),
  classifyLoading: $("classify-loading"),
  classifyResult: $("classify-result"),
  classifyLabel: $("classify-label"),
  classifyConfidence: $("classify-confidence"),
  classifyBars: $("classify-bars"),
  classifySimilar: $("classify-similar"),
  viewer: $("viewer"),
  viewerImg: $("viewer-img"),
  viewerTitle: $("viewer-title"),
  viewerMeta: $("viewer-meta"),
  viewerBars: $("viewer-bars"),
  viewerAttribution: $("viewer-attribution"),
  viewerSimilar: $("viewer-similar"),
  viewerOriginal: $("viewer-original"),
  viewerClose: $("viewer-close"),
  dropzone: $("dropzone"),
};

const state = {
  ready: false,
  stats: null,
  classes: [],
  cls: null, // class filter id
  k: DEFAULT_K,
  query: null, // {mode: "text", q} | {mode: "image", file, url} | {mode: "similar", id, item}
  lastImageQuery: null, // so Back/Forward can return to a search by photo
  results: [],
  nextOffset: null,
  tookMs: 0,
  loading: false,
  loadingMore: false,
  status: null, // () => text, re-evaluated on a language switch
  error: null, // () => text
  banner: null, // {kind: "busy" | "info", text: () => text | Node[]}
  classify: null, // {file, url, loading, result}
  viewer: null, // {item, meta, opener}
};

// ---------------------------------------------------------------------------------------------- helpers

function node(tag, props = {}, children = []) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key in element && !key.startsWith("aria") && key !== "role") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...children);
  return element;
}

/** Fill a template's {name} placeholders with DOM nodes (e.g. <code> elements). */
function fillNodes(template, parts) {
  const out = [];
  let last = 0;
  for (const match of template.matchAll(/\{(\w+)\}/g)) {
    out.push(template.slice(last, match.index));
    out.push(parts[match[1]] ?? match[0]);
    last = match.index + match[0].length;
  }
  out.push(template.slice(last));
  return out;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function shorten(text, max = 80) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function classById(id) {
  return state.classes.find((c) => c.id === id) || (id ? { id, name: id, name_ru: id } : null);
}

function megabytes(bytes) {
  return new Intl.NumberFormat(lang(), { maximumFractionDigits: 1 }).format(bytes / (1024 * 1024));
}

function isAbort(err) {
  return err && err.name === "AbortError";
}

// ---------------------------------------------------------------------------------------------- status, errors, banner

function setStatus(fn) {
  state.status = fn;
  renderStatus();
}

function renderStatus() {
  el.status.textContent = state.status ? state.status() : "";
}

function setError(fn) {
  state.error = fn;
  renderError();
}

function renderError() {
  el.error.hidden = !state.error;
  el.error.textContent = state.error ? state.error() : "";
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

function setBanner(banner) {
  state.banner = banner;
  renderBanner();
}

function renderBanner() {
  const banner = state.banner;
  el.banner.hidden = !banner;
  if (!banner) return;
  el.banner.classList.toggle("banner-info", banner.kind === "info");
  const content = banner.text();
  el.bannerText.replaceChildren(...(Array.isArray(content) ? content : [content]));
}

function emptyLibraryBanner() {
  return {
    kind: "info",
    text: () =>
      fillNodes(t("emptyLibrary"), {
        dataset: node("code", { text: "make dataset" }),
        ingest: node("code", { text: "make ingest" }),
      }),
  };
}

// ---------------------------------------------------------------------------------------------- readiness

let readyLoop = null;

/** Poll /api/ready until it answers 200, showing why the server is not ready meanwhile. */
function waitReady() {
  if (readyLoop) return readyLoop;
  readyLoop = (async () => {
    let attempt = 0;
    for (;;) {
      let answer;
      try {
        answer = await api.ready();
      } catch {
        answer = { ok: false, code: "network", message: "" };
      }
      if (answer.ok) break;
      state.ready = false;
      const { code, message } = answer;
      setBanner({
        kind: "busy",
        text: () => {
          if (code === "store_unavailable") return t("storeDown", { message });
          if (code === "load_failed") return t("loadFailed", { message });
          if (code === "model_mismatch") return t("modelMismatch", { message });
          if (code === "network") return t("networkError");
          return t("starting");
        },
      });
      await sleep(attempt++ === 0 ? READY_FIRST_RETRY_MS : READY_RETRY_MS);
    }
    state.ready = true;
    setBanner(null);
  })().finally(() => {
    readyLoop = null;
  });
  return readyLoop;
}

async function loadLibrary() {
  try {
    const [stats, classes] = await Promise.all([api.stats(), api.classes()]);
    state.stats = stats;
    state.classes = classes.classes || [];
    setBanner(stats.points === 0 ? emptyLibraryBanner() : null);
    renderChips();
    renderFooter();
    return true;
  } catch (err) {
    handleError(err);
    return false;
  }
}

/** The server answered 503 (restarting, store down): wait for it, then redo what was on screen. */
async function recover() {
  await waitReady();
  if (await loadLibrary()) {
    if (state.query) runSearch();
  }
}

function handleError(err) {
  if (isAbort(err)) return;
  if (err.status === 503) {
    state.ready = false;
    recover();
    return;
  }
  setError(describeError(err));
}

// ---------------------------------------------------------------------------------------------- class chips

function renderChips() {
  const total = state.stats ? state.stats.points : state.classes.reduce((sum, c) => sum + (c.count || 0), 0);
  const chips = [{ id: null, label: t("allClasses"), count: total }].concat(
    state.classes.map((c) => ({ id: c.id, label: className(c), count: c.count || 0 })),
  );
  el.classes.replaceChildren(
    ...chips.map((chip) => {
      const pressed = chip.id === state.cls;
      const button = node(
        "button",
        {
          type: "button",
          class: "chip",
          "aria-pressed": String(pressed),
          disabled: chip.id !== null && chip.count === 0 && !pressed,
        },
        [node("span", { text: chip.label }), node("span", { class: "count", text: formatInt(chip.count) })],
      );
      button.dataset.class = chip.id ?? "";
      return node("li", {}, [button]);
    }),
  );
}

function selectClass(id) {
  state.cls = id || null;
  renderChips();
  pushUrl();
  if (state.query) runSearch();
}

// ---------------------------------------------------------------------------------------------- URL state

function urlFor() {
  const params = new URLSearchParams();
  const query = state.query;
  if (query && query.mode === "text") params.set("q", query.q);
  if (query && query.mode === "similar") params.set("similar", query.id);
  if (state.cls) params.set("class", state.cls);
  if (state.k !== DEFAULT_K) params.set("k", String(state.k));
  const text = params.toString();
  return location.pathname + (text ? `?${text}` : "");
}

function pushUrl() {
  const url = urlFor();
  const image = Boolean(state.query && state.query.mode === "image");
  if (url !== location.pathname + location.search || image !== Boolean(history.state && history.state.image)) {
    history.pushState({ image }, "", url);
  }
}

/** Restore the search that the address describes (first load, Back, Forward). */
function applyUrl() {
  const params = new URLSearchParams(location.search);
  const k = Number.parseInt(params.get("k") || "", 10);
  state.k = k >= 1 && k <= MAX_K ? k : DEFAULT_K;
  state.cls = params.get("class") || null;
  renderChips();
  closeViewer();
  const q = (params.get("q") || "").trim();
  const similarId = params.get("similar");
  if (q) {
    el.q.value = q;
    state.query = { mode: "text", q };
  } else if (similarId) {
    const query = { mode: "similar", id: similarId, item: null };
    state.query = query;
    api
      .image(similarId)
      .then((meta) => {
        query.item = meta;
        renderContext();
      })
      .catch(() => {});
  } else if (history.state && history.state.image && state.lastImageQuery) {
    state.query = state.lastImageQuery;
  } else {
    state.query = null;
  }
  updateHint();
  renderContext();
  if (state.query) runSearch();
  else resetResults();
}

// ---------------------------------------------------------------------------------------------- searching

let searchController = null;

function startText(q) {
  closeViewer();
  state.query = { mode: "text", q };
  pushUrl();
  renderContext();
  runSearch();
}

function startSimilar(item) {
  closeViewer();
  state.query = { mode: "similar", id: item.id, item };
  pushUrl();
  renderContext();
  runSearch().then(() => revealResults());
}

function searchByFile(file) {
  if (!checkFile(file)) return;
  closeViewer();
  const previous = state.lastImageQuery;
  if (previous && previous.url) URL.revokeObjectURL(previous.url);
  state.query = { mode: "image", file, url: URL.createObjectURL(file), pending: true };
  state.lastImageQuery = state.query;
  renderContext();
  runSearch().then(() => revealResults());
}

function revealResults() {
  const top = el.context.hidden ? el.results : el.context;
  if (top.getBoundingClientRect().top < 0) top.scrollIntoView({ block: "start" });
}

function fetchPage(query, offset, signal) {
  const options = { k: state.k, offset, cls: state.cls, signal };
  if (query.mode === "text") return api.search({ q: query.q, ...options });
  if (query.mode === "image") return api.searchImage(query.file, options);
  return api.similar(query.id, options);
}

async function runSearch({ append = false } = {}) {
  const query = state.query;
  if (!query) return;
  if (append && (state.loadingMore || state.nextOffset == null)) return;
  if (searchController) searchController.abort();
  const controller = new AbortController();
  searchController = controller;
  const offset = append ? state.nextOffset : 0;
  setError(null);
  setLoading(true, append);
  try {
    const page = await fetchPage(query, offset, controller.signal);
    if (controller.signal.aborted) return;
    const start = append ? state.results.length : 0;
    state.results = append ? state.results.concat(page.results) : page.results;
    state.nextOffset = page.results.length ? page.next_offset : null;
    state.tookMs = page.took_ms;
    if (query.pending) {
      // A search by photo enters the history once the server has accepted the photo.
      query.pending = false;
      pushUrl();
    }
    setLoading(false, append);
    if (append) {
      appendCards(start);
      const first = el.grid.children[start];
      // Keyboard users who pressed "Load more" continue with the first new photo.
      if (first && document.activeElement === el.more) first.querySelector("button").focus();
    } else {
      renderGrid();
    }
    renderMore();
    setStatus(resultsStatus);
  } catch (err) {
    if (isAbort(err) || controller.signal.aborted) return;
    setLoading(false, append);
    if (!append) {
      state.results = [];
      state.nextOffset = null;
      renderGrid({ showEmpty: false });
      renderMore();
    }
    setStatus(null);
    if (query.pending && err.status !== 503) {
      // The server refused the photo (too large, not an image): forget it, keep the message.
      if (query.url) URL.revokeObjectURL(query.url);
      state.query = null;
      state.lastImageQuery = null;
      renderContext();
    }
    handleError(err);
  } finally {
    if (searchController === controller) searchController = null;
  }
}

function setLoading(loading, append) {
  state.loading = loading && !append;
  state.loadingMore = loading && append;
  el.results.setAttribute("aria-busy", String(loading));
  if (loading && !append) {
    el.empty.hidden = true;
    el.grid.replaceChildren(...Array.from({ length: Math.min(state.k, 24) }, skeletonCard));
    el.more.hidden = true;
    setStatus(() => t("statusSearching"));
  }
  if (append) {
    el.more.textContent = loading ? t("loadingMore") : t("loadMore");
    el.more.setAttribute("aria-disabled", String(loading));
    el.more.classList.toggle("is-loading", loading);
    if (loading) setStatus(() => t("statusLoadingMore"));
  }
}

function resetResults() {
  if (searchController) searchController.abort();
  state.results = [];
  state.nextOffset = null;
  setLoading(false, false);
  el.grid.replaceChildren();
  el.empty.hidden = true;
  renderMore();
  setStatus(() => t("statusReady"));
}

function resultsStatus() {
  const n = state.results.length;
  const query = state.query;
  if (!query) return "";
  if (n === 0) return t("emptyTitle");
  const ms = formatInt(Math.round(state.tookMs));
  let text;
  if (query.mode === "text") text = t("statusResultsText", { photos: photos(n), q: shorten(query.q), ms });
  else if (query.mode === "image") text = t("statusResultsImage", { photos: photos(n), ms });
  else text = t("statusResultsSimilar", { photos: photos(n), ms });
  if (state.cls) text = t("statusInClass", { status: text, label: className(classById(state.cls)) });
  return text;
}

// ---------------------------------------------------------------------------------------------- the grid

function skeletonCard() {
  return node("li", { class: "card skeleton", "aria-hidden": "true" }, [
    node("div", { class: "card-media" }),
    node("div", { class: "card-meta" }, [node("span", { class: "bone" })]),
  ]);
}

function card(item, index) {
  const label = className(item.label);
  const score = formatScore(item.score);
  const img = node("img", {
    src: item.thumb_url,
    alt: t("cardAlt", { label, score }),
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
    node("div", { class: "card-meta", "aria-hidden": "true" }, [node("span", { class: "card-label", text: label })]),
  ]);
  button.dataset.index = String(index);
  return node("li", { class: "card" }, [button]);
}

function renderGrid({ showEmpty = true } = {}) {
  if (state.loading) return;
  el.grid.replaceChildren(...state.results.map(card));
  const empty = showEmpty && Boolean(state.query) && state.results.length === 0;
  el.empty.hidden = !empty;
  el.emptyText.textContent = state.cls ? t("emptyTextClass") : t("emptyText");
}

function appendCards(start) {
  el.grid.append(...state.results.slice(start).map((item, i) => card(item, start + i)));
}

function renderMore() {
  el.more.hidden = state.loading || state.nextOffset == null || state.results.length === 0;
  el.more.textContent = state.loadingMore ? t("loadingMore") : t("loadMore");
}

function renderContext() {
  const query = state.query;
  document.body.classList.toggle("has-query", Boolean(query));
  const show = Boolean(query && query.mode !== "text");
  el.context.hidden = !show;
  if (!show) return;
  if (query.mode === "image") {
    el.contextImg.src = query.url;
    el.contextText.textContent = t("queryYourPhoto");
  } else {
    const item = query.item;
    if (item) el.contextImg.src = item.thumb_url;
    else el.contextImg.src = `/images/${encodeURIComponent(query.id)}/thumb`;
    el.contextText.textContent = t("querySimilar", { label: item ? className(item.label) : "…" });
  }
}

// ---------------------------------------------------------------------------------------------- uploads

function checkFile(file) {
  if (!file) return false;
  const name = file.name || "image";
  const limitMb = state.stats?.limits?.max_upload_mb ?? DEFAULT_MAX_UPLOAD_MB;
  if (file.size > limitMb * 1024 * 1024) {
    setError(() => t("tooLarge", { name, size: megabytes(file.size), limit: limitMb }));
    return false;
  }
  const looksLikeImage = file.type ? file.type.startsWith("image/") : IMAGE_NAME.test(name);
  if (!looksLikeImage) {
    setError(() => t("notImage", { name }));
    return false;
  }
  setError(null);
  return true;
}

let classifyController = null;

async function classifyFile(file) {
  if (!checkFile(file)) return;
  closeViewer();
  if (state.classify && state.classify.url) URL.revokeObjectURL(state.classify.url);
  if (classifyController) classifyController.abort();
  const controller = new AbortController();
  classifyController = controller;
  state.classify = { file, url: URL.createObjectURL(file), loading: true, result: null };
  renderClassify();
  el.classifyPanel.scrollIntoView({ block: "nearest" });
  try {
    const result = await api.classify(file, controller.signal);
    if (controller.signal.aborted) return;
    state.classify.result = result;
  } catch (err) {
    if (isAbort(err)) return;
    closeClassify();
    handleError(err);
    return;
  } finally {
    if (state.classify && classifyController === controller) state.classify.loading = false;
  }
  renderClassify();
}

function closeClassify() {
  if (classifyController) classifyController.abort();
  if (state.classify && state.classify.url) URL.revokeObjectURL(state.classify.url);
  state.classify = null;
  renderClassify();
}

function bars(list, target) {
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

function renderClassify() {
  const data = state.classify;
  el.classifyPanel.hidden = !data;
  if (!data) return;
  if (el.classifyPreview.getAttribute("src") !== data.url) el.classifyPreview.src = data.url;
  el.classifyLoading.hidden = !data.loading;
  el.classifyResult.hidden = data.loading || !data.result;
  el.classifyPanel.setAttribute("aria-busy", String(data.loading));
  if (!data.result) return;
  const result = data.result;
  el.classifyLabel.textContent = className(result.label);
  el.classifyConfidence.textContent = t("classifyConfidence", { pct: formatPercent(result.confidence) });
  bars(result.top3 || [], el.classifyBars);
}

// ---------------------------------------------------------------------------------------------- the viewer

function openViewer(item, opener) {
  state.viewer = { item, meta: null, opener };
  el.viewerImg.removeAttribute("src");
  renderViewer();
  if (!el.viewer.open) el.viewer.showModal();
  el.viewerClose.focus();
  const viewer = state.viewer;
  api
    .image(item.id)
    .then((meta) => {
      if (state.viewer !== viewer) return;
      viewer.meta = meta;
      renderViewer();
    })
    .catch(() => {});
}

function closeViewer() {
  if (el.viewer.open) el.viewer.close();
}

function renderViewer() {
  const viewer = state.viewer;
  if (!viewer) return;
  const item = viewer.item;
  const meta = viewer.meta || {};
  const label = className(item.label);
  el.viewerTitle.textContent = label;
  if (el.viewerImg.getAttribute("src") !== item.image_url) {
    el.viewerImg.classList.add("is-loading");
    el.viewerImg.src = item.image_url;
  }
  el.viewerImg.alt = t("cardAlt", { label, score: formatScore(item.score) });
  if (item.width && item.height) {
    el.viewerImg.width = item.width;
    el.viewerImg.height = item.height;
  }
  const details = [];
  if (item.confidence != null) details.push(t("confidenceShort", { pct: formatPercent(item.confidence) }));
  if (item.score != null) details.push(t("score", { score: formatScore(item.score) }));
  if (item.width && item.height) details.push(t("viewerDetails", { w: formatInt(item.width), h: formatInt(item.height) }));
  el.viewerMeta.textContent = details.join(" · ");
  bars(meta.top3 || [], el.viewerBars);
  el.viewerBars.hidden = !(meta.top3 && meta.top3.length);
  renderAttribution(item.attribution || meta.attribution || null);
  el.viewerOriginal.href = item.image_url;
}

function link(text, url) {
  const href = safeUrl(url);
  if (!href) return document.createTextNode(text);
  return node("a", { href, text, target: "_blank", rel: "noopener noreferrer" });
}

function renderAttribution(attr) {
  const lines = [];
  if (attr && (attr.title || attr.author || attr.license || attr.source_url)) {
    if (attr.title) lines.push(node("p", { class: "attr-title", text: attr.title }));
    if (attr.author) lines.push(node("p", { text: t("photoBy", { author: attr.author }) }));
    if (attr.license) {
      lines.push(node("p", {}, [t("licence"), link(attr.license, attr.license_url)]));
    }
    if (attr.source_url) {
      lines.push(node("p", {}, [t("source"), link(attr.source || t("sourceLink"), attr.source_url)]));
    } else if (attr.source) {
      lines.push(node("p", { text: t("source") + attr.source }));
    }
  } else {
    lines.push(node("p", { class: "muted", text: t("noAttribution") }));
  }
  el.viewerAttribution.replaceChildren(...lines);
}

// ---------------------------------------------------------------------------------------------- language, footer

function renderFooter() {
  const stats = state.stats;
  if (!stats) {
    el.footer.replaceChildren();
    return;
  }
  let model = String(stats.model || "");
  if (model.startsWith("/") || model.startsWith(".")) model = model.split("/").filter(Boolean).pop() || model;
  el.footer.replaceChildren(
    t("footer", { photos: photos(stats.points), model }),
    " · ",
    node("a", { href: "/api/openapi.json", text: "API" }),
  );
}

function renderLangButtons() {
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang()));
  }
}

function renderAll() {
  applyStatic();
  renderLangButtons();
  renderBanner();
  renderChips();
  renderContext();
  if (!state.loading) {
    renderGrid({ showEmpty: !state.error });
    renderMore();
  }
  renderStatus();
  renderError();
  renderClassify();
  renderViewer();
  renderFooter();
}

function updateHint() {
  el.hint.classList.toggle("hint-strong", CYRILLIC.test(el.q.value));
}

// ---------------------------------------------------------------------------------------------- events

function bindEvents() {
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = el.q.value.trim();
    if (!q) {
      setError(() => (lang() === "en" ? "Type something to search for." : t("error_empty_query")));
      el.q.focus();
      return;
    }
    startText(q);
  });
  el.q.addEventListener("input", updateHint);

  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => {
      el.q.value = button.textContent.trim();
      updateHint();
      startText(el.q.value);
    });
  }

  el.classes.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-class]");
    if (button && !button.disabled) selectClass(button.dataset.class);
  });

  el.pickSearch.addEventListener("click", () => el.fileSearch.click());
  el.pickClassify.addEventListener("click", () => el.fileClassify.click());
  el.fileSearch.addEventListener("change", () => {
    const file = el.fileSearch.files[0];
    el.fileSearch.value = "";
    searchByFile(file);
  });
  el.fileClassify.addEventListener("change", () => {
    const file = el.fileClassify.files[0];
    el.fileClassify.value = "";
    classifyFile(file);
  });

  el.classifyClose.addEventListener("click", () => {
    closeClassify();
    el.pickClassify.focus();
  });
  el.classifySimilar.addEventListener("click", () => {
    if (state.classify) searchByFile(state.classify.file);
  });

  el.contextClear.addEventListener("click", () => {
    state.query = null;
    pushUrl();
    renderContext();
    resetResults();
    el.q.focus();
  });

  el.grid.addEventListener("click", (event) => {
    const button = event.target.closest("button.card-button");
    if (!button) return;
    const item = state.results[Number(button.dataset.index)];
    if (item) openViewer(item, button);
  });

  el.more.addEventListener("click", () => {
    if (el.more.getAttribute("aria-disabled") !== "true") runSearch({ append: true });
  });

  el.viewerClose.addEventListener("click", closeViewer);
  el.viewer.addEventListener("click", (event) => {
    if (event.target === el.viewer) closeViewer(); // a click on the backdrop
  });
  el.viewer.addEventListener("close", () => {
    const opener = state.viewer && state.viewer.opener;
    state.viewer = null;
    if (opener && opener.isConnected) opener.focus();
  });
  el.contextImg.addEventListener("load", () => el.contextImg.classList.remove("is-broken"));
  el.contextImg.addEventListener("error", () => el.contextImg.classList.add("is-broken"));
  el.viewerImg.addEventListener("load", () => el.viewerImg.classList.remove("is-loading"));
  el.viewerImg.addEventListener("error", () => el.viewerImg.classList.remove("is-loading"));
  el.viewerSimilar.addEventListener("click", () => {
    if (state.viewer) startSimilar(state.viewer.item);
  });

  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => {
      setLang(button.dataset.lang);
      renderAll();
    });
  }

  window.addEventListener("popstate", () => {
    if (state.ready) applyUrl();
  });

  bindDropAndPaste();
}

function bindDropAndPaste() {
  let depth = 0;
  const hasFiles = (event) => Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  const hide = () => {
    depth = 0;
    el.dropzone.hidden = true;
    for (const target of el.dropzone.querySelectorAll(".drop-target")) target.classList.remove("is-over");
  };
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    el.dropzone.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    const over = event.target instanceof Element ? event.target.closest(".drop-target") : null;
    for (const target of el.dropzone.querySelectorAll(".drop-target")) target.classList.toggle("is-over", target === over);
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) hide();
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    const target = event.target instanceof Element ? event.target.closest("[data-drop]") : null;
    hide();
    const file = event.dataTransfer.files[0];
    if (!file) return;
    if (target && target.dataset.drop === "classify") classifyFile(file);
    else searchByFile(file);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el.dropzone.hidden) hide();
  });

  document.addEventListener("paste", (event) => {
    const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
    const file = files.find((f) => f.type.startsWith("image/")) || null;
    if (!file) return; // text goes into the search box as usual
    event.preventDefault();
    searchByFile(file);
  });
}

// ---------------------------------------------------------------------------------------------- start

async function boot() {
  applyStatic();
  renderLangButtons();
  bindEvents();
  setStatus(() => t("statusReady"));
  await waitReady();
  await loadLibrary();
  applyUrl();
  document.documentElement.dataset.ready = "true";
}

boot();
