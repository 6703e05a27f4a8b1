// Readiness: poll GET /api/ready until the model is loaded and the store answers, saying why meanwhile.

import * as api from "./api.js";
import { Backoff } from "./backoff.js";
import { t } from "./i18n.js";
import { setBanner } from "./messages.js";

// 1 s, 2 s, 4 s ... up to 15 s between polls while the server is not ready.
const READY_BACKOFF = { base: 1000, max: 15000 };
// While the multilingual text tower loads (after CLIP: the service answers meanwhile), ask this often.
const TOWER_RETRY_MS = 5000;

let ready = false;
let readyLoop = null;
let towers = {};
let towerLoop = null;

/** Whether the server's multilingual text tower is ready (then queries in any script work well). */
export function multilingualReady() {
  return Boolean(towers.multilingual && towers.multilingual.state === "ready");
}

function setTowers(next) {
  towers = next || {};
  document.dispatchEvent(new CustomEvent("wonders:towers"));
  if (towers.multilingual && towers.multilingual.state === "loading" && !towerLoop) {
    towerLoop = setTimeout(async () => {
      towerLoop = null;
      try {
        const answer = await api.ready();
        if (answer.ok) setTowers(answer.towers);
      } catch {
        // The readiness loop takes over when the server is gone.
      }
    }, TOWER_RETRY_MS);
  }
}

/** Whether the server last said it is ready. */
export function isReady() {
  return ready;
}

/** The server answered 503: it is not ready until waitReady says so again. */
export function markUnready() {
  ready = false;
}

/** Poll /api/ready until it answers 200, showing why the server is not ready meanwhile (one loop at a time). */
export function waitReady() {
  if (readyLoop) return readyLoop;
  readyLoop = (async () => {
    const backoff = new Backoff(READY_BACKOFF);
    let answer;
    for (;;) {
      try {
        answer = await api.ready();
      } catch {
        answer = { ok: false, code: "network", message: "" };
      }
      if (answer.ok) break;
      ready = false;
      const { code, message } = answer;
      setBanner({
        kind: "busy",
        text: () => {
          if (code === "store_unavailable") return t("storeDown", { message });
          if (code === "load_failed") return t("loadFailed", { message });
          if (code === "model_mismatch") return t("modelMismatch", { message });
          if (code === "text_encoder_mismatch") return t("loadFailed", { message });
          if (code === "network") return t("networkError");
          return t("starting");
        },
      });
      await backoff.wait();
    }
    ready = true;
    setBanner(null);
    setTowers(answer.towers);
  })().finally(() => {
    readyLoop = null;
  });
  return readyLoop;
}
