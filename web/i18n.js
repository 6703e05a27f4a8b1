// Interface texts in English and Russian, number formatting and plurals.
// Static texts are marked in index.html with data-i18n="key" (text) and
// data-i18n-attr="attribute:key;attribute:key" (attributes such as placeholder or aria-label).

const STORAGE_KEY = "wonders.lang";
export const LANGS = ["en", "ru"];

const MESSAGES = {
  en: {
    pageTitle: "Wonders: search landmark photos by meaning",
    skipToResults: "Skip to results",
    brandHome: "Wonders, start page",
    languageGroup: "Interface language",
    tagline: "Find landmark photos by meaning",
    lede: "Describe what you want to see, or show a photo: Wonders finds the closest pictures in the library.",
    searchLabel: "Describe a photo",
    searchPlaceholder: "Describe a photo…",
    searchButton: "Search",
    hint: "English queries work best for now.",
    searchByPhoto: "Search by photo",
    whatIsThis: "What is this?",
    dropHint: "or drop or paste a photo anywhere on the page",
    examplesLabel: "Try",
    example1: "Eiffel Tower at night",
    example2: "Hot air balloons over Cappadocia",
    example3: "Waterfalls and turquoise lakes in national park",
    example4: "Red walls of Moscow Kremlin",
    encoderClip: "Text model: CLIP (English)",
    encoderMultilingual: "Text model: multilingual",
    encoderFallback_loading: "the multilingual model is still loading",
    encoderFallback_off: "no multilingual model on this server",
    encoderFallback_failed: "the multilingual model is unavailable",
    encoderTruncated: "the query was shortened to 77 tokens",
    classesLabel: "Filter by class",
    allClasses: "All",
    resultsHeading: "Results",
    loadMore: "Load more",
    loadingMore: "Loading…",
    clear: "Clear",
    close: "Close",
    dropSimilar: "Drop to find similar photos",
    dropClassify: "Drop to learn what it shows",
    classifyHeading: "What is this?",
    classifyLoading: "Looking at the photo…",
    classifyPreviewAlt: "Your photo",
    classifyConfidence: "{pct} confidence",
    classifyTop3: "Top 3 classes",
    findSimilar: "Find similar photos",
    moreLikeThis: "More like this",
    openOriginal: "Open the original",
    viewerDetails: "{w} × {h} px",
    score: "score {score}",
    scoreTitle: "Cosine similarity to the query",
    confidenceShort: "{pct} confidence",
    attribution: "Attribution",
    photoBy: "Photo: {author}",
    licence: "Licence: ",
    source: "Source: ",
    sourceLink: "original page",
    noAttribution: "No attribution is recorded for this photo.",
    cardAlt: "{title}, {label}, {score}",
    match: "{pct}% match",
    fileGone: "The file of this photo is no longer in the library; this is its thumbnail.",
    emptyLibraryTitle: "The library is empty",
    emptyLibraryText: "No photo is indexed yet: the banner above says how to add some.",
    emptyLibraryOffline:
      "The library is empty, and the landmark library could not be downloaded (no network?). Copy photos into the images/ folder (or set IMAGES_DIR), then run {ingest}; or run {dataset} once online.",
    emptyLibraryFetching: "The library is empty: downloading the landmark library; photos appear as they are indexed.",
    indexing: "Indexing the library: {done} of {total} photos. Results grow as photos land.",
    indexingStart: "Indexing the library…",
    example1: "Eiffel Tower at night",
    example2: "Hot air balloons over Cappadocia",
    example3: "Waterfalls and turquoise lakes in national park",
    example4: "Red walls of Moscow Kremlin",
    queryYourPhoto: "Photos similar to your photo",
    querySimilar: "Photos like this one: {label}",
    queryPreviewAlt: "The query photo",
    statusReady: "Type a description or show a photo.",
    statusSearching: "Searching…",
    statusLoadingMore: "Loading more photos…",
    statusResultsText: "{photos} for “{q}” · {ms} ms",
    statusResultsImage: "{photos} similar to your photo · {ms} ms",
    statusResultsSimilar: "{photos} like the selected one · {ms} ms",
    statusInClass: "{status} · {label}",
    statusNoMore: "{photos} shown, that is all",
    classifyDone: "This looks like {label} ({pct}).",
    qualityOpen: "Quality",
    qualityHeading: "Answer quality (the latest make eval)",
    qualityLoading: "Loading the latest report…",
    qualityNone: "No evaluation has been run yet. Run make eval on labelled photos to see how good the answers are.",
    qualityRun: "{when} · {model} ({precision})",
    qualityMeasure: "Measure",
    qualityValue: "Value",
    qualityClassification: "Classification ({n} labelled photos)",
    qualityTop1: "Top-1 accuracy",
    qualityTop3: "Top-3 accuracy",
    qualityBalanced: "Balanced accuracy",
    qualityEce: "Calibration error (ECE)",
    qualityThresholdValue: "“None of these” threshold",
    qualityCoverage: "Share answered with a class",
    qualityAccuracyCovered: "Accuracy of those answers",
    qualityText: "Text → image",
    qualityLanguage: "Language",
    qualityQueries: "Queries",
    qualityRuEn: "Russian / English",
    qualityImage: "Image → image (same class is relevant)",
    qualityRevisited: "Revisited {name}",
    qualitySetup: "Setup",
    qualitySetup_easy: "Easy",
    qualitySetup_medium: "Medium",
    qualitySetup_hard: "Hard",
    qualityPrecision: "Precisions side by side",
    qualityCrosscheck: "Qdrant against exact FAISS search: recall@{k} {recall}",
    qualityChart_confusion_matrix: "Confusion matrix",
    qualityChart_reliability: "Reliability diagram",
    qualityChart_prompts: "Each prompt alone and left out of the ensemble",
    classifyNone: "None of the classes",
    classifyNoneWhy: "Closest class: {label}, {pct} confidence",
    emptyTitle: "No photos found",
    emptyText: "Try another description or a different photo.",
    emptyTextClass: "No photo of this class matches. Try “All” classes.",
    starting: "The server is starting (loading the model)…",
    storeDown: "The vector store is not reachable; retrying… ({message})",
    loadFailed: "The server failed to start: {message}",
    modelMismatch: "The library was indexed with another model. {message}",
    emptyLibrary: "The library is empty: copy photos into the images/ folder or run {dataset}, then {ingest}.",
    footer: "{photos} in the library · {model}",
    tooLarge: "“{name}” is {size} MB; photos up to {limit} MB are accepted.",
    notImage: "“{name}” is not an image. Choose a JPEG, PNG, WebP or GIF photo.",
    noImageInClipboard: "The clipboard holds no image.",
    networkError: "Could not reach the server. Check the connection and try again.",
    genericError: "Something went wrong ({code}).",
    photos: { one: "{n} photo", other: "{n} photos" },
  },
  ru: {
    pageTitle: "Wonders: поиск фотографий достопримечательностей по смыслу",
    skipToResults: "К результатам",
    brandHome: "Wonders, начальная страница",
    languageGroup: "Язык интерфейса",
    tagline: "Поиск фото достопримечательностей по смыслу",
    lede: "Опишите, что хотите увидеть, или покажите фото: Wonders найдёт самые близкие снимки в библиотеке.",
    searchLabel: "Опишите фотографию",
    searchPlaceholder: "Опишите фото…",
    searchButton: "Найти",
    hint: "Пока лучше всего работают запросы на английском",
    searchByPhoto: "Поиск по фото",
    whatIsThis: "Что это?",
    dropHint: "или перетащите либо вставьте фото в любое место страницы",
    examplesLabel: "Попробуйте",
    example1: "Эйфелева башня ночью",
    example2: "Воздушные шары над Каппадокией",
    example3: "Водопады и бирюзовые озёра в национальном парке",
    example4: "Красные стены Московского Кремля",
    encoderClip: "Текстовая модель: CLIP (английский)",
    encoderMultilingual: "Текстовая модель: многоязычная",
    encoderFallback_loading: "многоязычная модель ещё загружается",
    encoderFallback_off: "многоязычной модели на этом сервере нет",
    encoderFallback_failed: "многоязычная модель недоступна",
    encoderTruncated: "запрос сокращён до 77 токенов",
    classesLabel: "Фильтр по классу",
    allClasses: "Все",
    resultsHeading: "Результаты",
    loadMore: "Показать ещё",
    loadingMore: "Загрузка…",
    clear: "Сбросить",
    close: "Закрыть",
    dropSimilar: "Отпустите, чтобы найти похожие",
    dropClassify: "Отпустите, чтобы узнать, что на фото",
    classifyHeading: "Что это?",
    classifyLoading: "Рассматриваем фото…",
    classifyPreviewAlt: "Ваше фото",
    classifyConfidence: "уверенность {pct}",
    classifyTop3: "Три наиболее вероятных класса",
    findSimilar: "Найти похожие фото",
    moreLikeThis: "Похожие",
    openOriginal: "Открыть оригинал",
    viewerDetails: "{w} × {h} пикс.",
    score: "сходство {score}",
    scoreTitle: "Косинусное сходство с запросом",
    confidenceShort: "уверенность {pct}",
    attribution: "Авторство",
    photoBy: "Фото: {author}",
    licence: "Лицензия: ",
    source: "Источник: ",
    sourceLink: "страница оригинала",
    noAttribution: "Сведения об авторе этого фото не записаны.",
    cardAlt: "{title}, {label}, {score}",
    match: "совпадение {pct}%",
    fileGone: "Файла этого фото больше нет в библиотеке; это его миниатюра.",
    emptyLibraryTitle: "Библиотека пуста",
    emptyLibraryText: "Ни одно фото ещё не проиндексировано: как добавить фото, сказано выше.",
    emptyLibraryOffline:
      "Библиотека пуста, а библиотеку достопримечательностей скачать не удалось (нет сети?). Скопируйте фото в папку images/ (или задайте IMAGES_DIR) и выполните {ingest}; или выполните {dataset}, когда появится сеть.",
    emptyLibraryFetching: "Библиотека пуста: скачиваем библиотеку достопримечательностей; фото появятся по мере индексации.",
    indexing: "Индексация библиотеки: {done} из {total} фото. Результатов становится больше по мере индексации.",
    indexingStart: "Индексация библиотеки…",
    example1: "Эйфелева башня ночью",
    example2: "Воздушные шары над Каппадокией",
    example3: "Водопады и бирюзовые озёра в национальном парке",
    example4: "Красные стены Московского Кремля",
    queryYourPhoto: "Фото, похожие на ваше",
    querySimilar: "Похожие на выбранное: {label}",
    queryPreviewAlt: "Фото-запрос",
    statusReady: "Введите описание или покажите фото.",
    statusSearching: "Ищем…",
    statusLoadingMore: "Загружаем ещё…",
    statusResultsText: "{photos} по запросу «{q}» · {ms} мс",
    statusResultsImage: "Похожие на ваше фото: {photos} · {ms} мс",
    statusResultsSimilar: "Похожие на выбранное: {photos} · {ms} мс",
    statusInClass: "{status} · {label}",
    statusNoMore: "Показано {photos}, больше нет",
    classifyDone: "Похоже, это {label} ({pct}).",
    qualityOpen: "Качество",
    qualityHeading: "Качество ответов (последний make eval)",
    qualityLoading: "Загружаем последний отчёт…",
    qualityNone: "Оценка ещё не запускалась. Запустите make eval на размеченных фото, чтобы узнать качество ответов.",
    qualityRun: "{when} · {model} ({precision})",
    qualityMeasure: "Мера",
    qualityValue: "Значение",
    qualityClassification: "Классификация ({n} размеченных фото)",
    qualityTop1: "Точность top-1",
    qualityTop3: "Точность top-3",
    qualityBalanced: "Сбалансированная точность",
    qualityEce: "Ошибка калибровки (ECE)",
    qualityThresholdValue: "Порог «Ничего из этого»",
    qualityCoverage: "Доля ответов с классом",
    qualityAccuracyCovered: "Точность этих ответов",
    qualityText: "Текст → фото",
    qualityLanguage: "Язык",
    qualityQueries: "Запросы",
    qualityRuEn: "Русский / английский",
    qualityImage: "Фото → фото (релевантен тот же класс)",
    qualityRevisited: "Revisited {name}",
    qualitySetup: "Режим",
    qualitySetup_easy: "Лёгкий",
    qualitySetup_medium: "Средний",
    qualitySetup_hard: "Трудный",
    qualityPrecision: "Точности вычислений рядом",
    qualityCrosscheck: "Qdrant против точного поиска FAISS: recall@{k} {recall}",
    qualityChart_confusion_matrix: "Матрица ошибок",
    qualityChart_reliability: "Диаграмма надёжности",
    qualityChart_prompts: "Каждый промпт отдельно и без него в ансамбле",
    classifyNone: "Ни один из классов",
    classifyNoneWhy: "Ближайший класс: {label}, уверенность {pct}",
    emptyTitle: "Ничего не найдено",
    emptyText: "Попробуйте другое описание или другое фото.",
    emptyTextClass: "В этом классе подходящих фото нет. Выберите «Все».",
    starting: "Сервер запускается (загружает модель)…",
    storeDown: "Хранилище векторов недоступно, пробуем снова… ({message})",
    loadFailed: "Сервер не смог запуститься: {message}",
    modelMismatch: "Библиотека проиндексирована другой моделью. {message}",
    emptyLibrary: "Библиотека пуста: скопируйте фото в папку images/ или выполните {dataset}, затем {ingest}.",
    footer: "В библиотеке {photos} · {model}",
    tooLarge: "Файл «{name}» весит {size} МБ, а принимаются фото до {limit} МБ.",
    notImage: "«{name}» не изображение. Выберите фото в формате JPEG, PNG, WebP или GIF.",
    noImageInClipboard: "В буфере обмена нет изображения.",
    networkError: "Сервер недоступен. Проверьте соединение и попробуйте ещё раз.",
    genericError: "Что-то пошло не так ({code}).",
    photos: { one: "{n} фотография", few: "{n} фотографии", many: "{n} фотографий", other: "{n} фотографии" },
    // Server errors, by code (the English UI shows the server's own message).
    error_payload_too_large: "Файл слишком большой для сервера.",
    error_unsupported_image: "Файл не удалось прочитать как изображение.",
    error_empty_query: "Введите, что искать.",
    error_unknown_class: "Такого класса нет.",
    error_invalid_parameter: "Неверный параметр запроса.",
    error_not_found: "Фото не найдено.",
    error_not_ready: "Сервер ещё запускается, попробуйте через несколько секунд.",
    error_store_unavailable: "Хранилище векторов недоступно.",
    error_text_encoder_loading: "Многоязычная модель ещё загружается, попробуйте через несколько секунд.",
    error_text_encoder_unavailable: "Многоязычной модели на этом сервере нет.",
  },
};

