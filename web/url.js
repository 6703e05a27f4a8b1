// The address and the history: which search is on screen (q, similar, class, k, its refinements and
// diversity), so a search can be shared, reloaded and walked with Back/Forward (each refinement is a
// step). A search by photo has no address: history.state marks it.

import { defaultK, maxK, pageSize } from "./limits.js";
import { state } from "./state.js";

function urlFor() {
  const params = new URLSearchParams();
  const query = state.query;
  if (query && query.mode === "text") params.set("q", query.q);
  if (query && query.mode === "similar") params.set("similar", query.id);
  if (state.cls) params.set("class", state.cls);
  if (pageSize() !== defaultK()) params.set("k", String(pageSize()));
  writeRefine(params);
  const text = params.toString();
  return location.pathname + (text ? `?${text}` : "");
}

/** Add a history entry for the search on screen, unless the address already describes it. */
export function pushUrl() {
  const url = urlFor();
  const image = Boolean(state.query && state.query.mode === "image");
  if (url !== location.pathname + location.search || image !== Boolean(history.state && history.state.image)) {
    history.pushState({ image }, "", url);
  }
}

/** Set the state's query, class and k from the address (first load, Back, Forward); renders nothing. */
export function readUrl() {
  const params = new URLSearchParams(location.search);
  const k = Number.parseInt(params.get("k") || "", 10);
  const most = maxK();
  state.k = k >= 1 && (most === null || k <= most) ? k : null;
  state.cls = params.get("class") || null;
  readRefine(params);
  const q = (params.get("q") || "").trim();
  const similarId = params.get("similar");
  if (q) {
    state.query = { mode: "text", q };
  } else if (similarId) {
    state.query = { mode: "similar", id: similarId, item: null };
  } else if (history.state && history.state.image && state.lastImageQuery) {
    state.query = state.lastImageQuery;
  } else {
    state.query = null;
  }
}

// Refinements: "more"/"less" hold library photo ids, "and"/"not" hold words; "diverse=1".
const REFINE_PARAMS = [
  ["more", 1, "id"],
  ["less", -1, "id"],
  ["and", 1, "text"],
  ["not", -1, "text"],
];

function writeRefine(params) {
  for (const [name, sign, kind] of REFINE_PARAMS) {
    for (const item of state.refine) if (item.sign === sign && item[kind]) params.append(name, item[kind]);
  }
  if (state.diverse) params.set("diverse", "1");
}

function readRefine(params) {
  state.refine = [];
  for (const [name, sign, kind] of REFINE_PARAMS) {
    for (const value of params.getAll(name)) if (value.trim()) state.refine.push({ sign, [kind]: value.trim() });
  }
  state.diverse = params.get("diverse") === "1";
}
