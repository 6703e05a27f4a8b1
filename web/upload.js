// Uploads: the two "pick a photo" buttons, drag and drop onto the page, and paste. A file is checked
// in the browser (an image, within the server's size limit) before it is searched by or classified.

import { classifyFile } from "./classify.js";
import { byId } from "./dom.js";
import { lang, t } from "./i18n.js";
import { maxUploadMb } from "./limits.js";
import { setError } from "./messages.js";
import { startImage } from "./search.js";

// Image names, for files the browser gives no type. HEIC/HEIF/AVIF pass although the server cannot decode
// them: its 415 (unsupported_image) then says so, which tells more than "not an image" would.
const IMAGE_NAME = /\.(jpe?g|jfif|png|gif|webp|bmp|tiff?|heic|heif|avif)$/i;

const el = {
  pickSearch: byId("pick-search"),
  pickClassify: byId("pick-classify"),
  fileSearch: byId("file-search"),
  fileClassify: byId("file-classify"),
  dropzone: byId("dropzone"),
};

function megabytes(bytes) {
  return new Intl.NumberFormat(lang(), { maximumFractionDigits: 1 }).format(bytes / (1024 * 1024));
}

/**
 * Whether a file may be sent: an image (by type, else by name) within the server's limit. Until
 * /api/stats has told the limit, the size is left to the server (its 413 is shown like any error).
 */
function checkFile(file) {
  if (!file) return false;
  const name = file.name || "image";
  const limitMb = maxUploadMb();
  if (limitMb !== null && file.size > limitMb * 1024 * 1024) {
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

function searchByFile(file) {
  if (checkFile(file)) startImage(file);
}

function classifyUpload(file) {
  if (checkFile(file)) classifyFile(file);
}

/** Wire the pick buttons, their file inputs, drop and paste. */
export function bindUploads() {
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
    classifyUpload(file);
  });
  bindDrop();
  bindPaste();
}

/** A file dragged over the page shows two targets: search by it, or ask what it is (search by default). */
function bindDrop() {
  let depth = 0;
  const hasFiles = (event) => Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  const targets = () => el.dropzone.querySelectorAll(".drop-target");
  const hide = () => {
    depth = 0;
    el.dropzone.hidden = true;
    for (const target of targets()) target.classList.remove("is-over");
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
    for (const target of targets()) target.classList.toggle("is-over", target === over);
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
    if (target && target.dataset.drop === "classify") classifyUpload(file);
    else searchByFile(file);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el.dropzone.hidden) hide();
  });
}

/** A pasted image searches by it; pasted text goes into the search box as usual. */
function bindPaste() {
  document.addEventListener("paste", (event) => {
    const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
    const file = files.find((f) => f.type.startsWith("image/")) || null;
    if (!file) return;
    event.preventDefault();
    searchByFile(file);
  });
}
