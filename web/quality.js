// "Quality": the latest `make eval` report (GET /api/eval/latest) as tables of its headline measures and
// its charts (served by run and chart name). Opened from the top bar; redrawn on a language switch.

import * as api from "./api.js";
import { byId, node } from "./dom.js";
import { t } from "./i18n.js";

const el = {
  open: byId("quality-open"),
  panel: byId("quality-panel"),
  close: byId("quality-close"),
  body: byId("quality-body"),
};

let current = null; // {loading, latest, missing, error}: what the server answered
let controller = null;

function number(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** A table: a header row, then rows of [label, ...cells]. */
function table(caption, header, rows) {
  return node("table", { class: "quality-table" }, [
    node("caption", { text: caption }),
    node("thead", {}, [node("tr", {}, header.map((h) => node("th", { scope: "col", text: h })))]),
    node(
      "tbody",
      {},
      rows.map(([label, ...cells]) =>
        node("tr", {}, [node("th", { scope: "row", text: label }), ...cells.map((c) => node("td", { text: c }))]),
      ),
    ),
  ]);
}

function classificationTable(c, threshold) {
  const rows = [
    [t("qualityTop1"), number(c.top1_accuracy)],
    [t("qualityTop3"), number(c.top3_accuracy)],
    [t("qualityBalanced"), number(c.balanced_accuracy)],
    [t("qualityEce"), number(c.calibration && c.calibration.ece)],
    [t("qualityThresholdValue"), number(c.threshold, 4)],
  ];
  if (threshold) {
    rows.push([t("qualityCoverage"), number(threshold.coverage)]);
    rows.push([t("qualityAccuracyCovered"), number(threshold.accuracy_covered)]);
  }
  return table(t("qualityClassification", { n: c.photos }), [t("qualityMeasure"), t("qualityValue")], rows);
}

function textTable(section) {
  const languages = Object.keys(section).filter((k) => k !== "ru_en");
  const rows = languages.map((lang) => {
    const m = section[lang];
    return [lang, String(m.queries), number(m["r@1"]), number(m["r@5"]), number(m["r@10"]), number(m.map)];
  });
  const pair = section.ru_en;
  if (pair && pair.pairs) rows.push([t("qualityRuEn"), String(pair.pairs), "", "", number(pair["ratio_r@10"]), ""]);
  return table(t("qualityText"), [t("qualityLanguage"), t("qualityQueries"), "R@1", "R@5", "R@10", "mAP"], rows);
}

function imageTable(m) {
  return table(
    t("qualityImage"),
    [t("qualityQueries"), "mAP@100", "P@1", "P@5", "P@10"],
    [[String(m.queries), number(m["map@100"]), number(m["p@1"]), number(m["p@5"]), number(m["p@10"])]],
  );
}

function revisitedTable(name, setups) {
  const rows = ["easy", "medium", "hard"].map((setup) => {
    const m = setups[setup];
    return [t(`qualitySetup_${setup}`), number(m.map), number(m["mp@1"]), number(m["mp@5"]), number(m["mp@10"])];
  });
  return table(t("qualityRevisited", { name }), [t("qualitySetup"), "mAP", "mP@1", "mP@5", "mP@10"], rows);
}

function precisionTable(section) {
  const precisions = Object.keys(section);
  const measures = [...new Set(precisions.flatMap((p) => Object.keys(section[p])))];
  const rows = measures.map((m) => [m, ...precisions.map((p) => number(section[p][m]))]);
  return table(t("qualityPrecision"), [t("qualityMeasure"), ...precisions], rows);
}

function charts(urls) {
  return node(
    "div",
    { class: "quality-charts" },
    Object.entries(urls).map(([name, url]) =>
      node("figure", { class: "quality-chart" }, [
        node("img", { src: url, alt: t(`qualityChart_${name}`), loading: "lazy" }),
        node("figcaption", { text: t(`qualityChart_${name}`) }),
      ]),
    ),
  );
}

function renderReport(latest) {
  const report = latest.report || {};
  const model = report.model || {};
  const parts = [
    node("p", {
      class: "muted",
      id: "quality-run",
      text: t("qualityRun", { when: latest.created_at || latest.run, model: model.name || "", precision: model.precision || "" }),
    }),
  ];
  if (report.classification) parts.push(classificationTable(report.classification, report.threshold));
  if (report.text_to_image) parts.push(textTable(report.text_to_image));
  if (report.image_to_image) parts.push(imageTable(report.image_to_image));
  for (const [name, setups] of Object.entries(report.revisited || {})) parts.push(revisitedTable(name, setups));
  if (report.precision) parts.push(precisionTable(report.precision));
  if (report.crosscheck && report.crosscheck.queries) {
    parts.push(node("p", { class: "muted", text: t("qualityCrosscheck", { recall: number(report.crosscheck.recall_at_k, 4), k: report.crosscheck.k }) }));
  }
  parts.push(charts(latest.charts || {}));
  return parts;
}

/** Draw the panel (hidden until opened). */
export function renderQuality() {
  el.panel.hidden = !current;
  el.open.setAttribute("aria-expanded", String(Boolean(current)));
  if (!current) return;
  el.panel.setAttribute("aria-busy", String(current.loading));
  if (current.loading) el.body.replaceChildren(node("p", { class: "muted", text: t("qualityLoading") }));
  else if (current.missing) el.body.replaceChildren(node("p", { id: "quality-none", text: t("qualityNone") }));
  else if (current.error) el.body.replaceChildren(node("p", { class: "alert", text: current.error }));
  else el.body.replaceChildren(...renderReport(current.latest));
}

async function openQuality() {
  if (controller) controller.abort();
  const mine = new AbortController();
  controller = mine;
  current = { loading: true };
  renderQuality();
  el.panel.scrollIntoView({ block: "nearest" });
  try {
    current = { loading: false, latest: await api.evalLatest(mine.signal) };
  } catch (err) {
    if (api.isAbort(err)) return;
    current = err.status === 404 ? { loading: false, missing: true } : { loading: false, error: err.message };
  }
  renderQuality();
}

function closeQuality() {
  if (controller) controller.abort();
  current = null;
  renderQuality();
}

/** The top bar's "Quality" button opens (or closes) the panel; the panel's close button closes it. */
export function bindQuality() {
  el.open.addEventListener("click", () => (current ? closeQuality() : openQuality()));
  el.close.addEventListener("click", () => {
    closeQuality();
    el.open.focus();
  });
}