/** Add a widget's own texts (refine.js, duplicates.js keep theirs beside their code). */
export function addMessages(more) {
  for (const code of LANGS) Object.assign(MESSAGES[code], more[code] || {});
}

let current = initialLang();

function initialLang() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null;
  }
  if (LANGS.includes(stored)) return stored;
  const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return preferred.toLowerCase().startsWith("ru") ? "ru" : "en";
}

export function lang() {
  return current;
}

export function setLang(next) {
  if (!LANGS.includes(next)) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Private mode or storage disabled: the choice lasts for this page only.
  }
}

function fill(template, params) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** The text of `key` in the current language (English as the fallback), with {params} filled in. */
export function t(key, params = {}) {
  const value = MESSAGES[current][key] ?? MESSAGES.en[key] ?? key;
  return fill(typeof value === "string" ? value : value.other, params);
}

export function has(key) {
  return key in MESSAGES[current];
}

/** "{n} photos" with the right plural form for the current language. */
export function photos(n) {
  const forms = MESSAGES[current].photos;
  const rule = new Intl.PluralRules(current).select(n);
  return fill(forms[rule] ?? forms.other, { n: formatInt(n) });
}

export function formatInt(n) {
  return new Intl.NumberFormat(current).format(n);
}

/** How well a photo matches, as a person reads it: the cosine as a whole percentage, never below 0. */
export function formatMatch(score) {
  if (score == null || Number.isNaN(score)) return "–";
  const pct = Math.round(Math.max(0, Math.min(1, score)) * 100);
  return t("match", { pct: new Intl.NumberFormat(current).format(pct) });
}

export function formatScore(score) {
  return new Intl.NumberFormat(current, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(score);
}

export function formatPercent(fraction) {
  if (fraction == null || Number.isNaN(fraction)) return "–";
  if (fraction > 0 && fraction < 0.01) return `<${new Intl.NumberFormat(current, { style: "percent" }).format(0.01)}`;
  return new Intl.NumberFormat(current, { style: "percent", maximumFractionDigits: 0 }).format(fraction);
}

/** A class name in the current language. */
export function className(label) {
  if (!label) return "";
  return (current === "ru" ? label.name_ru : label.name) || label.name || label.id;
}

/** Translate the static texts of the page. */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  document.title = t("pageTitle");
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}
