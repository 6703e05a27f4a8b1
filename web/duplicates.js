// The Duplicates view (/?view=duplicates): groups of the same photo, side by side with size and path,
// the largest marked, a page of groups at a time; "Not a duplicate" takes a photo out of its group,
// and the server remembers it.

import * as api from "./api.js";
import { byId, node } from "./dom.js";
import { addMessages, formatInt, t } from "./i18n.js";

addMessages({
  en: {
    duplicatesLink: "Duplicates",
    duplicatesHeading: "Duplicates",
    duplicatesBack: "Back to search",
    duplicatesNone: "No duplicates in the library.",
    duplicatesStatus: "Groups {from}–{to} of {total}",
    duplicatesLargest: "largest",
    duplicatesSame: "same file",
    duplicatesNot: "Not a duplicate",
    duplicatesPrev: "Previous",
    duplicatesNext: "Next",
    duplicatesSize: "{w} × {h} · {kb} KB",
    duplicatesKind_identical: "Identical files",
    duplicatesKind_near: "The same photo",
  },
  ru: {
    duplicatesLink: "Дубликаты",
    duplicatesHeading: "Дубликаты",
    duplicatesBack: "К поиску",
    duplicatesNone: "В библиотеке нет дубликатов.",
    duplicatesStatus: "Группы {from}–{to} из {total}",
    duplicatesLargest: "самый большой",
    duplicatesSame: "тот же файл",
    duplicatesNot: "Не дубликат",
    duplicatesPrev: "Назад",
    duplicatesNext: "Дальше",
    duplicatesSize: "{w} × {h} · {kb} КБ",
    duplicatesKind_identical: "Одинаковые файлы",
    duplicatesKind_near: "Одно и то же фото",
  },
});

const PAGE = 10;

const el = {
  view: byId("duplicates-view"),
  status: byId("duplicates-status"),
  groups: byId("duplicates-groups"),
  prev: byId("duplicates-prev"),
  next: byId("duplicates-next"),
};

const view = { page: null, offset: 0, error: null };

/** Whether the address asks for the Duplicates view. */
export function isDuplicatesView() {
  return new URLSearchParams(location.search).get("view") === "duplicates";
}

function file(group, item) {
  const size = t("duplicatesSize", {
    w: item.width ?? "?",
    h: item.height ?? "?",
    kb: formatInt(Math.round((item.bytes || 0) / 1024)),
  });
  const badges = [];
  if (item.largest) badges.push(node("span", { class: "badge", text: t("duplicatesLargest") }));
  if (item.identical && !item.representative) badges.push(node("span", { class: "badge", text: t("duplicatesSame") }));
  const parts = [
    node("img", { src: item.thumb_url, alt: item.path, loading: "lazy" }),
    node("p", { class: "dup-path", text: item.path }),
    node("p", { class: "muted", text: size }),
    node("p", { class: "dup-badges" }, badges),
  ];
  if (item.id !== group.id) {
    const button = node("button", { type: "button", class: "btn btn-small", text: t("duplicatesNot") });
    button.dataset.group = group.id;
    button.dataset.id = item.id;
    parts.push(button);
  }
  return node("li", { class: "dup-file" }, parts);
}

/** Draw the page of groups (after a language switch too). */
export function renderDuplicates() {
  if (el.view.hidden) return;
  const page = view.page;
  if (view.error) {
    el.status.textContent = view.error;
    return;
  }
  if (!page) return;
  el.status.textContent = page.total
    ? t("duplicatesStatus", { from: page.offset + 1, to: page.offset + page.groups.length, total: page.total })
    : t("duplicatesNone");
  el.groups.replaceChildren(
    ...page.groups.map((group) =>
      node("li", { class: "dup-group" }, [
        node("h3", { text: t(`duplicatesKind_${group.kind}`) }),
        node("ol", { class: "dup-files" }, group.files.map((item) => file(group, item))),
      ]),
    ),
  );
  el.prev.hidden = page.offset === 0;
  el.next.hidden = page.next_offset == null;
}

async function load(offset) {
  view.error = null;
  try {
    view.page = await api.duplicates({ k: PAGE, offset });
    view.offset = offset;
  } catch (err) {
    view.error = err.message;
  }
  renderDuplicates();
}

/** Show the Duplicates view instead of the search, and its first page. */
export function showDuplicates() {
  document.body.classList.add("view-duplicates");
  el.view.hidden = false;
  return load(0);
}

/** Paging and "Not a duplicate". */
export function bindDuplicates() {
  el.prev.addEventListener("click", () => load(Math.max(0, view.offset - PAGE)));
  el.next.addEventListener("click", () => {
    if (view.page && view.page.next_offset != null) load(view.page.next_offset);
  });
  el.groups.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-group]");
    if (!button) return;
    button.disabled = true;
    try {
      await api.notDuplicate(button.dataset.group, button.dataset.id);
    } catch (err) {
      view.error = err.message;
    }
    load(view.offset);
  });
}
