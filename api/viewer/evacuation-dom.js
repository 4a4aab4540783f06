// Small DOM and number helpers shared by the evacuation panel's modules.
import { getLang, t } from "./i18n.js";

/** h("div", {class, i18n, onclick, ...attrs}, ...children): an element; `i18n` sets its text from t(). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "i18n") node.dataset.i18n = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  if (attrs.i18n) node.textContent = t(attrs.i18n);
  return node;
}

export const locale = () => (getLang() === "zh" ? "zh-CN" : "en");

export const fmt = (v, digits = 0) => Number(v).toLocaleString(locale(),
  { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Seconds as whole minutes ("–" for null: a clearance share never reached). */
export const minutes = (seconds) => (seconds === null || seconds === undefined ? null : Math.round(seconds / 60));

/** t(key) with {name} placeholders filled. */
export const tf = (key, values) => t(key).replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));

export const when = (iso) => new Date(iso).toLocaleString(locale(),
  { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
