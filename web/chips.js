// The class chips under the search box: "All" and one chip per class with its photo count.
// Choosing one filters the search on screen.

import { byId, node } from "./dom.js";
import { className, formatInt, t } from "./i18n.js";
import { runSearch } from "./search.js";
import { state } from "./state.js";
import { pushUrl } from "./url.js";

const list = byId("classes");

/** Draw the chips from the library's classes, the chosen one pressed (empty classes disabled). */
export function renderChips() {
  const total = state.stats ? state.stats.points : state.classes.reduce((sum, c) => sum + (c.count || 0), 0);
  const chips = [{ id: null, label: t("allClasses"), count: total }].concat(
    state.classes.map((c) => ({ id: c.id, label: className(c), count: c.count || 0 })),
  );
  list.replaceChildren(
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

/** Filter by the chip that is clicked. */
export function bindChips() {
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-class]");
    if (button && !button.disabled) selectClass(button.dataset.class);
  });
}
