// The library being indexed by the service itself: poll GET /api/ingest while it works, show
// "Indexing 340 of 1,000 photos" in its own status line, and call back when photos have landed (so the
// counts and a short result list are refreshed). Every 2 s while it works, every 15 s while idle (a
// `make ingest` may start one), never while the tab is hidden; failures back off.

import * as api from "./api.js";
import { Backoff, sleep } from "./backoff.js";
import { byId } from "./dom.js";
import { formatInt, t } from "./i18n.js";
import { state } from "./state.js";

const POLL_MS = 2000;
const IDLE_POLL_MS = 15000;
const line = byId("indexing");

let onGrown = () => {};
let watching = false;

function busy(status) {
  return Boolean(status) && (status.state === "running" || (status.fetch && status.fetch.state === "running"));
}

function visible() {
  if (document.visibilityState !== "hidden") return Promise.resolve();
  return new Promise((resolve) => {
    const show = () => {
      if (document.visibilityState === "hidden") return;
      document.removeEventListener("visibilitychange", show);
      resolve();
    };
    document.addEventListener("visibilitychange", show);
  });
}

/** Draw the indexing line (after a language switch too). */
export function renderIndexing() {
  const status = state.indexing;
  const running = Boolean(status) && status.state === "running";
  line.hidden = !running;
  if (!running) return;
  line.textContent = status.total
    ? t("indexing", { done: formatInt(status.done || 0), total: formatInt(status.total) })
    : t("indexingStart");
}

/** Start watching (for as long as the page is open); onGrown() is called whenever photos have landed. */
export async function watchIndexing(options = {}) {
  if (options.onGrown) onGrown = options.onGrown;
  if (watching) return;
  watching = true;
  const failures = new Backoff({ base: POLL_MS, max: 30000 });
  let seen = null;
  for (;;) {
      let status;
      try {
        status = await api.ingestStatus();
        failures.succeeded();
      } catch {
        await failures.wait();
        continue;
      }
      const previous = state.indexing;
      state.indexing = status;
      renderIndexing();
      const progress = `${status.state}:${status.done || 0}:${status.fetch && status.fetch.state}`;
      // Once per poll at most: photos landed, or the work just ended.
      if ((seen !== null && progress !== seen) || (!busy(status) && busy(previous))) await onGrown();
      seen = progress;
      await sleep(busy(status) ? POLL_MS : IDLE_POLL_MS);
      await visible();
  }
}
