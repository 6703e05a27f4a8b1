// DOM helpers: find, build and fill nodes. No state and no texts of their own.

/** The page's element with this id (the fixed elements of index.html). */
export function byId(id) {
  return document.getElementById(id);
}

/**
 * Build an element. Props become properties where the element has them (textContent via "text",
 * className via "class"), attributes otherwise (aria-*, role); null, undefined and false are skipped.
 */
export function node(tag, props = {}, children = []) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key in element && !key.startsWith("aria") && key !== "role") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...children);
  return element;
}

/** Fill a template's {name} placeholders with DOM nodes (e.g. <code> elements). */
export function fillNodes(template, parts) {
  const out = [];
  let last = 0;
  for (const match of template.matchAll(/\{(\w+)\}/g)) {
    out.push(template.slice(last, match.index));
    out.push(parts[match[1]] ?? match[0]);
    last = match.index + match[0].length;
  }
  out.push(template.slice(last));
  return out;
}

/** A link that opens in a new tab, or plain text when the URL is not http(s) (never javascript:). */
export function externalLink(text, url) {
  const href = safeUrl(url);
  if (!href) return document.createTextNode(text);
  return node("a", { href, text, target: "_blank", rel: "noopener noreferrer" });
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}
