// The search on screen, shared by the modules that show it: what the library holds, what is asked,
// and what came back. Widgets keep their own state (messages.js, ready.js, viewer.js, classify.js).

export const state = {
  stats: null, // the last GET /api/stats answer (library.js); read its limits through limits.js
  classes: [], // GET /api/classes: [{id, name, name_ru, count}]
  cls: null, // class filter id
  k: null, // results per page asked for in the address; null: the server's default (limits.js pageSize)
  query: null, // {mode: "text", q} | {mode: "image", file, url, pending} | {mode: "similar", id, item}
  lastImageQuery: null, // so Back/Forward can return to a search by photo
  refine: [], // refinements of the query (refine.js): [{sign: 1 | -1, id} | {sign: 1 | -1, text}]
  diverse: false, // hide near-identical results (MMR)
  results: [],
  nextOffset: null,
  tookMs: 0,
  loading: false, // a first page is on its way (the grid shows skeletons)
  loadingMore: false, // a next page is on its way ("Load more" says so)
  emptyLibrary: false, // the last page was empty because nothing is indexed yet (its reason)
  indexing: null, // the last GET /api/ingest answer: the library being indexed, the first-run download
};

/** A class by id, from the library's classes; an id the library does not know stands for itself. */
export function classById(id) {
  return state.classes.find((c) => c.id === id) || (id ? { id, name: id, name_ru: id } : null);
}
