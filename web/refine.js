// Refining the results in place: "more like this" (+) and "less like this" (−) on every result, words to
// add or take away ("… but at night", "not skyscrapers"), shown as removable chips, and the "hide
// near-identical" toggle. Each step is a history entry (url.js), so Back undoes it and the address
// shares it. The server combines the examples (POST /api/query).

import { byId, node } from "./dom.js";
import { addMessages, className, t } from "./i18n.js";
import { runSearch } from "./search.js";
import { state } from "./state.js";
import { pushUrl } from "./url.js";

addMessages({
  en: {
    refineMore: "More like this",
    refineLess: "Less like this",
    refineMoreLabel: "More like {label}",
    refineLessLabel: "Less like {label}",
    refineChipPhoto: "photo",
    refineRemove: "Remove {what}",
    refineWordsLabel: "Words to add or take away",
    refineWordsPlaceholder: "… at night",
    refineAnd: "+ Add",
    refineNot: "− Not",
    refineDiverse: "Hide near-identical",
    refineLabel: "Refined by",
  },
  ru: {
    refineMore: "Больше таких",
    refineLess: "Меньше таких",
    refineMoreLabel: "Больше похожих на {label}",
    refineLessLabel: "Меньше похожих на {label}",
    refineChipPhoto: "фото",
    refineRemove: "Убрать {what}",
    refineWordsLabel: "Слова, которые добавить или исключить",
    refineWordsPlaceholder: "… ночью",
    refineAnd: "+ Добавить",
    refineNot: "− Без",
    refineDiverse: "Скрыть почти одинаковые",
    refineLabel: "Уточнено",
  },
});

const el = {
  bar: byId("refine"),
  chips: byId("refine-chips"),
  words: byId("refine-words"),
  and: byId("refine-and"),
  not: byId("refine-not"),
  diverse: byId("refine-diverse"),
  grid: byId("grid"),
};

function chipText(item) {
  const sign = item.sign > 0 ? "+" : "−";
  return `${sign} ${item.text || t("refineChipPhoto")}`;
}

/** Draw the chips of the refinements and the toggle; hidden while nothing is asked. */
export function renderRefine() {
  el.bar.hidden = !state.query;
  el.diverse.checked = state.diverse;
  el.chips.replaceChildren(
    ...state.refine.map((item, index) => {
      const parts = [];
      if (item.id) parts.push(node("img", { src: `/images/${encodeURIComponent(item.id)}/thumb`, alt: "" }));
      parts.push(node("span", { text: chipText(item) }));
      const remove = node("button", {
        type: "button",
        class: "refine-remove",
        "aria-label": t("refineRemove", { what: chipText(item) }),
        text: "×",
      });
      remove.dataset.remove = String(index);
      parts.push(remove);
      return node("li", { class: `chip refine-chip ${item.sign > 0 ? "is-plus" : "is-minus"}` }, parts);
    }),
  );
}

function step() {
  pushUrl();
  renderRefine();
  runSearch();
}

/** Add a refinement (a library photo by id, or words) and search again. */
export function addRefinement(item) {
  const same = (other) => other.id === item.id && other.text === item.text;
  state.refine = state.refine.filter((other) => !same(other)).concat([item]);
  step();
}

function addWords(sign) {
  const text = el.words.value.trim();
  if (!text || !state.query) return;
  el.words.value = "";
  addRefinement({ sign, text });
}

/** Wire the card buttons, the chips' remove buttons, the words and the toggle. */
export function bindRefine() {
  el.grid.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-refine]");
    if (!button) return;
    const item = state.results[Number(button.dataset.index)];
    if (item) addRefinement({ sign: Number(button.dataset.refine), id: item.id, label: className(item.label) });
  });
  el.chips.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-remove]");
    if (!button) return;
    state.refine = state.refine.filter((_, index) => index !== Number(button.dataset.remove));
    step();
  });
  el.and.addEventListener("click", () => addWords(1));
  el.not.addEventListener("click", () => addWords(-1));
  el.words.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addWords(1);
    }
  });
  el.diverse.addEventListener("change", () => {
    state.diverse = el.diverse.checked;
    step();
  });
}
