// The search box: type and press Enter, or click an example; the hint under it grows stronger when a
// query is written in Cyrillic (English works best), and goes once the server's multilingual text
// tower is ready.

import { byId } from "./dom.js";
import { lang, t } from "./i18n.js";
import { setError } from "./messages.js";
import { multilingualReady } from "./ready.js";
import { startText } from "./search.js";

const CYRILLIC = /[\u0400-\u04ff]/;

const el = { form: byId("search-form"), q: byId("q"), hint: byId("hint") };

function updateHint() {
  el.hint.hidden = multilingualReady();
  el.hint.classList.toggle("hint-strong", CYRILLIC.test(el.q.value));
}

/** Put a text from the address into the box (none keeps what is there) and update the hint. */
export function showQueryText(q) {
  if (q) el.q.value = q;
  updateHint();
}

/** Move the focus to the search box. */
export function focusSearchBox() {
  el.q.focus();
}

/** Search on submit and on an example's click; keep the hint in step with the text. */
export function bindSearchBox() {
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
  document.addEventListener("wonders:towers", updateHint);

  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => {
      el.q.value = button.textContent.trim();
      updateHint();
      startText(el.q.value);
    });
  }
}
